"""Tests for tests.binaries: which command starts a binary."""

import os
import sys
from unittest import mock

from absl.testing import absltest

from tests import binaries


class CommandTest(absltest.TestCase):

  def _runfiles(self):
    srcdir = self.create_tempdir().full_path
    os.makedirs(os.path.join(srcdir, "ws", "heldout"))
    return srcdir

  def test_built_binary_under_bazel(self):
    srcdir = self._runfiles()
    built = os.path.join(srcdir, "ws", "heldout", "predict")
    with open(built, "w") as f:
      f.write("")
    with mock.patch.dict(os.environ, {"TEST_SRCDIR": srcdir,
                                      "TEST_WORKSPACE": "ws"}):
      self.assertEqual(binaries.command("heldout/predict", "heldout/predict.py"),
                       [built])

  def test_missing_data_dependency_under_bazel(self):
    srcdir = self._runfiles()
    with mock.patch.dict(os.environ, {"TEST_SRCDIR": srcdir,
                                      "TEST_WORKSPACE": "ws"}):
      with self.assertRaisesRegex(
          AssertionError, "ws/heldout/predict is not in this test's runfiles; "
          "add \"//heldout:predict\" to the test's `data`"):
        binaries.command("heldout/predict", "heldout/predict.py")

  def test_source_file_by_hand(self):
    env = {k: v for k, v in os.environ.items() if k != "TEST_SRCDIR"}
    with mock.patch.dict(os.environ, env, clear=True):
      self.assertEqual(
          binaries.command("train/heldout", "train/heldout_main.py"),
          [sys.executable,
           os.path.join(binaries.REPO_ROOT, "train", "heldout_main.py")])


if __name__ == "__main__":
  absltest.main()
