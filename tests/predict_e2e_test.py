"""End-to-end: the built `//heldout:predict` binary on the golden run."""

import os
import subprocess

from absl.testing import absltest

import numpy as np

from heldout import tolerance

from tests import binaries

REPO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         os.pardir)
TESTDATA = os.path.join(REPO_ROOT, "heldout", "testdata")
GOLDEN_RUN = os.path.join(TESTDATA, "golden_inception_run")
GOLDEN_LOGITS = os.path.join(TESTDATA, "golden_inception_logits.npz")


def _predict_command():
  return binaries.command("heldout/predict", "heldout/predict.py")


class PredictBinaryTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.workdir = self.create_tempdir().full_path
    with np.load(GOLDEN_LOGITS) as golden:
      self.images = golden["images_uint8"]
      self.logits = golden["logits"]
    np.savez(os.path.join(self.workdir, "in.npz"), images_uint8=self.images)

  def _run(self, *args):
    env = binaries.environment(self.workdir)
    return subprocess.run(_predict_command() + list(args), env=env,
                          capture_output=True, text=True, timeout=300,
                          check=False)

  def _assert_one_error_line(self, result, *fragments):
    self.assertEqual(result.returncode, 1, result.stderr)
    self.assertNotIn("Traceback", result.stderr)
    error_lines = [l for l in result.stderr.splitlines()
                   if l.startswith("error: ")]
    self.assertLen(error_lines, 1, result.stderr)
    for fragment in fragments:
      self.assertIn(fragment, error_lines[0])
    self.assertFalse(os.path.exists(os.path.join(self.workdir, "out.npz")))
    self.assertEqual(
        [n for n in os.listdir(self.workdir) if n != "in.npz"], [])

  def test_golden_logits_with_relative_paths(self):
    result = self._run(f"--model_dir={GOLDEN_RUN}", "--images=in.npz",
                       "--output=out.npz", "--batch_size=4")
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn("restored small_inception (inferred, num_classes=10), "
                  "epoch 200", result.stderr)
    with np.load(os.path.join(self.workdir, "out.npz")) as out:
      self.assertEqual(sorted(out.files), ["logits", "predictions"])
      self.assertEqual(out["logits"].dtype, np.float32)
      self.assertEqual(out["predictions"].dtype, np.int64)
      # Written on another CPU, whose kernels sum in other orders.
      tolerance.assert_close(out["logits"], self.logits, tolerance.FORWARD)
      np.testing.assert_array_equal(out["predictions"],
                                    self.logits.argmax(axis=1))

  def test_forced_wrong_architecture(self):
    result = self._run(f"--model_dir={GOLDEN_RUN}", "--images=in.npz",
                       "--output=out.npz", "--arch=resnet50")
    self._assert_one_error_line(
        result, "does not fit resnet50 (num_classes=10)",
        "module variables missing from the checkpoint",
        "173 checkpoint variables the module lacks",
        "it looks like small_inception (num_classes=10, large_inputs=False)")

  def test_missing_images_key(self):
    np.savez(os.path.join(self.workdir, "in.npz"), pixels=self.images)
    result = self._run(f"--model_dir={GOLDEN_RUN}", "--images=in.npz",
                       "--output=out.npz")
    self._assert_one_error_line(result, "in.npz", "found keys ['pixels']")

  def test_missing_flags_and_arguments(self):
    result = self._run(f"--model_dir={GOLDEN_RUN}", "--images=in.npz")
    self._assert_one_error_line(result, "error: --output is required")
    result = self._run(f"--model_dir={GOLDEN_RUN}", "--images=in.npz",
                       "--output=out.npz", "extra")
    self._assert_one_error_line(result, "unexpected arguments: extra")


if __name__ == "__main__":
  absltest.main()
