"""Opening .npz files that may live on local disk or anywhere `tf.io.gfile` reads.

One place for what every reader of npz files (aux arrays, datasets, published
estimates, images) needs: a URL such as `gs://...` is read into memory, a
local path is opened directly, a missing file is `FileNotFoundError`, and a
lone `.npy` array is refused. Each reader turns these into its own named
error.
"""

import io

import numpy as np


def load_npz(path, allow_pickle=False):
  """Opens an .npz archive.

  Args:
    path: local path or `tf.io.gfile` URL.
    allow_pickle: passed to `np.load`; only for files you trust.

  Returns:
    The open `np.lib.npyio.NpzFile` (use it as a context manager).

  Raises:
    FileNotFoundError: if there is no such file.
    ValueError: if the file is a single .npy array, or (from `np.load`) not
      a readable npz file; `np.load` may also raise OSError or EOFError.
  """
  path = str(path)
  if "://" in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError("{}: no such file".format(path))
    with tf.io.gfile.GFile(path, "rb") as f:
      source = io.BytesIO(f.read())
  else:
    source = path
  loaded = np.load(source, allow_pickle=allow_pickle)
  if not isinstance(loaded, np.lib.npyio.NpzFile):
    raise ValueError("a single .npy array")
  return loaded
