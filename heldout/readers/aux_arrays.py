"""Reading, validating and writing a run's `aux_arrays.npz`.

The released runs store, per run, which training examples it was trained on
and whether the final model was correct on each example of each split:

| key | dtype / shape |
| --- | --- |
| `subsample_idx` | int, [n_subset] |
| `correctness_train` | bool, [n_subset] |
| `correctness_removed` | bool, [n_train - n_subset] |
| `correctness_test` | bool, [n_test] |
| `index_train`, `index_removed`, `index_test` | int, the example id of each entry of `correctness_<split>` |

Evaluation order may differ between runs, so consumers always scatter through
`index_<split>`; nothing here assumes positional order.
"""

import dataclasses
import io
from typing import Optional

import numpy as np

from heldout import atomic
from heldout import errors
from heldout import npz_io

SPLITS = ("train", "removed", "test")
AUX_KEYS = (
    "subsample_idx",
    "correctness_train",
    "correctness_removed",
    "correctness_test",
    "index_train",
    "index_removed",
    "index_test",
)


@dataclasses.dataclass(frozen=True)
class AuxArrays:
  """The validated arrays of one run; see the module docstring for shapes."""
  subsample_idx: np.ndarray
  correctness_train: np.ndarray
  correctness_removed: np.ndarray
  correctness_test: np.ndarray
  index_train: np.ndarray
  index_removed: np.ndarray
  index_test: np.ndarray
  path: str = "<memory>"

  @property
  def num_train(self):
    """Size of the full training set (subset + removed)."""
    return len(self.index_train) + len(self.index_removed)

  @property
  def num_test(self):
    return len(self.index_test)

  def subset_mask(self):
    """[num_train] bool: True for the examples this run was trained on."""
    mask = np.zeros(self.num_train, dtype=bool)
    mask[self.subsample_idx] = True
    return mask

  def correctness_on_train_set(self):
    """[num_train] bool: correctness on every training example, by example id."""
    out = np.zeros(self.num_train, dtype=bool)
    out[self.index_train] = self.correctness_train
    out[self.index_removed] = self.correctness_removed
    return out

  def correctness_on_test_set(self):
    """[num_test] bool: correctness on every test example, by example id."""
    out = np.zeros(self.num_test, dtype=bool)
    out[self.index_test] = self.correctness_test
    return out


def _fail(path, key, expected, found):
  raise errors.AuxArraysError("{}: key `{}`: expected {}, found {}".format(
      path, key, expected, found))


def _check_permutation(path, keys, values, n):
  """Checks that `values` (concatenated) is a permutation of range(n)."""
  name = " + ".join("`{}`".format(k) for k in keys)
  if len(values) != n:
    raise errors.AuxArraysError(
        "{}: {}: expected {} example ids in all, found {}".format(
            path, name, n, len(values)))
  if n == 0:
    return
  lo, hi = values.min(), values.max()
  if lo < 0 or hi >= n:
    raise errors.AuxArraysError(
        "{}: {}: expected example ids in [0, {}), found values in [{}, {}]".format(
            path, name, n, lo, hi))
  counts = np.bincount(values, minlength=n)
  if (counts != 1).any():
    dup = np.flatnonzero(counts > 1)
    missing = np.flatnonzero(counts == 0)
    raise errors.AuxArraysError(
        "{}: {}: expected a permutation of range({}) (each example id exactly "
        "once), found {} duplicated ids (first: {}) and {} missing ids (first: {})"
        .format(path, name, n, len(dup), dup[:5].tolist(), len(missing),
                missing[:5].tolist()))


def validate_aux_arrays(arrays, path="<memory>", num_train=None, num_test=None):
  """Validates the arrays of one run and returns them as `AuxArrays`.

  Args:
    arrays: mapping key -> array (an open npz file works).
    path: where the arrays came from, for error messages.
    num_train: the expected size of the full training set, if known.
    num_test: the expected size of the test set, if known.

  Returns:
    `AuxArrays` with int64 indices and bool correctness.

  Raises:
    AuxArraysError: naming the file, the key, what was expected and what was
      found, for a missing key, a wrong dtype or rank, lengths that disagree,
      `index_train` + `index_removed` not a permutation of the training set,
      `index_test` not a permutation of the test set, or `subsample_idx` not
      the same set as `index_train`.
  """
  present = set(arrays.keys())
  missing = [k for k in AUX_KEYS if k not in present]
  if missing:
    raise errors.AuxArraysError(
        "{}: missing key(s) {}; expected keys {}, found {}".format(
            path, ", ".join("`{}`".format(k) for k in missing), list(AUX_KEYS),
            sorted(present)))
  out = {}
  for key in AUX_KEYS:
    value = np.asarray(arrays[key])
    if value.ndim != 1:
      _fail(path, key, "a 1-D array", "shape {}".format(value.shape))
    if key.startswith("correctness_"):
      if value.dtype == bool:
        pass
      elif np.issubdtype(value.dtype, np.integer) and np.isin(value, (0, 1)).all():
        value = value.astype(bool)
      else:
        _fail(path, key, "bool (or 0/1 integers)", "dtype {}".format(value.dtype))
    else:
      if not np.issubdtype(value.dtype, np.integer):
        _fail(path, key, "an integer array", "dtype {}".format(value.dtype))
      value = value.astype(np.int64)
    out[key] = value

  for split in SPLITS:
    c, i = out["correctness_" + split], out["index_" + split]
    if len(c) != len(i):
      _fail(path, "correctness_" + split,
            "length {} (len(index_{}))".format(len(i), split),
            "length {}".format(len(c)))
  if len(out["correctness_train"]) != len(out["subsample_idx"]):
    _fail(path, "correctness_train",
          "length {} (len(subsample_idx))".format(len(out["subsample_idx"])),
          "length {}".format(len(out["correctness_train"])))

  n_train = len(out["index_train"]) + len(out["index_removed"])
  if num_train is not None and n_train != num_train:
    _fail(path, "index_train + index_removed",
          "{} training examples in all".format(num_train), n_train)
  _check_permutation(path, ("index_train", "index_removed"),
                     np.concatenate([out["index_train"], out["index_removed"]]),
                     n_train)
  n_test = len(out["index_test"])
  if num_test is not None and n_test != num_test:
    _fail(path, "index_test", "{} test examples".format(num_test), n_test)
  _check_permutation(path, ("index_test",), out["index_test"], n_test)

  subsample = out["subsample_idx"]
  if len(np.unique(subsample)) != len(subsample) or not np.array_equal(
      np.sort(subsample), np.sort(out["index_train"])):
    extra = np.setdiff1d(subsample, out["index_train"])
    lacking = np.setdiff1d(out["index_train"], subsample)
    _fail(path, "subsample_idx",
          "the same set of example ids as `index_train` ({} ids)".format(
              len(out["index_train"])),
          "{} ids, {} not in index_train (first: {}), {} of index_train absent "
          "(first: {})".format(len(subsample), len(extra), extra[:5].tolist(),
                               len(lacking), lacking[:5].tolist()))
  return AuxArrays(path=str(path), **out)


def load_arrays(path):
  """Reads every array of an `aux_arrays.npz` without validating them.

  Args:
    path: the file (local or `tf.io.gfile` path).

  Returns:
    dict key -> array, for `validate_aux_arrays`.

  Raises:
    RunNotFoundError: if the file does not exist.
    AuxArraysError: if it is not a readable npz (a damaged one included).
  """
  path = str(path)
  try:
    with npz_io.load_npz(path) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except FileNotFoundError:
    raise errors.RunNotFoundError("{}: no such file".format(path)) from None
  except errors.HeldoutError:
    raise
  except (OSError, ValueError, EOFError) as e:
    raise errors.AuxArraysError(
        "{}: expected an .npz file with keys {}, could not read it: {}".format(
            path, list(AUX_KEYS), e)) from None
  return arrays


def stored_sizes(arrays):
  """(num_train, num_test) that unvalidated arrays claim, None where unknown.

  Args:
    arrays: key -> array, as `load_arrays` returns them.

  Returns:
    `len(index_train) + len(index_removed)` and `len(index_test)`, each None
    when its keys are missing or not 1-D (validation then names the problem).
  """
  def length(key):
    value = arrays.get(key)
    return None if value is None or np.ndim(value) != 1 else len(value)
  train, removed, test = (length("index_" + s) for s in SPLITS)
  return (None if train is None or removed is None else train + removed,
          test)


def read_aux_arrays(path, num_train=None, num_test=None):
  """Reads and validates an `aux_arrays.npz` (local or `tf.io.gfile` path).

  Args:
    path: the file.
    num_train: the expected size of the full training set, if known.
    num_test: the expected size of the test set, if known.

  Returns:
    `AuxArrays`.

  Raises:
    RunNotFoundError: if the file does not exist.
    AuxArraysError: if it is not a readable npz or fails validation.
  """
  return validate_aux_arrays(load_arrays(path), str(path), num_train=num_train,
                             num_test=num_test)


def write_aux_arrays(path, *, subsample_idx, correctness_train,
                     correctness_removed, correctness_test, index_train,
                     index_removed, index_test,
                     num_train: Optional[int] = None,
                     num_test: Optional[int] = None):
  """Validates and atomically writes an `aux_arrays.npz` in the released format.

  Args:
    path: destination file.
    subsample_idx: [n_subset] int, training examples the run was trained on.
    correctness_train: [n_subset] bool, in the order of `index_train`.
    correctness_removed: [n_train - n_subset] bool, order of `index_removed`.
    correctness_test: [n_test] bool, order of `index_test`.
    index_train: [n_subset] int example ids.
    index_removed: [n_train - n_subset] int example ids.
    index_test: [n_test] int example ids.
    num_train: expected size of the training set, checked if given.
    num_test: expected size of the test set, checked if given.

  Returns:
    The validated `AuxArrays` that were written.

  Raises:
    AuxArraysError: if the arrays are inconsistent (nothing is written).
  """
  arrays = dict(subsample_idx=subsample_idx,
                correctness_train=correctness_train,
                correctness_removed=correctness_removed,
                correctness_test=correctness_test,
                index_train=index_train,
                index_removed=index_removed,
                index_test=index_test)
  aux = validate_aux_arrays(arrays, path, num_train=num_train, num_test=num_test)
  atomic.write_npz(path, **{k: getattr(aux, k) for k in AUX_KEYS})
  return dataclasses.replace(aux, path=str(path))


def encode_aux_arrays(path, *, num_train: Optional[int] = None,
                      num_test: Optional[int] = None, **arrays) -> bytes:
  """The bytes `write_aux_arrays` would write, validated (`path` names them
  in errors); for a writer that puts the file itself (`publish_run`).

  Raises:
    AuxArraysError: if the arrays are inconsistent.
  """
  aux = validate_aux_arrays(arrays, path, num_train=num_train, num_test=num_test)
  buffer = io.BytesIO()
  np.savez(buffer, **{k: getattr(aux, k) for k in AUX_KEYS})
  return buffer.getvalue()
