"""Tests of run claims: exclusive, stale takeover, heartbeat, status."""

import json
import os
import time

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout.data import digits
from heldout.readers import checkpoints
from heldout.readers import layout
from train import claims
from train import heldout_training
from train import configs


def _age(path, seconds):
  then = time.time() - seconds
  os.utime(path, (then, then))


class ClaimsTest(absltest.TestCase):

  def test_exclusive_then_released(self):
    folder = self.create_tempdir().full_path
    a = claims.RunClaims(folder, 0.7, stale_after_s=600, refresh_every_s=30)
    b = claims.RunClaims(folder, 0.7, stale_after_s=600, refresh_every_s=30)
    self.assertTrue(a.try_claim(3))
    self.assertTrue(a.try_claim(3))  # ours already
    self.assertFalse(b.try_claim(3))
    with open(claims.claim_path(folder, 0.7, 3)) as f:
      content = json.load(f)
    self.assertEqual((content["pid"], content["owner"]), (os.getpid(),
                                                          a.owner))
    b.release(3)  # not b's: nothing happens
    self.assertTrue(os.path.exists(claims.claim_path(folder, 0.7, 3)))
    a.release(3)
    self.assertFalse(os.path.exists(claims.claim_path(folder, 0.7, 3)))
    self.assertTrue(b.try_claim(3))
    b.release_all()
    self.assertEqual(os.listdir(os.path.join(folder, "0.7")), [])

  def test_stale_claim_taken_over_once(self):
    folder = self.create_tempdir().full_path
    dead = claims.RunClaims(folder, 0.7, stale_after_s=60, refresh_every_s=1)
    self.assertTrue(dead.try_claim(5))
    dead._stop.set()  # pylint: disable=protected-access  # "killed"
    path = claims.claim_path(folder, 0.7, 5)
    _age(path, 30)
    spare = claims.RunClaims(folder, 0.7, stale_after_s=60,
                             refresh_every_s=1)
    self.assertFalse(spare.try_claim(5))  # 30 s old: alive
    _age(path, 120)
    other = claims.RunClaims(folder, 0.7, stale_after_s=60, refresh_every_s=1)
    self.assertTrue(spare.try_claim(5))
    self.assertFalse(other.try_claim(5))  # fresh again: spare's now
    self.assertFalse(dead.still_ours(5))
    dead.refresh()  # forgets it, does not touch spare's claim
    dead.release(5)
    self.assertTrue(spare.still_ours(5))
    self.assertEqual(sorted(os.listdir(os.path.join(folder, "0.7"))),
                     [".5.claim"])
    spare.release_all()

  def test_heartbeat_keeps_a_claim_fresh(self):
    folder = self.create_tempdir().full_path
    live = claims.RunClaims(folder, 0.7, stale_after_s=2.0,
                            refresh_every_s=0.1)
    self.assertTrue(live.try_claim(1))
    path = claims.claim_path(folder, 0.7, 1)
    _age(path, 100)
    time.sleep(0.5)
    self.assertLess(time.time() - os.path.getmtime(path), 1.0)
    other = claims.RunClaims(folder, 0.7, stale_after_s=2.0,
                             refresh_every_s=0.1)
    self.assertFalse(other.try_claim(1))
    live.release_all()
    with self.assertRaisesRegex(ValueError, "must exceed"):
      claims.RunClaims(folder, 0.7, stale_after_s=1, refresh_every_s=1)

  def test_training_skips_claimed_runs_and_status(self):
    data = digits.load_digits()
    folder = self.create_tempdir().full_path
    config = configs.get_config("digits_small").replace(epochs=1)
    other = claims.RunClaims(folder, 0.7)
    self.assertTrue(other.try_claim(1))
    results = heldout_training.train_heldout(data, config, 0.7, [0, 1, 2],
                                             folder, progress=False)
    self.assertEqual([r.status for r in results],
                     ["trained", heldout_training.ELSEWHERE, "trained"])
    names = sorted(os.listdir(os.path.join(folder, "0.7")))
    self.assertEqual(names, [".1.claim", "0", "2"])  # ours released
    # A stale claim of a killed worker, and runs nobody has.
    _age(claims.claim_path(folder, 0.7, 1), 3600)
    status = claims.experiment_status(folder, range(6), stale_after_s=600)
    s = status[0.7]
    self.assertEqual(s.done, [0, 2])
    self.assertEqual([c.run_id for c in s.stale], [1])
    self.assertEqual(s.claimed, [])
    self.assertEqual(s.missing, [3, 4, 5])
    text = claims.status_text(status)
    self.assertIn("ratio 0.7: 2 done, 0 claimed, 1 stale, 3 missing", text)
    self.assertIn("run 1: stale claim of", text)
    self.assertIn("missing: 3:6", text)
    # A restarted worker takes the stale run over.
    results = heldout_training.train_heldout(
        data, config, 0.7, [0, 1, 2], folder, progress=False,
        claim_options={"stale_after_s": 600})
    self.assertEqual([r.status for r in results],
                     ["skipped", "trained", "skipped"])
    self.assertEqual(sorted(os.listdir(os.path.join(folder, "0.7"))),
                     ["0", "1", "2"])

  def test_publishing_a_run_another_worker_published(self):
    data = digits.load_digits()
    folder = self.create_tempdir().full_path
    config = configs.get_config("digits_small").replace(epochs=1)
    heldout_training.train_heldout(data, config, 0.7, [0], folder,
                                   progress=False)
    final = layout.run_dir(folder, 0.7, 0)
    before = {n: os.path.getmtime(os.path.join(final, n))
              for n in os.listdir(final) if n != "checkpoints"}
    tmp = heldout_training.tmp_run_dir(folder, 0.7, 0)
    os.makedirs(tmp)
    restored = checkpoints.restore_run(final)
    arrays = np.load(layout.aux_arrays_path(final))
    heldout_training.publish_run(
        tmp, final, tf.train.Checkpoint(model=restored.model), 1,
        {k: arrays[k] for k in arrays.files}, len(data.train), len(data.test))
    self.assertFalse(os.path.exists(tmp))
    self.assertEqual(before, {n: os.path.getmtime(os.path.join(final, n))
                              for n in os.listdir(final)
                              if n != "checkpoints"})


if __name__ == "__main__":
  absltest.main()
