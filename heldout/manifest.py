"""Per-run manifests: the size and SHA-256 of every file of a run, and checks.

A run folder `<experiment>/<ratio>/<run>/` holds `MANIFEST_FILENAME`, a JSON
file that lists every file of the run (paths relative to the run folder):

    {"format": "heldout-run-manifest", "version": 1, "algorithm": "sha256",
     "source": "//train:heldout", "written_at": "2026-...",
     "files": {"aux_arrays.npz": {"size": 4242, "sha256": "9f86d0..."},
               "checkpoints/ckpt-20.index": {...}, ...}}

`//heldout:download` writes it for every run it extracted (checksums of the
data as the verified archive holds it), `//train:heldout` when it publishes a
run, and `//heldout:verify --write_manifest` for runs that came by other
means. `check_run` re-reads a run's files against it and `check_experiment`
does so for every run of an experiment directory.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

import tqdm

from heldout import errors
from heldout import storage
from heldout.readers import experiment as experiment_lib
from heldout.readers import layout

MANIFEST_FILENAME = ".heldout_manifest.json"
# `//heldout:download`'s completion marker in the experiment folder
# (`heldout.released.downloader`); it lists every file it extracted.
DOWNLOAD_MARKER_FILENAME = ".download_complete.json"
FORMAT = "heldout-run-manifest"
VERSION = 1
ALGORITHM = "sha256"

_CHUNK = 1 << 20

# The statuses of a run, in the order they are reported.
OK = "ok"
MISSING = "missing"
CHANGED = "changed"
EXTRA = "extra"
NO_MANIFEST = "no manifest"
MANIFEST_WRITTEN = "manifest written"
RUN_FOLDER_MISSING = "run folder missing"  # Of the experiment: a run the download recorded.


def new_digest():
  """A fresh hash object of the manifests' algorithm (SHA-256)."""
  return hashlib.sha256()


def file_record(size, checksum):
  """`{"size": size, "sha256": checksum}`, a manifest's entry for one file."""
  return {"size": int(size), ALGORITHM: checksum}


def hash_file(path, on_bytes: Optional[Callable[[int], None]] = None):
  """The manifest entry of the file at `path` (read once).

  Args:
    path: a local file.
    on_bytes: called with the size of each chunk read (a progress bar), or None.
  """
  digest = new_digest()
  size = 0
  with storage.for_path(path).open(path, "rb") as f:
    while True:
      chunk = f.read(_CHUNK)
      if not chunk:
        break
      digest.update(chunk)
      size += len(chunk)
      if on_bytes is not None:
        on_bytes(len(chunk))
  return file_record(size, digest.hexdigest())


def manifest_path(run_dir):
  return os.path.join(run_dir, MANIFEST_FILENAME)


def _is_temporary(name):
  # Files being written by `atomic.atomic_open` (".<name>.tmp-<hex>").
  return name.startswith(".") and ".tmp-" in name


def run_files(run_dir) -> List[str]:
  """Sorted paths (relative, "/"-separated) of the files a manifest covers.

  Every regular file under `run_dir` except the manifest itself and files
  being written atomically at this moment (`.<name>.tmp-*`); symbolic links
  are not followed or listed.
  """
  return [rel for rel in storage.for_path(run_dir).walk_files(run_dir)
          if rel != MANIFEST_FILENAME and
          not _is_temporary(rel.rsplit("/", 1)[-1])]


def read_manifest(run_dir) -> Optional[dict]:
  """The run's manifest, or None when it has none.

  Raises:
    ExperimentError: for a manifest that is not one (unreadable JSON, another
      format or algorithm, malformed entries).
  """
  path = manifest_path(run_dir)
  try:
    with storage.for_path(path).open(path, "r") as f:
      data = json.load(f)
  except FileNotFoundError:
    return None
  except ValueError as e:
    raise errors.ExperimentError("{}: not a JSON manifest ({}); delete it and record "
                                 "a new one with --write_manifest".format(path, e)) from e
  files = data.get("files") if isinstance(data, dict) else None
  if (not isinstance(data, dict) or data.get("format") != FORMAT
      or data.get("algorithm") != ALGORITHM or not isinstance(files, dict)
      or not all(isinstance(r, dict) and isinstance(r.get("size"), int)
                 and isinstance(r.get(ALGORITHM), str) for r in files.values())):
    raise errors.ExperimentError(
        "{}: expected a {} manifest with algorithm {} and a size and {} per file; "
        "found something else".format(path, FORMAT, ALGORITHM, ALGORITHM))
  return data


def write_manifest(run_dir, files: Dict[str, dict], source, merge=False):
  """Writes the run's manifest atomically.

  Args:
    run_dir: the run folder.
    files: relative path -> `file_record(...)`.
    source: what produced the files ("//train:heldout", an archive URL, ...).
    merge: keep the entries of an existing manifest that `files` does not
      replace (a download of the checkpoints after one of the aux_arrays).

  Returns:
    The manifest written.
  """
  entries = {}
  if merge:
    existing = read_manifest(run_dir)
    if existing is not None:
      entries.update(existing["files"])
  entries.update(files)
  data = manifest_data(entries, source)
  path = manifest_path(run_dir)
  storage.for_path(path).put_bytes(path, encode_manifest(data))
  return data


def manifest_data(files: Dict[str, dict], source) -> dict:
  """A manifest of `files` (relative path -> `file_record(...)`)."""
  return {
      "format": FORMAT,
      "version": VERSION,
      "algorithm": ALGORITHM,
      "source": source,
      "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "files": {rel: files[rel] for rel in sorted(files)},
  }


def encode_manifest(data: dict) -> bytes:
  """The bytes of a manifest file (as `write_manifest` writes them)."""
  return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def bytes_record(data: bytes):
  """The manifest entry of a file whose content is `data`."""
  digest = new_digest()
  digest.update(data)
  return file_record(len(data), digest.hexdigest())


def record_run(run_dir, source, on_bytes=None):
  """Hashes every file of `run_dir` (see `run_files`) and writes its manifest.

  Returns:
    The manifest written.
  """
  files = {rel: hash_file(os.path.join(run_dir, *rel.split("/")), on_bytes)
           for rel in run_files(run_dir)}
  return write_manifest(run_dir, files, source)


@dataclasses.dataclass
class RunFiles:
  """What `check_run` found in one run folder.

  Attributes:
    path: the run folder.
    name: how to call it in a report (`<ratio>/<run>`).
    has_manifest: whether it had a manifest before the check.
    missing: files the manifest lists that are not there.
    changed: `(path, what)` of files whose size or checksum differ.
    extra: files there that the manifest does not list.
    checked: files compared (the manifest's files that are present).
    manifest_written: a manifest was recorded by this check.
  """
  path: str
  name: str
  has_manifest: bool = True
  missing: List[str] = dataclasses.field(default_factory=list)
  changed: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  extra: List[str] = dataclasses.field(default_factory=list)
  checked: int = 0
  manifest_written: bool = False

  @property
  def statuses(self):
    """The run's statuses: ["ok"], ["no manifest"], or the problems found."""
    if not self.has_manifest:
      return [MANIFEST_WRITTEN if self.manifest_written else NO_MANIFEST]
    found = [s for s, items in ((MISSING, self.missing), (CHANGED, self.changed),
                                (EXTRA, self.extra)) if items]
    return found or [OK]

  @property
  def mismatch(self):
    return bool(self.missing or self.changed or self.extra)

  def describe(self, max_files=5):
    """One line: `<ratio>/<run>: changed (...), missing (...)`."""
    details = []
    for status, items in ((MISSING, self.missing),
                          (CHANGED, ["{} ({})".format(p, w) for p, w in self.changed]),
                          (EXTRA, self.extra)):
      if items:
        shown = ", ".join(items[:max_files])
        more = len(items) - max_files
        details.append("{}: {}{}".format(status, shown,
                                         ", and {} more".format(more) if more > 0 else ""))
    if not details:
      text = ", ".join(self.statuses)
      if self.has_manifest:
        text += " ({} files)".format(self.checked)
      return "{}: {}".format(self.name, text)
    return "{}: {}".format(self.name, "; ".join(details))


def check_run(run_dir, name=None, on_bytes=None) -> RunFiles:
  """Re-reads the files of `run_dir` against its manifest.

  Args:
    run_dir: the run folder.
    name: what to call it in reports (default: the folder).
    on_bytes: called with the size of each chunk read, or None.

  Returns:
    `RunFiles` (`has_manifest=False` and nothing checked when there is none).

  Raises:
    ExperimentError: for a malformed manifest.
  """
  result = RunFiles(path=run_dir, name=name or run_dir)
  data = read_manifest(run_dir)
  if data is None:
    result.has_manifest = False
    return result
  expected = data["files"]
  present = run_files(run_dir)
  result.extra = [rel for rel in present if rel not in expected]
  present = set(present)
  for rel in sorted(expected):
    record = expected[rel]
    if rel not in present:
      result.missing.append(rel)
      continue
    path = os.path.join(run_dir, *rel.split("/"))
    size = storage.for_path(path).size(path)
    result.checked += 1
    if size != record["size"]:
      result.changed.append((rel, "{} bytes, expected {}".format(size, record["size"])))
      if on_bytes is not None:
        on_bytes(record["size"])  # Keeps the progress bar's total meaningful.
      continue
    actual = hash_file(path, on_bytes)
    if actual[ALGORITHM] != record[ALGORITHM]:
      result.changed.append((rel, "{} {}..., expected {}...".format(
          ALGORITHM, actual[ALGORITHM][:12], record[ALGORITHM][:12])))
  return result


@dataclasses.dataclass
class ExperimentFiles:
  """What `check_experiment` found.

  Attributes:
    path: the experiment folder.
    runs: one `RunFiles` per run folder, by ratio then run id.
    missing_runs: runs (`<ratio>/<run>`) a download recorded whose folder is gone.
  """
  path: str
  runs: List[RunFiles]
  missing_runs: List[str] = dataclasses.field(default_factory=list)

  @property
  def mismatch(self):
    """Whether anything differs from a manifest (a missing run included)."""
    return bool(self.missing_runs) or any(r.mismatch for r in self.runs)

  def counts(self):
    """{status: number of runs}; a run with several problems counts under each."""
    out = {}
    for run in self.runs:
      for status in run.statuses:
        out[status] = out.get(status, 0) + 1
    if self.missing_runs:
      out[RUN_FOLDER_MISSING] = len(self.missing_runs)
    return out

  def raise_on_mismatch(self):
    """Raises `ExperimentError` when a file is missing, changed or extra, or a run is gone."""
    if self.mismatch:
      bad = sum(1 for r in self.runs if r.mismatch) + len(self.missing_runs)
      counts = self.counts()
      found = ", ".join("{} {}".format(counts[s], s) for s in (
          MISSING, CHANGED, EXTRA, RUN_FOLDER_MISSING) if s in counts)
      raise errors.ExperimentError(
          "{}: {} of {} runs differ from their manifests ({}; the first: {}); download "
          "or copy them again".format(self.path, bad, len(self.runs) + len(self.missing_runs),
                                      found, self._first_mismatch()))

  def _first_mismatch(self):
    if self.missing_runs:
      return "{}: {}".format(self.missing_runs[0], RUN_FOLDER_MISSING)
    return next(r.describe() for r in self.runs if r.mismatch)

  def describe(self, every_run=False):
    """A line per run that is not ok (every run with `every_run`), then totals."""
    lines = ["{}: {} (recorded by the download)".format(name, RUN_FOLDER_MISSING)
             for name in self.missing_runs]
    lines += [r.describe() for r in self.runs if every_run or r.statuses != [OK]]
    counts = self.counts()
    order = [OK, MISSING, CHANGED, EXTRA, NO_MANIFEST, MANIFEST_WRITTEN, RUN_FOLDER_MISSING]
    lines.append("{}: {} runs, {} files checked: {}".format(
        self.path, len(self.runs), sum(r.checked for r in self.runs),
        ", ".join("{} {}".format(counts[s], s) for s in order if s in counts)))
    if counts.get(NO_MANIFEST):
      lines.append("{} run{} no manifest and {} not checked (record one with "
                   "--write_manifest)".format(
                       counts[NO_MANIFEST], " has" if counts[NO_MANIFEST] == 1 else "s have",
                       "was" if counts[NO_MANIFEST] == 1 else "were"))
    return "\n".join(lines)


def _manifest_bytes(run_dir):
  try:
    data = read_manifest(run_dir)
  except errors.ExperimentError:
    return 0
  if data is None:
    return None
  return sum(r["size"] for rel, r in data["files"].items()
             if storage.for_path(run_dir).isfile(
                 os.path.join(run_dir, *rel.split("/"))))


def downloaded_runs(experiment_dir):
  """`<ratio>/<run>` of every run the download marker lists a file of (a set)."""
  path = os.path.join(experiment_dir, DOWNLOAD_MARKER_FILENAME)
  try:
    with storage.for_path(path).open(path, "r") as f:
      marker = json.load(f)
  except FileNotFoundError:
    return set()
  except ValueError as e:
    raise errors.ExperimentError("{}: unreadable download marker ({})".format(
        os.path.join(experiment_dir, DOWNLOAD_MARKER_FILENAME), e)) from e
  runs = set()
  for entry in marker.get("entries", []):
    for rel in entry.get("files", {}):
      parts = rel.split("/")
      ratio = layout.parse_ratio_dirname(parts[0])
      if len(parts) >= 3 and ratio is not None and parts[1].isdigit():
        runs.add("{}/{}".format(layout.ratio_dirname(ratio), int(parts[1])))
  return runs


def check_experiment(experiment_dir, *, write_missing=False, expected_runs=None,
                     progress=True, source="//heldout:verify --write_manifest"):
  """Checks every run of an experiment directory against its manifest.

  Args:
    experiment_dir: an experiment folder (`<ratio>/<run>/...`), local or a
      URL `tf.io.gfile` opens (`gs://...`).
    write_missing: record a manifest (hashing the files as they are) for each
      run that has none.
    expected_runs: `<ratio>/<run>` names that must exist, absent ones being
      reported as missing; None: the runs the download marker lists
      (`downloaded_runs`).
    progress: show a tqdm bar of the bytes read on stderr.
    source: the `source` of manifests written.

  Returns:
    `ExperimentFiles`.

  Raises:
    ExperimentError: if `experiment_dir` is not an experiment directory, or a
      run's manifest is malformed.
  """
  scanned = experiment_lib.scan_experiment(experiment_dir)
  runs = [(layout.ratio_dirname(ratio) + "/" + str(run.run_id), run.path)
          for ratio in scanned.ratios for run in scanned.runs[ratio]]
  present = {name for name, _ in runs}
  if expected_runs is None:
    expected_runs = downloaded_runs(experiment_dir)
  missing_runs = sorted(set(expected_runs) - present,
                        key=lambda n: (float(n.split("/")[0]), int(n.split("/")[1])))
  total = 0
  for _, path in runs:
    size = _manifest_bytes(path)
    if size is None and write_missing:
      size = sum(storage.for_path(path).size(os.path.join(path, *rel.split("/")))
                 for rel in run_files(path))
    total += size or 0
  results = []
  with tqdm.tqdm(total=total, desc="verify", unit="B", unit_scale=True,
                 unit_divisor=1000, disable=not progress, file=sys.stderr,
                 mininterval=0.5, dynamic_ncols=True) as bar:
    for name, path in runs:
      result = check_run(path, name=name, on_bytes=bar.update)
      if not result.has_manifest and write_missing:
        record_run(path, source, on_bytes=bar.update)
        result.manifest_written = True
      results.append(result)
  return ExperimentFiles(path=str(experiment_dir), runs=results,
                         missing_runs=missing_runs)
