"""Tests for heldout.estimators.consistency_estimator."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.estimators import consistency_estimator
from heldout.estimators import testing


def _consistency(values, se):
  values = np.asarray(values, np.float64)
  n = np.where(np.isnan(values), 0, 1)
  return consistency_estimator.Consistency(values=values,
                                           se=np.asarray(se, np.float64),
                                           n_in=n, n_out=n)


class ConsistencyTest(parameterized.TestCase):

  @parameterized.named_parameters(("half", 0, 0.5), ("most", 1, 0.9))
  def test_matches_loop(self, seed, ratio):
    mask, correct, _ = testing.random_runs(seed, num_runs=20, n_train=31,
                                           ratio=ratio)
    got = consistency_estimator.consistency(mask, correct, block_size=7)
    values, se, n_in, n_out = testing.consistency_loop(mask, correct)
    np.testing.assert_allclose(got.values, values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.se, se, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(got.n_in, n_in)
    np.testing.assert_array_equal(got.n_out, n_out)
    np.testing.assert_array_equal(got.n_in + got.n_out, 20)
    # Example 0 is in every run: no held-out run, undefined, count 0.
    self.assertTrue(math.isnan(got.values[0]))
    self.assertTrue(math.isnan(got.se[0]))
    self.assertEqual((got.n_in[0], got.n_out[0]), (20, 0))
    # Example 1 is in no run: defined, with a positive SE.
    self.assertEqual((got.n_in[1], got.n_out[1]), (0, 20))
    self.assertGreater(got.se[1], 0.0)
    np.testing.assert_array_equal(np.isnan(got.se), np.isnan(got.values))

  def test_hand_computed(self):
    mask = np.array([[1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 1, 0]], bool)
    correct = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 0, 1]], bool)
    got = consistency_estimator.consistency(mask, correct)
    # Example 0: held out of runs 1, 2 -> (1 + 0) / 2; example 1: runs 0, 1 ->
    # (1 + 0) / 2; example 2: in every run; example 3: out of all, always
    # right.
    np.testing.assert_allclose(got.values[[0, 1, 3]], [0.5, 0.5, 1.0])
    self.assertTrue(math.isnan(got.values[2]))
    np.testing.assert_array_equal(got.n_out, [2, 2, 0, 3])
    np.testing.assert_array_equal(got.n_in, [1, 1, 3, 0])
    # Agresti-Caffo: p = (k + 1) / (n + 2), se = sqrt(p (1 - p) / (n + 2)).
    # Examples 0, 1: p = 2/4. Example 3: p = 4/5, not 0 though all agree.
    np.testing.assert_allclose(got.se[[0, 1]], [0.25, 0.25])
    np.testing.assert_allclose(got.se[3], math.sqrt(0.8 * 0.2 / 5))
    self.assertTrue(math.isnan(got.se[2]))

  def test_undefined_consistency(self):
    got = consistency_estimator.undefined_consistency(4)
    self.assertTrue(np.isnan(got.values).all())
    self.assertTrue(np.isnan(got.se).all())
    np.testing.assert_array_equal(got.n_in, [0, 0, 0, 0])
    np.testing.assert_array_equal(got.n_out, [0, 0, 0, 0])


class CScoreTest(parameterized.TestCase):

  def test_hand_computed(self):
    by_ratio = {
        0.9: _consistency([0.2, np.nan, np.nan, 0.5],
                          [0.1, np.nan, np.nan, 0.3]),
        0.1: _consistency([0.6, 0.3, np.nan, 0.5], [0.2, 0.3, np.nan, 0.0]),
        0.5: _consistency([0.4, 0.9, np.nan, 0.5], [0.2, 0.4, np.nan, 0.4]),
    }
    got = consistency_estimator.cscore(by_ratio)
    np.testing.assert_allclose(got.values[[0, 1, 3]], [0.4, 0.6, 0.5])
    self.assertTrue(math.isnan(got.values[2]))
    np.testing.assert_array_equal(got.n_ratios, [3, 2, 0, 3])
    np.testing.assert_array_equal(got.ratios, [0.1, 0.5, 0.9])
    # se = sqrt(sum of se_q^2) / n_ratios over the ratios that contribute:
    # sqrt(.01 + .04 + .04) / 3, sqrt(.09 + .16) / 2, none, sqrt(.09 + .16) / 3.
    np.testing.assert_allclose(got.se[[0, 1, 3]], [0.1, 0.25, 0.5 / 3])
    self.assertTrue(math.isnan(got.se[2]))

  def test_plain_arrays_have_no_se(self):
    by_ratio = {
        0.1: np.array([0.6, np.nan, 0.2]),
        0.5: _consistency([0.4, 0.9, np.nan], [0.2, 0.4, np.nan]),
    }
    got = consistency_estimator.cscore(by_ratio)
    np.testing.assert_allclose(got.values, [0.5, 0.9, 0.2])
    # Example 1 only has the ratio with an SE; the others use the plain one.
    np.testing.assert_allclose(got.se[1], 0.4)
    self.assertTrue(np.isnan(got.se[[0, 2]]).all())

  def test_matches_loop_over_ratios(self):
    by_ratio = {}
    loops = []
    for seed, ratio in enumerate((0.2, 0.5, 0.8)):
      mask, correct, _ = testing.random_runs(seed, num_runs=6, n_train=15,
                                             ratio=ratio, always_in=(seed,),
                                             never_in=())
      by_ratio[ratio] = consistency_estimator.consistency(mask, correct)
      loops.append(testing.consistency_loop(mask, correct)[:2])
    # Example 3 is in every run of every ratio: undefined everywhere.
    mask, correct, _ = testing.random_runs(9, num_runs=4, n_train=15,
                                           always_in=(0, 1, 2, 3), never_in=())
    by_ratio[0.9] = consistency_estimator.consistency(mask, correct)
    loops.append(testing.consistency_loop(mask, correct)[:2])
    got = consistency_estimator.cscore(by_ratio)
    values, se, n_ratios = testing.cscore_loop(loops)
    np.testing.assert_allclose(got.values, values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.se, se, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got.n_ratios, n_ratios)
    # Examples 0..3 are undefined at some ratio: fewer than 4 contribute.
    self.assertTrue((got.n_ratios[:4] < 4).all())

  def test_all_undefined(self):
    got = consistency_estimator.cscore(
        {0.3: consistency_estimator.undefined_consistency(3)})
    self.assertTrue(np.isnan(got.values).all())
    self.assertTrue(np.isnan(got.se).all())
    np.testing.assert_array_equal(got.n_ratios, [0, 0, 0])

  def test_rejects_bad_inputs(self):
    with self.assertRaisesRegex(ValueError, "`by_ratio` must hold at least one"):
      consistency_estimator.cscore({})
    with self.assertRaisesRegex(ValueError, "`by_ratio` must map each ratio"):
      consistency_estimator.cscore({0.1: np.zeros(3), 0.2: np.zeros(4)})
    with self.assertRaisesRegex(ValueError, "`se` of the shape"):
      consistency_estimator.cscore({0.1: consistency_estimator.Consistency(
          values=np.zeros(3), se=np.zeros(2), n_in=np.zeros(3, np.int64),
          n_out=np.ones(3, np.int64))})


if __name__ == "__main__":
  absltest.main()
