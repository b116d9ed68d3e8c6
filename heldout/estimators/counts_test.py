"""Tests for heldout.estimators.counts."""

from absl.testing import absltest
import numpy as np

from heldout.estimators import counts
from heldout.estimators import testing


class SplitCountsTest(absltest.TestCase):

  def test_matches_loop(self):
    mask, correct, _ = testing.random_runs(0, num_runs=11, n_train=20)
    n_in, k_in, n_out, k_out = counts.split_counts(mask, correct, block_size=3)
    for i in range(20):
      self.assertEqual(n_in[i], sum(mask[:, i]))
      self.assertEqual(k_in[i], sum(mask[:, i] & correct[:, i]))
      self.assertEqual(n_out[i], sum(~mask[:, i]))
      self.assertEqual(k_out[i], sum(~mask[:, i] & correct[:, i]))


class AdjustedVarianceOfMeanTest(absltest.TestCase):

  def test_hand_computed(self):
    # p = (k + 1) / (n + 2): 1/2, 4/5, 1/5, 1/2 (no trials).
    got = counts.adjusted_variance_of_mean(np.array([1, 3, 0, 0]),
                                           np.array([2, 3, 3, 0]))
    self.assertEqual(got.dtype, np.float64)
    np.testing.assert_allclose(
        got, [0.25 / 4, 0.16 / 5, 0.16 / 5, 0.25 / 2], rtol=1e-15)
    self.assertTrue((got > 0).all())

  def test_broadcasts_and_dtype(self):
    k = np.array([[0, 1, 2], [2, 1, 0]])
    n = np.array([2, 3, 4])
    got = counts.adjusted_variance_of_mean(k, n, np.float32)
    self.assertEqual(got.dtype, np.float32)
    self.assertEqual(got.shape, (2, 3))
    for (row, col), value in np.ndenumerate(got):
      p = (k[row, col] + 1) / (n[col] + 2)
      self.assertAlmostEqual(float(value), p * (1 - p) / (n[col] + 2),
                             places=7)
    # k of one row against per-entry counts: the same.
    np.testing.assert_array_equal(
        counts.adjusted_variance_of_mean(k[0], np.broadcast_to(n, (2, 3))),
        np.broadcast_to(counts.adjusted_variance_of_mean(k[0], n), (2, 3)))


if __name__ == "__main__":
  absltest.main()
