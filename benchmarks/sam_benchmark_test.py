"""Toy-size run of the SAM benchmark: both steps timed, the table prints."""

from absl.testing import absltest

from benchmarks import sam_benchmark


class SamBenchmarkTest(absltest.TestCase):

  def test_measure_and_table(self):
    result = sam_benchmark.measure(
        "tiny MLP", "mlp", {"hidden_sizes": (8,)}, (4, 4, 1), batch_size=5,
        steps=3, repeats=1)
    self.assertEqual(result.num_parameters, 16 * 8 + 8 + 8 * 10 + 10)
    self.assertGreater(result.sgd_seconds, 0)
    self.assertGreater(result.sam_seconds, 0)
    self.assertGreater(result.sam_cpu_seconds, 0)
    self.assertAlmostEqual(result.ratio,
                           result.sam_seconds / result.sgd_seconds)
    table = sam_benchmark.format_table([result])
    self.assertIn("tiny MLP", table)
    self.assertIn("target <= 2.2x", table)


if __name__ == "__main__":
  absltest.main()
