"""Toy-size run of the training benchmark: each variant produces runs."""

import os

from absl.testing import absltest

from benchmarks import training_benchmark
from heldout.readers import aux_arrays
from heldout.readers import layout
from train import heldout_training
from train.configs import digits as digits_configs


class TrainingBenchmarkTest(absltest.TestCase):

  def test_variants_produce_the_same_runs(self):
    root = self.create_tempdir().full_path
    config = digits_configs.CONFIG.replace(
        epochs=5, arch_kwargs={"hidden_sizes": (16,)})
    results = training_benchmark.run_benchmark(
        num_runs=3, k=2, subset_ratio=0.5, config=config, output_root=root)
    self.assertCountEqual(results, ["a", "b", "c"])
    subsets = {}
    for variant, result in results.items():
      self.assertEqual(result.num_runs, 3)
      self.assertGreater(result.seconds, 0)
      self.assertGreater(result.mean_test_accuracy, 0.5)
      for run_id in range(3):
        run_dir = layout.run_dir(os.path.join(root, variant), 0.5, run_id)
        self.assertTrue(heldout_training.is_complete_run(run_dir), run_dir)
        aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run_dir),
                                         num_train=1257, num_test=540)
        subsets.setdefault(run_id, []).append(aux.subsample_idx.tolist())
    for run_id, found in subsets.items():
      self.assertEqual(found[0], found[1])
      self.assertEqual(found[0], found[2])
    # The same runs at the same hyperparameters: same accuracy to a point.
    accs = [r.mean_test_accuracy for r in results.values()]
    self.assertLess(max(accs) - min(accs), 0.01)
    table = training_benchmark.format_table(results, 100.0, 2, config)
    self.assertIn("(c) vs (a)", table)
    self.assertIn("(c) vs (b)", table)
    self.assertEqual(
        training_benchmark.flops_per_run(config, _digits(), 0.5),
        3 * 2 * (64 * 16 + 16 * 10) * 5 * 628 + 2 * (64 * 16 + 16 * 10) * 1797)


def _digits():
  from heldout.data import digits  # pylint: disable=g-import-not-at-top
  return digits.load_digits()


if __name__ == "__main__":
  absltest.main()
