"""Tests for heldout.readers.checkpoints."""

import os

from absl.testing import parameterized
import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout import errors
from heldout import tolerance
from heldout.models import registry
from heldout.models import testing
from heldout.readers import checkpoints
from heldout.readers import layout

GOLDEN_RUN = os.path.join(testing.TESTDATA_DIR, "golden_inception_run")
GOLDEN_LOGITS = os.path.join(testing.TESTDATA_DIR,
                             "golden_inception_logits.npz")


def write_run(run_dir, model, image_shape, epoch=7, global_step=70,
              **extra):
  """A run folder whose checkpoint holds `model`, built and trained a step."""
  images = tf.random.uniform((4,) + tuple(image_shape))
  testing.train_step(model, images, tf.constant([0, 1, 1, 0]))
  prefix = layout.checkpoint_prefix(run_dir, epoch)
  testing.write_checkpoint(prefix, model, epoch=epoch,
                           global_step=global_step, **extra)
  return images


class RestoreRunTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("small_inception", "small_inception", 10, {}, (32, 32, 3)),
      ("small_inception_large", "small_inception", 4,
       {"large_inputs": True}, (64, 64, 3)),
      ("cifar_resnet18", "cifar_resnet18", 10, {}, (32, 32, 3)),
      ("cifar_resnet50", "cifar_resnet50", 100, {}, (32, 32, 3)),
      ("resnet50", "resnet50", 5, {}, (64, 64, 3)),
      ("mlp", "mlp", 10, {"hidden_sizes": (16, 8)}, (8, 8, 1)),
      ("small_cnn", "small_cnn", 10, {"channels": (4, 8), "hidden": 6},
       (28, 28, 1)),
  )
  def test_round_trip_infers_architecture(self, arch, num_classes, kwargs,
                                          image_shape):
    tf.random.set_seed(8)
    run_dir = self.create_tempdir().full_path
    model = registry.build_model(arch, num_classes, **kwargs)
    images = write_run(run_dir, model, image_shape)
    restored = checkpoints.restore_run(run_dir)
    self.assertEqual(restored.arch, arch)
    self.assertEqual(restored.num_classes, num_classes)
    self.assertEqual((restored.epoch, restored.global_step), (7, 70))
    self.assertEqual(restored.checkpoint_prefix,
                     layout.checkpoint_prefix(run_dir, 7))
    self.assertAllEqual(restored.model(images, is_training=False),
                        model(images, is_training=False))
    for want, got in zip(model.variables, restored.model.variables):
      self.assertAllEqual(want, got)

  def test_given_architecture(self):
    run_dir = self.create_tempdir().full_path
    model = registry.build_model("mlp", 3, hidden_sizes=(5,))
    images = write_run(run_dir, model, (4, 4, 1))
    restored = checkpoints.restore_run(run_dir, arch="mlp", num_classes=3,
                                       hidden_sizes=(5,))
    self.assertAllEqual(restored.model(images, is_training=False),
                        model(images, is_training=False))

  @parameterized.named_parameters(
      # TF1 / Keras 2 optimizers put slots under the model's own keys.
      ("tf1_momentum", lambda: tf.compat.v1.train.MomentumOptimizer(0.1, 0.9)),
      ("snt_momentum", lambda: snt.optimizers.Momentum(0.1, 0.9)),
  )
  def test_optimizer_state_and_no_state_file(self, make_optimizer):
    run_dir = self.create_tempdir().full_path
    model = registry.build_model("small_cnn", 10, channels=(4,), hidden=8)
    images = tf.random.uniform([4, 8, 8, 1])
    optimizer = make_optimizer()
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(images, is_training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    if isinstance(optimizer, snt.Optimizer):
      optimizer.apply(grads, model.trainable_variables)
    else:
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
    prefix = layout.checkpoint_prefix(run_dir, 3)
    testing.write_checkpoint(prefix, model, epoch=3, global_step=1,
                             optimizer=optimizer)
    ckpt_dir = layout.checkpoints_dir(run_dir)
    self.assertNotIn("checkpoint", os.listdir(ckpt_dir))
    listed = testing.listed_variables(prefix)
    self.assertGreater(len(listed), len(registry.model_variable_shapes(listed))
                       + 2)

    restored = checkpoints.restore_run(run_dir)
    self.assertEqual((restored.arch, restored.epoch, restored.global_step),
                     ("small_cnn", 3, 1))
    self.assertAllEqual(restored.model(images, is_training=False),
                        model(images, is_training=False))

  def test_golden_checkpoint_of_the_original_module(self):
    restored = checkpoints.restore_run(GOLDEN_RUN)
    self.assertEqual(restored.arch, "small_inception")
    self.assertEqual(restored.num_classes, 10)
    self.assertEqual((restored.epoch, restored.global_step), (200, 3))
    with np.load(GOLDEN_LOGITS) as golden:
      images = golden["images_uint8"].astype(np.float32) / 255.0
      expected = golden["logits"]
    self.assertEqual(expected.shape, (6, 10))
    logits = restored.model(tf.constant(images), is_training=False).numpy()
    # Written on another CPU, whose kernels sum in other orders.
    tolerance.assert_close(logits, expected, tolerance.FORWARD)

  def test_wrong_architecture_names_the_difference(self):
    with self.assertRaises(errors.CheckpointMismatchError) as caught:
      checkpoints.restore_run(GOLDEN_RUN, arch="cifar_resnet18")
    message = str(caught.exception)
    self.assertIn("does not fit cifar_resnet18 (num_classes=10)", message)
    self.assertIn("159 module variables missing from the checkpoint "
                  "(model/_block_groups/0/_blocks/0/_bn_0/moving_mean/_counter",
                  message)
    self.assertIn("173 checkpoint variables the module lacks "
                  "(model/_pred/b, model/_pred/w, model/conv1/bn/moving_mean/"
                  "_counter, ...)", message)
    self.assertIn("it looks like small_inception (num_classes=10, "
                  "large_inputs=False)", message)
    self.assertNotIn("\n", message)

  def test_wrong_shapes_are_named(self):
    with self.assertRaisesRegex(
        errors.CheckpointMismatchError,
        r"2 with different shapes \(model/_pred/b: module \[100\] vs "
        r"checkpoint \[10\], model/_pred/w: module \[336, 100\] vs checkpoint "
        r"\[336, 10\]\)"):
      checkpoints.restore_run(GOLDEN_RUN, num_classes=100)

    run_dir = self.create_tempdir().full_path
    write_run(run_dir, registry.build_model("mlp", 3, hidden_sizes=(5,)),
              (4, 4, 1))
    with self.assertRaisesRegex(
        errors.CheckpointMismatchError,
        r"2 module variables missing from the checkpoint \(model/_layers/2/b, "
        r"model/_layers/2/w\); 2 with different shapes \(model/_layers/1/b: "
        r"module \[4\] vs checkpoint \[3\]"):
      checkpoints.restore_run(run_dir, arch="mlp", hidden_sizes=(5, 4))

  def test_unknown_architecture(self):
    run_dir = self.create_tempdir().full_path
    module = tf.Module()
    module.kernel = tf.Variable(tf.zeros([3, 3]))
    testing.write_checkpoint(layout.checkpoint_prefix(run_dir, 1), module)
    with self.assertRaisesRegex(errors.CheckpointMismatchError,
                                "cannot infer the architecture.*model/kernel"):
      checkpoints.restore_run(run_dir)
    with self.assertRaisesRegex(
        errors.CheckpointMismatchError,
        "1 checkpoint variables the module lacks \\(model/kernel\\).*matches no"
        " known architecture"):
      checkpoints.restore_run(run_dir, arch="mlp", num_classes=3)

  def test_counters_are_optional(self):
    run_dir = self.create_tempdir().full_path
    model = registry.build_model("mlp", 2, hidden_sizes=())
    model(tf.zeros([1, 3]), is_training=False)
    tf.train.Checkpoint(model=model).write(
        layout.checkpoint_prefix(run_dir, 12))
    restored = checkpoints.restore_run(run_dir)
    self.assertEqual((restored.epoch, restored.global_step), (12, None))

  def test_run_not_found(self):
    root = self.create_tempdir().full_path
    with self.assertRaisesRegex(errors.RunNotFoundError, "found none"):
      checkpoints.restore_run(os.path.join(root, "missing"))
    os.makedirs(layout.checkpoints_dir(root))
    with self.assertRaisesRegex(errors.RunNotFoundError, "found none"):
      checkpoints.restore_run(root)
    model = registry.build_model("mlp", 2, hidden_sizes=())
    model(tf.zeros([1, 3]), is_training=False)
    for epoch in (1, 2):
      testing.write_checkpoint(layout.checkpoint_prefix(root, epoch), model)
    with self.assertRaisesRegex(errors.RunNotFoundError,
                                "found 2: ckpt-1.index, ckpt-2.index"):
      checkpoints.restore_run(root)

  def test_unreadable_checkpoint(self):
    run_dir = self.create_tempdir().full_path
    prefix = layout.checkpoint_prefix(run_dir, 1)
    os.makedirs(os.path.dirname(prefix))
    with open(prefix + ".index", "wb") as f:
      f.write(b"not a checkpoint")
    with self.assertRaisesRegex(errors.RunNotFoundError,
                                "cannot read checkpoint"):
      checkpoints.restore_run(run_dir)

  def test_gfile_url(self):
    restored = checkpoints.restore_run("file://" + GOLDEN_RUN)
    self.assertEqual((restored.arch, restored.epoch), ("small_inception", 200))


if __name__ == "__main__":
  tf.test.main()
