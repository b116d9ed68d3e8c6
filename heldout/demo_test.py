"""Tests for the demo's choices that the end-to-end test does not reach."""

import contextlib
import io

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver

from heldout import demo

FLAGS = flags.FLAGS


class DemoTest(absltest.TestCase):

  def test_config_follows_dataset_and_arch(self):
    self.assertEqual(demo._demo_config("digits", "mlp").name, "digits")
    self.assertEqual(demo._demo_config("digits", "small_cnn").name,
                     "digits_cnn")
    self.assertEqual(demo._demo_config("mnist", "mlp").name, "mnist")
    self.assertEqual(demo._demo_config("npz:/x.npz", "mlp").name, "digits")

  def test_cifar_is_refused_with_directions(self):
    with self.assertRaisesRegex(ValueError, "//train:heldout.*--model_dir"):
      demo._demo_config("cifar10:3.0.2", "mlp")

  def test_model_dir_needs_dataset(self):
    FLAGS(["demo"])
    err = io.StringIO()
    with flagsaver.flagsaver(model_dir="/nonexistent/run", dataset=None):
      with contextlib.redirect_stderr(err):
        self.assertEqual(demo.main(["demo"]), 1)
    self.assertRegex(err.getvalue(),
                     r"^error: --model_dir needs the dataset .*--dataset="
                     r"cifar10:3.0.2.*\n$")


if __name__ == "__main__":
  absltest.main()
