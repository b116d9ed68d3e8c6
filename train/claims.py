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

from heldout.readers import experiment as experiment_lib
from heldout.readers import layout

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

  def describe(self) -> str:
    return "{}:{} since {}".format(
        self.host, self.pid,
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since)))


def read_claim(path, run_id, now=None) -> Optional[ClaimInfo]:
  """The claim at `path`, or None if there is none (a half-written claim
  reads as one of unknown owner, with its age)."""
  now = time.time() if now is None else now
  try:
    age = now - os.path.getmtime(path)
    with open(path) as f:
      text = f.read()
  except FileNotFoundError:
    return None
  try:
    data = json.loads(text)
  except ValueError:
    data = {}
  return ClaimInfo(run_id=int(run_id), host=str(data.get("host", "?")),
                   pid=int(data.get("pid", -1)),
                   since=float(data.get("since", now - age)),
                   owner=str(data.get("owner", "")), age_s=max(age, 0.0))


class RunClaims:
  """The claims one worker holds in one experiment folder and ratio."""

  def __init__(self, output_dir, subset_ratio,
               stale_after_s: float = DEFAULT_STALE_AFTER_S,
               refresh_every_s: float = DEFAULT_REFRESH_EVERY_S):
    if stale_after_s <= refresh_every_s:
      raise ValueError("`stale_after_s` ({}) must exceed `refresh_every_s` "
                       "({})".format(stale_after_s, refresh_every_s))
    self.output_dir = output_dir
    self.subset_ratio = subset_ratio
    self.stale_after_s = float(stale_after_s)
    self.refresh_every_s = float(refresh_every_s)
    self.owner = uuid.uuid4().hex
    self._held = set()
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = None

  def _content(self):
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                       "since": time.time(), "owner": self.owner})

  def path(self, run_id):
    return claim_path(self.output_dir, self.subset_ratio, run_id)

  def try_claim(self, run_id) -> bool:
    """Claims `run_id` if no live worker holds it; True if it is ours now."""
    path = self.path(run_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return self._take_over_if_stale(run_id, path)
    with os.fdopen(fd, "w") as f:
      f.write(self._content())
    with self._lock:
      self._held.add(int(run_id))
    self._start_heartbeat()
    return True

  def _take_over_if_stale(self, run_id, path) -> bool:
    info = read_claim(path, run_id)
    if info is None:  # released meanwhile: try again from the start
      return self.try_claim(run_id)
    if info.owner == self.owner:
      return True
    if info.age_s < self.stale_after_s:
      return False
    mine = "{}.{}".format(path, self.owner)
    with open(mine, "w") as f:
      f.write(self._content())
    os.replace(mine, path)
    # Several workers may have replaced it at once: the last rename wins,
    # and each reads back who that was.
    time.sleep(min(1.0, self.refresh_every_s / 10))
    now = read_claim(path, run_id)
    if now is None or now.owner != self.owner:
      return False
    with self._lock:
      self._held.add(int(run_id))
    self._start_heartbeat()
    return True

  def still_ours(self, run_id) -> bool:
    info = read_claim(self.path(run_id), run_id)
    return info is not None and info.owner == self.owner

  def refresh(self):
    """Touches every claim held; forgets those another worker took over."""
    with self._lock:
      held = sorted(self._held)
    for run_id in held:
      if self.still_ours(run_id):
        try:
          os.utime(self.path(run_id))
        except FileNotFoundError:
          pass
      else:
        with self._lock:
          self._held.discard(run_id)

  def release(self, run_id):
    """Removes our claim of `run_id` (if it still is ours)."""
    with self._lock:
      self._held.discard(int(run_id))
    if self.still_ours(run_id):
      try:
        os.remove(self.path(run_id))
      except FileNotFoundError:
        pass

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
  if not os.path.isdir(output_dir):
    return out
  now = time.time()
  for name in sorted(os.listdir(output_dir)):
    ratio = layout.parse_ratio_dirname(name)
    if ratio is None:
      continue
    folder = os.path.join(output_dir, name)
    if not os.path.isdir(folder):
      continue
    done, claims = [], {}
    for entry in os.listdir(folder):
      if entry.isdigit() and not experiment_lib.run_problems(
          os.path.join(folder, entry)):
        done.append(int(entry))
      elif (entry.startswith(".") and entry.endswith(CLAIM_SUFFIX) and
            entry[1:-len(CLAIM_SUFFIX)].isdigit()):
        run_id = int(entry[1:-len(CLAIM_SUFFIX)])
        info = read_claim(os.path.join(folder, entry), run_id, now)
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
