"""Tests for heldout.models.inception."""
# pylint: disable=protected-access

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.models import inception
from heldout.models import testing


def _conv_bn_relu_reference(layer, x):
  """ConvBNReLU in inference mode from its variables, written out."""
  w = layer.conv.w.numpy()
  stride = layer.conv.stride if isinstance(layer.conv.stride, int) else (
      layer.conv.stride[0])
  y = tf.nn.conv2d(x, w, strides=stride, padding="SAME").numpy()
  bn = layer.bn
  mean = bn.moving_mean.value.numpy().reshape(-1)
  var = bn.moving_variance.value.numpy().reshape(-1)
  y = (y - mean) / np.sqrt(var + 1e-5) * bn.scale.numpy() + bn.offset.numpy()
  return np.maximum(y, 0.0)


def _small_inception_reference(model, images):
  """SmallInception's forward pass (small inputs) per the spec, in numpy."""
  x = _conv_bn_relu_reference(model.conv1, images)
  for stage in (model.stage1, model.stage2, model.stage3):
    for block in stage._body:
      x = np.concatenate([_conv_bn_relu_reference(block.conv1x1, x),
                          _conv_bn_relu_reference(block.conv3x3, x)], axis=3)
    if stage._downsample is not None:
      x = _conv_bn_relu_reference(stage._downsample, x)
  features = x.max(axis=(1, 2))
  return features @ model._pred.w.numpy() + model._pred.b.numpy()


class SmallInceptionTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("cifar10", "cifar10-inception", 10),
                                  ("cifar100", "cifar100-inception", 100))
  def test_checkpoint_keys_match_release(self, experiment, num_classes):
    model = inception.SmallInception(num_classes)
    model(tf.zeros([1, 32, 32, 3]), is_training=False)
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"), model)
    found = testing.listed_variables(prefix)
    expected = testing.released_variables(experiment)
    self.assertLen(expected, 175)
    self.assertEqual(sorted(set(found) - set(expected)), [])
    self.assertEqual(sorted(set(expected) - set(found)), [])
    self.assertEqual(found, expected)

  @parameterized.named_parameters(("small", False, 32, 3),
                                  ("large", True, 64, 7))
  def test_forward_shapes(self, large_inputs, side, kernel):
    model = inception.SmallInception(7, large_inputs=large_inputs)
    images = tf.random.uniform([2, side, side, 3])
    self.assertEqual(model(images, is_training=True).shape, [2, 7])
    self.assertEqual(model.compute_repr(images, is_training=False).shape,
                     [2, 336])
    self.assertEqual(model.conv1.conv.w.shape, [kernel, kernel, 3, 96])

  def test_stage_output_sizes(self):
    model = inception.SmallInception(10)
    x = model.conv1(tf.zeros([1, 32, 32, 3]), is_training=False)
    self.assertEqual(x.shape, [1, 32, 32, 96])
    x = model.stage1(x, is_training=False)
    self.assertEqual(x.shape, [1, 16, 16, 160])
    x = model.stage2(x, is_training=False)
    self.assertEqual(x.shape, [1, 8, 8, 240])
    x = model.stage3(x, is_training=False)
    self.assertEqual(x.shape, [1, 8, 8, 336])

  def test_batch_norm_defaults(self):
    layer = inception.ConvBNReLU(4, 3)
    layer(tf.zeros([1, 4, 4, 2]), is_training=False)
    self.assertAllClose(layer.bn._eps, 1e-5)
    self.assertAllClose(layer.bn.moving_mean._decay, 0.999)
    self.assertIsNone(getattr(layer.conv, "b", None))

  def test_forward_matches_written_out_reference(self):
    tf.random.set_seed(1)
    model = inception.SmallInception(10)
    images = tf.random.uniform([4, 32, 32, 3])
    # Training steps give the moving statistics non-trivial values.
    for _ in range(2):
      testing.train_step(model, images, tf.constant([0, 1, 2, 3]))
    logits = model(images, is_training=False).numpy()
    expected = _small_inception_reference(model, images.numpy())
    # TF kernels against a float64 numpy reference of the whole network.
    tolerance.assert_close(logits, expected, tolerance.FORWARD)

  def test_multi_branch_block_puts_1x1_first(self):
    block = inception.MultiBranchBlock(3, 5)
    x = tf.random.uniform([2, 6, 6, 4])
    out = block(x, is_training=False)
    self.assertEqual(out.shape, [2, 6, 6, 8])
    self.assertAllEqual(out[..., :3], block.conv1x1(x, is_training=False))
    self.assertAllEqual(out[..., 3:], block.conv3x3(x, is_training=False))

  def test_residual_adds_stage_input(self):
    stage = inception.SmallInceptionStage([(2, 2)], 0, with_residual=True)
    plain = inception.SmallInceptionStage([(2, 2)], 0)
    x = tf.random.uniform([1, 4, 4, 4])
    stage(x, is_training=False)
    plain(x, is_training=False)
    for a, b in zip(stage.variables, plain.variables):
      b.assign(a)
    # The same kernels on the same input, then one addition.
    expected = plain(x, is_training=False) + x
    tolerance.assert_close(stage(x, is_training=False), expected,
                           tolerance.ELEMENTWISE)

  def test_round_trip_restores_identical_logits(self):
    tf.random.set_seed(2)
    images = tf.random.uniform([3, 32, 32, 3])
    model = inception.SmallInception(10)
    testing.train_step(model, images, tf.constant([1, 2, 3]))
    expected = model(images, is_training=False)
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-5"), model)

    restored = inception.SmallInception(10)
    restored(tf.zeros([1, 32, 32, 3]), is_training=False)
    status = tf.train.Checkpoint(model=restored).read(prefix)
    status.expect_partial().assert_existing_objects_matched()
    self.assertAllEqual(restored(images, is_training=False), expected)

  def test_invalid_arguments(self):
    with self.assertRaisesRegex(ValueError, "`num_classes` must be positive"):
      inception.SmallInception(0)
    with self.assertRaisesRegex(ValueError, "`output_channels`"):
      inception.ConvBNReLU(0, 3)
    with self.assertRaisesRegex(ValueError, "`block_channels`"):
      inception.SmallInceptionStage([], 0)


if __name__ == "__main__":
  tf.test.main()
