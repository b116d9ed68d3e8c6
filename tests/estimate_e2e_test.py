"""End-to-end test of `//heldout:estimate` on a synthetic experiment directory.

The experiment is written in the released layout with
`heldout.readers.aux_arrays.write_aux_arrays`: random masks, evaluation orders
shuffled per run, two subset ratios and one incomplete run. The binary runs as
a subprocess and its files are checked against slow loops over the definitions.
"""

import csv
import json
import math
import os
import subprocess

from absl.testing import absltest

import numpy as np

from heldout.estimators import influence_estimator
from heldout.estimators import testing
from tests import binaries

N_TRAIN = 40
N_TEST = 12
RUNS = {0.3: 7, 0.7: 10}


def _binary():
  return binaries.command("heldout/estimate", "heldout/estimate.py")


class EstimateEndToEndTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(absltest.get_default_test_tmpdir(), "e2e")
    cls.experiment = os.path.join(cls.root, "experiment")
    cls.truth = {}
    for seed, (ratio, num_runs) in enumerate(sorted(RUNS.items())):
      arrays = testing.random_runs(seed, num_runs=num_runs, n_train=N_TRAIN,
                                   n_test=N_TEST, ratio=ratio,
                                   always_in=(5,), never_in=(6,))
      testing.write_runs(cls.experiment, ratio, *arrays, seed=100 + seed)
      cls.truth[ratio] = arrays
    cls.incomplete = testing.write_incomplete_run(cls.experiment, 0.7, 10)
    # Each run of the binary imports TensorFlow: run the successful ones once.
    out = os.path.join(cls.root, "out")
    cls.topk_07 = os.path.join(out, "topk_07.npz")
    cls.topk_07_result = cls._run_ok(
        "--experiment_dir=" + cls.experiment, "--output=" + cls.topk_07,
        "--subset_ratio=0.7", "--influence=topk", "--top_k=5",
        # A tiny budget forces several blocks of training examples.
        "--memory_budget_mb=0.005")
    cls.topk_03 = os.path.join(out, "topk_03.npz")
    cls._run_ok("--experiment_dir=" + cls.experiment, "--output=" + cls.topk_03,
                "--subset_ratio=0.3", "--influence=topk", "--top_k=7",
                "--memory_budget_mb=0.003")
    # Relative paths, from the folder `bazel run` was started in.
    cls.dense_03 = os.path.join(out, "dense_03.npz")
    cls._run_ok("--experiment_dir=experiment", "--output=out/dense_03.npz",
                "--subset_ratio=0.3", "--influence=dense",
                cwd=absltest.get_default_test_tmpdir(),
                env=dict(os.environ, BUILD_WORKING_DIRECTORY=cls.root))

  @classmethod
  def _run(cls, *flags, cwd=None, env=None):
    return subprocess.run(
        _binary() + ["--noprogress"] + list(flags), cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
        timeout=300)

  @classmethod
  def _run_ok(cls, *flags, **kwargs):
    result = cls._run(*flags, **kwargs)
    if result.returncode != 0:
      raise AssertionError("{} failed with exit code {}:\n{}".format(
          " ".join(flags), result.returncode, result.stderr[-3000:]))
    return result

  def test_topk_matches_loops(self):
    out, result = self.topk_07, self.topk_07_result
    self.assertIn("ratio 0.7: 10 runs (memorization, influence)",
                  result.stdout)
    self.assertIn("ratio 0.3: 7 runs", result.stdout)
    self.assertIn(self.incomplete, result.stdout)
    self.assertIn("wrote " + out, result.stdout)

    mask, correct_train, correct_test = self.truth[0.7]
    values, se, n_in, n_out = testing.memorization_loop(mask, correct_train)
    with np.load(out) as npz:
      np.testing.assert_array_equal(npz["index"], np.arange(N_TRAIN))
      np.testing.assert_allclose(npz["memorization"], values, atol=1e-12)
      np.testing.assert_allclose(npz["memorization_se"], se, atol=1e-12)
      np.testing.assert_array_equal(npz["memorization_n_in"], n_in)
      np.testing.assert_array_equal(npz["memorization_n_out"], n_out)
      self.assertTrue(math.isnan(npz["memorization"][5]))
      self.assertTrue(math.isnan(npz["memorization"][6]))
      loops = [testing.consistency_loop(*self.truth[r][:2]) for r in (0.3, 0.7)]
      by_ratio = [loop[0] for loop in loops]
      np.testing.assert_array_equal(npz["ratios"], [0.3, 0.7])
      np.testing.assert_allclose(npz["consistency_by_ratio"], by_ratio,
                                 atol=1e-12)
      np.testing.assert_allclose(npz["consistency"], by_ratio[1], atol=1e-12)
      # Standard errors and counts of every estimate.
      for key, column, shape in (
          ("consistency_se_by_ratio", 1, (2, N_TRAIN)),
          ("consistency_n_in_by_ratio", 2, (2, N_TRAIN)),
          ("consistency_n_out_by_ratio", 3, (2, N_TRAIN))):
        self.assertEqual(npz[key].shape, shape, msg=key)
        np.testing.assert_allclose(npz[key], [loop[column] for loop in loops],
                                   rtol=1e-12, err_msg=key)
      # At --subset_ratio: that ratio's SE; example 5 (in every run) is NaN.
      self.assertEqual(npz["consistency_se"].shape, (N_TRAIN,))
      np.testing.assert_allclose(npz["consistency_se"], loops[1][1],
                                 rtol=1e-12)
      self.assertTrue(math.isnan(npz["consistency_se"][5]))
      cscore, cscore_se, n_ratios = testing.cscore_loop(
          [loop[:2] for loop in loops])
      np.testing.assert_allclose(npz["cscore"], cscore, atol=1e-12)
      np.testing.assert_allclose(npz["cscore_se"], cscore_se, rtol=1e-12)
      np.testing.assert_array_equal(npz["cscore_n_ratios"], n_ratios)
      self.assertTrue(math.isnan(npz["cscore_se"][5]))
      np.testing.assert_array_equal(npz["influence_n_in"], n_in)
      np.testing.assert_array_equal(npz["influence_n_out"], n_out)
      np.testing.assert_array_equal(npz["test_total_correct"],
                                    correct_test.sum(0))
      top_se = npz["influence_topk_se"]
      self.assertNotIn("influence_se", npz.files)
      np.testing.assert_array_equal(npz["runs_per_ratio"], [7, 10])
      self.assertEqual(json.loads(str(npz["args_json"]))["top_k"], 5)
      top_values = npz["influence_topk_values"]
      top_indices = npz["influence_topk_indices"]
      self.assertNotIn("influence", npz.files)
    self.assertEqual(top_values.shape, (N_TEST, 5))
    self.assertEqual(top_se.shape, (N_TEST, 5))
    dense = testing.influence_loop(mask, correct_test)
    np.testing.assert_allclose(
        top_values, np.take_along_axis(dense, top_indices, axis=1), atol=1e-6)
    dense_se = testing.influence_se_loop(mask, correct_test)
    np.testing.assert_allclose(
        top_se, np.take_along_axis(dense_se, top_indices, axis=1), rtol=1e-6)
    want_values, _ = testing.topk_sort(dense, 5)
    np.testing.assert_allclose(top_values, want_values, atol=1e-6)

    with open(out[:-4] + ".csv") as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, N_TRAIN)
    for i, row in enumerate(rows):
      self.assertEqual(int(row["index"]), i)
      self.assertEqual(int(row["n_out"]), n_out[i])
      for column, want in (("memorization", values[i]), ("se", se[i]),
                           ("consistency", loops[1][0][i]),
                           ("consistency_se", loops[1][1][i])):
        if math.isnan(want):
          self.assertEqual(row[column], "nan")
        else:
          self.assertAlmostEqual(float(row[column]), want, places=8)

  def test_dense_agrees_with_topk(self):
    mask, _, correct_test = self.truth[0.3]
    with np.load(self.dense_03) as npz:
      dense = npz["influence"]
      dense_se = npz["influence_se"]
      self.assertFalse([k for k in npz.files if k.startswith("influence_topk")])
      np.testing.assert_array_equal(npz["influence_n_in"], mask.sum(0))
      np.testing.assert_array_equal(npz["influence_n_out"], 7 - mask.sum(0))
      np.testing.assert_array_equal(npz["test_total_correct"],
                                    correct_test.sum(0))
    self.assertEqual(dense_se.shape, (N_TEST, N_TRAIN))
    self.assertEqual(dense_se.dtype, np.float32)
    np.testing.assert_allclose(dense, testing.influence_loop(mask, correct_test),
                               atol=1e-6)
    np.testing.assert_allclose(
        dense_se, testing.influence_se_loop(mask, correct_test), rtol=1e-6)
    self.assertTrue(np.isnan(dense[:, [5, 6]]).all())
    np.testing.assert_array_equal(np.isnan(dense_se), np.isnan(dense))
    want_values, want_indices = influence_estimator.topk_from_dense(dense, 7)
    with np.load(self.topk_03) as npz:
      np.testing.assert_array_equal(npz["influence_topk_indices"], want_indices)
      np.testing.assert_array_equal(npz["influence_topk_values"], want_values)
      # Same SEs to the bit on the entries both files hold.
      np.testing.assert_array_equal(
          npz["influence_topk_se"],
          np.take_along_axis(dense_se, want_indices, axis=1))

  def test_relative_paths_and_cscore(self):
    # The dense run was given paths relative to BUILD_WORKING_DIRECTORY.
    self.assertTrue(os.path.exists(os.path.join(self.root, "out",
                                                "dense_03.csv")))
    with np.load(self.dense_03) as npz:
      by_ratio = npz["consistency_by_ratio"]
      defined = ~np.isnan(by_ratio)
      with np.errstate(invalid="ignore"):
        want = np.where(defined, by_ratio, 0).sum(0) / defined.sum(0)
      np.testing.assert_allclose(npz["cscore"], want)
      self.assertTrue(math.isnan(npz["cscore"][5]))
      np.testing.assert_array_equal(npz["consistency"], by_ratio[0])
      # --subset_ratio=0.3: consistency_se is that ratio's.
      np.testing.assert_array_equal(npz["consistency_se"],
                                    npz["consistency_se_by_ratio"][0])
      se_by_ratio = npz["consistency_se_by_ratio"]
      with np.errstate(invalid="ignore"):
        want_se = (np.sqrt(np.where(defined, se_by_ratio**2, 0).sum(0)) /
                   defined.sum(0))
      np.testing.assert_allclose(npz["cscore_se"], want_se)
      self.assertTrue(math.isnan(npz["cscore_se"][5]))

  def _assert_one_line_error(self, result, pattern):
    self.assertEqual(result.returncode, 1, msg=result.stderr[-3000:])
    self.assertNotIn("Traceback", result.stderr)
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    self.assertLen(errors, 1, msg=result.stderr[-3000:])
    self.assertRegex(errors[0], pattern)

  def test_missing_subset_ratio_is_a_one_line_error(self):
    folder = self.create_tempdir().full_path
    out = os.path.join(folder, "est.npz")
    result = self._run("--experiment_dir=" + self.experiment, "--output=" + out)
    self._assert_one_line_error(
        result, "^error: .*several subset ratios \\(0.3, 0.7\\).*--subset_ratio")
    self.assertEqual(os.listdir(folder), [])


if __name__ == "__main__":
  absltest.main()
