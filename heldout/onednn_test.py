"""Tests for heldout.onednn."""

import os
import subprocess
import sys

from absl.testing import absltest

from heldout import onednn


def _child_env(**extra):
  env = {k: v for k, v in os.environ.items() if k != onednn.ENV}
  env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
  env.update(extra)
  return env


class PreferOnednnTest(absltest.TestCase):

  def test_sets_the_variable_unless_the_user_did(self):
    env = {}
    self.assertTrue(onednn.prefer_onednn(env))
    self.assertEqual(env, {onednn.ENV: "1"})
    env = {onednn.ENV: "0"}
    self.assertFalse(onednn.prefer_onednn(env))
    self.assertEqual(env, {onednn.ENV: "0"})

  def test_tensorflow_loads_with_onednn_on(self):
    # In a fresh process: the variable must be set before TensorFlow loads,
    # which then reports its oneDNN kernels on, on any x86 CPU.
    code = ("from heldout import onednn; assert onednn.prefer_onednn(); "
            "from tensorflow.python.util import _pywrap_util_port as p; "
            "print(p.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], env=_child_env(),
                         capture_output=True, text=True, check=True)
    self.assertEqual(out.stdout.strip().splitlines()[-1], "True")
    code = code.replace("assert onednn", "assert not onednn")
    out = subprocess.run([sys.executable, "-c", code],
                         env=_child_env(**{onednn.ENV: "0"}),
                         capture_output=True, text=True, check=True)
    self.assertEqual(out.stdout.strip().splitlines()[-1], "False")

  def test_too_late_once_tensorflow_is_loaded(self):
    code = ("import tensorflow; from heldout import onednn; "
            "print(onednn.prefer_onednn())")
    out = subprocess.run([sys.executable, "-c", code], env=_child_env(),
                         capture_output=True, text=True, check=True)
    self.assertEqual(out.stdout.strip().splitlines()[-1], "False")


if __name__ == "__main__":
  absltest.main()
