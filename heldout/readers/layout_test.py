"""Tests for heldout.readers.layout."""

import os

from absl.testing import absltest
from absl.testing import parameterized

from heldout import errors
from heldout.readers import layout


class LayoutTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("tenth", 0.1, "0.1"), ("seventy", 0.7, "0.7"), ("quarter", 0.25, "0.25"),
      ("one", 1.0, "1"))
  def test_ratio_dirname(self, ratio, name):
    self.assertEqual(layout.ratio_dirname(ratio), name)
    self.assertEqual(layout.parse_ratio_dirname(name), ratio)

  @parameterized.named_parameters(("zero", 0.0), ("big", 1.5), ("neg", -0.1))
  def test_bad_ratio(self, ratio):
    with self.assertRaisesRegex(ValueError, "`ratio`"):
      layout.ratio_dirname(ratio)

  def test_parse_rejects_non_ratios(self):
    for name in ("notes", "2", ".0.7.tmp", "0"):
      self.assertIsNone(layout.parse_ratio_dirname(name), name)

  def test_parse_run_ranges(self):
    self.assertIsNone(layout.parse_run_ranges(None))
    self.assertIsNone(layout.parse_run_ranges(" "))
    self.assertEqual(layout.parse_run_ranges("0:100"), ((0, 100),))
    self.assertEqual(layout.parse_run_ranges("7:9, 3"), ((3, 4), (7, 9)))
    self.assertEqual(layout.parse_run_ranges("50:"),
                     ((50, layout.OPEN_END),))
    self.assertEqual(layout.parse_run_ranges(":5"), ((0, 5),))
    for bad in ("a", "5:5", "9:3", "-1", "1:x"):
      with self.assertRaisesRegex(ValueError, "`runs`"):
        layout.parse_run_ranges(bad)

  def test_paths(self):
    run = layout.run_dir("/exp", 0.7, 12)
    self.assertEqual(run, "/exp/0.7/12")
    self.assertEqual(layout.aux_arrays_path(run), "/exp/0.7/12/aux_arrays.npz")
    self.assertEqual(layout.checkpoint_prefix(run, 200),
                     "/exp/0.7/12/checkpoints/ckpt-200")
    self.assertEqual(layout.run_dir("gs://b/exp", 0.5, 3), "gs://b/exp/0.5/3")

  def test_find_checkpoint_prefix(self):
    run = self.create_tempdir().full_path
    with self.assertRaisesRegex(errors.RunNotFoundError, "found none"):
      layout.find_checkpoint_prefix(run)
    os.makedirs(layout.checkpoints_dir(run))
    for name in ("ckpt-40.index", "ckpt-40.data-00000-of-00001", "checkpoint"):
      open(os.path.join(layout.checkpoints_dir(run), name), "w").close()
    self.assertEqual(layout.find_checkpoint_prefix(run),
                     layout.checkpoint_prefix(run, 40))
    open(os.path.join(layout.checkpoints_dir(run), "ckpt-7.index"), "w").close()
    with self.assertRaisesRegex(errors.RunNotFoundError,
                                "found 2: ckpt-7.index, ckpt-40.index"):
      layout.find_checkpoint_prefix(run)


if __name__ == "__main__":
  absltest.main()
