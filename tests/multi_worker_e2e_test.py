"""End to end: `//train:heldout` as two worker processes, as clusters start it.

Two processes of the built binary on 127.0.0.1, each with `TF_CONFIG` naming
both workers and its own task, train one model per run together
(`train.multi_worker`). What they write must be the run one process writes
with the same flags (the same global batch; the one-process run is made
here, in-process, by the library call the binary makes): the same checkpoint
keys, weights within float32 rounding, the same aux_arrays. Only the chief
writes: worker 1 gets its own, never-created `--output_dir`. The run resumes
from a progress checkpoint that only the chief's folder holds. And every
worker's training callbacks see what one process's see: each global batch
whole, in order (`tests/multi_worker_callbacks.py`).
"""

import glob
import json
import os
import socket
import subprocess
import time

from absl import logging
from absl.testing import absltest

import numpy as np
import tensorflow as tf

from heldout.data import digits
from heldout.models import registry
from heldout.readers import layout
from tests import binaries
from tests import multi_worker_callbacks
from train import configs
from train import heldout_training
from train import loop
from train import subsets

_FLAGS = ["--dataset=digits", "--config=digits_small", "--subset_ratio=0.7",
          "--runs=0:1", "--progress=false"]
_TIMEOUT_S = 150


def _command(*flags):
  return (binaries.command("train/heldout", "train/heldout_main.py") +
          _FLAGS + list(flags))


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _checkpoint(run_dir):
  prefix, = glob.glob(os.path.join(layout.checkpoints_dir(run_dir),
                                   "ckpt-*.index"))
  reader = tf.train.load_checkpoint(prefix[:-len(".index")])
  return {k: reader.get_tensor(k)
          for k in reader.get_variable_to_shape_map()
          if not k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


class MultiWorkerE2eTest(absltest.TestCase):

  def _run_workers(self, commands):
    """Starts one command per worker as workers 0, 1, ...; waits for all."""
    addresses = ["127.0.0.1:{}".format(p) for p in _free_ports(len(commands))]
    procs = []
    try:
      for i, command in enumerate(commands):
        env = binaries.environment()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                       "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(
            command, env=env, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE))
      deadline = time.time() + _TIMEOUT_S
      outputs = [p.communicate(timeout=max(1, deadline - time.time()))
                 for p in procs]
    finally:
      for p in procs:  # a worker left waiting on a collective, or timed out
        if p.poll() is None:
          p.kill()
          p.communicate()
    for i, (p, (out, err)) in enumerate(zip(procs, outputs)):
      self.assertEqual(p.returncode, 0, "worker {}: {}".format(i, err[-3000:]))
    return outputs

  def _plant_progress(self, data, output_dir, run_id, epochs_done):
    """The progress checkpoint an interrupted one-process job leaves behind."""
    config = configs.get_config("digits_small")
    trainer = loop.Trainer(
        lambda: registry.build_model(config.arch, 10, **config.arch_kwargs),
        data.image_shape, config, strategy=tf.distribute.get_strategy())
    seed = subsets.run_seed(0.7, run_id)
    trainer.reset(seed)
    trainer.fit(data.train, subsets.draw_subset(len(data.train), 0.7, run_id),
                seed, epochs=epochs_done)
    tmp = heldout_training.tmp_run_dir(output_dir, 0.7, run_id)
    tf.train.CheckpointManager(
        trainer.progress_checkpoint(),
        os.path.join(tmp, heldout_training.PROGRESS_DIRNAME),
        max_to_keep=1).save(checkpoint_number=epochs_done)

  def test_two_workers_write_the_one_process_run(self):
    base = self.create_tempdir().full_path
    single, chief, other = (os.path.join(base, d)
                            for d in ("single", "chief", "worker1"))
    started = time.time()
    data = digits.load_digits()
    # What `//train:heldout` with these flags runs in one process.
    results = heldout_training.train_heldout(
        data, configs.get_config("digits_small"), 0.7, [0], single,
        strategy=tf.distribute.get_strategy(), progress=False)
    self.assertEqual([r.status for r in results], ["trained"])
    # The run was interrupted after 2 of 5 epochs; only the chief has that.
    # (Training from the start is compared in the callbacks' test.)
    self._plant_progress(data, chief, run_id=0, epochs_done=2)
    logging.info("one process: %.1fs", time.time() - started)
    started = time.time()
    (out0, err0), (out1, _) = self._run_workers(
        [_command("--output_dir=" + d) for d in (chief, other)])
    logging.info("two workers: %.1fs", time.time() - started)
    self.assertIn("multi-worker training (TF_CONFIG): task worker:0 of 2",
                  err0)
    # Worker 1 resumed too: it took the chief's decision and state.
    for out in (out0, out1):
      self.assertIn("1 runs: 1 resumed", out)
    self.assertFalse(os.path.exists(other))
    self.assertEqual(os.listdir(os.path.join(chief, "0.7")), ["0"])

    single_run = layout.run_dir(single, 0.7, 0)
    chief_run = layout.run_dir(chief, 0.7, 0)
    want, got = _checkpoint(single_run), _checkpoint(chief_run)
    self.assertEqual(sorted(got), sorted(want))
    logging.info("largest weight difference %.3g", max(
        np.max(np.abs(got[k] - v), initial=0) for k, v in want.items()))
    for key, value in want.items():
      # Two workers each sum half the batch's gradients and all-reduce the
      # halves; one process sums the whole batch in another order. float32
      # rounding differs (~1e-7 relative per step), so compare relative to
      # the variable's magnitude, far below what a wrong batch, order or
      # update (~1e-2) would give.
      atol = 1e-5 * max(1.0, float(np.max(np.abs(value), initial=0)))
      np.testing.assert_allclose(got[key], value, rtol=0, atol=atol,
                                 err_msg=key)
    with np.load(layout.aux_arrays_path(single_run)) as a, np.load(
        layout.aux_arrays_path(chief_run)) as b:
      self.assertEqual(sorted(a.files), sorted(b.files))
      for key in a.files:
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)

  def test_callbacks_see_the_one_process_batches(self):
    base = self.create_tempdir().full_path
    multi_worker_callbacks.record(os.path.join(base, "single.npz"),
                                  tf.distribute.get_strategy())
    self._run_workers([
        binaries.command("tests/multi_worker_callbacks",
                         "tests/multi_worker_callbacks.py") +
        ["--output=" + os.path.join(base, "worker{}.npz".format(i))]
        for i in range(2)])
    with np.load(os.path.join(base, "single.npz")) as f:
      want = dict(f)
    self.assertEqual(list(want["size"]), [32, 32, 32, 1] * 2)
    for i in range(2):
      with np.load(os.path.join(base, "worker{}.npz".format(i))) as f:
        got = dict(f)
      self.assertEqual(got["replicas"], 2)
      for key in ("step", "size", "index", "correct"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
      # Float32 rounding of another summation order, as above.
      for key in ("loss", "weights"):
        logging.info("worker %d: largest %s difference %.3g", i, key,
                     np.max(np.abs(got[key] - want[key])))
        np.testing.assert_allclose(
            got[key], want[key], rtol=0,
            atol=1e-5 * max(1.0, float(np.max(np.abs(want[key])))),
            err_msg=key)


if __name__ == "__main__":
  absltest.main()
