"""Streaming, selective and safe extraction of a released `.tar.gz`.

The archive is read once, front to back (`tarfile` mode "r|gz"), and each
member is written while it streams past, so a selection (only the
`aux_arrays.npz` files, some ratios, some runs) never needs the archive on
disk. Every member is checked before anything is written: absolute paths,
`..`, links that leave the destination and device files raise `ArchiveError`
naming the member. Files are written under a temporary name and renamed when
complete; a file already present with the member's size is left alone, so an
interrupted extraction re-run later only writes what is missing.
"""

import dataclasses
import os
import posixpath
import shutil
import tarfile
from typing import Optional, Tuple
import uuid
import zlib

from heldout import atomic
from heldout import errors
from heldout.readers import layout

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
  files: dict = dataclasses.field(default_factory=dict)  # relpath -> size, selected files


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


def _write_file(tar, member, path):
  _remove_stale_temps(path)
  source = tar.extractfile(member)
  with atomic.atomic_open(path, "wb") as f:
    shutil.copyfileobj(source, f, _COPY_CHUNK)
    written = f.tell()
  if written != member.size:
    raise errors.ArchiveError("archive member {!r}: expected {} bytes, read {}".format(
        member.name, member.size, written))
  os.chmod(path, 0o644)


def _replace_with_link(path, make_link):
  tmp = os.path.join(os.path.dirname(path),
                     ".{}.tmp-{}".format(os.path.basename(path), uuid.uuid4().hex[:12]))
  make_link(tmp)
  os.replace(tmp, path)


def extract_stream(fileobj, dest, experiment, selection, bufsize=1 << 20):
  """Extracts the selected members of a `.tar.gz` read once from `fileobj`.

  Args:
    fileobj: the compressed archive, read sequentially (`read(size)` only).
    dest: the folder that receives `<experiment>/...`.
    experiment: the archive's expected top-level folder.
    selection: a `Selection`.
    bufsize: read size of the tar reader.

  Returns:
    `ExtractCounts`.

  Raises:
    ArchiveError: for an unsafe member (see `check_member`), a truncated
      member, or a stream that is not a gzip-compressed tar.
  """
  dest = os.path.abspath(dest)
  os.makedirs(dest, exist_ok=True)
  counts = ExtractCounts()
  try:
    with tarfile.open(fileobj=fileobj, mode="r|gz", bufsize=bufsize) as tar:
      for member in tar:
        parts = check_member(member, dest, experiment)
        if member.isdir() or not parts:
          continue
        if not selection.matches(parts):
          counts.not_selected += 1
          continue
        path = os.path.join(dest, *parts)
        relpath = posixpath.join(*parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _check_real_parent(path, dest, member.name)
        if member.isreg():
          if (os.path.isfile(path) and not os.path.islink(path)
              and os.path.getsize(path) == member.size):
            counts.skipped_existing += 1
          else:
            _write_file(tar, member, path)
            counts.written += 1
            counts.bytes_written += member.size
          counts.files[relpath] = member.size
        elif member.issym():
          if os.path.islink(path) and os.readlink(path) == member.linkname:
            counts.skipped_existing += 1
          else:
            _replace_with_link(path, lambda tmp, m=member: os.symlink(m.linkname, tmp))
            counts.written += 1
        elif member.islnk():
          source = os.path.join(dest, *_member_parts(member.linkname))
          if not os.path.isfile(source):
            counts.links_skipped += 1
            continue
          if os.path.exists(path) and os.path.samefile(path, source):
            counts.skipped_existing += 1
          else:
            _replace_with_link(path, lambda tmp, s=source: os.link(s, tmp))
            counts.written += 1
          counts.files[relpath] = os.path.getsize(path)
  except (tarfile.TarError, EOFError, zlib.error) as e:
    raise errors.ArchiveError("{} archive: {}: {}".format(
        experiment, type(e).__name__, e)) from e
  return counts
