"""Files of an experiment folder, on a local disk or an object store (`gs://`).

Training writes its runs through this module, never through `os`/`shutil`
directly, so an output folder can be local, on a shared mount, or a URL that
`tf.io.gfile` opens (`gs://bucket/exp`, TensorFlow's own GCS support; any
other scheme TensorFlow registers). Publishing a run needs only what every
one of them offers:

  * `put_bytes`: a file appears whole or not at all. Locally: a temporary
    name beside it, then `os.replace` (atomic on POSIX). On an object store
    an object is created whole when its upload ends, so it is written
    directly (a rename there is a copy and a delete, file by file);
  * `copy`, `makedirs`, `remove`, `rmtree`, `listdir`, `exists`;
  * no rename of a folder, which object stores and gcsfuse do not do
    atomically. The commit of a run is its `aux_arrays.npz`, put last
    (`train.heldout_training.publish_run`).

`overridden(fs)` swaps the local file system for a test double (one whose
rename copies file by file, and which can be killed at any step).
"""

import contextlib
import os
import shutil
from typing import List

from heldout import atomic


def is_local(path) -> bool:
  """True for a local path, False for a URL (`gs://...`, `ram://...`)."""
  return "://" not in str(path)


class LocalFileSystem:
  """A local (POSIX) file system: `os` and `shutil`."""

  def exists(self, path) -> bool:
    return os.path.exists(path)

  def isdir(self, path) -> bool:
    return os.path.isdir(path)

  def listdir(self, path) -> List[str]:
    return sorted(os.listdir(path))

  def makedirs(self, path):
    os.makedirs(path, exist_ok=True)

  def remove(self, path):
    """Removes a file; no error if it is not there."""
    try:
      os.remove(path)
    except FileNotFoundError:
      pass

  def rmtree(self, path):
    """Removes a folder and everything in it; no error if it is not there."""
    shutil.rmtree(path, ignore_errors=True)

  def read_bytes(self, path) -> bytes:
    with open(path, "rb") as f:
      return f.read()

  def put_bytes(self, path, data: bytes):
    """Writes `data` to `path` so that it appears whole or not at all."""
    atomic.write_bytes(path, data)

  def open(self, path, mode="rb"):
    """Opens a file to read; FileNotFoundError if it is not there."""
    return open(path, mode)  # pylint: disable=unspecified-encoding

  def size(self, path) -> int:
    return os.path.getsize(path)

  def isfile(self, path) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)

  def walk_files(self, root) -> List[str]:
    """Relative ("/"-separated) paths of the regular files under `root`;
    symbolic links are neither followed nor listed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
      dirnames[:] = [d for d in dirnames
                     if not os.path.islink(os.path.join(dirpath, d))]
      for name in filenames:
        path = os.path.join(dirpath, name)
        if self.isfile(path):
          out.append(os.path.relpath(path, root).replace(os.sep, "/"))
    return sorted(out)

  def copy(self, source, destination):
    """Copies the local file `source` to `destination`, appearing whole."""
    with open(source, "rb") as src, atomic.atomic_open(destination) as dst:
      shutil.copyfileobj(src, dst)


class GfileFileSystem:
  """Anything `tf.io.gfile` opens by URL (`gs://`, `ram://`, ...)."""

  def __init__(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._gfile = tf.io.gfile

  def exists(self, path) -> bool:
    return self._gfile.exists(path)

  def isdir(self, path) -> bool:
    return self._gfile.isdir(path)

  def listdir(self, path) -> List[str]:
    # Object stores list "folders" with a trailing slash.
    return sorted({name.rstrip("/") for name in self._gfile.listdir(path)})

  def makedirs(self, path):
    self._gfile.makedirs(path)

  def remove(self, path):
    try:
      self._gfile.remove(path)
    except Exception as e:  # pylint: disable=broad-except
      if self._gfile.exists(path):
        raise e

  def rmtree(self, path):
    if self._gfile.exists(path):
      self._gfile.rmtree(path)

  def read_bytes(self, path) -> bytes:
    with self._gfile.GFile(path, "rb") as f:
      return f.read()

  def put_bytes(self, path, data: bytes):
    # An object is created whole when its upload completes: written directly
    # (a temporary name and a rename would be a copy and a delete).
    parent = os.path.dirname(path)
    if parent:
      self._gfile.makedirs(parent)
    with self._gfile.GFile(path, "wb") as f:
      f.write(data)

  def copy(self, source, destination):
    parent = os.path.dirname(destination)
    if parent:
      self._gfile.makedirs(parent)
    self._gfile.copy(source, destination, overwrite=True)

  def open(self, path, mode="rb"):
    if not self._gfile.exists(path):
      raise FileNotFoundError(2, "No such file", path)
    return self._gfile.GFile(path, mode)

  def size(self, path) -> int:
    return int(self._gfile.stat(path).length)

  def isfile(self, path) -> bool:
    return self._gfile.exists(path) and not self._gfile.isdir(path)

  def walk_files(self, root) -> List[str]:
    out = []
    for dirpath, _, filenames in self._gfile.walk(root):
      for name in filenames:
        rel = os.path.relpath(os.path.join(dirpath, name), root)
        out.append(rel.replace(os.sep, "/"))
    return sorted(out)


_LOCAL = [LocalFileSystem()]
_GFILE = []


def for_path(path):
  """The file system that holds `path`."""
  if is_local(path):
    return _LOCAL[-1]
  if not _GFILE:
    _GFILE.append(GfileFileSystem())
  return _GFILE[0]


@contextlib.contextmanager
def overridden(fs):
  """Local paths go through `fs` inside the block (a test double)."""
  _LOCAL.append(fs)
  try:
    yield fs
  finally:
    _LOCAL.remove(fs)
