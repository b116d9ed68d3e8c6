"""The cluster examples in deploy/ parse and run //train:heldout's flags."""

import json
import os
import re

from absl import flags
from absl.testing import absltest

from train import heldout_main  # pylint: disable=unused-import
from train import subsets
from train import workers

_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def _read(*parts):
  with open(os.path.join(_ROOT, "deploy", *parts)) as f:
    return f.read()


def _check_flags(test, args):
  """Every `--name[=value]` is a flag of //train:heldout; returns them."""
  test.assertEqual(args[:4], ["bazel", "run", "//train:heldout", "--"])
  parsed = {}
  for arg in args[4:]:
    match = re.fullmatch(r"--(no)?([a-z_]+)(=(.*))?", arg)
    test.assertIsNotNone(match, arg)
    name = match.group(2)
    test.assertIn(name, flags.FLAGS, "{} is not a flag of //train:heldout"
                  .format(arg))
    parsed[name] = match.group(4)
  test.assertIn("output_dir", parsed)
  subsets.parse_runs(parsed["runs"])
  return parsed


class DeployTest(absltest.TestCase):

  def test_kubernetes_indexed_job(self):
    text = _read("kubernetes", "heldout-indexed-job.yaml")
    self.assertRegex(text, r"\n  completionMode: Indexed\n")
    completions = int(re.search(r"\n  completions: (\d+)\n", text).group(1))
    command = json.loads(re.search(r"\n +command: (\[.*\])\n", text).group(1))
    parsed = _check_flags(self, command)
    self.assertEqual(int(parsed["num_workers"]), completions)
    # Pod 3 of the Job: worker 3 of 16, its runs.
    worker = workers.resolve_worker(int(parsed["num_workers"]), None,
                                    {"JOB_COMPLETION_INDEX": "3"})
    self.assertEqual((worker.count, worker.index), (completions, 3))
    runs = subsets.select_runs(subsets.parse_runs(parsed["runs"]),
                               worker.count, worker.index)
    self.assertEqual(runs[:2], [3, 3 + completions])

  def test_slurm_array(self):
    text = _read("slurm", "heldout-array.sbatch")
    first, last = map(int, re.search(r"\n#SBATCH --array=(\d+)-(\d+)\n",
                                     text).groups())
    line = [l for l in text.splitlines() if l.startswith("bazel run")]
    self.assertLen(line, 1)
    parsed = _check_flags(self, line[0].split())
    self.assertNotIn("num_workers", parsed)  # from Slurm
    worker = workers.resolve_worker(None, None, {
        "SLURM_ARRAY_TASK_ID": str(first + 5),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(last),
        "SLURM_ARRAY_TASK_COUNT": str(last - first + 1)})
    self.assertEqual((worker.count, worker.index), (last - first + 1, 5))


if __name__ == "__main__":
  absltest.main()
