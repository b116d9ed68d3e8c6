"""Tests for heldout.estimators.pipeline."""

import csv
import json
import math
import os
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout import errors
from heldout.estimators import influence_estimator
from heldout.estimators import pipeline
from heldout.estimators import testing


def _write_experiment(root):
  """Ratios 0.3 (6 runs) and 0.7 (9 runs + one incomplete); returns truth."""
  truth = {}
  for seed, (ratio, num_runs) in enumerate(((0.3, 6), (0.7, 9))):
    arrays = testing.random_runs(seed, num_runs=num_runs, n_train=14, n_test=5,
                                 ratio=ratio, always_in=(2,), never_in=(3,))
    testing.write_runs(root, ratio, *arrays, seed=seed)
    truth[ratio] = arrays
  incomplete = testing.write_incomplete_run(root, 0.7, 9)
  return truth, incomplete


class EstimateArgsTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("ratio", dict(subset_ratio=1.5), "`subset_ratio` must be in"),
      ("mode", dict(influence="full"), "`influence` must be one of"),
      ("top_k", dict(top_k=0), "`top_k` must be positive"),
      ("budget", dict(memory_budget_bytes=0), "`memory_budget_bytes` must be"),
  )
  def test_rejects(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      pipeline.EstimateArgs(experiment_dir="x", **kwargs)


class ComputeEstimatesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.root = self.create_tempdir().full_path
    self.truth, self.incomplete = _write_experiment(self.root)

  def test_matches_loops(self):
    args = pipeline.EstimateArgs(self.root, subset_ratio=0.7, top_k=3)
    got = pipeline.compute_estimates(args, progress=False)
    mask, correct_train, correct_test = self.truth[0.7]
    values, se, n_in, n_out = testing.memorization_loop(mask, correct_train)
    np.testing.assert_allclose(got.memorization.values, values, atol=1e-12)
    np.testing.assert_allclose(got.memorization.se, se, atol=1e-12)
    np.testing.assert_array_equal(got.memorization.n_in, n_in)
    np.testing.assert_array_equal(got.memorization.n_out, n_out)
    loop_07 = testing.consistency_loop(mask, correct_train)
    np.testing.assert_allclose(got.consistency, loop_07[0], atol=1e-12)
    np.testing.assert_allclose(got.consistency_se, loop_07[1], rtol=1e-12)
    loop_03 = testing.consistency_loop(self.truth[0.3][0], self.truth[0.3][1])
    for ratio, loop in ((0.3, loop_03), (0.7, loop_07)):
      by_ratio = got.consistency_by_ratio[ratio]
      np.testing.assert_allclose(by_ratio.values, loop[0], atol=1e-12)
      np.testing.assert_allclose(by_ratio.se, loop[1], rtol=1e-12)
      np.testing.assert_array_equal(by_ratio.n_in, loop[2])
      np.testing.assert_array_equal(by_ratio.n_out, loop[3])
    cscore, cscore_se, n_ratios = testing.cscore_loop([loop_03[:2],
                                                       loop_07[:2]])
    np.testing.assert_allclose(got.cscore.values, cscore, atol=1e-12)
    np.testing.assert_allclose(got.cscore.se, cscore_se, rtol=1e-12)
    np.testing.assert_array_equal(got.cscore.n_ratios, n_ratios)
    np.testing.assert_array_equal(got.cscore.n_ratios[2:4], [0, 2])
    self.assertTrue(np.isnan(got.cscore.se[2]))
    dense = testing.influence_loop(mask, correct_test).astype(np.float32)
    # Values only: ties may order differently from float64 values.
    want_values, _ = influence_estimator.topk_from_dense(dense, 3)
    self.assertEqual(got.influence.values.shape, (5, 3))
    np.testing.assert_allclose(got.influence.values, want_values, atol=1e-6)
    want_se = testing.influence_se_loop(mask, correct_test)
    np.testing.assert_allclose(
        got.influence.se,
        np.take_along_axis(want_se, got.influence.indices, axis=1), rtol=1e-6)
    np.testing.assert_array_equal(got.influence.total_correct,
                                  correct_test.sum(0))
    np.testing.assert_array_equal(got.run_ids, np.arange(9))
    np.testing.assert_array_equal(got.ratios, [0.3, 0.7])
    np.testing.assert_array_equal(got.runs_per_ratio, [6, 9])
    self.assertEqual([p for p, _ in got.skipped], [self.incomplete])
    self.assertIn("ratio 0.7: 9 runs (memorization, influence)", got.summary())
    self.assertIn(self.incomplete, got.summary())

  def test_dense_and_none(self):
    mask, _, correct_test = self.truth[0.3]
    dense = pipeline.compute_estimates(
        pipeline.EstimateArgs(self.root, subset_ratio=0.3, influence="dense"),
        progress=False)
    np.testing.assert_allclose(dense.influence.values,
                               testing.influence_loop(mask, correct_test),
                               atol=1e-6)
    np.testing.assert_allclose(dense.influence.se,
                               testing.influence_se_loop(mask, correct_test),
                               rtol=1e-6)
    arrays = dense.arrays()
    self.assertEqual(
        sorted(k for k in arrays if "influence" in k or k.startswith("test_")),
        ["influence", "influence_n_in", "influence_n_out", "influence_se",
         "test_index", "test_total_correct"])
    self.assertEqual(arrays["influence_se"].shape, (5, 14))
    np.testing.assert_array_equal(arrays["influence_n_in"], mask.sum(0))
    np.testing.assert_array_equal(arrays["influence_n_out"], 6 - mask.sum(0))
    np.testing.assert_array_equal(arrays["test_total_correct"],
                                  correct_test.sum(0))
    topk = pipeline.compute_estimates(
        pipeline.EstimateArgs(self.root, subset_ratio=0.3, top_k=4),
        progress=False)
    topk_arrays = topk.arrays()
    self.assertEqual(
        sorted(k for k in topk_arrays if "influence" in k),
        ["influence_n_in", "influence_n_out", "influence_topk_indices",
         "influence_topk_se", "influence_topk_values"])
    # The SEs of the top-k entries are those of the dense matrix, bitwise.
    np.testing.assert_array_equal(
        topk_arrays["influence_topk_se"],
        np.take_along_axis(arrays["influence_se"],
                           topk_arrays["influence_topk_indices"], axis=1))
    none = pipeline.compute_estimates(
        pipeline.EstimateArgs(self.root, subset_ratio=0.3, influence="none"),
        progress=False)
    self.assertIsNone(none.influence)
    self.assertFalse([k for k in none.arrays()
                      if "influence" in k or k == "test_total_correct"])

  def test_several_ratios_need_a_choice(self):
    with self.assertRaisesRegex(errors.ExperimentError,
                                "several subset ratios \\(0.3, 0.7\\)"):
      pipeline.compute_estimates(pipeline.EstimateArgs(self.root),
                                 progress=False)
    with self.assertRaisesRegex(errors.ExperimentError,
                                "no runs for subset ratio 0.5; ratios present: "
                                "0.3, 0.7"):
      pipeline.compute_estimates(
          pipeline.EstimateArgs(self.root, subset_ratio=0.5), progress=False)

  def test_single_ratio_defaults(self):
    root = self.create_tempdir().full_path
    mask, correct_train, correct_test = self.truth[0.3]
    testing.write_runs(root, 0.3, mask, correct_train, correct_test)
    got = pipeline.compute_estimates(pipeline.EstimateArgs(root), progress=False)
    self.assertEqual(got.subset_ratio, 0.3)
    want, want_se, _, _ = testing.consistency_loop(mask, correct_train)
    np.testing.assert_allclose(got.consistency, want, atol=1e-12)
    # No ratio asked for: the C-score of the one ratio, whose SE is that
    # ratio's (sqrt(se^2) / 1).
    np.testing.assert_allclose(got.consistency_se, want_se, rtol=1e-12)
    np.testing.assert_array_equal(got.consistency_se, got.cscore.se)

  def test_ratio_without_usable_runs_is_nan(self):
    testing.write_incomplete_run(self.root, 0.5, 0)
    got = pipeline.compute_estimates(
        pipeline.EstimateArgs(self.root, subset_ratio=0.7, influence="none"),
        progress=False)
    np.testing.assert_array_equal(got.runs_per_ratio, [6, 0, 9])
    self.assertTrue(np.isnan(got.consistency_by_ratio[0.5].values).all())
    self.assertTrue(np.isnan(got.consistency_by_ratio[0.5].se).all())
    np.testing.assert_array_equal(got.consistency_by_ratio[0.5].n_out, 0)
    np.testing.assert_array_equal(got.consistency_by_ratio[0.5].n_in, 0)
    # The C-score ignores the empty ratio: values and SEs from the other two.
    loops = [testing.consistency_loop(*self.truth[r][:2])[:2]
             for r in (0.3, 0.7)]
    want, want_se, _ = testing.cscore_loop(loops)
    np.testing.assert_allclose(got.cscore.values, want, atol=1e-12)
    np.testing.assert_allclose(got.cscore.se, want_se, rtol=1e-12)

  def test_sizes_must_agree_across_ratios(self):
    mask, correct_train, correct_test = self.truth[0.3]
    testing.write_runs(self.root, 0.5, mask[:, :-1], correct_train[:, :-1],
                       correct_test)
    with self.assertRaisesRegex(errors.ExperimentError,
                                "0.5.*expected 14 training and 5 test"):
      pipeline.compute_estimates(
          pipeline.EstimateArgs(self.root, subset_ratio=0.7), progress=False)

  def test_run_of_another_ratio_lacking_an_id_names_the_size(self):
    # 13 of the 14 training ids, the largest present: judged by itself its
    # ids would be "out of [0, 13)"; the experiment has 14 examples.
    n_train = 14
    ids = np.delete(np.arange(n_train), 3)
    folder = os.path.join(self.root, "0.5", "0")
    os.makedirs(folder)
    np.savez(os.path.join(folder, "aux_arrays.npz"), subsample_idx=ids[:6],
             correctness_train=np.ones(6, bool),
             correctness_removed=np.ones(7, bool),
             correctness_test=np.ones(5, bool), index_train=ids[:6],
             index_removed=ids[6:], index_test=np.arange(5))
    with self.assertRaisesRegex(
        errors.ExperimentError,
        "0.5/0/aux_arrays.npz: expected 14 training and 5 test examples "
        r"\(as in the other runs\), found 13 and 5"):
      pipeline.compute_estimates(
          pipeline.EstimateArgs(self.root, subset_ratio=0.7), progress=False)


class SaveEstimatesTest(absltest.TestCase):

  def test_round_trip_and_argument_check(self):
    root = self.create_tempdir().full_path
    truth, _ = _write_experiment(root)
    args = pipeline.EstimateArgs(root, subset_ratio=0.7, top_k=2)
    estimates = pipeline.compute_estimates(args, progress=False)
    out = os.path.join(self.create_tempdir().full_path, "sub", "est.npz")
    csv_path = pipeline.save_estimates(estimates, out, args)
    self.assertEqual(csv_path, out[:-4] + ".csv")
    with np.load(out) as npz:
      self.assertEqual(json.loads(str(npz["args_json"]))["top_k"], 2)
      np.testing.assert_array_equal(npz["index"], np.arange(14))
      np.testing.assert_array_equal(npz["memorization"],
                                    estimates.memorization.values)
      self.assertEqual(npz["consistency_by_ratio"].shape, (2, 14))
      self.assertEqual(npz["influence_topk_indices"].shape, (5, 2))
      self.assertEqual(float(npz["subset_ratio"]), 0.7)
      for key, shape in (("consistency_se", (14,)),
                         ("consistency_se_by_ratio", (2, 14)),
                         ("consistency_n_in_by_ratio", (2, 14)),
                         ("consistency_n_out_by_ratio", (2, 14)),
                         ("cscore_se", (14,)),
                         ("influence_topk_se", (5, 2)),
                         ("influence_n_in", (14,)),
                         ("influence_n_out", (14,)),
                         ("test_total_correct", (5,))):
        self.assertEqual(npz[key].shape, shape, msg=key)
      np.testing.assert_array_equal(npz["consistency_se"],
                                    estimates.consistency_se)
      np.testing.assert_array_equal(npz["cscore_se"], estimates.cscore.se)
      np.testing.assert_array_equal(npz["influence_topk_se"],
                                    estimates.influence.se)
      self.assertNotIn("influence_se", npz.files)
    with open(csv_path) as f:
      rows = list(csv.DictReader(f))
    self.assertEqual(list(rows[0]), list(pipeline.CSV_COLUMNS))
    self.assertEqual([int(r["index"]) for r in rows], list(range(14)))
    mask, correct_train, _ = truth[0.7]
    values, se, n_in, _ = testing.memorization_loop(mask, correct_train)
    for i, row in enumerate(rows):
      if math.isnan(values[i]):
        self.assertEqual(row["memorization"], "nan")
      else:
        self.assertAlmostEqual(float(row["memorization"]), values[i], places=8)
      self.assertEqual(int(row["n_in"]), n_in[i])
      self.assertEqual(math.isnan(float(row["se"])), math.isnan(se[i]))
    _, consistency_se, _, _ = testing.consistency_loop(mask, correct_train)
    for i, row in enumerate(rows):
      if math.isnan(consistency_se[i]):
        self.assertEqual(row["consistency_se"], "nan")
      else:
        self.assertAlmostEqual(float(row["consistency_se"]), consistency_se[i],
                               places=8)
    self.assertTrue(math.isnan(consistency_se[2]))

    # Same arguments (a different budget only): fine. Others: refused.
    pipeline.check_output(out, pipeline.EstimateArgs(
        root, subset_ratio=0.7, top_k=2, memory_budget_bytes=123))
    other = pipeline.EstimateArgs(root, subset_ratio=0.7, top_k=3)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                "top_k: 2 then, 3 now.*--overwrite"):
      pipeline.check_output(out, other)
    pipeline.check_output(out, other, overwrite=True)

  def _estimates(self):
    root = self.create_tempdir().full_path
    _write_experiment(root)
    args = pipeline.EstimateArgs(root, subset_ratio=0.3, influence="none")
    return pipeline.compute_estimates(args, progress=False), args

  def test_failed_write_leaves_old_files(self):
    estimates, args = self._estimates()
    folder = self.create_tempdir().full_path
    out = os.path.join(folder, "est.npz")
    for path, content in ((out, b"old npz"), (out[:-4] + ".csv", b"old csv")):
      with open(path, "wb") as f:
        f.write(content)
    with mock.patch.object(pipeline.Estimates, "csv_text",
                           side_effect=RuntimeError("disk full")):
      with self.assertRaisesRegex(RuntimeError, "disk full"):
        pipeline.save_estimates(estimates, out, args)
    self.assertEqual(sorted(os.listdir(folder)), ["est.csv", "est.npz"])
    with open(out, "rb") as f:
      self.assertEqual(f.read(), b"old npz")
    with open(out[:-4] + ".csv", "rb") as f:
      self.assertEqual(f.read(), b"old csv")

  def test_failed_second_rename_leaves_neither_new_file(self):
    estimates, args = self._estimates()
    folder = self.create_tempdir().full_path
    out = os.path.join(folder, "est.npz")
    real_rename = pipeline._rename

    def rename(source, destination):
      if destination == out:
        raise OSError("rename failed")
      real_rename(source, destination)

    with mock.patch.object(pipeline, "_rename", side_effect=rename):
      with self.assertRaisesRegex(OSError, "rename failed"):
        pipeline.save_estimates(estimates, out, args)
    # No CSV without its .npz, and no staged files left behind.
    self.assertEqual(os.listdir(folder), [])
    pipeline.save_estimates(estimates, out, args)
    self.assertEqual(sorted(os.listdir(folder)), ["est.csv", "est.npz"])

  def test_refuses_a_file_that_is_not_estimates(self):
    path = self.create_tempfile("x.npz", content="hello").full_path
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                "not a file of estimates"):
      pipeline.check_output(path, pipeline.EstimateArgs("exp"))

  def test_refuses_a_csv_of_the_users_where_the_csv_goes(self):
    folder = self.create_tempdir().full_path
    out = os.path.join(folder, "est.npz")
    args = pipeline.EstimateArgs("exp")
    with open(out[:-4] + ".csv", "w") as f:
      f.write("name,grade\nada,1\n")
    # No estimates beside it: a file of the user's.
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                "est.csv: exists and is not the per-example "
                                "CSV.*--overwrite"):
      pipeline.check_output(out, args)
    # Estimates beside it, but another header: refused as well.
    np.savez(out, args_json=np.array(args.to_json()))
    with self.assertRaisesRegex(errors.ArgumentsMismatchError, "est.csv"):
      pipeline.check_output(out, args)
    pipeline.check_output(out, args, overwrite=True)
    # Our own CSV beside our estimates: re-running is fine.
    with open(out[:-4] + ".csv", "w") as f:
      f.write(",".join(pipeline.CSV_COLUMNS) + "\n0,1,1,1,1,1,1\n")
    pipeline.check_output(out, args)

  def test_csv_path(self):
    self.assertEqual(pipeline.csv_path_for("/a/b.npz"), "/a/b.csv")
    self.assertEqual(pipeline.csv_path_for("/a/b"), "/a/b.csv")


if __name__ == "__main__":
  absltest.main()
