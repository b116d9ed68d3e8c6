"""Tests for train.heldout_training: layout, reproducibility, kill and resume."""

import os

import numpy as np
import tensorflow as tf

from heldout import errors
from heldout import manifest
from heldout import tolerance
from heldout.data import dataset as dataset_lib
from heldout.data import digits
from heldout.models import testing as model_testing
from heldout.models import registry
from heldout.readers import aux_arrays
from heldout.readers import checkpoints
from heldout.readers import experiment
from heldout.readers import layout
from train import heldout_training
from train import loop
from train import subsets
from train import configs
from train.configs import base

CONFIG = base.TrainConfig(name="tiny", dataset="digits", arch="mlp",
                          arch_kwargs={"hidden_sizes": (16,)}, epochs=3,
                          batch_size=64, learning_rate=0.1,
                          checkpoint_every_seconds=0.0)
STEPS_PER_EPOCH = 14  # ceil(floor(0.7 * 1257) / 64)


class RunAuxArraysTest(tf.test.TestCase):

  def test_splits_by_id_whatever_the_evaluation_order(self):
    # Training ids evaluated in the order 3, 0, 4, 1, 2; subset {4, 1}.
    arrays = heldout_training.run_aux_arrays(
        5, np.array([4, 1]), train_ids=np.array([3, 0, 4, 1, 2]),
        train_correct=np.array([True, False, True, False, True]),
        test_ids=np.array([1, 0]), test_correct=np.array([1, 0]))
    np.testing.assert_array_equal(arrays["index_train"], [4, 1])
    np.testing.assert_array_equal(arrays["subsample_idx"], [4, 1])
    np.testing.assert_array_equal(arrays["correctness_train"], [True, False])
    np.testing.assert_array_equal(arrays["index_removed"], [0, 2, 3])
    np.testing.assert_array_equal(arrays["correctness_removed"],
                                  [False, True, True])
    np.testing.assert_array_equal(arrays["index_test"], [1, 0])
    np.testing.assert_array_equal(arrays["correctness_test"], [True, False])
    aux_arrays.validate_aux_arrays(arrays)


class Interrupt(Exception):
  pass


class InterruptAfter(loop.Callback):

  def __init__(self, steps):
    self.steps = steps

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    if step >= self.steps:
      raise Interrupt("killed at step {}".format(step))


def _weights(run_dir):
  model = registry.build_model("mlp", 10, hidden_sizes=(16,))
  model(tf.zeros([1, 8, 8, 1]), is_training=False)
  epoch = tf.Variable(0, dtype=tf.int64)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(model=model, epoch=epoch, global_step=step).restore(
      layout.find_checkpoint_prefix(run_dir)).expect_partial()
  return [v.numpy() for v in model.variables], int(epoch.numpy()), int(
      step.numpy())


class HeldoutTrainingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  def _train(self, out, runs, **kw):
    return heldout_training.train_heldout(self.data, CONFIG, 0.7, runs, out,
                                          progress=False, **kw)

  def test_writes_released_layout(self):
    out = self.create_tempdir().full_path
    (result,) = self._train(out, [3])
    self.assertEqual(result.status, "trained")
    run_dir = layout.run_dir(out, 0.7, 3)
    self.assertEqual(result.path, run_dir)
    self.assertCountEqual(os.listdir(run_dir), ["aux_arrays.npz",
                                                "checkpoints",
                                                manifest.MANIFEST_FILENAME])
    self.assertCountEqual(os.listdir(os.path.join(run_dir, "checkpoints")),
                          ["ckpt-3.index", "ckpt-3.data-00000-of-00001"])
    # The manifest lists every file with its size and SHA-256, and checks out.
    recorded = manifest.read_manifest(run_dir)
    self.assertEqual(recorded["source"], "//train:heldout")
    self.assertEqual(sorted(recorded["files"]), [
        "aux_arrays.npz", "checkpoints/ckpt-3.data-00000-of-00001",
        "checkpoints/ckpt-3.index"])
    self.assertEqual(recorded["files"]["aux_arrays.npz"],
                     manifest.hash_file(layout.aux_arrays_path(run_dir)))
    self.assertEqual(manifest.check_run(run_dir).statuses, [manifest.OK])
    keys = dict(tf.train.list_variables(layout.find_checkpoint_prefix(
        run_dir)))
    self.assertEqual(keys["epoch/.ATTRIBUTES/VARIABLE_VALUE"], [])
    self.assertEqual(keys["model/_layers/0/w/.ATTRIBUTES/VARIABLE_VALUE"],
                     [64, 16])
    model = registry.build_model("mlp", 10, hidden_sizes=(16,))
    key_manifest = registry.key_manifest(model, input_shape=(8, 8, 1))
    self.assertEqual(
        {k: tuple(v) for k, v in keys.items() if k.startswith("model/")},
        key_manifest)  # every model variable, nothing else, no optimizer state
    self.assertCountEqual(
        [k for k in keys if not k.startswith("model/")],
        ["epoch/.ATTRIBUTES/VARIABLE_VALUE",
         "global_step/.ATTRIBUTES/VARIABLE_VALUE", "_CHECKPOINTABLE_OBJECT_GRAPH"])
    _, epoch, step = _weights(run_dir)
    self.assertEqual((epoch, step), (3, 3 * STEPS_PER_EPOCH))

    aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run_dir),
                                     num_train=1257, num_test=540)
    np.testing.assert_array_equal(aux.subsample_idx,
                                  subsets.draw_subset(1257, 0.7, 3))
    self.assertEqual(aux.correctness_train.dtype, bool)
    self.assertGreater(aux.correctness_test.mean(), 0.8)
    self.assertEqual(result.accuracy["test"], aux.correctness_test.mean())
    # Correctness agrees with the checkpoint's own predictions.
    model = registry.build_model("mlp", 10, hidden_sizes=(16,))
    model(tf.zeros([1, 8, 8, 1]), is_training=False)
    tf.train.Checkpoint(model=model).restore(
        layout.find_checkpoint_prefix(run_dir)).expect_partial()
    pred = np.argmax(model(self.data.test.images, is_training=False), -1)
    np.testing.assert_array_equal(aux.correctness_on_test_set(),
                                  pred == self.data.test.labels)
    scanned = experiment.scan_experiment(out)
    self.assertEqual([r.run_id for r in scanned.complete_runs(0.7)], [3])

  def test_same_run_same_result_and_finished_runs_skipped(self):
    out_a = self.create_tempdir().full_path
    out_b = self.create_tempdir().full_path
    self._train(out_a, [0, 1])
    self._train(out_b, [1])
    wa, _, _ = _weights(layout.run_dir(out_a, 0.7, 1))
    wb, _, _ = _weights(layout.run_dir(out_b, 0.7, 1))
    # The same run on the same machine and kernels: reproducible up to the
    # last bits (ELEMENTWISE allows for threaded reductions).
    for a, b in zip(wa, wb):
      tolerance.assert_close(a, b, tolerance.ELEMENTWISE)
    w0, _, _ = _weights(layout.run_dir(out_a, 0.7, 0))
    self.assertNotAllClose(w0[0], wa[0])
    results = self._train(out_a, [0, 1, 2])
    self.assertEqual([r.status for r in results],
                     ["skipped", "skipped", "trained"])

  def test_kill_mid_training_then_resume(self):
    reference = self.create_tempdir().full_path
    self._train(reference, [0])
    out = self.create_tempdir().full_path
    # Killed in epoch 2 (0-based 1), after epoch 1's progress checkpoint.
    with self.assertRaises(Interrupt):
      self._train(out, [0], callbacks=[InterruptAfter(STEPS_PER_EPOCH + 5)])
    final = layout.run_dir(out, 0.7, 0)
    tmp = heldout_training.tmp_run_dir(out, 0.7, 0)
    self.assertFalse(os.path.exists(final))
    self.assertTrue(os.path.isdir(os.path.join(tmp, "progress")))
    scanned = experiment.scan_experiment(out)
    self.assertEqual(scanned.complete_runs(0.7), [])
    self.assertEqual(scanned.incomplete, [])  # the .0.tmp folder is ignored

    (result,) = self._train(out, [0])
    self.assertEqual(result.status, "resumed")
    self.assertFalse(os.path.exists(tmp))
    got, epoch, step = _weights(final)
    want, _, _ = _weights(layout.run_dir(reference, 0.7, 0))
    self.assertEqual((epoch, step), (3, 3 * STEPS_PER_EPOCH))
    # Resumed against uninterrupted, same machine and kernels.
    for a, b in zip(got, want):
      tolerance.assert_close(a, b, tolerance.ELEMENTWISE)
    a = aux_arrays.read_aux_arrays(layout.aux_arrays_path(final))
    b = aux_arrays.read_aux_arrays(layout.aux_arrays_path(
        layout.run_dir(reference, 0.7, 0)))
    np.testing.assert_array_equal(a.subsample_idx, b.subsample_idx)
    np.testing.assert_array_equal(a.correctness_test, b.correctness_test)
    (again,) = self._train(out, [0])
    self.assertEqual(again.status, "skipped")

  def test_kill_in_first_epoch_restarts_cleanly(self):
    out = self.create_tempdir().full_path
    with self.assertRaises(Interrupt):
      self._train(out, [4], callbacks=[InterruptAfter(3)])
    (result,) = self._train(out, [4])
    self.assertEqual(result.status, "trained")
    self.assertTrue(heldout_training.is_complete_run(result.path))

  def test_other_arguments_refused(self):
    out = self.create_tempdir().full_path
    self._train(out, [0])
    other = CONFIG.replace(epochs=2)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                r"config\.epochs: stored 3, now 2"):
      heldout_training.train_heldout(self.data, other, 0.7, [1], out,
                                     progress=False)

  def test_unpublished_run_folder_is_published_again(self):
    # What an interrupted publication leaves: checkpoint files (one cut
    # short), no aux_arrays.npz. Not a run to the readers; trained again.
    reference = self.create_tempdir().full_path
    self._train(reference, [0])
    out = self.create_tempdir().full_path
    final = layout.run_dir(out, 0.7, 0)
    os.makedirs(os.path.join(final, "checkpoints"))
    with open(os.path.join(final, "checkpoints", "ckpt-3.index"), "wb") as f:
      f.write(b"cut short")
    self.assertEqual(experiment.scan_experiment(out).complete_runs(0.7), [])
    (result,) = self._train(out, [0])
    self.assertEqual(result.status, "trained")
    for rel in ("aux_arrays.npz", "checkpoints/ckpt-3.index",
                "checkpoints/ckpt-3.data-00000-of-00001"):
      with open(os.path.join(final, rel), "rb") as a, open(os.path.join(
          layout.run_dir(reference, 0.7, 0), rel), "rb") as b:
        self.assertEqual(a.read(), b.read(), rel)
    self.assertEqual(manifest.check_run(final).statuses, [manifest.OK])

  def test_marked_but_incomplete_foreign_run_folder_is_reported(self):
    out = self.create_tempdir().full_path
    reference = self.create_tempdir().full_path
    (done,) = self._train(reference, [0])
    final = layout.run_dir(out, 0.7, 0)
    os.makedirs(final)
    with open(layout.aux_arrays_path(done.path), "rb") as f:
      data = f.read()
    with open(layout.aux_arrays_path(final), "wb") as f:
      f.write(data)
    with self.assertRaisesRegex(errors.ExperimentError,
                                "has aux_arrays.npz but is incomplete"):
      self._train(out, [0])

  def test_small_inception_run_has_the_released_checkpoint_keys(self):
    # CIFAR's recipe (SmallInception, batch norm, augmentation) on random
    # CIFAR-shaped data: the run's checkpoint holds exactly the keys of a
    # released cifar10-inception checkpoint and restores with restore_run.
    rng = np.random.RandomState(0)
    def split(n):
      return dataset_lib.split_from_arrays(
          rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8),
          rng.randint(0, 10, n), scale=255.0)
    data = dataset_lib.Dataset("fake-cifar10", 10, {"train": split(24),
                                                    "test": split(6)})
    config = configs.get_config("cifar10_small").replace(
        epochs=1, warmup_epochs=0.5, batch_size=12)
    out = self.create_tempdir().full_path
    (result,) = heldout_training.train_heldout(data, config, 0.5, [0], out,
                                               progress=False)
    prefix = layout.find_checkpoint_prefix(result.path)
    self.assertEqual(os.path.basename(prefix), "ckpt-1")
    self.assertEqual(model_testing.listed_variables(prefix),
                     model_testing.released_variables("cifar10-inception"))
    restored = checkpoints.restore_run(result.path)
    self.assertEqual((restored.arch, restored.epoch, restored.global_step),
                     ("small_inception", 1, 1))
    aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(result.path))
    pred = np.argmax(restored.model(data.test.images, is_training=False), -1)
    np.testing.assert_array_equal(aux.correctness_on_test_set(),
                                  pred == data.test.labels)

  def test_output_through_tf_io_gfile(self):
    # A URL output folder goes through tf.io.gfile only (no os/shutil):
    # TensorFlow's in-memory file system stands in for gs://, whose claims
    # need an exclusive create (train/claim_stores.py).
    url = "ram://heldout-{}/exp".format(os.getpid())
    with self.assertRaisesRegex(ValueError, "exclusive create"):
      self._train(url, [1])
    results = self._train(url, [1, 2], use_claims=False)
    self.assertEqual([r.status for r in results], ["trained", "trained"])
    self.assertEqual([r.status for r in self._train(url, [1, 2],
                                                    use_claims=False)],
                     ["skipped", "skipped"])
    scanned = experiment.scan_experiment(url)
    self.assertEqual([r.run_id for r in scanned.complete_runs(0.7)], [1, 2])
    local = self.create_tempdir().full_path
    self._train(local, [1])
    for rel in ("aux_arrays.npz", "checkpoints/ckpt-3.index",
                "checkpoints/ckpt-3.data-00000-of-00001"):
      with tf.io.gfile.GFile(layout.join(layout.run_dir(url, 0.7, 1), rel),
                             "rb") as a, open(os.path.join(
                                 layout.run_dir(local, 0.7, 1), rel),
                                              "rb") as b:
        self.assertEqual(a.read(), b.read(), rel)
    # Nothing left but the runs and the job's arguments.
    self.assertEqual(sorted(tf.io.gfile.listdir(url)),
                     ["0.7", "heldout_training.json"])
    self.assertEqual(sorted(n.rstrip("/") for n in tf.io.gfile.listdir(
        layout.join(url, "0.7"))), ["1", "2"])
    # //heldout:verify's check reads the runs there against their manifests.
    checked = manifest.check_experiment(url, expected_runs={"0.7/1", "0.7/2"},
                                        progress=False)
    self.assertEqual([r.statuses for r in checked.runs], [[manifest.OK]] * 2)
    self.assertFalse(checked.mismatch)

if __name__ == "__main__":
  tf.test.main()
