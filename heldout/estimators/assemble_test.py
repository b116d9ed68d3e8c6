"""Tests for heldout.estimators.assemble."""

import os

from absl.testing import absltest
import numpy as np

from heldout import errors
from heldout.estimators import assemble
from heldout.estimators import memorization_estimator
from heldout.estimators import testing
from heldout.readers import layout


def _shuffled_run(rng, mask_row, correct_row, test_row):
  index_train = rng.permutation(np.flatnonzero(mask_row))
  index_removed = rng.permutation(np.flatnonzero(~mask_row))
  index_test = rng.permutation(len(test_row))
  return dict(subsample_idx=rng.permutation(index_train),
              correctness_train=correct_row[index_train],
              correctness_removed=correct_row[index_removed],
              correctness_test=test_row[index_test],
              index_train=index_train, index_removed=index_removed,
              index_test=index_test)


class StackRunsTest(absltest.TestCase):

  def test_scatters_through_index(self):
    mask, correct_train, correct_test = testing.random_runs(0, num_runs=7)
    rng = np.random.default_rng(1)
    runs = [_shuffled_run(rng, mask[r], correct_train[r], correct_test[r])
            for r in range(7)]
    got = assemble.stack_runs(runs, run_ids=[3, 1, 4, 1, 5, 9, 2], ratio=0.5)
    np.testing.assert_array_equal(got.mask, mask)
    np.testing.assert_array_equal(got.correct_train, correct_train)
    np.testing.assert_array_equal(got.correct_test, correct_test)
    np.testing.assert_array_equal(got.run_ids, [3, 1, 4, 1, 5, 9, 2])
    self.assertEqual((got.num_runs, got.num_train, got.num_test), (7, 17, 9))
    self.assertEqual(got.mask.dtype, bool)
    self.assertEqual(got.correct_test.dtype, bool)

  def test_positional_order_would_be_wrong(self):
    # Evaluation orders reversed: scattering by position would give
    # [0, 1, 1, 1, 0, 0] and [True, False]; through index it must not.
    run = dict(subsample_idx=np.array([0, 2, 1]),
               correctness_train=np.array([0, 1, 1], bool),  # ids 2, 1, 0
               correctness_removed=np.array([1, 0, 0], bool),  # ids 5, 4, 3
               correctness_test=np.array([False, True]),  # ids 1, 0
               index_train=np.array([2, 1, 0]), index_removed=np.array([5, 4, 3]),
               index_test=np.array([1, 0]))
    got = assemble.stack_runs([run])
    np.testing.assert_array_equal(got.mask[0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(got.correct_train[0], [1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(got.correct_test[0], [True, False])

  def test_rejects_runs_of_other_sizes(self):
    mask, correct_train, correct_test = testing.random_runs(2, num_runs=2)
    rng = np.random.default_rng(0)
    runs = [_shuffled_run(rng, mask[0], correct_train[0], correct_test[0]),
            _shuffled_run(rng, mask[1, :-1], correct_train[1, :-1],
                          correct_test[1])]
    with self.assertRaisesRegex(errors.ExperimentError,
                                "<run 1>: expected 17 training and 9 test "
                                "examples .*found 16 and 9"):
      assemble.stack_runs(runs)
    with self.assertRaisesRegex(ValueError, "`runs` must hold at least one"):
      assemble.stack_runs([])
    with self.assertRaisesRegex(ValueError, "`run_ids` must have one id per run"):
      assemble.stack_runs(runs[:1], run_ids=[0, 1])


class LoadRatioTest(absltest.TestCase):

  def test_reads_and_skips_incomplete(self):
    exp = self.create_tempdir().full_path
    mask, correct_train, correct_test = testing.random_runs(3, num_runs=5)
    testing.write_runs(exp, 0.5, mask, correct_train, correct_test,
                       run_ids=[0, 1, 2, 4, 11])
    incomplete = testing.write_incomplete_run(exp, 0.5, 3)
    with self.assertLogs("absl", level="WARNING") as logs:
      got = assemble.load_ratio(exp, 0.5, progress=False)
    self.assertIn(incomplete, "\n".join(logs.output))
    np.testing.assert_array_equal(got.mask, mask)
    np.testing.assert_array_equal(got.correct_train, correct_train)
    np.testing.assert_array_equal(got.correct_test, correct_test)
    np.testing.assert_array_equal(got.run_ids, [0, 1, 2, 4, 11])
    self.assertEqual(got.ratio, 0.5)
    self.assertEqual([p for p, _ in got.skipped], [incomplete])
    self.assertIn("no aux_arrays.npz", got.skipped[0][1])

  def test_evaluation_order_does_not_matter(self):
    mask, correct_train, correct_test = testing.random_runs(4, num_runs=9)
    results = []
    for seed in (0, 1):
      exp = self.create_tempdir().full_path
      testing.write_runs(exp, 0.5, mask, correct_train, correct_test, seed=seed)
      runs = assemble.load_ratio(exp, 0.5, progress=False)
      results.append(memorization_estimator.memorization(
          runs.mask, runs.correct_train))
    np.testing.assert_array_equal(results[0].values, results[1].values)
    values, _, _, _ = testing.memorization_loop(mask, correct_train)
    np.testing.assert_allclose(results[0].values, values, atol=1e-12)

  def test_mismatched_run_is_named(self):
    exp = self.create_tempdir().full_path
    mask, correct_train, correct_test = testing.random_runs(5, num_runs=3)
    testing.write_runs(exp, 0.5, mask, correct_train, correct_test)
    odd = testing.write_runs(exp, 0.5, mask[:1, :-2], correct_train[:1, :-2],
                             correct_test[:1], run_ids=[7])[0]
    with self.assertRaisesRegex(
        errors.ExperimentError,
        "{}: expected 17 training .*found 15".format(
            layout.aux_arrays_path(odd))):
      assemble.load_ratio(exp, 0.5, progress=False)
    with self.assertRaisesRegex(errors.ExperimentError, "no runs for subset ratio 0.3"):
      assemble.load_ratio(exp, 0.3, progress=False)

  def test_no_usable_run(self):
    exp = self.create_tempdir().full_path
    testing.write_incomplete_run(exp, 0.5, 0)
    with self.assertRaisesRegex(errors.ExperimentError,
                                "expected at least one run of ratio 0.5"):
      assemble.load_ratio(exp, 0.5, progress=False)

  def test_corrupt_aux_arrays_is_an_error(self):
    exp = self.create_tempdir().full_path
    mask, correct_train, correct_test = testing.random_runs(6, num_runs=2)
    folder = testing.write_runs(exp, 0.5, mask, correct_train, correct_test)[1]
    with open(os.path.join(folder, "aux_arrays.npz"), "wb") as f:
      f.write(b"truncated")
    with self.assertRaisesRegex(errors.AuxArraysError, "aux_arrays.npz"):
      assemble.load_ratio(exp, 0.5, progress=False)


if __name__ == "__main__":
  absltest.main()
