"""Tests of train.workers: flags, Kubernetes, Slurm, TF_CONFIG."""

import json

from absl.testing import absltest

from train import workers


class ResolveWorkerTest(absltest.TestCase):

  def test_flags_win(self):
    w = workers.resolve_worker(4, 2, {"SLURM_ARRAY_TASK_ID": "7"})
    self.assertEqual((w.count, w.index), (4, 2))
    self.assertIn("--worker_index", w.source)

  def test_nothing_is_one_worker(self):
    w = workers.resolve_worker(None, None, {})
    self.assertEqual((w.count, w.index), (1, 0))
    self.assertEqual(w.describe(), "worker 0 of 1 (no scheduler: one worker)")

  def test_kubernetes_indexed_job(self):
    w = workers.resolve_worker(16, None, {"JOB_COMPLETION_INDEX": "5"})
    self.assertEqual((w.count, w.index), (16, 5))
    self.assertIn("JOB_COMPLETION_INDEX", w.describe())
    w = workers.resolve_worker(None, None, {"JOB_COMPLETION_INDEX": "5",
                                            "HELDOUT_NUM_WORKERS": "8"})
    self.assertEqual((w.count, w.index), (8, 5))
    with self.assertRaisesRegex(ValueError, "pass --num_workers"):
      workers.resolve_worker(None, None, {"JOB_COMPLETION_INDEX": "5"})
    with self.assertRaisesRegex(ValueError, r"index 5 is not in \[0, 4\)"):
      workers.resolve_worker(4, None, {"JOB_COMPLETION_INDEX": "5"})

  def test_slurm_array(self):
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10",
           "SLURM_ARRAY_TASK_MAX": "13", "SLURM_ARRAY_TASK_COUNT": "4"}
    w = workers.resolve_worker(None, None, env)
    self.assertEqual((w.count, w.index), (4, 2))
    self.assertIn("SLURM_ARRAY_TASK_ID", w.source)
    stepped = dict(env, SLURM_ARRAY_TASK_MAX="16")
    with self.assertRaisesRegex(ValueError, "not consecutive"):
      workers.resolve_worker(None, None, stepped)
    with self.assertRaisesRegex(ValueError, "Slurm array has 4 tasks"):
      workers.resolve_worker(3, None, env)
    with self.assertRaisesRegex(ValueError, "SLURM_ARRAY_TASK_MIN='x'"):
      workers.resolve_worker(None, None, dict(env, SLURM_ARRAY_TASK_MIN="x"))

  def test_tf_config_as_shards(self):
    cluster = {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}
    env = {"TF_CONFIG": json.dumps({"cluster": cluster,
                                    "task": {"type": "worker", "index": 1}})}
    w = workers.resolve_worker(None, None, env, tf_config_shards=True)
    self.assertEqual((w.count, w.index), (3, 2))
    self.assertIn("TF_CONFIG: task worker:1 of 3", w.describe())
    # Not a share unless the binary says so (//train:heldout trains in sync).
    w = workers.resolve_worker(None, None, env)
    self.assertEqual((w.count, w.index), (1, 0))
    # The scheduler's variables and the flags come first.
    w = workers.resolve_worker(None, None, dict(env, SLURM_ARRAY_TASK_ID="1",
                                                SLURM_ARRAY_TASK_MIN="0",
                                                SLURM_ARRAY_TASK_COUNT="2"),
                               tf_config_shards=True)
    self.assertEqual((w.count, w.index), (2, 1))
    with self.assertRaisesRegex(ValueError, "--num_workers=4 but TF_CONFIG"):
      workers.resolve_worker(4, None, env, tf_config_shards=True)
    bad = {"TF_CONFIG": json.dumps({"cluster": cluster,
                                    "task": {"type": "worker", "index": 5}})}
    with self.assertRaisesRegex(ValueError, "worker:5 is not one of"):
      workers.resolve_worker(None, None, bad, tf_config_shards=True)
    with self.assertRaisesRegex(ValueError, "TF_CONFIG must be JSON"):
      workers.resolve_worker(None, None, {"TF_CONFIG": "{"},
                             tf_config_shards=True)


if __name__ == "__main__":
  absltest.main()
