"""Selections of examples for the binary (the runs themselves: the e2e test)."""

from absl.testing import absltest
import numpy as np

from heldout.data import dataset as dataset_lib
from heldout.influence_functions import score_run


def _dataset():
  rng = np.random.default_rng(0)
  split = dataset_lib.SplitData(
      rng.uniform(size=(6, 2, 2, 1)).astype(np.float32),
      np.arange(6) % 3, np.array([3, 0, 5, 1, 4, 2]))
  return dataset_lib.Dataset("toy", 3, {"train": split, "test": split})


class SelectionTest(absltest.TestCase):

  def test_parse(self):
    self.assertEqual(score_run.parse_selection("test"),
                     ("test", slice(None, None)))
    self.assertEqual(score_run.parse_selection("test[:2000]"),
                     ("test", slice(None, 2000)))
    self.assertEqual(score_run.parse_selection("train[10:-5]"),
                     ("train", slice(10, -5)))
    for bad in ("", "test[2000]", "test[:x]", "a b"):
      with self.assertRaisesRegex(ValueError, "split name or split"):
        score_run.parse_selection(bad)

  def test_select_by_sorted_ids(self):
    dataset = _dataset()
    chosen = score_run.select_examples(dataset, "train[1:4]")
    np.testing.assert_array_equal(chosen.index, [1, 2, 3])
    split = dataset.train
    np.testing.assert_array_equal(chosen.labels,
                                  split.labels[split.positions_of([1, 2, 3])])
    self.assertEqual(chosen.name, "toy/train[1:4]")
    with self.assertRaisesRegex(ValueError, "selects no example"):
      score_run.select_examples(dataset, "train[7:]")
    with self.assertRaisesRegex(dataset_lib.DatasetError, "no split `val`"):
      score_run.select_examples(dataset, "val")

  def test_default_factors_dir(self):
    self.assertEqual(score_run.default_factors_dir("/a/b.npz"),
                     "/a/b.factors")
    self.assertEqual(score_run.default_factors_dir("/a/b"), "/a/b.factors")


if __name__ == "__main__":
  absltest.main()
