"""Tests for heldout.readers.experiment."""

import os

from absl.testing import absltest
import numpy as np

from heldout import errors
from heldout.readers import aux_arrays
from heldout.readers import experiment
from heldout.readers import layout


def write_run(exp, ratio, run_id, n_train=10, n_test=4, aux=True, ckpt=True):
  run = layout.run_dir(exp, ratio, run_id)
  os.makedirs(run, exist_ok=True)
  if aux:
    rng = np.random.default_rng(run_id)
    perm = rng.permutation(n_train)
    k = int(ratio * n_train)
    aux_arrays.write_aux_arrays(
        layout.aux_arrays_path(run), subsample_idx=perm[:k],
        correctness_train=np.ones(k, bool),
        correctness_removed=np.zeros(n_train - k, bool),
        correctness_test=np.ones(n_test, bool), index_train=perm[:k],
        index_removed=perm[k:], index_test=np.arange(n_test))
  if ckpt:
    prefix = layout.checkpoint_prefix(run, 3)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    for suffix in (".index", ".data-00000-of-00001"):
      open(prefix + suffix, "w").close()
  return run


class ExperimentTest(absltest.TestCase):

  def test_scan(self):
    exp = self.create_tempdir().full_path
    for r in (0, 1, 2, 10):
      write_run(exp, 0.7, r)
    write_run(exp, 0.5, 0)
    write_run(exp, 0.5, 1, aux=False)
    write_run(exp, 0.5, 2, ckpt=False)
    os.makedirs(os.path.join(exp, "0.5", ".3.tmp"))
    open(os.path.join(exp, "README"), "w").close()

    found = experiment.scan_experiment(exp)
    self.assertEqual(found.ratios, [0.5, 0.7])
    self.assertEqual([r.run_id for r in found.runs[0.7]], [0, 1, 2, 10])
    self.assertEqual([r.run_id for r in found.complete_runs(0.7)], [0, 1, 2, 10])
    self.assertEqual([r.run_id for r in found.complete_runs(0.5)], [0])
    self.assertEqual([r.run_id for r in found.runs_with_aux_arrays(0.5)], [0, 2])
    self.assertEqual([(r.ratio, r.run_id) for r in found.incomplete],
                     [(0.5, 1), (0.5, 2)])
    self.assertEqual(found.runs[0.5][1].problems, ("no aux_arrays.npz",))
    self.assertRegex(found.runs[0.5][2].problems[0], "found none")
    self.assertEqual(found.runs[0.7][0].checkpoint_prefix,
                     layout.checkpoint_prefix(layout.run_dir(exp, 0.7, 0), 3))
    self.assertIn("README", found.ignored)
    self.assertIn(os.path.join("0.5", ".3.tmp"), found.ignored)
    self.assertEqual(found.summary(), "0.5: 3 runs (2 incomplete)\n0.7: 4 runs")
    for run in found.runs[0.5] + found.runs[0.7]:
      self.assertEqual(experiment.run_problems(run.path), run.problems)
    aux = aux_arrays.read_aux_arrays(found.runs[0.7][3].aux_path)
    self.assertEqual(aux.num_train, 10)

  def test_index_without_data_is_incomplete(self):
    exp = self.create_tempdir().full_path
    run = write_run(exp, 0.7, 0)
    os.remove(layout.checkpoint_prefix(run, 3) + ".data-00000-of-00001")
    found = experiment.scan_experiment(exp)
    self.assertRegex(found.incomplete[0].problems[0], "no .data-\\* shard")

  def test_errors(self):
    tmp = self.create_tempdir().full_path
    with self.assertRaisesRegex(errors.ExperimentError, "no such directory"):
      experiment.scan_experiment(os.path.join(tmp, "absent"))
    with self.assertRaisesRegex(errors.ExperimentError, "an empty directory"):
      experiment.scan_experiment(tmp)
    write_run(tmp, 0.7, 0)
    found = experiment.scan_experiment(tmp)
    with self.assertRaisesRegex(errors.ExperimentError,
                                r"no runs for subset ratio 0.3; ratios present: \['0.7'\]"):
      found.complete_runs(0.3)

  def test_two_folders_of_one_run_are_refused(self):
    exp = self.create_tempdir().full_path
    write_run(exp, 0.7, 7)
    os.rename(write_run(exp, 0.7, 8), os.path.join(exp, "0.7", "07"))
    with self.assertRaisesRegex(errors.ExperimentError,
                                "folders 07 and 7 are both run 7"):
      experiment.scan_experiment(exp)

  def test_two_folders_of_one_ratio_are_refused(self):
    exp = self.create_tempdir().full_path
    write_run(exp, 0.7, 0)
    os.makedirs(os.path.join(exp, "0.70"))
    os.rename(write_run(exp, 0.5, 1), os.path.join(exp, "0.70", "1"))
    with self.assertRaisesRegex(errors.ExperimentError,
                                "folders 0.7 and 0.70 are both subset ratio 0.7"):
      experiment.scan_experiment(exp)


if __name__ == "__main__":
  absltest.main()
