"""Tests of the CPU/GPU TensorFlow selection the virtualenv rule runs before pip."""

import os
import subprocess
import sys

from absl.testing import absltest
from absl.testing import parameterized

import select_requirements

_REQUIREMENTS = """\
# Python dependencies.
absl-py==2.5.1
dm-sonnet==2.0.2
numpy==2.4.6
tensorflow-cpu==2.21.0
tensorflow-datasets==4.9.10
tqdm==4.70.1
"""


class ParseSwitchTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("unset", None, False),
      ("empty", "", False),
      ("zero", "0", False),
      ("one", "1", True),
      ("one_with_blanks", " 1\n", True))
  def test_accepted_values(self, value, expected):
    self.assertIs(select_requirements.parse_switch(value), expected)

  @parameterized.named_parameters(
      ("yes", "yes"), ("true", "true"), ("two", "2"), ("gpu", "gpu"), ("cuda", "cuda"))
  def test_bad_values_are_refused(self, value):
    with self.assertRaisesRegex(select_requirements.SelectionError,
                                r"HELDOUT_GPU='{}' is not understood: use HELDOUT_GPU=1".format(
                                    value)):
      select_requirements.parse_switch(value)


class SelectRequirementsTest(parameterized.TestCase):

  def test_default_keeps_cpu_and_everything_else(self):
    self.assertEqual(select_requirements.select_requirements(_REQUIREMENTS, gpu=False),
                     _REQUIREMENTS)

  def test_switch_gives_and_cuda_with_the_same_pin(self):
    selected = select_requirements.select_requirements(_REQUIREMENTS, gpu=True)
    self.assertEqual(selected,
                     _REQUIREMENTS.replace("tensorflow-cpu==2.21.0",
                                           "tensorflow[and-cuda]==2.21.0"))
    self.assertNotIn("tensorflow-cpu", selected)
    # The other pins, TensorFlow Datasets included, are kept as they are.
    self.assertIn("tensorflow-datasets==4.9.10\n", selected)

  @parameterized.named_parameters(
      ("spaces", "tensorflow-cpu == 2.21.0", "tensorflow[and-cuda]==2.21.0"),
      ("marker", "tensorflow-cpu==2.21.0 ; python_version >= '3.10'",
       "tensorflow[and-cuda]==2.21.0 ; python_version >= '3.10'"),
      ("comment", "tensorflow-cpu==2.21.0  # CPU build",
       "tensorflow[and-cuda]==2.21.0 # CPU build"),
      ("underscore_upper", "TensorFlow_CPU==2.20.0", "tensorflow[and-cuda]==2.20.0"))
  def test_line_forms(self, line, expected):
    selected = select_requirements.select_requirements("absl-py==2.5.1\n" + line + "\n",
                                                       gpu=True)
    self.assertEqual(selected, "absl-py==2.5.1\n" + expected + "\n")

  def test_the_repository_requirements_have_one_pin(self):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "requirements.txt")
    if not os.path.exists(path):
      self.skipTest("requirements.txt is not among this test's files")
    with open(path) as f:
      text = f.read()
    selected = select_requirements.select_requirements(text, gpu=True)
    cpu = [l for l in text.splitlines() if l.startswith("tensorflow-cpu==")]
    gpu = [l for l in selected.splitlines() if l.startswith("tensorflow[and-cuda]==")]
    self.assertLen(cpu, 1)
    self.assertEqual(gpu, [cpu[0].replace("tensorflow-cpu", "tensorflow[and-cuda]")])

  @parameterized.named_parameters(
      ("missing", "absl-py==2.5.1\ntensorflow==2.21.0\n", "found none"),
      ("unpinned", "tensorflow-cpu\n", "these tensorflow-cpu lines: ['tensorflow-cpu']"),
      ("lower_bound", "tensorflow-cpu>=2.21\n", "tensorflow-cpu>=2.21"),
      ("twice", "tensorflow-cpu==2.21.0\ntensorflow-cpu==2.20.0\n", "2.20.0"))
  def test_no_single_pin_is_a_clear_error(self, text, fragment):
    with self.assertRaisesRegex(select_requirements.SelectionError,
                                r"pin TensorFlow as `tensorflow-cpu==VERSION`") as raised:
      select_requirements.select_requirements(text, gpu=True)
    self.assertIn(fragment, str(raised.exception))

  def test_missing_pin_is_fine_for_cpu(self):
    text = "absl-py==2.5.1\n"
    self.assertEqual(select_requirements.select_requirements(text, gpu=False), text)


class CommandLineTest(parameterized.TestCase):
  """The script as venv.bzl runs it: `python3 select_requirements.py IN OUT [VALUE]`."""

  def _run(self, *value):
    folder = self.create_tempdir().full_path
    requirements = os.path.join(folder, "requirements.txt")
    output = os.path.join(folder, "requirements.effective.txt")
    with open(requirements, "w") as f:
      f.write(_REQUIREMENTS)
    result = subprocess.run(
        [sys.executable, select_requirements.__file__, requirements, output] + list(value),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    written = None
    if os.path.exists(output):
      with open(output) as f:
        written = f.read()
    return result, written

  @parameterized.named_parameters(("unset",), ("zero", "0"), ("empty", ""))
  def test_cpu(self, *value):
    result, written = self._run(*value)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertEqual(written, _REQUIREMENTS)
    self.assertEqual(result.stdout.strip(), "TensorFlow build: CPU")

  def test_gpu(self):
    result, written = self._run("1")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertIn("tensorflow[and-cuda]==2.21.0\n", written)
    self.assertNotIn("tensorflow-cpu", written)
    self.assertEqual(result.stdout.strip(), "TensorFlow build: GPU (tensorflow[and-cuda])")

  def test_bad_value_fails_with_one_line_and_writes_nothing(self):
    result, written = self._run("yes")
    self.assertEqual(result.returncode, 1)
    self.assertIsNone(written)
    self.assertEqual(result.stderr.splitlines(), [
        "error: HELDOUT_GPU='yes' is not understood: use HELDOUT_GPU=1 for the GPU "
        "build (tensorflow[and-cuda]), or leave it unset (or 0) for the CPU build"])


class TestEnvironmentTest(absltest.TestCase):

  def test_bazel_tests_hide_gpus(self):
    # .bazelrc passes --test_env=CUDA_VISIBLE_DEVICES= so that tests run on the
    # CPU, and alike, even in a GPU build on a machine with GPUs.
    if "TEST_SRCDIR" not in os.environ:
      self.skipTest("not run by `bazel test`")
    self.assertEqual(os.environ.get("CUDA_VISIBLE_DEVICES"), "")


if __name__ == "__main__":
  absltest.main()
