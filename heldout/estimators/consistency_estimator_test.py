"""Tests for heldout.estimators.consistency_estimator."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.estimators import consistency_estimator
from heldout.estimators import testing


class ConsistencyTest(parameterized.TestCase):

  @parameterized.named_parameters(("half", 0, 0.5), ("most", 1, 0.9))
  def test_matches_loop(self, seed, ratio):
    mask, correct, _ = testing.random_runs(seed, num_runs=20, n_train=31,
                                           ratio=ratio)
    got = consistency_estimator.consistency(mask, correct, block_size=7)
    values, n_out = testing.consistency_loop(mask, correct)
    np.testing.assert_allclose(got.values, values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.n_out, n_out)
    # Example 0 is in every run: no held-out run, undefined, count 0.
    self.assertTrue(math.isnan(got.values[0]))
    self.assertEqual(got.n_out[0], 0)

  def test_hand_computed(self):
    mask = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1]], bool)
    correct = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0]], bool)
    got = consistency_estimator.consistency(mask, correct)
    # Example 0: held out of runs 1, 2 -> (1 + 0) / 2; example 1: runs 0, 1 ->
    # (1 + 0) / 2; example 2: in every run.
    np.testing.assert_allclose(got.values[:2], [0.5, 0.5])
    self.assertTrue(math.isnan(got.values[2]))
    np.testing.assert_array_equal(got.n_out, [2, 2, 0])


class CScoreTest(parameterized.TestCase):

  def test_hand_computed(self):
    by_ratio = {
        0.9: np.array([0.2, np.nan, np.nan, 0.5]),
        0.1: np.array([0.6, 0.3, np.nan, 0.5]),
        0.5: consistency_estimator.Consistency(values=np.array([0.4, 0.9, np.nan, 0.5]),
                                     n_out=np.array([1, 1, 0, 1])),
    }
    got = consistency_estimator.cscore(by_ratio)
    np.testing.assert_allclose(got.values[[0, 1, 3]], [0.4, 0.6, 0.5])
    self.assertTrue(math.isnan(got.values[2]))
    np.testing.assert_array_equal(got.n_ratios, [3, 2, 0, 3])
    np.testing.assert_array_equal(got.ratios, [0.1, 0.5, 0.9])

  def test_matches_loop_over_ratios(self):
    by_ratio = {}
    for seed, ratio in enumerate((0.2, 0.5, 0.8)):
      mask, correct, _ = testing.random_runs(seed, num_runs=6, n_train=15,
                                             ratio=ratio, always_in=(seed,),
                                             never_in=())
      by_ratio[ratio] = consistency_estimator.consistency(mask, correct)
    got = consistency_estimator.cscore(by_ratio)
    for i in range(15):
      defined = [c.values[i] for c in by_ratio.values()
                 if not math.isnan(c.values[i])]
      self.assertEqual(got.n_ratios[i], len(defined))
      if defined:
        self.assertAlmostEqual(got.values[i], sum(defined) / len(defined))
      else:
        self.assertTrue(math.isnan(got.values[i]))

  def test_rejects_bad_inputs(self):
    with self.assertRaisesRegex(ValueError, "`by_ratio` must hold at least one"):
      consistency_estimator.cscore({})
    with self.assertRaisesRegex(ValueError, "`by_ratio` must map each ratio"):
      consistency_estimator.cscore({0.1: np.zeros(3), 0.2: np.zeros(4)})


if __name__ == "__main__":
  absltest.main()
