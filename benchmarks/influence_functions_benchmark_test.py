"""Toy-size run of the influence-functions benchmark: stages timed, table prints."""

from absl.testing import absltest
import numpy as np

from benchmarks import influence_functions_benchmark as benchmark


class InfluenceFunctionsBenchmarkTest(absltest.TestCase):

  def test_digits_and_table(self):
    times, agreements, exact_seconds, num_params = benchmark.run_digits(
        num_queries=4, num_train=20, batch_size=256, hidden=(4,))
    self.assertEqual(num_params, 4 * 65 + 10 * 5)
    self.assertEqual([t.strategy for t in times],
                     ["identity", "diagonal", "kfac", "ekfac"])
    ekfac = times[-1]
    self.assertEqual(sorted(ekfac.seconds), sorted(benchmark.STAGES))
    self.assertTrue(all(s > 0 for s in ekfac.seconds.values()))
    self.assertGreater(exact_seconds, 0)
    by_strategy = {a.strategy: a for a in agreements}
    # The Kronecker strategies approximate the exact inverse far better than
    # no preconditioner at all (measured here: Pearson ~0.9 against ~0.5).
    self.assertGreater(by_strategy["ekfac"].pearson, 0.5)
    for a in agreements:
      self.assertTrue(np.isfinite(a.spearman))
      self.assertBetween(a.top_k_overlap, 0.0, 1.0)
    table = benchmark.format_table(times, agreements, exact_seconds,
                                   num_params, 4, 20)
    self.assertIn("digits MLP EKFAC factors + 4x20 pairwise", table)
    self.assertIn("against the exact damped true-Fisher inverse", table)

  def test_agreement_of_identical_scores(self):
    values = np.random.default_rng(0).normal(size=(3, 30))
    result = benchmark.agreement("x", values, values)
    self.assertAlmostEqual(result.spearman, 1.0)
    self.assertAlmostEqual(result.top_k_overlap, 1.0)


if __name__ == "__main__":
  absltest.main()
