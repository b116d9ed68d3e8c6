"""End-to-end test of `//train:scores` on digits, as a user runs it."""

import os
import subprocess

from absl.testing import absltest

from heldout.scores import score_file
from tests import binaries


def _run(args, cwd):
  return subprocess.run(
      binaries.command("train/scores", "train/scores_main.py") + args,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
      timeout=600, env=binaries.environment(working_directory=cwd))


class ScoresEndToEndTest(absltest.TestCase):

  def test_forgetting_and_grand(self):
    folder = self.create_tempdir().full_path
    result = _run(["--method=forgetting", "--dataset=digits", "--seeds=0:2",
                   "--epochs=2", "--output=out/f.npz", "--noprogress"], folder)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    path = os.path.join(folder, "out", "f.npz")
    self.assertIn("wrote " + path, result.stdout)
    scores = score_file.read_scores(path)
    self.assertEqual(scores.method, "forgetting_minibatch")
    self.assertLen(scores, 1257)
    self.assertTrue((scores.num_runs == 2).all())
    self.assertEqual(scores.args["config"]["epochs"], 2)
    self.assertTrue(os.path.exists(os.path.join(folder, "out", "f.csv")))
    result = _run(["--method=grand", "--dataset=digits", "--seeds=0:2",
                   "--score_epochs=1", "--output=out/g.npz", "--noprogress"],
                  folder)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    grand = score_file.read_scores(os.path.join(folder, "out", "g.npz"))
    self.assertEqual(grand.args["score_epoch"], 1)
    self.assertTrue(os.path.isdir(os.path.join(
        folder, "out", "g.runs", "epoch_1", "0", "checkpoints")))

  def test_seeds_split_across_two_workers(self):
    folder = self.create_tempdir().full_path
    common = ["--method=forgetting", "--dataset=digits", "--seeds=0:3",
              "--config=digits_data_diet", "--epochs=2", "--num_workers=2",
              "--noprogress"]
    path = os.path.join(folder, "out", "w.npz")
    first = _run(common + ["--worker_index=0", "--output=out/w.npz"], folder)
    self.assertEqual(first.returncode, 0, msg=first.stderr[-3000:])
    self.assertIn("1 of 3 seeds still missing", first.stdout)
    self.assertFalse(os.path.exists(path))
    second = _run(common + ["--worker_index=1", "--output=out/w.npz"], folder)
    self.assertEqual(second.returncode, 0, msg=second.stderr[-3000:])
    self.assertIn("wrote " + path, second.stdout)
    shared = score_file.read_scores(path)
    self.assertTrue((shared.num_runs == 3).all())
    self.assertEqual(shared.args["seeds"], [0, 1, 2])
    self.assertEqual(shared.args["config"]["name"], "digits_data_diet")
    # One job over all three seeds gives the same file.
    alone = _run(common[:-2] + ["--noprogress", "--output=one.npz"], folder)
    self.assertEqual(alone.returncode, 0, msg=alone.stderr[-3000:])
    one = score_file.read_scores(os.path.join(folder, "one.npz"))
    self.assertEqual(list(one.values), list(shared.values))
    # Running a worker again once all are finished writes the file again.
    os.remove(path)
    again = _run(common + ["--worker_index=0", "--output=out/w.npz"], folder)
    self.assertEqual(again.returncode, 0, msg=again.stderr[-3000:])
    self.assertIn("wrote " + path, again.stdout)

  def test_user_errors_are_one_line(self):
    folder = self.create_tempdir().full_path
    result = _run(["--method=el2n", "--output=e.npz"], folder)
    self.assertEqual(result.returncode, 1)
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    self.assertLen(lines, 1, msg=result.stderr)
    self.assertIn("`score_epochs` must be epochs >= 0 for el2n", lines[0])
    self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
  absltest.main()
