"""Tests for heldout.data.label_noise."""

from absl.testing import absltest
import numpy as np

from heldout.data import dataset as dataset_lib
from heldout.data import label_noise


def _split(n=50, num_classes=4):
  rng = np.random.default_rng(1)
  return dataset_lib.SplitData(
      images=np.zeros((n, 2, 2, 1), np.float32),
      labels=rng.integers(0, num_classes, n).astype(np.int64),
      index=rng.permutation(n).astype(np.int64))


class CorruptLabelsTest(absltest.TestCase):

  def test_first_ids_get_another_class(self):
    split = _split()
    noisy, corrupted = label_noise.corrupt_labels(split, 0.2, 4, seed=3)
    np.testing.assert_array_equal(corrupted, np.arange(10))
    np.testing.assert_array_equal(noisy.index, split.index)
    by_id = np.empty(50, np.int64)
    by_id[split.index] = split.labels
    noisy_by_id = np.empty(50, np.int64)
    noisy_by_id[noisy.index] = noisy.labels
    self.assertTrue((noisy_by_id[:10] != by_id[:10]).all())
    np.testing.assert_array_equal(noisy_by_id[10:], by_id[10:])
    self.assertTrue(((noisy_by_id >= 0) & (noisy_by_id < 4)).all())
    # The input is not changed, and the seed fixes the new classes.
    again, _ = label_noise.corrupt_labels(split, 0.2, 4, seed=3)
    np.testing.assert_array_equal(again.labels, noisy.labels)
    np.testing.assert_array_equal(split.labels[split.positions_of(
        np.arange(10))], by_id[:10])

  def test_random_ids_get_another_class(self):
    split = _split()
    noisy, corrupted = label_noise.corrupt_random_labels(split, 0.2, 4, seed=3)
    self.assertLen(corrupted, 10)
    self.assertLen(np.unique(corrupted), 10)
    self.assertFalse(np.array_equal(corrupted, np.arange(10)))
    by_id = np.empty(50, np.int64)
    by_id[split.index] = split.labels
    noisy_by_id = np.empty(50, np.int64)
    noisy_by_id[noisy.index] = noisy.labels
    changed = np.flatnonzero(noisy_by_id != by_id)
    np.testing.assert_array_equal(changed, corrupted)
    again, same = label_noise.corrupt_random_labels(split, 0.2, 4, seed=3)
    np.testing.assert_array_equal(same, corrupted)
    np.testing.assert_array_equal(again.labels, noisy.labels)
    _, other = label_noise.corrupt_random_labels(split, 0.2, 4, seed=4)
    self.assertFalse(np.array_equal(other, corrupted))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "`fraction`"):
      label_noise.corrupt_labels(_split(), 1.5, 4)
    with self.assertRaisesRegex(ValueError, "`num_classes`"):
      label_noise.corrupt_labels(_split(), 0.1, 1)


if __name__ == "__main__":
  absltest.main()
