"""Tests for heldout.data.digits: the fixed split is real, stratified, stable."""

from absl.testing import absltest
import numpy as np
from sklearn import datasets

from heldout.data import digits


class DigitsTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.raw = datasets.load_digits()
    cls.ds = digits.load_digits()

  def test_sizes_shapes_and_scale(self):
    self.assertEqual(self.ds.num_classes, 10)
    self.assertLen(self.ds.train, 1257)
    self.assertLen(self.ds.test, 540)
    self.assertEqual(self.ds.train.images.shape, (1257, 8, 8, 1))
    self.assertEqual(self.ds.train.images.dtype, np.float32)
    self.assertEqual(self.ds.test.images.min(), 0.0)
    self.assertEqual(self.ds.test.images.max(), 1.0)
    np.testing.assert_array_equal(self.ds.train.index, np.arange(1257))
    np.testing.assert_array_equal(self.ds.test.index, np.arange(540))

  def test_rows_partition_and_match_load_digits(self):
    train_rows, test_rows = digits.split_rows()
    self.assertEmpty(np.intersect1d(train_rows, test_rows))
    np.testing.assert_array_equal(
        np.sort(np.concatenate([train_rows, test_rows])), np.arange(1797))
    self.assertTrue((np.diff(train_rows) > 0).all())
    for name, rows in (("train", train_rows), ("test", test_rows)):
      split = self.ds.split(name)
      np.testing.assert_array_equal(split.labels, self.raw.target[rows])
      np.testing.assert_array_equal(split.images[..., 0] * 16,
                                    self.raw.images[rows])

  def test_stratified(self):
    # Each class's test share is within one example of 540 * n_c / 1797.
    counts = np.bincount(self.raw.target, minlength=10)
    test_counts = np.bincount(self.ds.test.labels, minlength=10)
    self.assertTrue((np.abs(test_counts - 540 * counts / 1797) < 1).all())

  def test_split_is_deterministic_and_follows_the_documented_recipe(self):
    # Recomputed here from the documented recipe with a slow loop.
    labels = self.raw.target
    test = []
    counts = np.bincount(labels, minlength=10)
    quotas = 540 * counts / 1797
    shares = np.floor(quotas).astype(int)
    left = 540 - shares.sum()
    for c in sorted(range(10), key=lambda c: (-(quotas[c] - shares[c]), c)):
      if left:
        shares[c] += 1
        left -= 1
    for c in range(10):
      rows = [i for i in range(1797) if labels[i] == c]
      perm = np.random.RandomState(c).permutation(len(rows))
      test.extend(rows[p] for p in perm[:shares[c]])
    np.testing.assert_array_equal(digits.split_rows()[1], sorted(test))
    again = digits.load_digits()
    np.testing.assert_array_equal(again.train.images, self.ds.train.images)


if __name__ == "__main__":
  absltest.main()
