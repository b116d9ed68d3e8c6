"""End-to-end test of `//train:samis` on digits, as a user runs it."""

import os
import subprocess

from absl.testing import absltest
import numpy as np

from heldout.scores import score_file
from tests import binaries


def _run(args, cwd):
  return subprocess.run(
      binaries.command("train/samis", "train/samis_main.py") + args,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
      timeout=600, env=binaries.environment(working_directory=cwd))


class SamisEndToEndTest(absltest.TestCase):

  def test_workers_scores_and_agreement(self):
    folder = self.create_tempdir().full_path
    common = ["--dataset=digits", "--folds=2", "--seeds=0:2", "--epochs=2",
              "--output=out/s.npz", "--num_workers=2", "--noprogress"]
    first = _run(common + ["--worker_index=0"], folder)
    self.assertEqual(first.returncode, 0, msg=first.stderr[-3000:])
    # Pairs 0 and 2 of 0..3 are worker 0's: 4 of 8 runs left to worker 1.
    self.assertIn("4 of 8 runs still missing", first.stdout)
    estimates = os.path.join(folder, "est.npz")
    np.savez(estimates, index=np.arange(1257),
             memorization=np.linspace(0.0, 1.0, 1257))
    second = _run(common + ["--worker_index=1", "--memorization=est.npz"],
                  folder)
    self.assertEqual(second.returncode, 0, msg=second.stderr[-3000:])
    paths = {m: os.path.join(folder, "out", "s_{}.npz".format(m[-1]))
             for m in ("samis_l", "samis_p")}
    for method, path in paths.items():
      self.assertIn("wrote {} ({}, 2 seeds x 2 folds)".format(path, method),
                    second.stdout)
      self.assertRegex(second.stdout, r"{} vs memorization: Spearman "
                       r"-?[0-9.]+ \(p=.*\) on 1257 examples".format(method))
      scores = score_file.read_scores(path)
      self.assertEqual(scores.method, method)
      self.assertLen(scores, 1257)
      self.assertTrue((scores.num_runs == 2).all())
      self.assertEqual(scores.args["config"]["name"], "digits_samis")
      self.assertEqual(scores.args["config"]["epochs"], 2)
      self.assertTrue(os.path.exists(path[:-4] + "_vs_memorization_scatter.png"))
    for optimizer in ("sgd", "sam"):
      run = os.path.join(folder, "out", "s.runs", optimizer, "0.5", "3")
      self.assertTrue(os.path.exists(os.path.join(run, "aux_arrays.npz")))
      self.assertTrue(os.path.exists(os.path.join(run, "checkpoints",
                                                  "ckpt-2.index")))

  def test_user_errors_are_one_line(self):
    folder = self.create_tempdir().full_path
    result = _run(["--folds=1", "--output=s.npz"], folder)
    self.assertEqual(result.returncode, 1)
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    self.assertLen(lines, 1, msg=result.stderr)
    self.assertIn("`folds` must be at least 2, got 1", lines[0])
    self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
  absltest.main()
