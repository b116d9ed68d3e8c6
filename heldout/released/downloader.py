"""Downloading a released experiment: stream, select, extract, verify, mark complete.

`download_experiment` reads the experiment's `.tar.gz` once from its source
(HTTP with Range resumption, `gsutil cat`, or `tf.io.gfile`) and writes the
selected members to `<dest>/<experiment>/<ratio>/<run>/...` while it streams,
never storing the archive; the MD5 of the whole stream is computed on the way
and checked against the built-in table. With `keep_archive` the archive is
stored instead as `<dest>/<experiment>.tar.gz` (a `.part` file continued with
a Range request after an interruption), verified, then extracted.

The stream itself is verified as it is read (`extract`, `gzip_stream`): the
CRC32 and size of every gzip member, the tar end-of-archive marker and nothing
but zeros after it, no member twice; and where the server sends checksums of
the object (`x-goog-hash`, as GCS does: MD5, or CRC32C for composite objects)
the stream must match them too, so a mirror without a published MD5
(`md5="skip"`) is still verified.

Only when everything succeeded (MD5 included) is each extracted run's manifest
(`<ratio>/<run>/.heldout_manifest.json`: size and SHA-256 of every file;
`heldout.manifest`) written, then the completion marker
`<dest>/<experiment>/.download_complete.json`. It records, for each
selection downloaded, the arguments, counts, the MD5 and every file written
with its size and SHA-256, so
a re-run with the same selection whose files are all still there returns at
once instead of reading the archive again.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import re
import sys
import time
from typing import Optional

from absl import logging
import tqdm

from heldout import atomic
from heldout import errors
from heldout import manifest
from heldout.readers import layout
from heldout.released import byte_stream
from heldout.released import catalog
from heldout.released import extract

MARKER_FILENAME = manifest.DOWNLOAD_MARKER_FILENAME
SKIP_MD5 = "skip"

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclasses.dataclass
class DownloadSummary:
  """What `download_experiment` did."""
  experiment: str
  experiment_dir: str
  url: str
  source: str
  selection: dict
  members_written: int = 0
  members_skipped: int = 0
  members_not_selected: int = 0
  links_skipped: int = 0
  bytes_read: int = 0
  bytes_written: int = 0
  seconds: float = 0.0
  md5: Optional[str] = None
  md5_expected: Optional[str] = None
  md5_verified: Optional[bool] = None
  server_hashes_verified: tuple = ()
  reconnections: int = 0
  already_complete: bool = False
  archive_path: Optional[str] = None

  def describe(self):
    """A few human-readable lines."""
    if self.already_complete:
      return ("{}: already complete in {} (selection {}); nothing read. Delete {} "
              "to download again.".format(self.experiment, self.experiment_dir,
                                          _selection_text(self.selection),
                                          MARKER_FILENAME))
    rate = self.bytes_read / self.seconds if self.seconds > 0 else 0.0
    lines = [
        "{}: {} files written, {} already present (skipped), {} not selected{}".format(
            self.experiment, self.members_written, self.members_skipped,
            self.members_not_selected,
            ", {} links to unselected files skipped".format(self.links_skipped)
            if self.links_skipped else ""),
        "read {} from {} in {:.1f} s ({}/s, {} reconnections); wrote {}".format(
            _human_bytes(self.bytes_read), self.url, self.seconds,
            _human_bytes(rate), self.reconnections, _human_bytes(self.bytes_written)),
    ]
    if self.md5_verified:
      lines.append("MD5 verified: {}".format(self.md5))
    elif self.md5 is not None:
      lines.append("MD5 {} (not verified: no expected value)".format(self.md5))
    if self.server_hashes_verified:
      lines.append("the server's checksum verified (x-goog-hash {})".format(
          ", ".join(self.server_hashes_verified)))
    lines.append("gzip CRC32 and size of every member, tar end of archive verified; "
                 "size and SHA-256 of each file recorded in <ratio>/<run>/{}".format(
                     manifest.MANIFEST_FILENAME))
    if self.archive_path:
      lines.append("archive kept at {}".format(self.archive_path))
    lines.append("experiment directory: {}".format(self.experiment_dir))
    return "\n".join(lines)


def _human_bytes(n):
  n = float(n)
  for unit in ("B", "kB", "MB", "GB", "TB"):
    if abs(n) < 1000 or unit == "TB":
      return "{:.1f} {}".format(n, unit) if unit != "B" else "{:d} B".format(int(n))
    n /= 1000.0
  return "{:.1f} TB".format(n)


def _selection_text(selection):
  return "only={} ratios={} runs={}".format(
      selection["only"],
      "all" if selection["ratios"] is None else ",".join(
          "{:g}".format(r) for r in selection["ratios"]),
      "all" if selection["runs"] is None else ",".join(
          "{}:{}".format(lo, "" if hi == layout.OPEN_END else hi) for lo, hi in selection["runs"]))


def expected_md5_for(archive, md5=None):
  """The MD5 to verify against: `md5` if given ("skip": none), else the table's.

  Raises:
    ValueError: if `md5` is neither 32 hex digits nor "skip".
  """
  if md5 is None or md5 == "":
    return archive.md5
  if md5 == SKIP_MD5:
    return None
  md5 = md5.lower()
  if not _MD5_RE.match(md5):
    raise ValueError("`md5` must be 32 hex digits or {!r}, got {!r}".format(SKIP_MD5, md5))
  return md5


def _progress_bar(total, desc, progress, initial=0):
  return tqdm.tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                   unit_divisor=1000, disable=not progress, file=sys.stderr,
                   mininterval=0.5, dynamic_ncols=True)


def read_marker(experiment_dir):
  """The completion marker's contents, or None when there is none (or it is unreadable)."""
  path = os.path.join(experiment_dir, MARKER_FILENAME)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError) as e:
    logging.warning("%s: unreadable completion marker (%s); ignoring it", path, e)
    return None


def _completed_entry(experiment_dir, selection_json, expected_md5):
  """The marker entry for this selection whose files are all still present, or None."""
  marker = read_marker(experiment_dir)
  if not marker:
    return None
  for entry in marker.get("entries", []):
    if entry.get("selection") != selection_json:
      continue
    if expected_md5 is not None and entry.get("md5") != expected_md5:
      continue
    missing = [rel for rel, record in entry.get("files", {}).items()
               if not (os.path.isfile(os.path.join(experiment_dir, rel))
                       and os.path.getsize(os.path.join(experiment_dir, rel)) == (
                           record["size"] if isinstance(record, dict) else record))]
    if missing:
      logging.info("%s: marked complete but %d files are missing or changed "
                   "(first: %s); reading the archive again", experiment_dir,
                   len(missing), missing[0])
      return None
    return entry
  return None


def _write_marker(experiment_dir, archive, entry):
  marker = read_marker(experiment_dir) or {}
  entries = [e for e in marker.get("entries", [])
             if e.get("selection") != entry["selection"]]
  entries.append(entry)
  atomic.write_json(os.path.join(experiment_dir, MARKER_FILENAME), {
      "experiment": archive.experiment,
      "archive": archive.filename,
      "entries": entries,
  })


def _hash_file(path, progress, desc):
  md5 = hashlib.md5()
  size = os.path.getsize(path)
  with open(path, "rb") as f, _progress_bar(size, desc, progress) as bar:
    while True:
      chunk = f.read(1 << 20)
      if not chunk:
        break
      md5.update(chunk)
      bar.update(len(chunk))
  return md5


def _set_aside_corrupt(path, archive_path):
  corrupt = archive_path + ".corrupt"
  os.replace(path, corrupt)
  return corrupt


def check_server_hashes(url, server_hashes, md5_hex, crc32c, size):
  """Compares the stream's checksums with those the server sent (`x-goog-hash`).

  Args:
    url: the object, for messages.
    server_hashes: {"md5": hex, "crc32c": int} from the server, possibly empty.
    md5_hex: the MD5 of the whole stream.
    crc32c: its CRC32C, or None when it was not computed.
    size: bytes in the stream (where the check happens: its end).

  Returns:
    The names of the checksums verified ("md5", "crc32c").

  Raises:
    ArchiveError: naming the checksum, on a mismatch.
  """
  verified = []
  if "md5" in server_hashes:
    if md5_hex != server_hashes["md5"]:
      raise errors.ArchiveError(
          "{}: byte {} (the end of the stream): MD5 of the stream is {}, the server's "
          "x-goog-hash says {}: the download is corrupt".format(
              url, size, md5_hex, server_hashes["md5"]))
    verified.append("md5")
  if "crc32c" in server_hashes and crc32c is not None:
    if crc32c != server_hashes["crc32c"]:
      raise errors.ArchiveError(
          "{}: byte {} (the end of the stream): CRC32C of the stream is {:08x}, the "
          "server's x-goog-hash says {:08x}: the download is corrupt".format(
              url, size, crc32c, server_hashes["crc32c"]))
    verified.append("crc32c")
  elif "crc32c" in server_hashes and not verified:
    logging.warning("%s: the server sent only a CRC32C, and no CRC32C implementation "
                    "(crcmod) is installed: not checked", url)
  return tuple(verified)


def _wants_crc32c(server_hashes):
  # The MD5 is always computed; a CRC32C only for objects without one (composite).
  return "crc32c" in server_hashes and "md5" not in server_hashes


def fetch_archive_file(url, archive_path, expected_md5, *, source="auto",
                       progress=True, max_retries=8, backoff_s=1.0,
                       sleep=time.sleep, approx_size=None):
  """Stores the object at `url` as `archive_path`, resuming a `.part` file.

  Bytes go to `<archive_path>.part`; a `.part` left by an interrupted run is
  continued from its size with a Range request (its bytes are hashed first so
  the MD5 covers the whole file). When complete the MD5 is checked and the file
  renamed to `archive_path`. A file already at `archive_path` is verified
  (once: the result is remembered in `<archive_path>.md5` with its size and
  modification time) instead of downloaded.

  Args:
    url: where the archive is.
    archive_path: where to store it (local).
    expected_md5: hex MD5 to verify, or None to skip verification.
    source: see `byte_stream.resolve_source`.
    progress: show a tqdm bar on stderr.
    max_retries: see `byte_stream.ResumableStream`.
    backoff_s: see `byte_stream.ResumableStream`.
    sleep: see `byte_stream.ResumableStream`.
    approx_size: the progress bar's total when the source gives no size.

  Returns:
    `(md5_hex, bytes_downloaded, reconnections)`.

  Raises:
    ArchiveError: on an MD5 mismatch (the file is moved to
      `<archive_path>.corrupt`), or a `.part` larger than the object.
    FetchError: when the source cannot be read.
  """
  sidecar = archive_path + ".md5"
  name = os.path.basename(archive_path)
  if os.path.isfile(archive_path):
    stat = os.stat(archive_path)
    digest = None
    try:
      with open(sidecar) as f:
        remembered = json.load(f)
      if (remembered.get("size") == stat.st_size
          and remembered.get("mtime_ns") == stat.st_mtime_ns):
        digest = remembered.get("md5")
    except (OSError, ValueError):
      pass
    if digest is None:
      digest = _hash_file(archive_path, progress, "verify " + name).hexdigest()
    if expected_md5 is not None and digest != expected_md5:
      corrupt = _set_aside_corrupt(archive_path, archive_path)
      raise errors.ArchiveError(
          "{}: MD5 {} does not match the expected {}; moved it to {}".format(
              archive_path, digest, expected_md5, corrupt))
    atomic.write_json(sidecar, {"md5": digest, "size": stat.st_size,
                                "mtime_ns": stat.st_mtime_ns})
    return digest, 0, 0

  part = archive_path + ".part"
  offset = os.path.getsize(part) if os.path.isfile(part) else 0
  stream = byte_stream.ResumableStream(
      byte_stream.make_opener(url, source), start=offset, name=url,
      max_retries=max_retries, backoff_s=backoff_s, sleep=sleep)
  with stream:
    total = stream.connect()
    if total is not None and offset > total:
      raise errors.ArchiveError(
          "{}: {} bytes, more than the {} bytes of {}; delete it to start over".format(
              part, offset, total, url))
    md5 = _hash_file(part, progress, "hash " + name + ".part") if offset else hashlib.md5()
    if offset:
      logging.info("%s: continuing from byte %d", part, offset)
    downloaded = 0
    with open(part, "ab") as f, _progress_bar(total or approx_size, name, progress,
                                               initial=offset) as bar:
      while True:
        chunk = stream.read(1 << 20)
        if not chunk:
          break
        f.write(chunk)
        md5.update(chunk)
        downloaded += len(chunk)
        bar.update(len(chunk))
      f.flush()
      os.fsync(f.fileno())
    reconnections = stream.reconnections
    server_hashes = stream.server_hashes
  digest = md5.hexdigest()
  if expected_md5 is not None and digest != expected_md5:
    corrupt = _set_aside_corrupt(part, archive_path)
    raise errors.ArchiveError(
        "{}: MD5 {} does not match the expected {}; moved the download to {}".format(
            url, digest, expected_md5, corrupt))
  crc32c = None
  if _wants_crc32c(server_hashes):
    crc_fn = byte_stream.crc32c_function()
    if crc_fn is not None:
      crc32c = 0
      with open(part, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
          crc32c = crc_fn(chunk, crc32c)
  try:
    check_server_hashes(url, server_hashes, digest, crc32c, os.path.getsize(part))
  except errors.ArchiveError as e:
    corrupt = _set_aside_corrupt(part, archive_path)
    raise errors.ArchiveError("{}; moved the download to {}".format(e, corrupt)) from e
  os.replace(part, archive_path)
  stat = os.stat(archive_path)
  atomic.write_json(sidecar, {"md5": digest, "size": stat.st_size,
                              "mtime_ns": stat.st_mtime_ns})
  return digest, downloaded, reconnections


def _write_run_manifests(experiment_dir, files, prefix, source):
  """Records each run's extracted files in `<ratio>/<run>/` + `manifest.MANIFEST_FILENAME`.

  Entries of an earlier download into the same run (another selection) are kept.
  """
  by_run = {}
  for rel, record in files.items():
    parts = rel[len(prefix):].split("/") if rel.startswith(prefix) else []
    if (len(parts) < 3 or layout.parse_ratio_dirname(parts[0]) is None
        or not parts[1].isdigit()):
      continue
    by_run.setdefault((parts[0], parts[1]), {})["/".join(parts[2:])] = record
  for (ratio, run), run_files in sorted(by_run.items()):
    manifest.write_manifest(os.path.join(experiment_dir, ratio, run), run_files,
                            source, merge=True)


def _extract(reader, dest, experiment, selection, source):
  """`extract.extract_stream`, its errors naming the archive read."""
  try:
    return extract.extract_stream(reader, dest, experiment, selection)
  except errors.ArchiveError as e:
    raise errors.ArchiveError("{}: {}".format(source, e)) from e


def download_experiment(experiment, dest, *, only="all", ratios=None, runs=None,
                        base_url=None, source="auto", keep_archive=False, md5=None,
                        progress=True, max_retries=8, backoff_s=1.0,
                        sleep=time.sleep):
  """Downloads (a selection of) a released experiment into `<dest>/<experiment>/`.

  Args:
    experiment: a name from `catalog.ARCHIVES`, e.g. "cifar10-inception".
    dest: local folder that receives `<experiment>/<ratio>/<run>/...`.
    only: "all", "aux_arrays" or "checkpoints" (see `extract.Selection`).
    ratios: subset ratios to keep ("0.7,0.5" or floats), None for all.
    runs: run ids to keep ("0:100", "3,5", or `(start, stop)` pairs), None for all.
    base_url: folder URL holding `<experiment>.tar.gz` (a mirror, a local
      server); None for the public HTTP location.
    source: "auto", "http", "gsutil", "gfile" or "local".
    keep_archive: store `<dest>/<experiment>.tar.gz` and extract from it.
    md5: expected MD5 overriding the table's (for a mirror of another file),
      or "skip" for no verification.
    progress: show tqdm progress bars on stderr.
    max_retries: consecutive failed reconnections allowed.
    backoff_s: first wait between reconnections (doubled each time).
    sleep: sleeping function (tests pass a fake).

  Returns:
    `DownloadSummary`.

  Raises:
    ExperimentError: for an unknown experiment, or a selection that matched
      no member of the archive.
    ArchiveError: for an unsafe or corrupt archive or an MD5 mismatch (no
      completion marker is written).
    FetchError: when the source cannot be read after the retries.
    ValueError: for malformed arguments.
  """
  archive = catalog.get_archive(experiment)
  if "://" in str(dest):
    raise ValueError("`dest` must be a local folder, got {!r}".format(dest))
  selection = extract.Selection.from_args(only=only, ratios=ratios, runs=runs)
  expected_md5 = expected_md5_for(archive, md5)
  url = catalog.url_for(archive, base_url)
  source_kind = byte_stream.resolve_source(url, source)
  dest = os.path.abspath(dest)
  experiment_dir = os.path.join(dest, experiment)
  summary = DownloadSummary(experiment=experiment, experiment_dir=experiment_dir,
                            url=url, source=source_kind,
                            selection=selection.to_json(), md5_expected=expected_md5)

  done = _completed_entry(experiment_dir, summary.selection, expected_md5)
  if done is not None:
    summary.already_complete = True
    summary.md5 = done.get("md5")
    summary.md5_verified = done.get("md5_verified")
    summary.members_skipped = len(done.get("files", {}))
    return summary

  os.makedirs(dest, exist_ok=True)
  start = time.monotonic()
  if keep_archive:
    archive_path = os.path.join(dest, archive.filename)
    digest, downloaded, reconnections = fetch_archive_file(
        url, archive_path, expected_md5, source=source_kind, progress=progress,
        max_retries=max_retries, backoff_s=backoff_s, sleep=sleep,
        approx_size=archive.approx_size_bytes)
    summary.archive_path = archive_path
    summary.bytes_read = downloaded
    summary.reconnections = reconnections
    with open(archive_path, "rb") as f, _progress_bar(
        os.path.getsize(archive_path), "extract " + archive.filename, progress) as bar:
      reader = byte_stream.HashingReader(f, on_bytes=bar.update)
      counts = _extract(reader, dest, experiment, selection, archive_path)
  else:
    stream = byte_stream.ResumableStream(
        byte_stream.make_opener(url, source_kind), name=url,
        max_retries=max_retries, backoff_s=backoff_s, sleep=sleep)
    with stream:
      total = stream.connect()
      with _progress_bar(total or archive.approx_size_bytes, archive.filename,
                         progress) as bar:
        reader = byte_stream.HashingReader(
            stream, on_bytes=bar.update, crc32c=_wants_crc32c(stream.server_hashes))
        counts = _extract(reader, dest, experiment, selection, url)
        reader.drain()
      digest = reader.hexdigest()
      summary.bytes_read = reader.bytes_read
      summary.reconnections = stream.reconnections
      try:
        summary.server_hashes_verified = check_server_hashes(
            url, stream.server_hashes, digest, reader.crc32c, reader.bytes_read)
      except errors.ArchiveError as e:
        raise errors.ArchiveError("{}; the {} files written under {} are not marked "
                                  "complete".format(e, counts.written, experiment_dir)) from e
  summary.seconds = time.monotonic() - start
  summary.md5 = digest
  summary.members_written = counts.written
  summary.members_skipped = counts.skipped_existing
  summary.members_not_selected = counts.not_selected
  summary.links_skipped = counts.links_skipped
  summary.bytes_written = counts.bytes_written

  if expected_md5 is not None:
    if digest != expected_md5:
      raise errors.ArchiveError(
          "{}: MD5 of the stream is {}, expected {}; the {} files written under {} "
          "are not marked complete (pass --md5 for a mirror of a different file)".format(
              url, digest, expected_md5, counts.written, experiment_dir))
    summary.md5_verified = True
  if not counts.files:
    raise errors.ExperimentError(
        "{}: no archive member matched the selection ({}); {} members were not "
        "selected".format(url, _selection_text(summary.selection), counts.not_selected))

  prefix = experiment + "/"
  _write_run_manifests(experiment_dir, counts.files, prefix, url)
  _write_marker(experiment_dir, archive, {
      "selection": summary.selection,
      "url": url,
      "source": source_kind,
      "keep_archive": bool(keep_archive),
      "md5": digest,
      "md5_expected": expected_md5,
      "md5_verified": bool(summary.md5_verified),
      "members_written": counts.written,
      "members_skipped": counts.skipped_existing,
      "members_not_selected": counts.not_selected,
      "bytes_read": summary.bytes_read,
      "seconds": round(summary.seconds, 3),
      "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "files": {rel[len(prefix):]: size for rel, size in sorted(counts.files.items())
                if rel.startswith(prefix)},
  })
  return summary
