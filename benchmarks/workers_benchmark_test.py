"""The workers benchmark at toy size: its checks and both ways of publishing."""

import os

from absl.testing import absltest

from benchmarks import workers_benchmark
from heldout.readers import experiment


class WorkersBenchmarkTest(absltest.TestCase):

  def test_claims_and_both_ways_of_publishing(self):
    root = self.create_tempdir().full_path
    self.assertGreater(workers_benchmark.claim_seconds_per_run(root, 5), 0)
    self.assertEqual(os.listdir(os.path.join(root, "claims", "0.7")), [])
    seconds = workers_benchmark.publish_seconds_per_run(root, 2)
    self.assertCountEqual(seconds, ["rename", "marker"])
    # The same runs each way, each checking out against its manifest.
    for name in ("rename", "marker"):
      folder = os.path.join(root, "publish-" + name)
      self.assertEqual(workers_benchmark.check_experiment(folder, 2), [])
    self.assertEqual(
        [r.run_id for r in experiment.scan_experiment(
            os.path.join(root, "publish-marker")).complete_runs(0.7)], [0, 1])

  def test_check_experiment_names_what_is_wrong(self):
    root = self.create_tempdir().full_path
    workers_benchmark.publish_seconds_per_run(root, 2)
    folder = os.path.join(root, "publish-marker")
    self.assertEqual(workers_benchmark.check_experiment(folder, 3),
                     ["{} holds 2 runs (want the runs 0..2 only)".format(
                         os.path.join(folder, "0.7")),
                      "2 complete runs of 3"])
    os.makedirs(os.path.join(folder, "0.7", ".1.claim"))
    self.assertIn("['.1.claim']",
                  workers_benchmark.check_experiment(folder, 2)[0])


if __name__ == "__main__":
  absltest.main()
