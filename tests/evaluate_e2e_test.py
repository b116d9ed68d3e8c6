"""End-to-end test of `//heldout:evaluate` on digits: tables, files, resume."""

import os
import signal
import subprocess
import time

from absl.testing import absltest

from tests import binaries

_SMALL = ["--heldout_runs=32", "--seeds=2", "--corruption_seeds=0:2",
          "--pruning_fractions=0.5", "--pruning_seeds=0:2", "--noprogress",
          "--output_dir=out"]


def _command():
  return binaries.command("heldout/evaluate", "heldout/evaluate.py")


class EvaluateEndToEndTest(absltest.TestCase):

  def test_killed_then_resumed(self):
    folder = self.create_tempdir().full_path
    env = binaries.environment(working_directory=folder)
    # Killed (SIGKILL) once the first corruption seed's EL2N is written.
    process = subprocess.Popen(_command() + _SMALL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    seen = []
    deadline = time.time() + 600
    for line in process.stdout:
      seen.append(line)
      if line.startswith("first_seed0: el2n in") or time.time() > deadline:
        break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    self.assertTrue(any(l.startswith("first_seed0: el2n in") for l in seen),
                    "".join(seen)[-2000:])
    result = subprocess.run(_command() + _SMALL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, check=False,
                            timeout=900, env=env)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    out = result.stdout
    # What was finished is read back, not computed again.
    self.assertIn("first_seed0: memorization read back", out)
    self.assertIn("first_seed0: el2n read back", out)
    self.assertIn("first_seed1: memorization in", out)
    for title in ("Mislabeled detection", "Agreement", "Data pruning",
                  "Rare subgroups"):
      self.assertIn("== " + title, out)
    table = out[out.index("== Mislabeled detection"):
                out.index("== Agreement")]
    rows = {line.split()[0]: line for line in table.splitlines()[2:]
            if line.strip() and not line.startswith("(")}
    # Every method is either measured or named as not available.
    for method in ("memorization", "cleanlab", "forgetting_minibatch",
                   "el2n", "grand", "ssft", "fslt", "samis_l", "samis_p",
                   "self_influence"):
      self.assertIn(method, rows)
    # Forgetting ranks the corrupted labels first: more than half of them
    # in its top 20% (random: 20%).
    cells = rows["forgetting_minibatch"].split()
    top20 = float(cells[3].split("±")[0])
    self.assertGreater(top20, 0.5, rows["forgetting_minibatch"])
    self.assertIn("cleanlab find_label_issues: precision", out)
    for name in ("report.txt", "mislabeled_detection.csv", "agreement.csv",
                 "agreement.png", "pruning.csv", "pruning.png",
                 "subgroups.csv"):
      self.assertTrue(os.path.exists(os.path.join(folder, "out", name)), name)
    # Everything done: a third run trains nothing and prints the same tables.
    again = subprocess.run(_command() + _SMALL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, check=False,
                           timeout=600, env=env)
    self.assertEqual(again.returncode, 0, msg=again.stderr[-3000:])
    self.assertNotRegex(again.stdout, r"seed\d: \w+ in \d+s")
    self.assertEqual(again.stdout[again.stdout.index("== Mislabeled"):
                                  again.stdout.index("== Data pruning")],
                     out[out.index("== Mislabeled"):
                         out.index("== Data pruning")])


if __name__ == "__main__":
  absltest.main()
