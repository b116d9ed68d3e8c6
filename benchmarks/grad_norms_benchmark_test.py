"""Toy-size run of the gradient-norm benchmark: both ways agree, table prints."""

from absl.testing import absltest

from benchmarks import grad_norms_benchmark
from heldout import tolerance


class GradNormsBenchmarkTest(absltest.TestCase):

  def test_measure_and_table(self):
    result = grad_norms_benchmark.measure(
        "tiny MLP", "mlp", {"hidden_sizes": (8,)}, (4, 4, 1), batch_size=5,
        repeats=1)
    self.assertEqual(result.batch_size, 5)
    self.assertEqual(result.num_parameters, 16 * 8 + 8 + 8 * 10 + 10)
    self.assertGreater(result.loop_seconds, 0)
    self.assertGreater(result.vectorized_seconds, 0)
    # The vectorized norms are those of the loop (see el2n_grand_test).
    self.assertLess(result.max_relative_difference, tolerance.FORWARD)
    self.assertLess(result.pfor_max_relative_difference, tolerance.FORWARD)
    self.assertGreater(result.pfor_seconds, 0)
    self.assertGreater(result.batch_gradient_seconds, 0)
    table = grad_norms_benchmark.format_table([result])
    self.assertIn("tiny MLP", table)
    self.assertIn("faster than the per-example loop (target >= 10x)", table)


if __name__ == "__main__":
  absltest.main()
