"""Tests of data pruning: kept sets and the resumable accuracy table."""

from absl.testing import absltest
import numpy as np

from heldout.evaluations import pruning


class KeepTest(absltest.TestCase):

  def test_keeps_the_chosen_end(self):
    index = np.array([10, 11, 12, 13, 14, 15])
    values = np.array([5.0, 1.0, 4.0, 2.0, 3.0, np.nan])
    np.testing.assert_array_equal(
        pruning.keep_ids(index, values, 0.5, pruning.HIGH), [10, 12, 14])
    np.testing.assert_array_equal(
        pruning.keep_ids(index, values, 0.5, pruning.LOW), [11, 13, 14])
    rand = pruning.keep_ids(index, values, 0.5, pruning.RANDOM, seed=1)
    self.assertLen(rand, 3)
    self.assertTrue(set(rand) <= set(index))

  def test_ties_broken_at_random_not_by_id(self):
    index = np.arange(100)
    picks = {tuple(pruning.keep_ids(index, np.zeros(100), 0.1, pruning.HIGH,
                                    seed=s)) for s in range(5)}
    self.assertLen(picks, 5)
    self.assertNotIn(tuple(range(10)), picks)


class AccuracyTest(absltest.TestCase):

  def test_trains_each_job_once_and_resumes(self):
    calls = []

    def train_subsets(subsets, seeds):
      calls.append(len(subsets))
      self.assertLen({len(s) for s in subsets}, 1)
      # "Accuracy": the mean kept id, plus the seed.
      return [float(np.mean(s)) / 100 + seed for s, seed in zip(subsets,
                                                                 seeds)]

    index = np.arange(100)
    values = np.arange(100.0)
    seeds = [0, 1]
    kept = {m: {f: [pruning.keep_ids(index, values, f, end, s) for s in seeds]
                for f in (0.5, 0.9)}
            for m, end in (("high", pruning.HIGH), ("low", pruning.LOW))}
    saved = []
    done = {}
    curves = pruning.accuracy_after_pruning(train_subsets, kept, seeds, done,
                                            lambda: saved.append(dict(done)))
    self.assertEqual(calls, [4, 4])
    self.assertLen(saved, 2)
    # keep 50% from the high end: ids 50..99, mean 74.5; seeds 0 and 1.
    self.assertAlmostEqual(curves["high"][0.5].mean, 0.745 + 0.5)
    self.assertAlmostEqual(curves["low"][0.5].mean, 0.245 + 0.5)
    self.assertEqual(curves["low"][0.9].num_seeds, 2)
    # Everything measured: nothing trained again.
    again = pruning.accuracy_after_pruning(train_subsets, kept, seeds, done)
    self.assertEqual(calls, [4, 4])
    self.assertEqual(again["high"][0.9].mean, curves["high"][0.9].mean)
    self.assertIn("keep 50%", pruning.curve_text(curves))
    self.assertTrue(pruning.curve_png(curves).startswith(b"\x89PNG"))
    self.assertIn("high,0.5,", pruning.curve_csv(curves))


if __name__ == "__main__":
  absltest.main()
