r"""Heldout training by several local worker processes; the cost of claims and publishing.

    bazel run -c opt //benchmarks:workers_benchmark [-- --num_runs=192 --workers=3]

(1) Workers: `--num_runs` digits runs (`--dataset=digits`, the digits config,
    one model at a time) trained by one `//train:heldout` process, then by
    `--workers` processes started together on the same range into one folder
    (run claims share the runs, `train/claims.py`). Prints the wall time, runs
    per second and the ratio to one process, and checks that every run is
    there once, complete, and that no claim or temporary folder is left.
(2) Claims: `RunClaims.try_claim` + `release` of `--claim_runs` runs on a
    local folder, per run.
(3) Publishing: `train.heldout_training.publish_run` (checkpoint staged and
    copied file by file, manifest, `aux_arrays.npz` last) against the way it
    was done before (everything written into the run's temporary folder, its
    manifest recorded, the folder renamed into place), per run, for the
    digits MLP.
"""

import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from heldout import manifest
from heldout.data import digits
from heldout.models import registry as model_registry
from heldout.readers import aux_arrays as aux_lib
from heldout.readers import experiment
from heldout.readers import layout
from train import claims
from train import heldout_training
from train.configs import digits as digits_configs

_NUM_RUNS = flags.DEFINE_integer("num_runs", 192, "Runs to train.")
_WORKERS = flags.DEFINE_integer("workers", 3, "Worker processes to compare "
                                "with one.")
_CLAIM_RUNS = flags.DEFINE_integer("claim_runs", 1000, "Runs claimed and "
                                   "released for (2).")
_PUBLISH_RUNS = flags.DEFINE_integer("publish_runs", 50, "Runs published "
                                     "each way for (3).")


def _command(output_dir, num_runs):
  return [sys.executable, "-m", "train.heldout_main", "--dataset=digits",
          "--runs=0:{}".format(num_runs), "--output_dir=" + output_dir,
          "--noprogress"]


def _environment():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
              PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def check_experiment(output_dir, num_runs) -> List[str]:
  """What is wrong with `output_dir` after a job of `num_runs` runs."""
  problems = []
  ratio_dir = os.path.join(output_dir, "0.7")
  names = sorted(os.listdir(ratio_dir))
  want = sorted(str(r) for r in range(num_runs))
  if names != want:
    problems.append("{} holds {} (want the runs 0..{} only)".format(
        ratio_dir, [n for n in names if n not in want][:5] or
        "{} runs".format(len(names)), num_runs - 1))
  complete = experiment.scan_experiment(output_dir).complete_runs(0.7)
  if len(complete) != num_runs:
    problems.append("{} complete runs of {}".format(len(complete), num_runs))
  return problems


def time_workers(root, num_runs, workers) -> Dict[str, float]:
  """Seconds for `num_runs` runs by `workers` processes on one folder."""
  output_dir = os.path.join(root, "workers-{}".format(workers))
  started = time.time()
  processes = [subprocess.Popen(_command(output_dir, num_runs),
                                env=_environment(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for _ in range(workers)]
  for p in processes:
    _, err = p.communicate()
    if p.returncode:
      raise RuntimeError("worker exited with {}: {}".format(p.returncode,
                                                            err[-2000:]))
  seconds = time.time() - started
  problems = check_experiment(output_dir, num_runs)
  if problems:
    raise RuntimeError("; ".join(problems))
  return {"seconds": seconds, "runs_per_s": num_runs / seconds}


def claim_seconds_per_run(root, num_runs) -> float:
  """Seconds per run to claim and release it (local disk)."""
  run_claims = claims.RunClaims(os.path.join(root, "claims"), 0.7)
  started = time.perf_counter()
  for r in range(num_runs):
    if not run_claims.try_claim(r):
      raise RuntimeError("run {} could not be claimed".format(r))
    run_claims.release(r)
  seconds = time.perf_counter() - started
  run_claims.release_all()
  return seconds / num_runs


def _digits_run():
  """A digits MLP's checkpoint and a run's aux arrays (untrained weights)."""
  data = digits.load_digits()
  config = digits_configs.CONFIG
  model = model_registry.build_model(config.arch, data.num_classes,
                                     **config.arch_kwargs)
  model(tf.zeros((1,) + data.image_shape), is_training=False)
  checkpoint = tf.train.Checkpoint(
      model=model, epoch=tf.Variable(config.epochs, dtype=tf.int64),
      global_step=tf.Variable(1000, dtype=tf.int64))
  n_train, n_test = len(data.train), len(data.test)
  rng = np.random.RandomState(0)
  subset = np.sort(rng.permutation(n_train)[:int(0.7 * n_train)])
  arrays = heldout_training.run_aux_arrays(
      n_train, subset, data.train.index, rng.rand(n_train) < 0.9,
      data.test.index, rng.rand(n_test) < 0.9)
  return checkpoint, config.epochs, arrays, n_train, n_test


def _publish_by_rename(tmp_dir, final_dir, checkpoint, epoch, arrays,
                       num_train, num_test, write_fn):
  """How runs were published before: in the temporary folder, then renamed."""
  os.makedirs(layout.checkpoints_dir(tmp_dir), exist_ok=True)
  write_fn(layout.checkpoint_prefix(tmp_dir, epoch))
  aux_lib.write_aux_arrays(layout.aux_arrays_path(tmp_dir),
                           num_train=num_train, num_test=num_test, **arrays)
  manifest.record_run(tmp_dir, source=heldout_training.MANIFEST_SOURCE)
  os.rename(tmp_dir, final_dir)


def publish_seconds_per_run(root, num_runs) -> Dict[str, float]:
  """Seconds per run of publishing a digits run each way."""
  checkpoint, epoch, arrays, n_train, n_test = _digits_run()
  compiled = tf.function(checkpoint.write)
  write_fn = lambda prefix: compiled(tf.constant(prefix))
  out = {}
  for name, publish in (("rename", _publish_by_rename),
                        ("marker", heldout_training.publish_run)):
    folder = os.path.join(root, "publish-" + name)
    os.makedirs(os.path.join(root, "warm-" + name))
    write_fn(os.path.join(root, "warm-" + name, "ckpt"))  # Traced once.
    started = time.perf_counter()
    for r in range(num_runs):
      tmp = heldout_training.tmp_run_dir(folder, 0.7, r)
      os.makedirs(tmp)
      publish(tmp, layout.run_dir(folder, 0.7, r), checkpoint, epoch, arrays,
              n_train, n_test, write_fn=write_fn)
    out[name] = (time.perf_counter() - started) / num_runs
    complete = experiment.scan_experiment(folder).complete_runs(0.7)
    if len(complete) != num_runs:
      raise RuntimeError("{}: {} complete runs of {}".format(
          name, len(complete), num_runs))
  return out


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as root:
    print("(1) {} digits runs, one model at a time, //train:heldout "
          "processes on one folder:".format(_NUM_RUNS.value))
    one = time_workers(root, _NUM_RUNS.value, 1)
    many = time_workers(root, _NUM_RUNS.value, _WORKERS.value)
    print("{:>10} {:>10} {:>10} {:>8}".format("processes", "seconds",
                                              "runs/s", "ratio"))
    for workers, r in ((1, one), (_WORKERS.value, many)):
      print("{:>10} {:>10.1f} {:>10.2f} {:>7.2f}x".format(
          workers, r["seconds"], r["runs_per_s"],
          one["seconds"] / r["seconds"]))
    print("every run present once and complete; no claim or temporary "
          "folder left")
    claim = claim_seconds_per_run(root, _CLAIM_RUNS.value)
    print("\n(2) claims: {:.2f} ms per run (claim + release, {} runs, local "
          "disk), {:.3%} of a run's {:.2f} s".format(
              claim * 1e3, _CLAIM_RUNS.value, claim,
              one["seconds"] / _NUM_RUNS.value))
    publish = publish_seconds_per_run(root, _PUBLISH_RUNS.value)
    print("\n(3) publishing a digits run ({} each way):".format(
        _PUBLISH_RUNS.value))
    print("{:>44} {:>8}".format("", "ms/run"))
    print("{:>44} {:>8.2f}".format("before: temporary folder renamed into "
                                   "place", publish["rename"] * 1e3))
    print("{:>44} {:>8.2f}  ({:.2f}x)".format(
        "now: files, manifest, aux_arrays.npz last", publish["marker"] * 1e3,
        publish["marker"] / publish["rename"]))


if __name__ == "__main__":
  app.run(main)
