"""Opening .npz files that may live on local disk or anywhere `tf.io.gfile` reads.

One place for what every reader of npz files (aux arrays, datasets, published
estimates, images, estimates) needs: a URL such as `gs://...` is read into
memory, a local path is opened directly, a missing file is
`FileNotFoundError`, a lone `.npy` array or a file of another kind is
refused, and a damaged archive (cut
short by an interrupted copy, or with a corrupted member) is a `ValueError`
whether it shows when the file is opened or when an array is read. Each reader
turns these into its own named error.
"""

import io
import zipfile
import zlib

import numpy as np

_ZIP_MAGIC = b"PK"
_NPY_MAGIC = b"\x93NUMPY"

# What numpy and zipfile raise for an archive that is cut short or corrupted
# (bad CRC, bad compressed data, a member shorter than its header says).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError)


def _damaged(e):
  return ValueError("damaged .npz archive (truncated or corrupted, as an "
                    "interrupted copy leaves it): {}".format(e))


class NpzArchive:
  """An open .npz archive: `files`, `archive[key]`, a context manager.

  Reading an array of a damaged archive raises `ValueError` instead of
  `zipfile.BadZipFile` or `zlib.error`.
  """

  def __init__(self, npz):
    self._npz = npz

  @property
  def files(self):
    return self._npz.files

  def keys(self):
    return self._npz.keys()

  def __contains__(self, key):
    return key in self._npz.files

  def __getitem__(self, key):
    try:
      return self._npz[key]
    except _DAMAGE as e:
      raise _damaged(e) from None

  def close(self):
    self._npz.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()


def load_npz(path, allow_pickle=False):
  """Opens an .npz archive.

  Args:
    path: local path or `tf.io.gfile` URL.
    allow_pickle: passed to `np.load`; only for files you trust.

  Returns:
    The open `NpzArchive` (use it as a context manager).

  Raises:
    FileNotFoundError: if there is no such file.
    ValueError: if the file is a single .npy array, not a readable npz file,
      or a damaged one (also later, from `archive[key]`); `np.load` may also
      raise OSError.
  """
  path = str(path)
  if "://" in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError("{}: no such file".format(path))
    with tf.io.gfile.GFile(path, "rb") as f:
      source = io.BytesIO(f.read())
    head = source.getvalue()[:len(_NPY_MAGIC)]
  else:
    source = path
    with open(path, "rb") as f:
      head = f.read(len(_NPY_MAGIC))
  if not head.startswith((_ZIP_MAGIC, _NPY_MAGIC)):
    # np.load would try anything else as a pickle and ask for allow_pickle.
    raise ValueError("not an .npz archive: it starts with {!r}, an .npz file "
                     "with {!r}".format(head, _ZIP_MAGIC))
  try:
    loaded = np.load(source, allow_pickle=allow_pickle)
  except _DAMAGE as e:
    raise _damaged(e) from None
  if not isinstance(loaded, np.lib.npyio.NpzFile):
    raise ValueError("a single .npy array")
  return NpzArchive(loaded)
