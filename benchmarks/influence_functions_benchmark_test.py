"""Toy-size run of the influence-functions benchmark: stages timed, table prints."""

from absl.testing import absltest
import numpy as np

from benchmarks import influence_functions_benchmark as benchmark
from heldout import tolerance


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

  def test_pairwise_memory_table(self):
    # In this process (the benchmark spawns one per run), a tiny MLP.
    runs = [benchmark.pairwise_memory("mlp", 12, 5, size, batch_size=4)
            for size in (5, 2)]
    self.assertEqual([r["chunks"] for r in runs], [1, 3])
    self.assertEqual(runs[0]["values"].shape, (5, 12))
    tolerance.assert_close(runs[1]["values"], runs[0]["values"],
                           tolerance.ELEMENTWISE * 4)
    self.assertTrue(all(r["peak_mb"] >= r["rss_before_mb"] > 0
                        for r in runs))
    table = benchmark.format_memory_table(runs, 5, 12)
    self.assertIn("5 queries x 12 train", table)
    self.assertIn("peak ratio", table)

  def test_agreement_of_identical_scores(self):
    values = np.random.default_rng(0).normal(size=(3, 30))
    result = benchmark.agreement("x", values, values)
    self.assertAlmostEqual(result.spearman, 1.0)
    self.assertAlmostEqual(result.top_k_overlap, 1.0)


if __name__ == "__main__":
  absltest.main()
