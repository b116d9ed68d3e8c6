"""Tests for heldout.models.mlp."""
# pylint: disable=protected-access

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.models import mlp
from heldout.models import testing

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _conv3x3_same(x, w, b):
  """Stride-1 SAME 3x3 convolution, one output position at a time."""
  n, h, wd, _ = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((n, h, wd, w.shape[3]), np.float64)
  for i in range(h):
    for j in range(wd):
      patch = padded[:, i:i + 3, j:j + 3, :]
      out[:, i, j, :] = np.einsum("nabc,abcd->nd", patch, w)
  return out + b


def _max_pool_2x2_same(x):
  """2x2 stride-2 max pool; odd edges pool over what exists (SAME)."""
  n, h, w, c = x.shape
  out = np.full((n, -(-h // 2), -(-w // 2), c), -np.inf)
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      window = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :]
      out[:, i, j, :] = window.max(axis=(1, 2))
  return out


class MLPTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("one_hidden", (256,)), ("two", (16, 8)),
                                  ("linear", ()))
  def test_variables_as_documented(self, hidden_sizes):
    model = mlp.MLP(10, hidden_sizes=hidden_sizes)
    model(tf.zeros([1, 8, 8, 1]), is_training=False)
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"), model)
    found = {k: v for k, v in testing.listed_variables(prefix).items()
             if k.startswith("model/")}
    sizes = [64] + list(hidden_sizes) + [10]
    expected = {}
    for i in range(len(sizes) - 1):
      expected[f"model/_layers/{i}/w" + SUFFIX] = (sizes[i], sizes[i + 1])
      expected[f"model/_layers/{i}/b" + SUFFIX] = (sizes[i + 1],)
    self.assertEqual(found, expected)

  def test_forward_matches_numpy(self):
    tf.random.set_seed(6)
    model = mlp.MLP(3, hidden_sizes=(5, 4))
    images = tf.random.normal([6, 2, 3, 2])
    model(images, is_training=True)
    for var in model.variables:  # biases start at 0; make them count
      var.assign(tf.random.normal(var.shape))
    logits = model(images, is_training=False).numpy()
    h = images.numpy().reshape(6, -1)
    layers = model._layers
    for i, layer in enumerate(layers):
      if i:
        h = np.maximum(h, 0)
      h = h @ layer.w.numpy() + layer.b.numpy()
    # TF's matmul kernels against numpy's.
    tolerance.assert_close(logits, h, tolerance.FORWARD)

  def test_invalid_arguments(self):
    with self.assertRaisesRegex(ValueError, "`num_classes` must be positive"):
      mlp.MLP(0)
    with self.assertRaisesRegex(ValueError, "`hidden_sizes`"):
      mlp.MLP(10, hidden_sizes=(8, 0))


class SmallCNNTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("digits", 8, 8, 1, 2),
                                  ("mnist", 28, 28, 1, 7),
                                  ("odd", 7, 5, 3, (2, 2)))
  def test_variables_as_documented(self, height, width, channels, pooled):
    pooled_h, pooled_w = (pooled, pooled) if isinstance(pooled, int) else pooled
    model = mlp.SmallCNN(10)
    logits = model(tf.zeros([2, height, width, channels]), is_training=False)
    self.assertEqual(logits.shape, [2, 10])
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"), model)
    found = {k: v for k, v in testing.listed_variables(prefix).items()
             if k.startswith("model/")}
    expected = {
        "model/_convs/0/w": (3, 3, channels, 32), "model/_convs/0/b": (32,),
        "model/_convs/1/w": (3, 3, 32, 64), "model/_convs/1/b": (64,),
        "model/_hidden/w": (pooled_h * pooled_w * 64, 128),
        "model/_hidden/b": (128,),
        "model/_logits/w": (128, 10), "model/_logits/b": (10,),
    }
    self.assertEqual(found, {k + SUFFIX: v for k, v in expected.items()})

  def test_forward_matches_numpy(self):
    tf.random.set_seed(7)
    model = mlp.SmallCNN(4, channels=(3, 2), hidden=5)
    images = tf.random.normal([3, 7, 6, 2])
    model(images, is_training=False)
    for var in model.variables:
      var.assign(tf.random.normal(var.shape))
    h = images.numpy().astype(np.float64)
    for conv in model._convs:
      h = _max_pool_2x2_same(np.maximum(
          _conv3x3_same(h, conv.w.numpy(), conv.b.numpy()), 0))
    h = h.reshape(3, -1)
    h = np.maximum(h @ model._hidden.w.numpy() + model._hidden.b.numpy(), 0)
    h = h @ model._logits.w.numpy() + model._logits.b.numpy()
    # TF's conv kernels against a float64 numpy reference.
    tolerance.assert_close(model(images, is_training=True), h,
                           tolerance.FORWARD)

  def test_invalid_arguments(self):
    with self.assertRaisesRegex(ValueError, "`num_classes` must be positive"):
      mlp.SmallCNN(0)
    with self.assertRaisesRegex(ValueError, "`channels` must not be empty"):
      mlp.SmallCNN(10, channels=())
    with self.assertRaisesRegex(ValueError, "`channels`"):
      mlp.SmallCNN(10, channels=(4, -1))
    with self.assertRaisesRegex(ValueError, "`hidden` must be positive"):
      mlp.SmallCNN(10, hidden=0)


if __name__ == "__main__":
  tf.test.main()
