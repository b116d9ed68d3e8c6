"""End-to-end: `bazel run //heldout:demo` on the bundled digits, made small.

Runs the built binary as a user would (relative --output_dir against
BUILD_WORKING_DIRECTORY), checks what it prints and writes, that the estimates
it saved match the definitions recomputed from the runs it wrote, and that a
second start resumes (skips every finished run).
"""

import os
import re
import subprocess

from absl.testing import absltest

import numpy as np

from heldout.readers import aux_arrays
from heldout.readers import experiment
from tests import binaries

ARGS = ("--output_dir=out", "--runs=48", "--cscore_ratios=0.5",
        "--cscore_runs=16", "--k=16", "--show=3")


def _demo_command():
  return binaries.command("heldout/demo", "demo.py")


class DemoTest(absltest.TestCase):

  def _run(self, workdir, *args):
    env = binaries.environment(workdir)
    result = subprocess.run(_demo_command() + list(args), env=env,
                            capture_output=True, text=True, timeout=600,
                            check=False)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return result.stdout

  def test_demo_pipeline_and_resume(self):
    workdir = self.create_tempdir().full_path
    out = self._run(workdir, *ARGS)
    root = os.path.join(workdir, "out")
    self.assertIn("digits: 1257 training and 540 test examples", out)
    self.assertIn("ratio 0.7: 48 runs (48 trained now, 0 already finished)", out)
    self.assertIn("ratio 0.5: 16 runs (16 trained now", out)
    self.assertRegex(out, r"\n540 out of 540 predictions match\n")
    for name in ("Most memorized training examples",
                 "Strongest influence pairs"):
      self.assertIn(name, out)
    for name in ("influence_examples.png", "memorization_histogram.png",
                 "most_memorized.png", "estimates.npz", "estimates.csv"):
      path = os.path.join(root, name)
      self.assertTrue(os.path.exists(path), path)
      self.assertIn(os.path.abspath(path), out)

    # The saved estimates follow the definitions, recomputed here from the
    # runs on disk with a plain loop over runs.
    found = experiment.scan_experiment(os.path.join(root, "experiment"))
    self.assertEqual(found.ratios, [0.5, 0.7])
    runs = [aux_arrays.read_aux_arrays(r.aux_path)
            for r in found.complete_runs(0.7)]
    self.assertLen(runs, 48)
    mask = np.stack([r.subset_mask() for r in runs])
    correct = np.stack([r.correctness_on_train_set() for r in runs])
    test_correct = np.stack([r.correctness_on_test_set() for r in runs])
    with np.load(os.path.join(root, "estimates.npz")) as est:
      for i in range(0, 1257, 97):
        inn, out_ = correct[mask[:, i], i], correct[~mask[:, i], i]
        expected = (inn.mean() - out_.mean() if len(inn) and len(out_)
                    else np.nan)
        np.testing.assert_allclose(est["memorization"][i], expected,
                                   atol=1e-6)
        for j in (0, 100, 539):
          inn = test_correct[mask[:, i], j]
          out_ = test_correct[~mask[:, i], j]
          expected = (inn.mean() - out_.mean() if len(inn) and len(out_)
                      else np.nan)
          np.testing.assert_allclose(est["influence"][j, i], expected,
                                     atol=1e-6)
      self.assertEqual(est["influence"].shape, (540, 1257))
      np.testing.assert_array_equal(est["ratios"], [0.5, 0.7])

    # A second start finds every run finished and trains nothing.
    again = self._run(workdir, *ARGS)
    self.assertIn("ratio 0.7: 48 runs (0 trained now, 48 already finished)",
                  again)
    self.assertRegex(again, r"\n540 out of 540 predictions match\n")


if __name__ == "__main__":
  absltest.main()
