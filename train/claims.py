"""Run claims: workers with overlapping ranges never train a run twice.

Before training run r a worker claims it: it creates
`<output_dir>/<ratio>/.<r>.claim` exclusively (`O_CREAT | O_EXCL`, which
local and network file systems honour), holding its host, pid, start time
and a random owner id. While it trains, a heartbeat thread refreshes the
claim's modification time every `refresh_every_s`. Other workers skip a run
whose claim is fresh and take over one not refreshed for `stale_after_s` (a
killed or preempted worker): they write their own claim beside it and
rename it over the stale one, then read it back, so of several taking over
at once exactly one keeps it. The run's temporary folder (and its progress
checkpoint) is then resumed by the new owner. After publishing, the owner
removes its claim.

So overlapping ranges, restarted workers and spare workers are all safe:
every run is trained by one worker at a time, a run published by another
worker in the meantime is not published again (`publish_run` leaves it),
and every worker exits 0. `stale_after_s` must exceed the longest pause a
live worker may take between heartbeats (default 10 minutes, heartbeats
every 30 s).

Where the claims live is `claim_stores.for_path(output_dir)`: the above on a
local or shared file system; on `gs://` the same protocol with GCS
generation preconditions instead of `O_EXCL` and the rename
(`claim_stores.GcsClaimStore`: of several takers exactly one wins, no
read-back delay; claim ages there follow GCS's clock, so workers need
NTP-synced clocks).

`experiment_status` reads the claims and runs of a folder for
`//train:heldout --status`.
"""

import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from typing import Dict, List, Optional, Sequence

from heldout import storage
from heldout.readers import experiment as experiment_lib
from heldout.readers import layout
from train import claim_stores

CLAIM_SUFFIX = ".claim"
DEFAULT_STALE_AFTER_S = 600.0
DEFAULT_REFRESH_EVERY_S = 30.0


def claim_path(output_dir, subset_ratio, run_id) -> str:
  return os.path.join(output_dir, layout.ratio_dirname(subset_ratio),
                      ".{}{}".format(int(run_id), CLAIM_SUFFIX))


@dataclasses.dataclass(frozen=True)
class ClaimInfo:
  """A claim file's content and age."""
  run_id: int
  host: str
  pid: int
  since: float
  owner: str
  age_s: float  # since its last refresh (modification time)
  version: object = None  # the store's version of it (`claim_stores`)

  def describe(self) -> str:
    return "{}:{} since {}".format(
        self.host, self.pid,
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since)))


def _parse(stored, run_id, now) -> ClaimInfo:
  age = now - stored.mtime
  try:
    data = json.loads(stored.text)
  except ValueError:
    data = {}
  if not isinstance(data, dict):
    data = {}
  return ClaimInfo(run_id=int(run_id), host=str(data.get("host", "?")),
                   pid=int(data.get("pid", -1)),
                   since=float(data.get("since", now - age)),
                   owner=str(data.get("owner", "")), age_s=max(age, 0.0),
                   version=stored.version)


def read_claim(path, run_id, now=None, store=None) -> Optional[ClaimInfo]:
  """The claim at `path`, or None if there is none (a half-written claim
  reads as one of unknown owner, with its age)."""
  now = time.time() if now is None else now
  store = store or claim_stores.for_path(path)
  stored = store.read(path)
  return None if stored is None else _parse(stored, run_id, now)


class RunClaims:
  """The claims one worker holds in one experiment folder and ratio."""

  def __init__(self, output_dir, subset_ratio,
               stale_after_s: float = DEFAULT_STALE_AFTER_S,
               refresh_every_s: float = DEFAULT_REFRESH_EVERY_S,
               store=None):
    if stale_after_s <= refresh_every_s:
      raise ValueError("`stale_after_s` ({}) must exceed `refresh_every_s` "
                       "({})".format(stale_after_s, refresh_every_s))
    self.output_dir = output_dir
    self.subset_ratio = subset_ratio
    self.stale_after_s = float(stale_after_s)
    self.refresh_every_s = float(refresh_every_s)
    self.store = store or claim_stores.for_path(output_dir)
    self.owner = uuid.uuid4().hex
    self._held = {}  # run id -> the claim's text, as we wrote it
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = None

  def _content(self):
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                       "since": time.time(), "owner": self.owner})

  def path(self, run_id):
    return claim_path(self.output_dir, self.subset_ratio, run_id)

  def _read(self, run_id):
    return read_claim(self.path(run_id), run_id, store=self.store)

  def _hold(self, run_id, text):
    info = self._read(run_id)
    if info is None or info.owner != self.owner:
      return False
    with self._lock:
      self._held[int(run_id)] = text
    self._start_heartbeat()
    return True

  def try_claim(self, run_id) -> bool:
    """Claims `run_id` if no live worker holds it; True if it is ours now."""
    path = self.path(run_id)
    text = self._content()
    if self.store.create(path, text):
      return self._hold(run_id, text)
    return self._take_over_if_stale(run_id, path)

  def _take_over_if_stale(self, run_id, path) -> bool:
    info = self._read(run_id)
    if info is None:  # released meanwhile: try again from the start
      return self.try_claim(run_id)
    if info.owner == self.owner:
      return True
    if info.age_s < self.stale_after_s:
      return False
    text = self._content()
    if not self.store.replace(path, text, info.version):
      return False  # another worker took it over first
    # Where several takers may replace it at once the last one wins: each
    # reads back who that was.
    if self.store.settle_s:
      time.sleep(min(self.store.settle_s, self.refresh_every_s / 10))
    return self._hold(run_id, text)

  def still_ours(self, run_id) -> bool:
    info = self._read(run_id)
    return info is not None and info.owner == self.owner

  def refresh(self):
    """Marks every claim held alive; forgets those another worker took over."""
    with self._lock:
      held = sorted(self._held.items())
    for run_id, text in held:
      info = self._read(run_id)
      alive = (info is not None and info.owner == self.owner and
               self.store.refresh(self.path(run_id), text, info.version))
      if not alive:
        with self._lock:
          self._held.pop(run_id, None)

  def release(self, run_id):
    """Removes our claim of `run_id` (if it still is ours)."""
    with self._lock:
      self._held.pop(int(run_id), None)
    info = self._read(run_id)
    if info is not None and info.owner == self.owner:
      self.store.delete(self.path(run_id), info.version)

  def release_all(self):
    with self._lock:
      held = sorted(self._held)
    for run_id in held:
      self.release(run_id)
    self._stop.set()

  def _start_heartbeat(self):
    if self._thread is not None and self._thread.is_alive():
      return
    self._stop.clear()

    def beat():
      while not self._stop.wait(self.refresh_every_s):
        self.refresh()

    self._thread = threading.Thread(target=beat, name="run-claims",
                                    daemon=True)
    self._thread.start()


class NoClaims:
  """Claims turned off (`--noclaims`): every run is this worker's. Safe only
  when workers are given disjoint runs (an output folder on a store without
  an exclusive create, `claim_stores.for_path`)."""

  def try_claim(self, run_id) -> bool:  # pylint: disable=unused-argument
    return True

  def release(self, run_id):
    pass

  def release_all(self):
    pass


def for_job(output_dir, subset_ratio, enabled: bool = True,
            options: Optional[dict] = None):
  """`RunClaims(output_dir, subset_ratio, **options)`, or `NoClaims()`."""
  if not enabled:
    return NoClaims()
  return RunClaims(output_dir, subset_ratio, **(options or {}))


@dataclasses.dataclass(frozen=True)
class RatioStatus:
  """What a ratio folder holds (see `experiment_status`)."""
  ratio: float
  done: List[int]
  claimed: List[ClaimInfo]
  stale: List[ClaimInfo]
  missing: List[int]


def experiment_status(output_dir, run_ids: Optional[Sequence[int]] = None,
                      stale_after_s: float = DEFAULT_STALE_AFTER_S
                      ) -> Dict[float, RatioStatus]:
  """Per ratio: runs done, claimed (fresh), stale claims, and missing.

  Args:
    output_dir: the experiment folder.
    run_ids: the runs asked for (for `missing`); the runs seen if None.
    stale_after_s: a claim older than this is stale.
  """
  out = {}
  fs = storage.for_path(output_dir)
  if not fs.isdir(output_dir):
    return out
  store = claim_stores.for_path(output_dir)
  now = time.time()
  for name in fs.listdir(output_dir):
    ratio = layout.parse_ratio_dirname(name)
    if ratio is None:
      continue
    folder = os.path.join(output_dir, name)
    if not fs.isdir(folder):
      continue
    done = [int(entry) for entry in fs.listdir(folder) if entry.isdigit()
            and not experiment_lib.run_problems(os.path.join(folder, entry))]
    claims = {}
    for entry in store.list(folder):
      if (entry.startswith(".") and entry.endswith(CLAIM_SUFFIX) and
          entry[1:-len(CLAIM_SUFFIX)].isdigit()):
        run_id = int(entry[1:-len(CLAIM_SUFFIX)])
        info = read_claim(os.path.join(folder, entry), run_id, now, store)
        if info is not None:
          claims[run_id] = info
    asked = sorted(set(done) | set(claims)) if run_ids is None else list(
        run_ids)
    done_set = set(done)
    live = [c for r, c in sorted(claims.items())
            if r not in done_set and c.age_s < stale_after_s]
    stale = [c for r, c in sorted(claims.items())
             if r not in done_set and c.age_s >= stale_after_s]
    busy = {c.run_id for c in live + stale}
    out[ratio] = RatioStatus(
        ratio=ratio, done=sorted(done), claimed=live, stale=stale,
        missing=[r for r in asked if r not in done_set and r not in busy])
  return out


def status_text(status: Dict[float, RatioStatus], now=None) -> str:
  """The table `//train:heldout --status` prints."""
  if not status:
    return "no ratio folder yet"
  lines = []
  for ratio, s in sorted(status.items()):
    lines.append("ratio {}: {} done, {} claimed, {} stale, {} missing".format(
        layout.ratio_dirname(ratio), len(s.done), len(s.claimed),
        len(s.stale), len(s.missing)))
    for c in s.claimed:
      lines.append("  run {}: claimed by {} (refreshed {:.0f}s ago)".format(
          c.run_id, c.describe(), c.age_s))
    for c in s.stale:
      lines.append("  run {}: stale claim of {} (not refreshed for {:.0f}s; "
                   "the next worker takes it over)".format(
                       c.run_id, c.describe(), c.age_s))
    if s.missing:
      lines.append("  missing: {}".format(_ranges(s.missing)))
  return "\n".join(lines)


def _ranges(ids):
  ids = sorted(ids)
  parts, start, prev = [], ids[0], ids[0]
  for i in ids[1:] + [None]:
    if i is not None and i == prev + 1:
      prev = i
      continue
    parts.append(str(start) if start == prev else "{}:{}".format(start,
                                                                 prev + 1))
    if i is not None:
      start = prev = i
  return ",".join(parts)
