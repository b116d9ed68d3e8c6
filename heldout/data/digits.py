"""scikit-learn's bundled digits (1,797 real 8x8 handwritten digits), split.

`sklearn.datasets.load_digits()` ships in the scikit-learn wheel, so this is a
real dataset that needs no download: the default for tests, demos and quick
local heldout runs.

The split is fixed and documented so that example ids mean the same thing
everywhere:
  * `NUM_TEST` = 540 test examples, stratified: class c gets its share
    540 * n_c / 1797, rounded by largest remainder (ties to the lower class)
    so the shares sum to exactly 540;
  * within class c, the test rows are the first share of
    `np.random.RandomState(SPLIT_SEED + c).permutation(rows of class c)`
    (legacy `RandomState`, whose streams NumPy keeps fixed across versions);
  * every other row is a training example: 1,257 train / 540 test;
  * both splits keep the rows in ascending `load_digits()` order, and an
    example's id (`index`) is its position in its split. `split_rows()`
    returns the `load_digits()` row of each id.
Images are float32 [N, 8, 8, 1], pixel / 16 (the raw pixels are 0..16).
"""

import numpy as np

from heldout.data import dataset as dataset_lib

NAME = "digits"
NUM_CLASSES = 10
NUM_TEST = 540
SPLIT_SEED = 0
DATA_SCALE = 16.0


def _load_raw():
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  raw = datasets.load_digits()
  return raw.images, raw.target


def split_rows(labels=None):
  """The `load_digits()` rows of the train and test splits, in id order.

  Args:
    labels: [1797] labels of `load_digits()`; loaded if None.

  Returns:
    (train_rows [1257] int64, test_rows [540] int64), each ascending: the
    example with id i of split s is row `s_rows[i]` of `load_digits()`.
  """
  if labels is None:
    _, labels = _load_raw()
  labels = np.asarray(labels)
  n = len(labels)
  counts = np.bincount(labels, minlength=NUM_CLASSES)
  quotas = NUM_TEST * counts / n
  shares = np.floor(quotas).astype(np.int64)
  remainder = NUM_TEST - shares.sum()
  # Largest remainder first; a stable sort breaks ties by the lower class.
  order = np.argsort(-(quotas - shares), kind="stable")
  shares[order[:remainder]] += 1
  test = []
  for c in range(NUM_CLASSES):
    rows = np.flatnonzero(labels == c)
    perm = np.random.RandomState(SPLIT_SEED + c).permutation(len(rows))
    test.append(rows[perm[:shares[c]]])
  test_rows = np.sort(np.concatenate(test)).astype(np.int64)
  is_test = np.zeros(n, dtype=bool)
  is_test[test_rows] = True
  train_rows = np.flatnonzero(~is_test).astype(np.int64)
  return train_rows, test_rows


def load_digits() -> dataset_lib.Dataset:
  """Loads the digits with the fixed split of the module docstring.

  Returns:
    `Dataset` named "digits": 10 classes, "train" (1,257) and "test" (540),
    float32 images [N, 8, 8, 1] in [0, 1], ids = positions in each split.
  """
  images, labels = _load_raw()
  train_rows, test_rows = split_rows(labels)
  splits = {
      name: dataset_lib.split_from_arrays(images[rows], labels[rows],
                                          scale=DATA_SCALE)
      for name, rows in (("train", train_rows), ("test", test_rows))
  }
  return dataset_lib.Dataset(name=NAME, num_classes=NUM_CLASSES, splits=splits)
