"""Atomic writes: a result file is either absent or complete, never partial.

Everything is written to a temporary name beside the destination and renamed
over it only when complete, so an interrupted job never leaves a half-written
result that a later run would mistake for a finished one. Works for local
paths and for anything `tf.io.gfile` opens (rename is atomic on local and POSIX
file systems; on object stores it is the best they offer).
"""

import contextlib
import errno
import json
import os
import uuid

import numpy as np


# What a file system says when it refuses a write; reported naming the
# destination (the temporary name would mean nothing to the user).
_WRITE_ERRNOS = frozenset((errno.ENOSPC, errno.EROFS, errno.EFBIG,
                           errno.EDQUOT, errno.EACCES, errno.EPERM))


def _is_local(path):
  return "://" not in str(path)


def _tmp_name(path):
  path = str(path)
  head, tail = os.path.split(path)
  return os.path.join(head, ".{}.tmp-{}".format(tail, uuid.uuid4().hex[:12]))


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
  """Opens a temporary file that replaces `path` when the block exits cleanly.

  Args:
    path: destination path (local or a `tf.io.gfile` URL).
    mode: "wb" or "w".

  Yields:
    A writable file object. If the block raises, the temporary file is removed
    and `path` is left untouched.

  Raises:
    OSError: of the same type and errno, naming `path`, when the local file
      system refuses the write (read-only, full, file too large, no
      permission): "<path>: cannot write it (No space left on device)".
  """
  if mode not in ("wb", "w"):
    raise ValueError("`mode` must be 'wb' or 'w', got {!r}".format(mode))
  path = str(path)
  tmp = _tmp_name(path)
  if _is_local(path):
    f = None
    try:
      parent = os.path.dirname(path)
      if parent:
        os.makedirs(parent, exist_ok=True)
      f = open(tmp, mode)
      yield f
      f.flush()
      os.fsync(f.fileno())
      f.close()
      os.replace(tmp, path)
    except BaseException as e:
      if f is not None:
        try:
          f.close()
        except OSError:
          pass  # Buffered bytes that cannot be written: removed below.
      if os.path.exists(tmp):
        os.remove(tmp)
      if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
        raise type(e)(e.errno, "{}: cannot write it ({})".format(
            path, os.strerror(e.errno))) from None
      raise
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    parent = os.path.dirname(path)
    if parent:
      tf.io.gfile.makedirs(parent)
    f = tf.io.gfile.GFile(tmp, mode)
    try:
      yield f
      f.close()
      tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
      f.close()
      if tf.io.gfile.exists(tmp):
        tf.io.gfile.remove(tmp)
      raise


def write_bytes(path, data):
  """Atomically writes `data` (bytes) to `path`."""
  with atomic_open(path, "wb") as f:
    f.write(data)


def write_text(path, text):
  """Atomically writes `text` (str) to `path`."""
  with atomic_open(path, "w") as f:
    f.write(text)


def write_json(path, obj):
  """Atomically writes `obj` as indented JSON to `path`."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npz(path, compressed=False, **arrays):
  """Atomically writes `arrays` to the .npz file `path`.

  The archive is streamed into the temporary file, so writing a large array
  needs no second copy of it in memory.

  Args:
    path: destination; numpy's habit of appending ".npz" is not applied.
    compressed: use `np.savez_compressed`.
    **arrays: name -> array.
  """
  save = np.savez_compressed if compressed else np.savez
  with atomic_open(path, "wb") as f:
    save(f, **arrays)


def _replace(source, destination):
  if _is_local(destination):
    os.replace(source, destination)
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.io.gfile.rename(source, destination, overwrite=True)


def _remove_quietly(path):
  try:
    if _is_local(path):
      if os.path.lexists(path):
        os.remove(path)
    else:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)
  except OSError:
    pass


def write_files(contents):
  """Writes several files as a set: all complete before any is replaced.

  Each file is first written in full under a temporary name beside it; only
  when all are written are they renamed over their destinations. A failure
  while writing (a full or read-only disk) leaves every destination as it
  was.

  Args:
    contents: destination path -> bytes.

  Raises:
    OSError: naming the destination that could not be written (see
      `atomic_open`).
  """
  staged = {}
  try:
    for path, data in contents.items():
      tmp = _tmp_name(path)
      staged[path] = tmp
      try:
        write_bytes(tmp, data)
      except OSError as e:
        if e.errno in _WRITE_ERRNOS:
          raise type(e)(e.errno, "{}: cannot write it ({})".format(
              path, os.strerror(e.errno))) from None
        raise
    for path, tmp in staged.items():
      _replace(tmp, path)
  except BaseException:
    for tmp in staged.values():
      _remove_quietly(tmp)
    raise


# How TensorFlow's file system layer words the errors of `_WRITE_ERRNOS` in
# an OpError (e.g. a checkpoint's SaveV2 on a full disk).
_WRITE_ERROR_TEXTS = (("No space left on device", errno.ENOSPC),
                      ("Disk quota exceeded", errno.EDQUOT),
                      ("Read-only file system", errno.EROFS),
                      ("File too large", errno.EFBIG),
                      ("Permission denied", errno.EACCES))


def refused_write_errno(exc: BaseException):
  """The errno of a write the file system refused (full, read-only, ...).

  Returns:
    An errno of `_WRITE_ERRNOS` for an OSError carrying one, or a TensorFlow
    OpError whose message names one; else None.
  """
  if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
    return exc.errno
  tf = __import__("sys").modules.get("tensorflow")
  op_error = getattr(getattr(tf, "errors", None), "OpError", None)
  if isinstance(op_error, type) and isinstance(exc, op_error):
    message = str(getattr(exc, "message", exc))
    for text, code in _WRITE_ERROR_TEXTS:
      if text.lower() in message.lower():
        return code
  return None


def _free_space(folder) -> str:
  while folder and not os.path.exists(folder):
    parent = os.path.dirname(folder)
    if parent == folder:
      break
    folder = parent
  try:
    free = os.statvfs(folder or ".")
  except OSError:
    return ""
  return "; {:.1f} MB free there".format(free.f_bavail * free.f_frsize / 1e6)


@contextlib.contextmanager
def named_write_errors(folder, what):
  """A refused write inside the block becomes one OSError naming `folder`.

  For work that writes through TensorFlow too (checkpoints), whose errors
  would otherwise be a `Graph execution error` with a stack: "<folder>:
  cannot write <what> (No space left on device; 0.0 MB free there);
  finished results there are kept: make room or fix the permissions and run
  the same command again".

  Args:
    folder: the folder being written.
    what: what was being written, e.g. "run 12".

  Yields:
    Nothing.

  Raises:
    OSError: with the errno of the refused write, for such a failure; other
      exceptions pass unchanged.
  """
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    code = refused_write_errno(e)
    if code is None:
      raise
    raise OSError(code, "{}: cannot write {} ({}{}); finished results there "
                  "are kept: make room or fix the permissions and run the "
                  "same command again".format(folder, what, os.strerror(code),
                                              _free_space(str(folder)))
                  ) from None
