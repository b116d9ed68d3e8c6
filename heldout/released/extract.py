"""Streaming, selective and safe extraction of a released `.tar.gz`.

The archive is read once, front to back (`tarfile` mode "r|" over a
verifying gzip decompressor, `gzip_stream`), and each
member is written while it streams past, so a selection (only the
`aux_arrays.npz` files, some ratios, some runs) never needs the archive on
disk. Every member is checked before anything is written: absolute paths,
`..`, links that leave the destination and device files raise `ArchiveError`
naming the member. Files are written under a temporary name and renamed when
complete; a file already present with the member's size is compared with the
member's data as it streams past and left alone when equal, so an interrupted
extraction re-run later only writes what is missing or differs. A member that
appears twice is refused, and every file's size and SHA-256 are recorded.
"""

import dataclasses
import os
import posixpath
import tarfile
from typing import Optional, Tuple
import uuid
import zlib

from heldout import atomic
from heldout import errors
from heldout import manifest
from heldout.readers import layout
from heldout.released import gzip_stream

ONLY_CHOICES = ("all", "aux_arrays", "checkpoints")

_COPY_CHUNK = 1 << 20


def parse_ratios(text):
  """"0.7,0.5" -> (0.5, 0.7); "" or None -> None (every ratio).

  Raises:
    ValueError: for an entry that is not a number in (0, 1].
  """
  if text is None:
    return None
  if not isinstance(text, str):
    values = [float(r) for r in text]
  else:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
      return None
    values = []
    for item in items:
      try:
        values.append(float(item))
      except ValueError:
        raise ValueError("`ratios`: {!r} is not a number".format(item)) from None
  for value in values:
    if not 0.0 < value <= 1.0:
      raise ValueError("`ratios` must be in (0, 1], got {}".format(value))
  return tuple(sorted(set(values)))


# Run id ranges: the grammar `--runs` has everywhere (`layout.parse_run_ranges`).
parse_runs = layout.parse_run_ranges


@dataclasses.dataclass(frozen=True)
class Selection:
  """Which members of an archive to write.

  Attributes:
    only: "all" (every file), "aux_arrays" (only `aux_arrays.npz`) or
      "checkpoints" (only the files under `checkpoints/`).
    ratios: subset ratios to keep, or None for all.
    runs: half-open run id ranges `(start, stop)` (stop `layout.OPEN_END`: unbounded) to keep,
      or None for all.
  """
  only: str = "all"
  ratios: Optional[Tuple[float, ...]] = None
  runs: Optional[Tuple[Tuple[int, int], ...]] = None

  def __post_init__(self):
    if self.only not in ONLY_CHOICES:
      raise ValueError("`only` must be one of {}, got {!r}".format(
          ONLY_CHOICES, self.only))

  @classmethod
  def from_args(cls, only="all", ratios=None, runs=None):
    """From flag-like values: `ratios` "0.7,0.5" or floats, `runs` "0:100"."""
    if runs is not None and not isinstance(runs, str):
      runs = tuple(sorted((int(lo), int(hi)) for lo, hi in runs))
    else:
      runs = parse_runs(runs)
    return cls(only=only, ratios=parse_ratios(ratios), runs=runs)

  @property
  def is_everything(self):
    """True when every member of the archive is selected."""
    return self.only == "all" and self.ratios is None and self.runs is None

  def to_json(self):
    return {"only": self.only,
            "ratios": None if self.ratios is None else list(self.ratios),
            "runs": None if self.runs is None else [list(r) for r in self.runs]}

  def _ratio_selected(self, ratio):
    return self.ratios is None or any(abs(ratio - r) < 1e-9 for r in self.ratios)

  def _run_selected(self, run_id):
    return self.runs is None or any(
        lo <= run_id and (hi == layout.OPEN_END or run_id < hi) for lo, hi in self.runs)

  def matches(self, parts):
    """Whether the file with archive path parts `[experiment, ratio, run, ...]` is selected.

    Files outside the `<experiment>/<ratio>/<run>/` structure are selected only
    when everything is.
    """
    if len(parts) < 4:
      return self.is_everything
    ratio = layout.parse_ratio_dirname(parts[1])
    run_id = int(parts[2]) if parts[2].isdigit() else None
    if ratio is None or run_id is None:
      return self.is_everything
    if not (self._ratio_selected(ratio) and self._run_selected(run_id)):
      return False
    rest = parts[3:]
    if self.only == "aux_arrays":
      return rest == [layout.AUX_ARRAYS_FILENAME]
    if self.only == "checkpoints":
      return len(rest) >= 2 and rest[0] == layout.CHECKPOINTS_DIRNAME
    return True


@dataclasses.dataclass
class ExtractCounts:
  """What an extraction did, member by member."""
  written: int = 0
  skipped_existing: int = 0
  not_selected: int = 0
  links_skipped: int = 0
  bytes_written: int = 0
  # Archive path of each selected file -> {"size": bytes, "sha256": hex}.
  files: dict = dataclasses.field(default_factory=dict)


def _member_parts(name):
  """Archive path -> normalised parts, or None when it is absolute or climbs out."""
  if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
    return None
  parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
  if ".." in parts:
    return None
  return parts


def _within(path, root):
  path, root = os.path.abspath(path), os.path.abspath(root)
  return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_member(member, dest, experiment):
  """Checks that `member` is safe to write under `dest`, returning its parts.

  Args:
    member: a `tarfile.TarInfo`.
    dest: the destination folder (the parent of `<experiment>/`).
    experiment: the folder every member must lie in.

  Returns:
    The member's path parts, starting with `experiment`.

  Raises:
    ArchiveError: naming the member, for an absolute path, a `..` component, a
      path outside `<experiment>/`, a symbolic or hard link whose target lies
      outside `dest`, or a device file, FIFO or other special member.
  """
  name = member.name
  parts = _member_parts(name)
  if parts is None:
    raise errors.ArchiveError(
        "unsafe archive member {!r}: absolute path or '..' component; refusing "
        "to extract".format(name))
  if not parts:
    if member.isdir():
      return parts
    raise errors.ArchiveError("archive member {!r} has an empty path".format(name))
  if parts[0] != experiment:
    raise errors.ArchiveError(
        "archive member {!r} lies outside the expected top-level folder {}/; is "
        "this the {} archive?".format(name, experiment, experiment))
  if member.ischr() or member.isblk() or member.isfifo() or not (
      member.isreg() or member.isdir() or member.issym() or member.islnk()):
    raise errors.ArchiveError(
        "unsafe archive member {!r}: a device file, FIFO or other special "
        "file; refusing to extract".format(name))
  target = os.path.join(dest, *parts)
  if member.issym():
    link = member.linkname
    if link.startswith("/") or os.path.isabs(link):
      raise errors.ArchiveError(
          "unsafe archive member {!r}: symbolic link to absolute path {!r}".format(
              name, link))
    resolved = os.path.normpath(os.path.join(os.path.dirname(target), link))
    if not _within(resolved, dest):
      raise errors.ArchiveError(
          "unsafe archive member {!r}: symbolic link to {!r} leaves the "
          "destination {}".format(name, link, dest))
  if member.islnk():
    link_parts = _member_parts(member.linkname)
    if link_parts is None or not _within(os.path.join(dest, *link_parts), dest):
      raise errors.ArchiveError(
          "unsafe archive member {!r}: hard link to {!r} leaves the destination "
          "{}".format(name, member.linkname, dest))
  return parts


def _check_real_parent(path, dest, name):
  """Refuses to write through an existing symlink that points out of `dest`."""
  parent = os.path.realpath(os.path.dirname(path))
  if not _within(parent, os.path.realpath(dest)):
    raise errors.ArchiveError(
        "unsafe archive member {!r}: its folder resolves to {}, outside the "
        "destination {}".format(name, parent, dest))


def _remove_stale_temps(path):
  """Removes temporary files an interrupted earlier write of `path` left."""
  folder, base = os.path.split(path)
  prefix = ".{}.tmp-".format(base)
  try:
    names = os.listdir(folder)
  except FileNotFoundError:
    return
  for name in names:
    if name.startswith(prefix):
      try:
        os.remove(os.path.join(folder, name))
      except FileNotFoundError:
        pass


def _copy(source, f, digest):
  """Copies `source` to `f` to its end, feeding `digest`; returns the bytes copied."""
  copied = 0
  while True:
    chunk = source.read(_COPY_CHUNK)
    if not chunk:
      return copied
    digest.update(chunk)
    f.write(chunk)
    copied += len(chunk)


def _check_size(member, read):
  if read != member.size:
    raise errors.ArchiveError("archive member {!r}: expected {} bytes, read {}".format(
        member.name, member.size, read))


def _write_file(tar, member, path):
  """Writes the member's data to `path` (atomically); returns its checksum (hex)."""
  _remove_stale_temps(path)
  digest = manifest.new_digest()
  with atomic.atomic_open(path, "wb") as f:
    _check_size(member, _copy(tar.extractfile(member), f, digest))
  os.chmod(path, 0o644)
  return digest.hexdigest()


def _confirm_or_write(tar, member, path):
  """Compares an existing file of the member's size with the member's data.

  The data streams past once: while it equals the file nothing is written;
  at the first difference the file is rewritten (the equal prefix copied from
  the file, the rest from the stream), so a damaged file is repaired by a re-run.

  Returns:
    `(checksum hex, whether the file was rewritten)`.
  """
  source = tar.extractfile(member)
  digest = manifest.new_digest()
  matched = 0
  with open(path, "rb") as existing:
    while True:
      chunk = source.read(_COPY_CHUNK)
      if not chunk:
        _check_size(member, matched)
        return digest.hexdigest(), False
      if existing.read(len(chunk)) != chunk:
        break
      digest.update(chunk)
      matched += len(chunk)
    _remove_stale_temps(path)
    with atomic.atomic_open(path, "wb") as f:
      existing.seek(0)
      for _ in range(0, matched, _COPY_CHUNK):  # Equal to the stream: already hashed.
        f.write(existing.read(min(_COPY_CHUNK, matched - f.tell())))
      digest.update(chunk)
      f.write(chunk)
      _check_size(member, matched + len(chunk) + _copy(source, f, digest))
  os.chmod(path, 0o644)
  return digest.hexdigest(), True


class _RecordingReader:
  """Passes reads through, keeping the last `keep` bytes returned.

  `tarfile` buffers ahead of the header it stopped at; this window lets the
  end-of-archive check see those bytes without reaching into `tarfile`.
  """

  def __init__(self, fileobj, keep):
    self._f = fileobj
    self._keep = keep
    self._chunks = []
    self._held = 0
    self.delivered = 0

  def readable(self):
    return True

  def read(self, size=-1):
    data = self._f.read(size)
    if data:
      self.delivered += len(data)
      self._chunks.append(data)
      self._held += len(data)
      while self._chunks and self._held - len(self._chunks[0]) >= self._keep:
        self._held -= len(self._chunks.pop(0))
    return data

  def since(self, offset):
    """The bytes returned from `offset` on (within the window)."""
    start = self.delivered - self._held
    if offset < start:
      raise errors.ArchiveError(
          "internal: tar stopped at byte {}, before the kept window from {}".format(
              offset, start))
    return b"".join(self._chunks)[offset - start:]


def _check_end_of_archive(tar, feed, gz, label, last_member):
  """Reads the rest of the stream: from where `tarfile` stopped, only zeros.

  `tarfile` ends its member list without an error at a damaged header (after
  the first) or a truncated one, as at the end-of-archive marker (two zero
  blocks); telling them apart needs the bytes it stopped at.
  """
  end = tar.offset
  after = " after member {!r}".format(last_member) if last_member else ""
  zeros = 0
  data = feed.since(end)
  while data:
    stripped = data.lstrip(b"\0")
    if stripped:
      at = end + zeros + len(data) - len(stripped)
      if at < end + 2 * tarfile.BLOCKSIZE:
        raise errors.ArchiveError(
            "{}, compressed byte {}: damaged tar header at uncompressed byte {}{}: "
            "the archive is corrupt".format(
                label, gz.compressed_offset,
                end + (at - end) // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE, after))
      raise errors.ArchiveError(
          "{}, compressed byte {}: non-zero data at uncompressed byte {}, after the "
          "tar end-of-archive marker at byte {}{}".format(
              label, gz.compressed_offset, at, end, after))
    zeros += len(data)
    data = gz.read(_COPY_CHUNK)
  if zeros < 2 * tarfile.BLOCKSIZE:
    raise errors.ArchiveError(
        "{}, compressed byte {}: the tar data ends at uncompressed byte {} without an "
        "end-of-archive marker (two zero blocks){}: the archive is truncated".format(
            label, gz.compressed_offset, end + zeros, after))


def _replace_with_link(path, make_link):
  tmp = os.path.join(os.path.dirname(path),
                     ".{}.tmp-{}".format(os.path.basename(path), uuid.uuid4().hex[:12]))
  make_link(tmp)
  os.replace(tmp, path)


def extract_stream(fileobj, dest, experiment, selection, bufsize=1 << 20):
  """Extracts the selected members of a `.tar.gz` read once from `fileobj`.

  The stream is decompressed by `gzip_stream.GzipStreamReader` (every gzip
  member's CRC32 and size checked, concatenated members accepted) and read to
  its end: after the tar end-of-archive marker only zeros may follow.

  Args:
    fileobj: the compressed archive, read sequentially (`read(size)` only).
    dest: the folder that receives `<experiment>/...`.
    experiment: the archive's expected top-level folder.
    selection: a `Selection`.
    bufsize: read size of the tar reader.

  Returns:
    `ExtractCounts`; `files` maps each selected file's archive path to
    `{"size": bytes, "sha256": hex}` of the data the archive holds.

  Raises:
    ArchiveError: for an unsafe member (see `check_member`), a member that
      appears twice, a truncated member, a stream that is not a gzip-compressed
      tar, a gzip member whose data does not match its trailer, a damaged tar
      header, or non-zero data after the end-of-archive marker; the message
      names the byte offset. Files already written stay (each complete, as
      the archive has them up to the damage; a re-run compares them with the
      stream again), but the caller must not mark anything complete.
  """
  dest = os.path.abspath(dest)
  os.makedirs(dest, exist_ok=True)
  counts = ExtractCounts()
  label = "{} archive".format(experiment)
  gz = gzip_stream.GzipStreamReader(fileobj, name=label, read_size=bufsize)
  feed = _RecordingReader(gz, keep=2 * bufsize + 4 * tarfile.BLOCKSIZE)
  seen = {}
  last_member = None
  try:
    with tarfile.open(fileobj=feed, mode="r|", bufsize=bufsize) as tar:
      for member in tar:
        parts = check_member(member, dest, experiment)
        if member.isdir() or not parts:
          continue
        relpath = posixpath.join(*parts)
        if relpath in seen:
          raise errors.ArchiveError(
              "{}: member {!r} appears twice (tar headers at uncompressed bytes {} "
              "and {}); refusing the second copy: the archive is not what was "
              "published".format(label, member.name, seen[relpath], member.offset))
        seen[relpath] = member.offset
        last_member = member.name
        if not selection.matches(parts):
          counts.not_selected += 1
          continue
        path = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _check_real_parent(path, dest, member.name)
        if member.isreg():
          if (os.path.isfile(path) and not os.path.islink(path)
              and os.path.getsize(path) == member.size):
            checksum, rewritten = _confirm_or_write(tar, member, path)
          else:
            checksum, rewritten = _write_file(tar, member, path), True
          if rewritten:
            counts.written += 1
            counts.bytes_written += member.size
          else:
            counts.skipped_existing += 1
          counts.files[relpath] = manifest.file_record(member.size, checksum)
        elif member.issym():
          if os.path.islink(path) and os.readlink(path) == member.linkname:
            counts.skipped_existing += 1
          else:
            _replace_with_link(path, lambda tmp, m=member: os.symlink(m.linkname, tmp))
            counts.written += 1
        elif member.islnk():
          source_parts = _member_parts(member.linkname)
          source = os.path.join(dest, *source_parts)
          if not os.path.isfile(source):
            counts.links_skipped += 1
            continue
          if os.path.exists(path) and os.path.samefile(path, source):
            counts.skipped_existing += 1
          else:
            _replace_with_link(path, lambda tmp, s=source: os.link(s, tmp))
            counts.written += 1
          record = counts.files.get(posixpath.join(*source_parts))
          counts.files[relpath] = record or manifest.hash_file(path)
      _check_end_of_archive(tar, feed, gz, label, last_member)
  except (tarfile.TarError, EOFError, zlib.error) as e:
    raise errors.ArchiveError("{}, compressed byte {}: {}: {} ({} uncompressed bytes "
                              "read)".format(label, gz.compressed_offset, type(e).__name__,
                                             e, feed.delivered)) from e
  return counts
