"""Tests for heldout.estimators.memorization_estimator."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.estimators import memorization_estimator
from heldout.estimators import testing


class MemorizationTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("few_runs", 0, 5, 0.5),
      ("many_runs", 1, 40, 0.7),
      ("sparse_subsets", 2, 25, 0.1),
  )
  def test_matches_loop(self, seed, num_runs, ratio):
    mask, correct, _ = testing.random_runs(seed, num_runs=num_runs, n_train=23,
                                           ratio=ratio, always_in=(0, 5),
                                           never_in=(1,))
    got = memorization_estimator.memorization(mask, correct)
    values, se, n_in, n_out = testing.memorization_loop(mask, correct)
    np.testing.assert_allclose(got.values, values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.se, se, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got.n_in, n_in)
    np.testing.assert_array_equal(got.n_out, n_out)
    # Examples in every run or in none: NaN with the counts, never 0.
    for i in (0, 5):
      self.assertTrue(math.isnan(got.values[i]))
      self.assertEqual((got.n_in[i], got.n_out[i]), (num_runs, 0))
    self.assertTrue(math.isnan(got.values[1]))
    self.assertEqual((got.n_in[1], got.n_out[1]), (0, num_runs))

  def test_hand_computed(self):
    # Example 0: in runs 0, 1, 2 (correct 1, 1, 0), out of run 3 (correct 0).
    # Example 1: in runs 0, 1 (1, 0), out of runs 2, 3 (0, 0).
    mask = np.array([[1, 1], [1, 1], [1, 0], [0, 0]], bool)
    correct = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], bool)
    got = memorization_estimator.memorization(mask, correct)
    np.testing.assert_allclose(got.values, [2 / 3, 0.5])
    np.testing.assert_array_equal(got.n_in, [3, 2])
    np.testing.assert_array_equal(got.n_out, [1, 2])
    # Agresti-Caffo, p = (k + 1) / (n + 2), se^2 = sum of p (1 - p) / (n + 2).
    # Example 0: p_in = 3/5, p_out = 1/3.
    np.testing.assert_allclose(
        got.se[0], math.sqrt(0.6 * 0.4 / 5 + (1 / 3) * (2 / 3) / 3))
    # Example 1: p_in = 2/4, p_out = 1/4.
    np.testing.assert_allclose(
        got.se[1], math.sqrt(0.5 * 0.5 / 4 + 0.25 * 0.75 / 4))

  def test_se_does_not_collapse_when_runs_agree(self):
    # Always right when trained on, always wrong when held out: the plain
    # sample-variance formula would give se = 0 after any number of runs.
    mask = np.array([[1], [1], [1], [0], [0]], bool)
    correct = mask.copy()
    got = memorization_estimator.memorization(mask, correct)
    self.assertEqual(got.values[0], 1.0)
    np.testing.assert_allclose(
        got.se[0], math.sqrt(0.8 * 0.2 / 5 + 0.25 * 0.75 / 4))
    self.assertGreater(got.se[0], 0.2)

  @parameterized.named_parameters(("one", 1), ("three", 3), ("large", 1000))
  def test_block_size_invariance(self, block_size):
    mask, correct, _ = testing.random_runs(3, num_runs=30, n_train=50)
    want = memorization_estimator.memorization(mask, correct)
    got = memorization_estimator.memorization(mask, correct, block_size=block_size)
    for field in ("values", "se", "n_in", "n_out"):
      np.testing.assert_array_equal(getattr(got, field), getattr(want, field))

  def test_accepts_zero_one_integers(self):
    mask, correct, _ = testing.random_runs(4)
    want = memorization_estimator.memorization(mask, correct)
    got = memorization_estimator.memorization(mask.astype(np.uint8),
                                    correct.astype(np.int64))
    np.testing.assert_array_equal(got.values, want.values)

  def test_rejects_bad_inputs(self):
    mask = np.zeros((3, 4), bool)
    with self.assertRaisesRegex(ValueError, "`correct_train` must have 3 runs"):
      memorization_estimator.memorization(mask, np.zeros((2, 4), bool))
    with self.assertRaisesRegex(ValueError, "`correct_train` must have 4 examples"):
      memorization_estimator.memorization(mask, np.zeros((3, 5), bool))
    with self.assertRaisesRegex(ValueError, "`mask` must be a \\[runs, examples\\]"):
      memorization_estimator.memorization(np.zeros(4, bool), np.zeros(4, bool))
    with self.assertRaisesRegex(ValueError, "`correct_train` must hold only 0 and 1"):
      memorization_estimator.memorization(mask, np.full((3, 4), 2))
    with self.assertRaisesRegex(ValueError, "`correct_train` must be bool"):
      memorization_estimator.memorization(mask, np.zeros((3, 4), np.float32))
    with self.assertRaisesRegex(ValueError, "`block_size` must be positive"):
      memorization_estimator.memorization(mask, mask, block_size=0)


if __name__ == "__main__":
  absltest.main()
