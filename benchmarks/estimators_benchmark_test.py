"""Toy-size check that the benchmark's variants compute the same estimates.

Not the benchmark (speed is measured by `bazel run
//benchmarks:estimators_benchmark`): only its core functions, at toy size,
against each other and against slow loops over the definitions.
"""

from absl.testing import absltest
import numpy as np

from benchmarks import estimators_benchmark
from heldout.estimators import influence_estimator
from heldout.estimators import testing


class EstimatorsBenchmarkTest(absltest.TestCase):

  def test_synthetic_runs(self):
    mask, correct_train, correct_test = estimators_benchmark.make_synthetic(
        50, 200, 30, ratio=0.7, seed=1, runs_per_chunk=7)
    self.assertEqual(mask.shape, (50, 200))
    self.assertEqual(correct_train.shape, (50, 200))
    self.assertEqual(correct_test.shape, (50, 30))
    self.assertEqual(mask.dtype, bool)
    # Exactly int(0.7 * 200) examples per run.
    np.testing.assert_array_equal(mask.sum(1), 140)
    # Correctness is correlated with the subsets: memorization is positive
    # on average.
    values, _, _, _ = testing.memorization_loop(mask, correct_train)
    self.assertGreater(np.nanmean(values), 0.0)

  def test_variants_agree(self):
    mask, correct_train, correct_test = estimators_benchmark.make_synthetic(
        40, 120, 25, seed=2)
    top_k = 6
    memorization, influence = estimators_benchmark.upstream_estimates(
        mask, correct_train, correct_test)
    self.assertEqual(influence.shape, (25, 120))
    upstream_values, upstream_indices = estimators_benchmark.topk_of_dense(
        influence, top_k, rows_per_chunk=4)
    ours_memorization, ours_topk, seconds = estimators_benchmark.ours_estimates(
        mask, correct_train, correct_test, top_k, memory_budget_bytes=20000)
    self.assertGreater(seconds, 0.0)
    # Both against the definitions.
    want_memorization, _, _, _ = testing.memorization_loop(mask, correct_train)
    want_influence = testing.influence_loop(mask, correct_test)
    np.testing.assert_allclose(memorization, want_memorization, atol=1e-6)
    np.testing.assert_allclose(influence, want_influence, atol=1e-6)
    np.testing.assert_allclose(ours_memorization.values, want_memorization,
                               atol=1e-12)
    # The benchmark's top-k of the dense matrix ranks as ours does.
    want_values, want_indices = influence_estimator.topk_from_dense(
        influence, top_k)
    np.testing.assert_array_equal(upstream_indices, want_indices)
    np.testing.assert_array_equal(upstream_values, want_values)
    # Same values to the bit (float32 quotients of exact integer sums).
    np.testing.assert_array_equal(ours_topk.values, upstream_values)
    np.testing.assert_array_equal(ours_topk.indices, upstream_indices)
    diffs = estimators_benchmark.compare(
        dict(memorization=memorization, topk_values=upstream_values,
             topk_indices=upstream_indices),
        dict(memorization=ours_memorization.values,
             topk_values=ours_topk.values, topk_indices=ours_topk.indices))
    self.assertLess(diffs["memorization_max_abs_diff"], 1e-6)
    self.assertEqual(diffs["topk_values_max_abs_diff"], 0.0)
    self.assertEqual(diffs["topk_indices_agree"], 1.0)
    self.assertEqual(diffs["nan_mismatches"], 0)

  def test_executed_matmul_flops(self):
    # 600 runs: 3 chunks of 255 (765 runs) or of 256 (768); 10 test rows
    # packed in 4.
    flops = estimators_benchmark.executed_matmul_flops
    self.assertEqual(flops("float32", 600, 7, 10), 2 * 600 * 10 * 7)
    self.assertEqual(flops("packed_float32", 600, 7, 10), 2 * 765 * 4 * 7)
    self.assertEqual(flops("bfloat16", 600, 7, 10), 2 * 768 * 10 * 7)

  def test_compare_reports_differences(self):
    a = dict(memorization=np.array([0.1, 0.2]),
             topk_values=np.array([[0.5, np.nan]]),
             topk_indices=np.array([[3, 4]]))
    b = dict(memorization=np.array([0.1, 0.5]),
             topk_values=np.array([[0.25, 0.0]]),
             topk_indices=np.array([[3, 5]]))
    diffs = estimators_benchmark.compare(a, b)
    self.assertAlmostEqual(diffs["memorization_max_abs_diff"], 0.3)
    self.assertAlmostEqual(diffs["topk_values_max_abs_diff"], 0.25)
    self.assertEqual(diffs["topk_indices_agree"], 0.5)
    self.assertEqual(diffs["nan_mismatches"], 1)


if __name__ == "__main__":
  absltest.main()
