"""Three //train:heldout workers on overlapping ranges, one killed mid-run."""

import glob
import os
import signal
import subprocess
import time

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout.readers import layout
from tests import binaries

_COMMON = ["--dataset=digits", "--config=digits_small", "--epochs=3",
           "--noprogress"]


def _command(folder, runs, extra=()):
  return (binaries.command("train/heldout", "train/heldout_main.py") +
          _COMMON + ["--runs=" + runs, "--output_dir=" + folder] + list(extra))


def _tensors(run):
  reader = tf.train.load_checkpoint(layout.find_checkpoint_prefix(run))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


class ClaimsEndToEndTest(absltest.TestCase):

  def test_overlapping_workers_one_killed(self):
    root = self.create_tempdir().full_path
    env = binaries.environment(working_directory=root)
    single = os.path.join(root, "single")
    done = subprocess.run(_command(single, "0:8"), env=env, timeout=600,
                          capture_output=True, text=True, check=False)
    self.assertEqual(done.returncode, 0, done.stderr[-3000:])

    shared = os.path.join(root, "shared")
    # Long enough that the two live workers finish while the killed one's
    # claim is still fresh (they skip its run), short for the test.
    stale = ["--claim_stale_after=20"]
    workers = [subprocess.Popen(_command(shared, runs, stale), env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for runs in ("0:5", "3:8", "0:8")]
    # Kill the third once it holds a claim: its run is left mid-training.
    victim = workers[2]
    deadline = time.time() + 300
    held = None
    while held is None and time.time() < deadline:
      for path in glob.glob(os.path.join(shared, "0.7", ".*.claim")):
        try:
          with open(path) as f:
            if '"pid": {}'.format(victim.pid) in f.read():
              held = path
        except FileNotFoundError:
          pass
      time.sleep(0.05)
    self.assertIsNotNone(held, "the third worker never claimed a run")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for w in workers[:2]:
      out, err = w.communicate(timeout=600)
      self.assertEqual(w.returncode, 0, err[-3000:])
    # The killed worker's run is claimed by nobody alive: the status shows
    # it claimed, then stale once the claim has aged, and a restarted
    # worker takes it over.
    # (Asked with a long staleness: on a loaded machine the live workers may
    # have taken longer than --claim_stale_after=20 s to finish.)
    status = subprocess.run(
        _command(shared, "0:8", ["--claim_stale_after=3600", "--status"]),
        env=env, timeout=300, capture_output=True, text=True, check=False)
    self.assertEqual(status.returncode, 0, status.stderr[-3000:])
    self.assertIn("ratio 0.7: 7 done, 1 claimed, 0 stale, 0 missing",
                  status.stdout)
    self.assertRegex(status.stdout, r"claimed by [^ ]+:{} since".format(
        victim.pid))
    while time.time() - os.path.getmtime(held) < 21:
      time.sleep(0.5)
    status = subprocess.run(_command(shared, "0:8", stale + ["--status"]),
                            env=env, timeout=300, capture_output=True,
                            text=True, check=False)
    self.assertIn("ratio 0.7: 7 done, 0 claimed, 1 stale, 0 missing",
                  status.stdout)
    restart = subprocess.run(_command(shared, "0:8", stale), env=env,
                             timeout=600, capture_output=True, text=True,
                             check=False)
    self.assertEqual(restart.returncode, 0, restart.stderr[-3000:])
    self.assertIn("1 trained", restart.stdout + restart.stderr)

    # Every run once, no claim or temporary folder left, and every run
    # byte for byte the single process's.
    self.assertEqual(sorted(os.listdir(os.path.join(shared, "0.7"))),
                     [str(r) for r in range(8)])
    for r in range(8):
      ours = _tensors(layout.run_dir(shared, 0.7, r))
      ref = _tensors(layout.run_dir(single, 0.7, r))
      self.assertEqual(sorted(ours), sorted(ref))
      for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
      with open(layout.aux_arrays_path(layout.run_dir(shared, 0.7, r)),
                "rb") as f, open(layout.aux_arrays_path(
                    layout.run_dir(single, 0.7, r)), "rb") as g:
        self.assertEqual(f.read(), g.read(), r)
    status = subprocess.run(_command(shared, "0:8", ["--status"]), env=env,
                            timeout=300, capture_output=True, text=True,
                            check=False)
    self.assertIn("ratio 0.7: 8 done, 0 claimed, 0 stale, 0 missing",
                  status.stdout)


if __name__ == "__main__":
  absltest.main()
