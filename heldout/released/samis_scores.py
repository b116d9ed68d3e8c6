"""The SAMIS scores the authors published (Agiollo, Kim, Khanna, KDD 2024).

Their repository ships SAMIS-L and SAMIS-P for CIFAR-10, CIFAR-100 and SVHN
as pickle files (`src/metrics/sam_sgd/`), each "a python dictionary mapping
the sample index (following the original ordering of the corresponding
dataset) to the SAMIS scores obtained by averaging the computation over 10
seeds" (their README). The original CIFAR order is not TFDS's read order;
as for the published C-scores (`heldout.released.published`), TFDS's `id`
feature gives each TFDS position its original position
(`published.original_index_from_tfds_ids`), and `to_tfds_order` uses that
map to put the scores under our example ids.

Unpickling runs code from the file, so `read_samis_pickle` refuses unless
`allow_pickle=True` (for a file you trust). Every format problem raises
`PublishedFormatError` naming the file, what was expected and what was found.
"""

import dataclasses
import numbers
import pickle

import numpy as np
import tensorflow as tf

from heldout import errors
from heldout.released import published

KIND = "samis"
ORDER_TFDS = "tfds"


def _fail(path, expected, found):
  raise errors.PublishedFormatError("{}: expected {}, found {}".format(
      path, expected, found))


def _as_number(path, key, value):
  if isinstance(value, np.ndarray) and value.size == 1:
    value = value.reshape(()).item()
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, (numbers.Real, np.floating, np.integer)):
    _fail(path, "a real number for sample {}".format(key),
          "{!r} of type {}".format(value, type(value).__name__))
  return float(value)


def read_samis_pickle(path, num_train=None, allow_pickle=False):
  """Reads a published SAMIS pickle: {original sample index: score}.

  Args:
    path: the .pkl file (local or `tf.io.gfile` URL).
    num_train: the training set size (50000 for CIFAR); when given, the keys
      must be exactly 0..num_train-1.
    allow_pickle: must be True: unpickling runs code from the file, so only
      for a file you trust.

  Returns:
    `published.PublishedScores` of kind "samis", `index` the original
    positions (ascending), `order` "original".

  Raises:
    PublishedFormatError: without `allow_pickle`, for a missing or unreadable
      file, a pickle that is not a dict, a key that is not a non-negative
      integer, a value that is not a real number, or keys other than
      0..num_train-1.
  """
  path = str(path)
  if not allow_pickle:
    raise errors.PublishedFormatError(
        "{}: a pickle, and unpickling runs code from the file; pass "
        "allow_pickle=True (--allow_pickle) only for a file you trust".format(
            path))
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = pickle.load(f)
  except tf.errors.NotFoundError:
    raise errors.PublishedFormatError("{}: no such file".format(path)) from None
  except ModuleNotFoundError as e:
    _fail(path, "a dict of plain numbers (numpy at most)",
          "objects that need the module {!r} to unpickle".format(e.name))
  except (pickle.UnpicklingError, EOFError, AttributeError, ValueError,
          TypeError, IndexError) as e:
    _fail(path, "a pickle of a dict", "an unreadable file ({})".format(
        str(e) or type(e).__name__))
  if not isinstance(data, dict):
    _fail(path, "a dict mapping original sample index to score",
          "a {}".format(type(data).__name__))
  index = np.empty(len(data), np.int64)
  values = np.empty(len(data), np.float64)
  for i, (key, value) in enumerate(data.items()):
    if isinstance(key, (bool, np.bool_)) or not isinstance(
        key, (numbers.Integral, np.integer)) or key < 0:
      _fail(path, "sample indices (integers >= 0) as keys",
            "the key {!r} of type {}".format(key, type(key).__name__))
    index[i] = int(key)
    values[i] = _as_number(path, key, value)
  order = np.argsort(index)
  index, values = index[order], values[order]
  if num_train is not None and not np.array_equal(
      index, np.arange(int(num_train))):
    missing = np.setdiff1d(np.arange(int(num_train)), index)
    extra = index[index >= int(num_train)]
    _fail(path, "the keys 0..{} (num_train={})".format(int(num_train) - 1,
                                                       int(num_train)),
          "{} keys: {} missing (first {}), {} beyond (first {})".format(
              len(index), len(missing),
              int(missing[0]) if len(missing) else "-", len(extra),
              int(extra[0]) if len(extra) else "-"))
  return published.PublishedScores(KIND, values, index, None, None,
                                   "original", path)


def to_tfds_order(scores, original_index):
  """The published scores under our example ids (TFDS positions).

  Args:
    scores: `PublishedScores` in the original order (`read_samis_pickle`).
    original_index: [n_train] int, the original position of each TFDS
      position (`published.original_index_from_tfds_ids`, or the
      `original_index` of an index map file).

  Returns:
    `PublishedScores` with `index` = 0..n_train-1 (TFDS positions), `values`
    the score of each, `order` "tfds".

  Raises:
    PublishedFormatError: if `scores` is not in the original order, or lacks
      the score of an original position the map names.
    ValueError: if `original_index` is not a permutation of 0..n-1.
  """
  if scores.order != "original":
    raise errors.PublishedFormatError(
        "{}: expected scores in the original dataset order, found order "
        "{!r}".format(scores.path, scores.order))
  original_index = np.asarray(original_index)
  if original_index.ndim != 1 or not np.issubdtype(original_index.dtype,
                                                   np.integer) or not (
      np.array_equal(np.sort(original_index), np.arange(len(original_index)))):
    raise ValueError("`original_index` must be a permutation of 0..n-1 (one "
                     "original position per TFDS position)")
  pos = np.searchsorted(scores.index, original_index)
  pos_c = np.minimum(pos, max(len(scores.index) - 1, 0))
  found = (scores.index[pos_c] == original_index) if len(scores.index) else (
      np.zeros(len(original_index), bool))
  if not found.all():
    missing = original_index[~found]
    raise errors.PublishedFormatError(
        "{}: expected a score for every original position of the {} examples "
        "of the index map, found none for {} of them (first: original "
        "position {}); is the map of another dataset?".format(
            scores.path, len(original_index), len(missing), int(missing[0])))
  return dataclasses.replace(
      scores, values=scores.values[pos_c],
      index=np.arange(len(original_index), dtype=np.int64), order=ORDER_TFDS)
