"""Tests for heldout.models.resnet."""
# pylint: disable=protected-access

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.models import resnet
from heldout.models import testing

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _bn_reference(bn, x):
  """Inference-mode batch norm from the module's variables, eps 1e-5."""
  mean = bn.moving_mean.value.numpy().reshape(-1)
  var = bn.moving_variance.value.numpy().reshape(-1)
  return (x - mean) / np.sqrt(var + 1e-5) * bn.scale.numpy() + bn.offset.numpy()


def _conv(conv, x):
  return tf.nn.conv2d(x, conv.w, strides=conv.stride, padding="SAME").numpy()


class ResNetTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      # Per block: a conv and a batch norm (8 variables) per layer; one
      # projection per group; initial conv; final batch norm; logits w, b.
      ("resnet18", resnet.CifarResNet18, 8 * 2 * 9 + 4 + 1 + 8 + 2,
       [1, 1, 64, 64], [512, 10]),
      ("resnet50", resnet.CifarResNet50, 16 * 3 * 9 + 4 + 1 + 8 + 2,
       [1, 1, 64, 256], [2048, 10]),
  )
  def test_checkpoint_keys(self, ctor, num_variables, proj_shape, logits_shape):
    model = ctor(10)
    model(tf.zeros([1, 32, 32, 3]), is_training=False)
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"), model)
    found = testing.listed_variables(prefix)
    model_keys = [k for k in found if k.startswith("model/")]
    self.assertEqual(len(model_keys), num_variables)
    self.assertEqual(found["model/_initial_conv/w" + SUFFIX], (3, 3, 3, 64))
    self.assertEqual(
        found["model/_block_groups/0/_blocks/0/_proj_conv/w" + SUFFIX],
        tuple(proj_shape))
    self.assertNotIn("model/_block_groups/0/_blocks/1/_proj_conv/w" + SUFFIX,
                     found)
    self.assertEqual(found["model/_logits/w" + SUFFIX], tuple(logits_shape))
    self.assertIn("model/_final_batchnorm/moving_variance/average" + SUFFIX,
                  found)
    self.assertIn("model/_block_groups/3/_blocks/1/_bn_1/scale" + SUFFIX, found)
    self.assertEqual(
        found["model/_block_groups/1/_blocks/0/_conv_1/w" + SUFFIX][:2], (3, 3))

  @parameterized.named_parameters(("resnet18", resnet.CifarResNet18, 512),
                                  ("resnet50", resnet.CifarResNet50, 2048))
  def test_forward_shapes_and_zero_initialized_logits(self, ctor, features):
    model = ctor(10)
    images = tf.random.uniform([2, 32, 32, 3])
    self.assertEqual(model.compute_repr(images, is_training=False).shape,
                     [2, features])
    logits = model(images, is_training=True)
    self.assertEqual(logits.shape, [2, 10])
    self.assertAllEqual(logits, tf.zeros([2, 10]))

  def test_spatial_sizes(self):
    model = resnet.CifarResNet18(10)
    net = model._initial_conv(tf.zeros([1, 32, 32, 3]))
    sizes = []
    for group in model._block_groups:
      net = group(net, is_training=False)
      sizes.append(net.shape[1:])
    self.assertEqual(sizes, [[32, 32, 64], [16, 16, 128], [8, 8, 256],
                             [4, 4, 512]])

  def test_large_input_stem(self):
    model = resnet.ResNetV2(5, [1, 1], bottleneck_block=False,
                            channels_per_group_list=(8, 16))
    self.assertEqual(model(tf.zeros([1, 64, 64, 3]), True).shape, [1, 5])
    self.assertEqual(model._initial_conv.w.shape, [7, 7, 3, 64])

  def test_batch_norm_config(self):
    model = resnet.CifarResNet18(10)
    model(tf.zeros([1, 32, 32, 3]), is_training=False)
    bn = model._final_batchnorm
    self.assertAllClose(bn._eps, 1e-5)
    self.assertAllClose(bn.moving_mean._decay, 0.9)

  def _trained_block(self, block, x):
    # Training-mode calls move the moving statistics away from their init.
    for _ in range(3):
      block(x, is_training=True)
    for var in block.trainable_variables:
      var.assign(var + tf.random.normal(var.shape, stddev=0.1))

  def test_basic_block_matches_reference(self):
    tf.random.set_seed(3)
    block = resnet.BasicBlockV2(6, stride=2, use_projection=True,
                                bn_config=resnet.DEFAULT_BN_CONFIG)
    x = tf.random.normal([2, 8, 8, 4])
    self._trained_block(block, x)
    a0 = np.maximum(_bn_reference(block._bn_0, x.numpy()), 0)
    shortcut = _conv(block._proj_conv, a0)
    h = _conv(block._conv_0, a0)
    h = _conv(block._conv_1, np.maximum(_bn_reference(block._bn_1, h), 0))
    out = block(x, is_training=False)
    self.assertEqual(out.shape, [2, 4, 4, 6])
    # TF kernels against a float64 numpy reference.
    tolerance.assert_close(out, h + shortcut, tolerance.FORWARD)

  def test_bottleneck_block_identity_shortcut(self):
    tf.random.set_seed(4)
    block = resnet.BottleNeckBlockV2(2, stride=1, use_projection=False,
                                     bn_config=resnet.DEFAULT_BN_CONFIG)
    x = tf.random.normal([2, 4, 4, 8])
    self._trained_block(block, x)
    h = x.numpy()
    for conv, bn in ((block._conv_0, block._bn_0), (block._conv_1, block._bn_1),
                     (block._conv_2, block._bn_2)):
      h = _conv(conv, np.maximum(_bn_reference(bn, h), 0))
    tolerance.assert_close(block(x, is_training=False), h + x.numpy(),
                           tolerance.FORWARD)

  def test_round_trip_restores_identical_logits(self):
    tf.random.set_seed(5)
    images = tf.random.uniform([3, 32, 32, 3])
    model = resnet.CifarResNet18(10)
    testing.train_step(model, images, tf.constant([1, 2, 3]), 0.5)
    expected = model(images, is_training=False)
    self.assertGreater(float(tf.reduce_max(tf.abs(expected))), 0.0)
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"), model)
    restored = resnet.CifarResNet18(10)
    restored(tf.zeros([1, 32, 32, 3]), is_training=False)
    tf.train.Checkpoint(model=restored).read(
        prefix).expect_partial().assert_existing_objects_matched()
    self.assertAllEqual(restored(images, is_training=False), expected)

  def test_invalid_arguments(self):
    with self.assertRaisesRegex(ValueError, "`num_classes` must be positive"):
      resnet.CifarResNet18(0)
    with self.assertRaisesRegex(ValueError, "same length"):
      resnet.ResNetV2(10, [1, 1], bottleneck_block=False)
    with self.assertRaisesRegex(ValueError, "`num_blocks`"):
      resnet.BlockGroup(8, 0, 1, resnet.DEFAULT_BN_CONFIG)


if __name__ == "__main__":
  tf.test.main()
