"""Corrupted labels, for checking that a score finds mislabeled examples.

The protocol of the field (Kronfluence's and Data Diet's experiments, the
mislabeled-detection evaluation): the first `fraction` of the example ids get
a random *different* class, drawn from `seed`.
"""

import numpy as np

from heldout.data import dataset as dataset_lib


def corrupt_labels(split, fraction, num_classes, seed=0):
  """A copy of `split` whose first `fraction` of ids have another label.

  Args:
    split: a `SplitData`.
    fraction: in [0, 1]; floor(fraction * n) ids are corrupted.
    num_classes: the number of classes (>= 2).
    seed: the seed of the new classes.

  Returns:
    (`SplitData` with the same images and index and the new labels,
     corrupted ids [m] int64, ascending).

  Raises:
    ValueError: for a fraction outside [0, 1] or fewer than 2 classes.
  """
  if not 0.0 <= fraction <= 1.0:
    raise ValueError("`fraction` must be in [0, 1], got {}".format(fraction))
  if num_classes < 2:
    raise ValueError("`num_classes` must be at least 2, got {}".format(
        num_classes))
  corrupted = np.arange(int(fraction * len(split)), dtype=np.int64)
  labels = np.array(split.labels, copy=True)
  positions = split.positions_of(corrupted)
  shift = np.random.default_rng(seed).integers(1, num_classes, len(positions))
  labels[positions] = (labels[positions] + shift) % num_classes
  return (dataset_lib.SplitData(images=split.images, labels=labels,
                                index=split.index), corrupted)


def corrupt_random_labels(split, fraction, num_classes, seed=0):
  """As `corrupt_labels`, but a uniformly random set of ids (from `seed`).

  Returns:
    (`SplitData` with the new labels, corrupted ids [m] int64, ascending).
  """
  if not 0.0 <= fraction <= 1.0:
    raise ValueError("`fraction` must be in [0, 1], got {}".format(fraction))
  if num_classes < 2:
    raise ValueError("`num_classes` must be at least 2, got {}".format(
        num_classes))
  rng = np.random.default_rng([seed, 0xC0AA])
  ids = np.sort(np.asarray(split.index, np.int64))
  corrupted = np.sort(rng.choice(ids, int(fraction * len(ids)),
                                 replace=False))
  labels = np.array(split.labels, copy=True)
  positions = split.positions_of(corrupted)
  shift = rng.integers(1, num_classes, len(positions))
  labels[positions] = (labels[positions] + shift) % num_classes
  return (dataset_lib.SplitData(images=split.images, labels=labels,
                                index=split.index), corrupted)
