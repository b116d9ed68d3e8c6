"""End to end: `//train:heldout` writes runs the readers load and predict redoes.

The binary trains on scikit-learn's bundled digits (no network); the run it
writes must pass `read_aux_arrays`' validation, restore with
`restore_run`, and the restored model's predictions must reproduce the
run's recorded correctness. The built `//heldout:predict` binary, run on the
test images, must give the same logits as the in-process restore and
predictions whose correctness is the run's `correctness_test` scattered
through `index_test`.
"""

import os
import subprocess

from absl.testing import absltest

import numpy as np

from heldout import tolerance
from heldout.data import digits
from heldout.readers import aux_arrays
from heldout.readers import checkpoints
from heldout.readers import layout
from tests import binaries



def _run(*flags, workdir=None):
  return subprocess.run(
      binaries.command("train/heldout", "train/heldout_main.py") + list(flags),
      capture_output=True, text=True, env=binaries.environment(workdir),
      timeout=240, check=False)


def _predict(*flags, workdir=None):
  return subprocess.run(
      binaries.command("heldout/predict", "heldout/predict.py") + list(flags),
      capture_output=True, text=True, env=binaries.environment(workdir),
      timeout=240, check=False)


class HeldoutTrainingE2eTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  def _check_run(self, run_dir):
    aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run_dir),
                                     num_train=1257, num_test=540)
    restored = checkpoints.restore_run(run_dir)
    self.assertEqual(restored.arch, "mlp")
    self.assertEqual(restored.epoch, 5)
    logits = restored.model(self.data.test.images, is_training=False)
    predicted_correct = np.argmax(logits, axis=-1) == self.data.test.labels
    np.testing.assert_array_equal(aux.correctness_on_test_set(),
                                  predicted_correct)
    self.assertGreater(predicted_correct.mean(), 0.8)
    logits = restored.model(self.data.train.images, is_training=False)
    np.testing.assert_array_equal(
        aux.correctness_on_train_set(),
        np.argmax(logits, axis=-1) == self.data.train.labels)
    return aux

  def _check_predict(self, run_dir):
    """//heldout:predict on the test images reproduces the run's results."""
    test = self.data.test
    workdir = self.create_tempdir().full_path
    np.savez(os.path.join(workdir, "in.npz"), images=test.images)
    proc = _predict("--model_dir=" + run_dir, "--images=in.npz",
                    "--output=out/pred.npz", "--batch_size=100",
                    workdir=workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with np.load(os.path.join(workdir, "out", "pred.npz")) as out:
      logits, predictions = out["logits"], out["predictions"]
    self.assertEqual(logits.shape, (540, 10))

    aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run_dir))
    recorded = np.zeros(len(test), dtype=bool)
    recorded[aux.index_test] = aux.correctness_test
    # Row p of the output is test position p, whose example id is index[p].
    np.testing.assert_array_equal(recorded[test.index],
                                  predictions == test.labels)

    restored = checkpoints.restore_run(run_dir)
    # The binary's batches of 100 against one batch of all.
    tolerance.assert_close(
        logits, restored.model(test.images, is_training=False).numpy(),
        tolerance.FORWARD)

  def test_trains_resumes_and_writes_readable_runs(self):
    exp = os.path.join(self.create_tempdir().full_path, "exp")
    flags = ["--dataset=digits", "--config=digits_small",
             "--subset_ratio=0.5", "--runs=0:4", "--output_dir=" + exp,
             "--num_workers=2", "--worker_index=1", "--progress=false"]
    proc = _run(*flags)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn("2 runs: 2 trained", proc.stdout)
    self.assertEqual(sorted(os.listdir(os.path.join(exp, "0.5"))), ["1", "3"])
    aux1 = self._check_run(layout.run_dir(exp, 0.5, 1))
    self.assertLen(aux1.subsample_idx, 628)
    self._check_predict(layout.run_dir(exp, 0.5, 1))

    proc = _run(*flags)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn("2 runs: 2 skipped", proc.stdout)

    # Worker 0, K models at once: the same experiment, other runs.
    proc = _run(*(flags[:-3] + ["--num_workers=2", "--worker_index=0",
                                "--batched_k=2", "--progress=false"]))
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertEqual(sorted(os.listdir(os.path.join(exp, "0.5"))),
                     ["0", "1", "2", "3"])
    self._check_run(layout.run_dir(exp, 0.5, 2))

  def test_user_errors_are_one_line_and_write_nothing(self):
    base = self.create_tempdir().full_path
    exp = os.path.join(base, "exp")
    for flags, message in (
        (["--dataset=nope", "--runs=0:1"], "dataset"),
        (["--dataset=digits", "--runs=3:1"], "runs"),
        (["--dataset=digits", "--runs=0:1", "--arch=small_inception",
          "--batched_k=4"], "batched_k"),
        (["--dataset=npz:" + os.path.join(base, "absent.npz"),
          "--config=digits", "--runs=0:1"], "no such file"),
        # Relative to where `bazel run` was started.
        (["--dataset=npz:data/absent.npz", "--config=digits", "--runs=0:1"],
         os.path.join(base, "data", "absent.npz")),
    ):
      proc = _run(*(flags + ["--output_dir=" + exp]), workdir=base)
      self.assertEqual(proc.returncode, 1, (flags, proc.stderr[-2000:]))
      lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
      self.assertLen(lines, 1, proc.stderr[-2000:])
      self.assertIn(message, lines[0])
      self.assertNotIn("Traceback", proc.stderr)
      self.assertFalse(os.path.exists(exp), flags)


if __name__ == "__main__":
  absltest.main()
