"""Readers of the estimates the authors published on the project websites.

What is known about each file, and where it comes from:

* C-scores (Jiang et al. 2021), pluskid.github.io/structural-regularity
  (docs/index.html of github.com/pluskid/structural-regularity):
  `cifar10-cscores-orig-order.npz` and `cifar100-cscores-orig-order.npz` hold
  two arrays, `labels` and `scores`, "stored in the order of training examples
  as defined by the original datasets" (the CIFAR python batches), with
  `labels` included "for easy sanity check of the data ordering". The ImageNet
  file is `imagenet-cscores-with-filename.npz`: `labels`, `scores` and
  `filenames`, in an arbitrary order; the filename identifies the example.
  NOTE: the original CIFAR order is not TFDS's read order (TFDS shuffles
  records by key when it prepares the dataset; its `id` feature, "train_01234",
  keeps the original position: tensorflow_datasets/image_classification/cifar.py).
  The readers index by position in the file; `original_index_from_tfds_ids`
  builds the map from TFDS positions to original positions.
* Memorization and influence (Feldman & Zhang 2020),
  pluskid.github.io/influence-memorization:
  - `cifar100_infl_matrix.npz`: `tr_mem` [50000], `tr_labels` [50000],
    `tt_labels` [10000], and per class k `infl_matrix_class{k}`,
    `tr_classidx_{k}`, `tt_classidx_{k}` (influence restricted to pairs of the
    same class). Public code that loads it (e.g. an influence-aware
    memorization README, "500x100 each") treats `infl_matrix_class{k}` as
    [n_train_in_class, n_test_in_class]; `read_infl_matrix` checks the
    orientation against the class index lengths and records what it found.
  - `cifar100_high_infl_pairs_infl0.15_mem0.25.npz` (and an ImageNet
    counterpart): parallel arrays `tr_idx`, `tt_idx`, `infl`, `mem`, one entry
    per high-influence (train, test) pair; loaders in public code read exactly
    these four keys, and one checks `mem` against `tr_mem[tr_idx]` of the
    matrix file. `read_high_influence_pairs` checks at load time that `mem` is
    constant per `tr_idx` and that the thresholds in the file name hold.
  - `imagenet_index.npz`: `tr_filenames`, `tr_labels`, `tt_filenames`,
    `tt_labels`; the example index is the position, labels are 0..999
    (`_build_index_lookup` in google-research/heldout-influence-estimation,
    tools/imagenet-tfrecords-builder/build_dataset.py, which decodes the
    filenames as UTF-8 bytes and adds 1 to the labels for the TFRecords).

Every format problem raises `PublishedFormatError` naming the file, the key,
what was expected and what was found.
"""

import dataclasses
import os
import re
from typing import Dict, Optional, Tuple

import numpy as np

from heldout import errors
from heldout import npz_io

CSCORE_KEYS = ("labels", "scores")
INFL_MATRIX_KEYS = ("tr_mem", "tr_labels", "tt_labels")
HIGH_INFL_PAIRS_KEYS = ("tr_idx", "tt_idx", "infl", "mem")
IMAGENET_INDEX_KEYS = ("tr_filenames", "tr_labels", "tt_filenames", "tt_labels")

ORIENTATION_TRAIN_BY_TEST = "train_by_test"
ORIENTATION_TEST_BY_TRAIN = "test_by_train"
ORIENTATION_SQUARE = "square"

_THRESHOLDS_RE = re.compile(r"infl([0-9]*\.?[0-9]+)_mem([0-9]*\.?[0-9]+)")
_TFDS_ID_RE = re.compile(r"^(?:train|test)_(\d+)$")
_INFL_CLASS_RE = re.compile(r"^infl_matrix_class(\d+)$")


def _fail(path, key, expected, found):
  raise errors.PublishedFormatError("{}: key `{}`: expected {}, found {}".format(
      path, key, expected, found))


def _load_npz(path, allow_pickle=False):
  """Opens an npz (local or `tf.io.gfile`), returning {key: array} of all keys."""
  path = str(path)
  try:
    with npz_io.load_npz(path, allow_pickle=allow_pickle) as npz:
      out = {}
      for key in npz.files:
        try:
          out[key] = npz[key]
        except ValueError as e:
          if "allow_pickle" in str(e):
            _fail(path, key, "a plain (non-object) array",
                  "an object array, which needs unpickling; pass allow_pickle=True "
                  "(--allow_pickle) only for a file you trust")
          raise
      return out
  except FileNotFoundError:
    raise errors.PublishedFormatError("{}: no such file".format(path)) from None
  except errors.PublishedFormatError:
    raise
  except (OSError, ValueError) as e:
    raise errors.PublishedFormatError("{}: not a readable .npz file ({})".format(
        path, e)) from e


def _npz_keys(path):
  """The keys of an npz file without reading its arrays."""
  try:
    with npz_io.load_npz(path) as npz:
      return set(npz.files)
  except FileNotFoundError:
    raise errors.PublishedFormatError("{}: no such file".format(path)) from None
  except (OSError, ValueError) as e:
    raise errors.PublishedFormatError("{}: not a readable .npz file ({})".format(
        path, e)) from e


def _require(path, arrays, keys):
  missing = [k for k in keys if k not in arrays]
  if missing:
    raise errors.PublishedFormatError(
        "{}: missing key(s) {}; expected keys {}, found {}".format(
            path, ", ".join("`{}`".format(k) for k in missing), list(keys),
            sorted(arrays)))


def _vector(path, arrays, key, kind, length=None, length_why=None):
  value = np.asarray(arrays[key])
  if value.ndim != 1:
    _fail(path, key, "a 1-D array", "shape {}".format(value.shape))
  if kind == "float":
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
      _fail(path, key, "a numeric array", "dtype {}".format(value.dtype))
    value = value.astype(np.float64)
  elif kind == "int":
    if not np.issubdtype(value.dtype, np.integer):
      _fail(path, key, "an integer array", "dtype {}".format(value.dtype))
    value = value.astype(np.int64)
  elif kind == "str":
    value = _as_str_array(path, key, value)
  if length is not None and len(value) != length:
    _fail(path, key, "length {}{}".format(
        length, " ({})".format(length_why) if length_why else ""),
          "length {}".format(len(value)))
  return value


def _as_str_array(path, key, value):
  if value.dtype.kind == "S":
    return np.array([v.decode("utf-8") for v in value], dtype=object)
  if value.dtype.kind == "U":
    return value.astype(object)
  if value.dtype.kind == "O":
    out = []
    for v in value:
      if isinstance(v, bytes):
        out.append(v.decode("utf-8"))
      elif isinstance(v, str):
        out.append(v)
      else:
        _fail(path, key, "strings", "an element of type {}".format(type(v).__name__))
    return np.array(out, dtype=object)
  _fail(path, key, "an array of strings", "dtype {}".format(value.dtype))
  return None


def _check_ids(path, key, ids, bound, bound_why):
  if len(ids) and (ids.min() < 0 or (bound is not None and ids.max() >= bound)):
    _fail(path, key, "example ids in [0, {}){}".format(
        bound if bound is not None else "inf", " ({})".format(bound_why) if bound_why else ""),
          "values in [{}, {}]".format(ids.min(), ids.max()))


@dataclasses.dataclass(frozen=True)
class PublishedScores:
  """One published value per example.

  Attributes:
    kind: "cscore", "memorization" or "samis"
      (`heldout.released.samis_scores`).
    values: [n] float64.
    index: [n] int64 example id of each value, or None when the examples are
      identified by `filenames` only (ImageNet C-scores before alignment).
    labels: [n] int64 class labels, or None.
    filenames: [n] str, or None.
    order: how `index` numbers examples: "original" (the original CIFAR
      files), "file" (positions in the published file, order not documented),
      "imagenet_index" (imagenet_index.npz), "filename" (no index yet), or
      "tfds" (TFDS positions, `samis_scores.to_tfds_order`).
    path: the file read.
  """
  kind: str
  values: np.ndarray
  index: Optional[np.ndarray]
  labels: Optional[np.ndarray]
  filenames: Optional[np.ndarray]
  order: str
  path: str


def read_cscores(path, num_examples=None, allow_pickle=False):
  """Reads `<dataset>-cscores-orig-order.npz` or `imagenet-cscores-with-filename.npz`.

  Args:
    path: the file.
    num_examples: expected number of training examples (50000 for CIFAR), or None.
    allow_pickle: allow object arrays (ImageNet filenames saved as Python
      strings need it; only for files you trust).

  Returns:
    `PublishedScores` of kind "cscore": for the CIFAR files `index` is the
    position (the original dataset order), for the ImageNet file `index` is
    None and `filenames` is set (see `align_by_filename`).

  Raises:
    PublishedFormatError: for a missing key, a wrong rank or dtype, lengths
      that disagree, or a length other than `num_examples`.
  """
  path = str(path)
  arrays = _load_npz(path, allow_pickle)
  _require(path, arrays, CSCORE_KEYS)
  scores = _vector(path, arrays, "scores", "float", num_examples,
                   "the number of training examples" if num_examples else None)
  labels = _vector(path, arrays, "labels", "int", len(scores), "len(scores)")
  if "filenames" in arrays:
    filenames = _vector(path, arrays, "filenames", "str", len(scores), "len(scores)")
    return PublishedScores("cscore", scores, None, labels, filenames, "filename", path)
  return PublishedScores("cscore", scores, np.arange(len(scores), dtype=np.int64),
                         labels, None, "original", path)


@dataclasses.dataclass(frozen=True)
class ClassInfluence:
  """Influence among the examples of one class.

  Attributes:
    train_index: [n_train_k] int64 training example ids of the class.
    test_index: [n_test_k] int64 test example ids of the class.
    influence: [n_train_k, n_test_k] float, influence of train_index[a] on
      test_index[b], whatever the file's orientation.
  """
  train_index: np.ndarray
  test_index: np.ndarray
  influence: np.ndarray


@dataclasses.dataclass(frozen=True)
class InfluenceMatrix:
  """`cifar100_infl_matrix.npz`.

  Attributes:
    memorization: [n_train] float64 (`tr_mem`).
    train_labels: [n_train] int64.
    test_labels: [n_test] int64.
    classes: class k -> `ClassInfluence`.
    orientation: what the file's `infl_matrix_class{k}` arrays were:
      "train_by_test" (as documented), "test_by_train" (transposed on load),
      or "square" (every class had as many test as training examples, so the
      orientation could not be told; taken as documented).
    path: the file read.
  """
  memorization: np.ndarray
  train_labels: np.ndarray
  test_labels: np.ndarray
  classes: Dict[int, ClassInfluence]
  orientation: str
  path: str

  def memorization_scores(self):
    """`PublishedScores` of the memorization of every training example."""
    return PublishedScores("memorization", self.memorization,
                           np.arange(len(self.memorization), dtype=np.int64),
                           self.train_labels, None, "file", self.path)

  def influence(self, train_id, test_id):
    """The published influence of training example `train_id` on test example `test_id`.

    Returns NaN for a pair of different classes (not published).
    """
    k = int(self.train_labels[train_id])
    if int(self.test_labels[test_id]) != k or k not in self.classes:
      return float("nan")
    c = self.classes[k]
    a = np.flatnonzero(c.train_index == train_id)
    b = np.flatnonzero(c.test_index == test_id)
    if not len(a) or not len(b):
      return float("nan")
    return float(c.influence[a[0], b[0]])


def read_infl_matrix(path, num_train=None, num_test=None):
  """Reads `cifar100_infl_matrix.npz`, validating every key.

  Args:
    path: the file.
    num_train: expected training set size (50000), or None.
    num_test: expected test set size (10000), or None.

  Returns:
    `InfluenceMatrix` with every class's influence as [n_train_k, n_test_k].

  Raises:
    PublishedFormatError: for a missing key (including a class k with
      `infl_matrix_class{k}` but no `tr_classidx_{k}`), class keys that are not
      0..K-1, ids out of range or repeated, class index arrays whose examples
      do not carry label k, or an influence matrix whose shape matches neither
      [n_train_k, n_test_k] nor its transpose.
  """
  path = str(path)
  arrays = _load_npz(path)
  _require(path, arrays, INFL_MATRIX_KEYS)
  mem = _vector(path, arrays, "tr_mem", "float", num_train,
                "the number of training examples" if num_train else None)
  tr_labels = _vector(path, arrays, "tr_labels", "int", len(mem), "len(tr_mem)")
  tt_labels = _vector(path, arrays, "tt_labels", "int", num_test,
                      "the number of test examples" if num_test else None)
  ks = sorted(int(m.group(1)) for m in map(_INFL_CLASS_RE.match, arrays) if m)
  if not ks:
    _fail(path, "infl_matrix_class0", "one `infl_matrix_class{k}` per class",
          "none; keys are {}".format(sorted(arrays)))
  if ks != list(range(len(ks))):
    missing = sorted(set(range(max(ks) + 1)) - set(ks))
    _fail(path, "infl_matrix_class{}".format(missing[0]),
          "classes 0..{} without gaps".format(max(ks)),
          "missing classes {}".format(missing[:10]))
  _require(path, arrays, [name for k in ks for name in (
      "tr_classidx_{}".format(k), "tt_classidx_{}".format(k))])
  label_classes = np.unique(tr_labels)
  if len(label_classes) and (label_classes.min() < 0 or label_classes.max() >= len(ks)):
    _fail(path, "tr_labels", "labels in [0, {}) (one influence matrix per class)".format(
        len(ks)), "labels in [{}, {}]".format(label_classes.min(), label_classes.max()))

  orientations = set()
  classes = {}
  seen_train = np.zeros(len(mem), dtype=np.int64)
  seen_test = np.zeros(len(tt_labels), dtype=np.int64)
  for k in ks:
    tr_key, tt_key = "tr_classidx_{}".format(k), "tt_classidx_{}".format(k)
    tr_idx = _vector(path, arrays, tr_key, "int")
    tt_idx = _vector(path, arrays, tt_key, "int")
    _check_ids(path, tr_key, tr_idx, len(mem), "len(tr_mem)")
    _check_ids(path, tt_key, tt_idx, len(tt_labels), "len(tt_labels)")
    for key, idx, labels, name in ((tr_key, tr_idx, tr_labels, "tr_labels"),
                                   (tt_key, tt_idx, tt_labels, "tt_labels")):
      wrong = np.flatnonzero(labels[idx] != k)
      if len(wrong):
        _fail(path, key, "ids of examples of class {} ({}[id] == {})".format(k, name, k),
              "{} of {} ids with another label (first: id {} has label {})".format(
                  len(wrong), len(idx), idx[wrong[0]], labels[idx[wrong[0]]]))
    np.add.at(seen_train, tr_idx, 1)
    np.add.at(seen_test, tt_idx, 1)
    m_key = "infl_matrix_class{}".format(k)
    matrix = np.asarray(arrays[m_key])
    n_tr, n_tt = len(tr_idx), len(tt_idx)
    if matrix.ndim != 2:
      _fail(path, m_key, "a 2-D array [{}, {}]".format(n_tr, n_tt),
            "shape {}".format(matrix.shape))
    if not np.issubdtype(matrix.dtype, np.floating):
      _fail(path, m_key, "a float array", "dtype {}".format(matrix.dtype))
    if matrix.shape == (n_tr, n_tt):
      orientations.add(ORIENTATION_SQUARE if n_tr == n_tt else ORIENTATION_TRAIN_BY_TEST)
    elif matrix.shape == (n_tt, n_tr):
      orientations.add(ORIENTATION_TEST_BY_TRAIN)
      matrix = matrix.T
    else:
      _fail(path, m_key, "shape [len({}), len({})] = [{}, {}] (or its transpose)".format(
          tr_key, tt_key, n_tr, n_tt), "shape {}".format(list(matrix.shape)))
    classes[k] = ClassInfluence(tr_idx, tt_idx, matrix)
  for key, seen in (("tr_classidx_*", seen_train), ("tt_classidx_*", seen_test)):
    if (seen > 1).any():
      dup = np.flatnonzero(seen > 1)
      _fail(path, key, "each example id in at most one class",
            "{} ids repeated (first: {})".format(len(dup), dup[:5].tolist()))

  definite = orientations - {ORIENTATION_SQUARE}
  if len(definite) > 1:
    _fail(path, "infl_matrix_class*", "one orientation for every class",
          "some classes [n_train_k, n_test_k] and others [n_test_k, n_train_k]")
  orientation = definite.pop() if definite else ORIENTATION_SQUARE
  return InfluenceMatrix(mem, tr_labels, tt_labels, classes, orientation, path)


@dataclasses.dataclass(frozen=True)
class HighInfluencePairs:
  """A `*_high_infl_pairs_infl<a>_mem<b>.npz` file: one entry per pair.

  Attributes:
    train_index: [n_pairs] int64 (`tr_idx`).
    test_index: [n_pairs] int64 (`tt_idx`).
    influence: [n_pairs] float64 (`infl`).
    memorization: [n_pairs] float64 (`mem`), the memorization of the pair's
      training example (checked constant per `tr_idx` at load).
    thresholds: `(infl_min, mem_min)` parsed from the file name, or None.
    path: the file read.
  """
  train_index: np.ndarray
  test_index: np.ndarray
  influence: np.ndarray
  memorization: np.ndarray
  thresholds: Optional[Tuple[float, float]]
  path: str

  def memorization_scores(self):
    """`PublishedScores` of the memorization of each distinct training example."""
    ids, first = np.unique(self.train_index, return_index=True)
    return PublishedScores("memorization", self.memorization[first], ids, None, None,
                           "file", self.path)


def read_high_influence_pairs(path, num_train=None, num_test=None,
                              check_thresholds=True):
  """Reads a high-influence pairs file (`tr_idx`, `tt_idx`, `infl`, `mem`).

  Args:
    path: the file.
    num_train: training set size, to bound `tr_idx`, or None.
    num_test: test set size, to bound `tt_idx`, or None.
    check_thresholds: when the file name carries `infl<a>_mem<b>`, check that
      every pair has `infl >= a` and `mem >= b` (what the name says the file
      holds).

  Returns:
    `HighInfluencePairs`.

  Raises:
    PublishedFormatError: for a missing key, arrays of different lengths, ids
      out of range, `mem` differing between pairs of the same training example
      (then `mem` is not the training example's memorization), or, with
      `check_thresholds`, values below the thresholds in the name (the message
      says the minimum found).
  """
  path = str(path)
  arrays = _load_npz(path)
  _require(path, arrays, HIGH_INFL_PAIRS_KEYS)
  tr_idx = _vector(path, arrays, "tr_idx", "int")
  n = len(tr_idx)
  tt_idx = _vector(path, arrays, "tt_idx", "int", n, "len(tr_idx)")
  infl = _vector(path, arrays, "infl", "float", n, "len(tr_idx)")
  mem = _vector(path, arrays, "mem", "float", n, "len(tr_idx)")
  _check_ids(path, "tr_idx", tr_idx, num_train, "the number of training examples")
  _check_ids(path, "tt_idx", tt_idx, num_test, "the number of test examples")
  if n:
    order = np.argsort(tr_idx, kind="stable")
    ids, starts = np.unique(tr_idx[order], return_index=True)
    lo = np.minimum.reduceat(mem[order], starts)
    hi = np.maximum.reduceat(mem[order], starts)
    bad = np.flatnonzero(hi - lo > 1e-6)
    if len(bad):
      _fail(path, "mem", "one memorization value per training example (tr_idx)",
            "{} training examples with differing values (first: tr_idx {} has "
            "{:.4f} and {:.4f})".format(len(bad), ids[bad[0]], lo[bad[0]], hi[bad[0]]))
  thresholds = None
  match = _THRESHOLDS_RE.search(os.path.basename(path))
  if match:
    thresholds = (float(match.group(1)), float(match.group(2)))
    if check_thresholds and n:
      for key, values, bound in (("infl", infl, thresholds[0]), ("mem", mem, thresholds[1])):
        if values.min() < bound - 1e-6:
          _fail(path, key, "every value >= {} (the file name's threshold)".format(bound),
                "minimum {:.6f} ({} of {} pairs below); pass check_thresholds=False "
                "(--nocheck_thresholds) if the name means something else".format(
                    values.min(), int((values < bound - 1e-6).sum()), n))
  return HighInfluencePairs(tr_idx, tt_idx, infl, mem, thresholds, path)


def check_pairs_against_matrix(pairs, matrix, atol=1e-4):
  """Checks that a pairs file agrees with an influence-matrix file.

  Every pair's `mem` must equal `tr_mem[tr_idx]`; every same-class pair's
  `infl` must equal the matrix entry.

  Returns:
    The number of pairs whose influence could be checked (same class).

  Raises:
    PublishedFormatError: naming the first pair that disagrees.
  """
  expected_mem = matrix.memorization[pairs.train_index]
  bad = np.flatnonzero(np.abs(expected_mem - pairs.memorization) > atol)
  if len(bad):
    i = bad[0]
    _fail(pairs.path, "mem", "tr_mem[tr_idx] of {}".format(matrix.path),
          "{} of {} pairs differ (first: tr_idx {}: {:.4f} vs {:.4f})".format(
              len(bad), len(pairs.memorization), pairs.train_index[i],
              pairs.memorization[i], expected_mem[i]))
  checked = 0
  for i, (a, b) in enumerate(zip(pairs.train_index, pairs.test_index)):
    value = matrix.influence(int(a), int(b))
    if np.isnan(value):
      continue
    checked += 1
    if abs(value - pairs.influence[i]) > atol:
      _fail(pairs.path, "infl", "the influence matrix entry of {}".format(matrix.path),
            "pair (tr_idx {}, tt_idx {}): {:.4f} vs {:.4f}".format(
                a, b, pairs.influence[i], value))
  return checked


@dataclasses.dataclass(frozen=True)
class ImagenetIndex:
  """`imagenet_index.npz`: example id = position; labels 0..999."""
  train_filenames: np.ndarray
  train_labels: np.ndarray
  test_filenames: np.ndarray
  test_labels: np.ndarray
  path: str

  def train_lookup(self):
    """{basename: example id} of the training set."""
    return {name: i for i, name in enumerate(self.train_filenames)}


def read_imagenet_index(path, num_train=None, num_test=None, allow_pickle=False):
  """Reads `imagenet_index.npz` (`tr_filenames`, `tr_labels`, `tt_filenames`, `tt_labels`).

  Args:
    path: the file.
    num_train: expected training set size (1281167), or None.
    num_test: expected test set size (50000), or None.
    allow_pickle: allow object arrays of filenames (trusted files only).

  Raises:
    PublishedFormatError: for a missing key, lengths that disagree, labels
      outside 0..999, or a filename listed twice in a split.
  """
  path = str(path)
  arrays = _load_npz(path, allow_pickle)
  _require(path, arrays, IMAGENET_INDEX_KEYS)
  out = {}
  for split, n in (("tr", num_train), ("tt", num_test)):
    names = _vector(path, arrays, split + "_filenames", "str", n,
                    "the number of examples" if n else None)
    names = np.array([os.path.basename(x) for x in names], dtype=object)
    labels = _vector(path, arrays, split + "_labels", "int", len(names),
                     "len({}_filenames)".format(split))
    if len(labels) and (labels.min() < 0 or labels.max() > 999):
      _fail(path, split + "_labels", "labels in 0..999",
            "values in [{}, {}]".format(labels.min(), labels.max()))
    unique, counts = np.unique(names, return_counts=True)
    if (counts > 1).any():
      _fail(path, split + "_filenames", "each filename once",
            "{} repeated (first: {})".format(int((counts > 1).sum()),
                                             unique[counts > 1][0]))
    out[split] = (names, labels)
  return ImagenetIndex(out["tr"][0], out["tr"][1], out["tt"][0], out["tt"][1], path)


def align_by_filename(scores, index):
  """Gives ImageNet C-scores their example ids through `imagenet_index.npz`.

  Args:
    scores: `PublishedScores` with `filenames` (from `read_cscores`).
    index: `ImagenetIndex`.

  Returns:
    `PublishedScores` with `index` set (order "imagenet_index").

  Raises:
    PublishedFormatError: for filenames absent from the index, or labels that
      disagree with the index's (0..999; a uniform +1 offset, labels 1..1000,
      is accepted and removed).
  """
  if scores.filenames is None:
    raise errors.PublishedFormatError(
        "{}: key `filenames`: expected filenames to align by, found none".format(
            scores.path))
  lookup = index.train_lookup()
  ids = np.array([lookup.get(os.path.basename(f), -1) for f in scores.filenames],
                 dtype=np.int64)
  unknown = np.flatnonzero(ids < 0)
  if len(unknown):
    _fail(scores.path, "filenames", "training filenames listed in {}".format(index.path),
          "{} of {} not listed (first: {})".format(
              len(unknown), len(ids), scores.filenames[unknown[0]]))
  labels = scores.labels
  expected = index.train_labels[ids]
  if labels is not None and not np.array_equal(labels, expected):
    if np.array_equal(labels - 1, expected):
      labels = labels - 1
    else:
      wrong = np.flatnonzero(labels != expected)
      _fail(scores.path, "labels", "the labels of {} (0..999)".format(index.path),
            "{} of {} differ (first: {} has {} vs {})".format(
                len(wrong), len(labels), scores.filenames[wrong[0]], labels[wrong[0]],
                expected[wrong[0]]))
  return dataclasses.replace(scores, index=ids, labels=labels, order="imagenet_index")


def original_index_from_tfds_ids(ids):
  """Original CIFAR positions from TFDS `id` features ("train_01234" -> 1234).

  Args:
    ids: [n] str or bytes, the `id` feature in TFDS read order.

  Returns:
    [n] int64: element i is the original position of the example TFDS reads
    i-th, i.e. a map from our example ids (TFDS positions) to the ids of the
    published C-score files.

  Raises:
    ValueError: for an id not of the form `train_<n>` / `test_<n>`, or ids that
      are not a permutation.
  """
  out = np.empty(len(ids), dtype=np.int64)
  for i, value in enumerate(ids):
    if isinstance(value, bytes):
      value = value.decode("utf-8")
    value = str(value)
    match = _TFDS_ID_RE.match(value)
    if not match:
      raise ValueError("TFDS id {!r} (position {}) is not of the form train_<n>".format(
          value, i))
    out[i] = int(match.group(1))
  if not np.array_equal(np.sort(out), np.arange(len(out))):
    raise ValueError("TFDS ids do not cover 0..{} exactly once".format(len(out) - 1))
  return out


def read_published(path, kind="auto", num_train=None, allow_pickle=False,
                   imagenet_index=None, check_thresholds=True):
  """Reads any published per-example file as `PublishedScores`.

  Args:
    path: a C-score file, `cifar100_infl_matrix.npz`, or a high-influence pairs file.
    kind: "auto" (from the keys), "cscore" or "memorization".
    num_train: expected training set size, or None.
    allow_pickle: see `read_cscores`.
    imagenet_index: an `ImagenetIndex` to align ImageNet C-scores with.
    check_thresholds: see `read_high_influence_pairs`.

  Returns:
    `PublishedScores` with example ids (`index`) set.

  Raises:
    PublishedFormatError: when the keys fit no known file, or fit a file of
      another kind than `kind`, or ImageNet C-scores come without an index.
  """
  if kind not in ("auto", "cscore", "memorization"):
    raise ValueError("`kind` must be auto, cscore or memorization, got {!r}".format(kind))
  path = str(path)
  keys = _npz_keys(path)
  if set(CSCORE_KEYS) <= keys:
    found = "cscore"
  elif set(INFL_MATRIX_KEYS) <= keys or set(HIGH_INFL_PAIRS_KEYS) <= keys:
    found = "memorization"
  else:
    raise errors.PublishedFormatError(
        "{}: expected the keys of a C-score file {}, an influence matrix file {} or a "
        "high-influence pairs file {}, found {}".format(
            path, list(CSCORE_KEYS), list(INFL_MATRIX_KEYS) + ["infl_matrix_class<k>", "..."],
            list(HIGH_INFL_PAIRS_KEYS), sorted(keys)))
  if kind != "auto" and kind != found:
    raise errors.PublishedFormatError(
        "{}: asked for kind {}, but its keys ({}) are those of a {} file".format(
            path, kind, sorted(keys), found))
  if found == "cscore":
    scores = read_cscores(path, num_examples=num_train, allow_pickle=allow_pickle)
    if scores.index is None:
      if imagenet_index is None:
        raise errors.PublishedFormatError(
            "{}: C-scores identified by filename only; pass the imagenet_index.npz "
            "mapping (--imagenet_index) to give them example ids".format(path))
      scores = align_by_filename(scores, imagenet_index)
    return scores
  if set(INFL_MATRIX_KEYS) <= keys:
    return read_infl_matrix(path, num_train=num_train).memorization_scores()
  return read_high_influence_pairs(
      path, num_train=num_train, check_thresholds=check_thresholds).memorization_scores()
