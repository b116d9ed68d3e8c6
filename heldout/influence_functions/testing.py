"""Tiny float64 Sonnet models for tests, with their layers' inputs and outputs.

Each model's `layer_io(images)` computes the same logits as
`model(images, is_training=False)`, written out layer by layer, and returns
every tracked layer's input and output (what `reference` needs), without the
recording the implementation uses.
"""

import numpy as np
import sonnet as snt
import tensorflow as tf


class TinyMLP(snt.Module):
  """Flatten -> Linear(5) -> tanh -> Linear(num_classes)."""

  def __init__(self, num_classes=3, name=None):
    super().__init__(name=name)
    self.hidden = snt.Linear(5, name="hidden")
    self.logits = snt.Linear(num_classes, name="logits")

  def layer_io(self, images):
    x = snt.flatten(images)
    h = self.hidden(x)
    out = self.logits(tf.tanh(h))
    return out, {self.hidden: (x, h), self.logits: (tf.tanh(h), out)}

  def __call__(self, images, is_training):
    del is_training
    return self.layer_io(images)[0]


class TinyCNN(snt.Module):
  """Conv 3x3/2 SAME (bias) -> batch norm -> ReLU -> conv 2x2 VALID (no bias)
  -> ReLU -> flatten -> Linear(num_classes)."""

  def __init__(self, num_classes=3, name=None):
    super().__init__(name=name)
    self.conv1 = snt.Conv2D(3, 3, stride=2, padding="SAME", name="conv1")
    self.norm = snt.BatchNorm(create_scale=True, create_offset=True,
                              name="norm")
    self.conv2 = snt.Conv2D(4, 2, padding="VALID", with_bias=False,
                            name="conv2")
    self.logits = snt.Linear(num_classes, name="logits")

  def _forward(self, images, is_training):
    c1 = self.conv1(images)
    # Normalised as [rows, channels]: the same statistics per channel, and
    # not Sonnet's fused kernel, which has no float64.
    h = tf.reshape(self.norm(tf.reshape(c1, [-1, c1.shape[-1]]),
                             is_training=is_training), tf.shape(c1))
    h = tf.nn.relu(h)
    c2 = self.conv2(h)
    x = snt.flatten(tf.nn.relu(c2))
    out = self.logits(x)
    return out, {self.conv1: (images, c1), self.conv2: (h, c2),
                 self.logits: (x, out)}

  def layer_io(self, images):
    return self._forward(images, False)

  def __call__(self, images, is_training):
    return self._forward(images, is_training)[0]


IMAGE_SHAPES = {"mlp": (2, 3, 1), "cnn": (5, 5, 2)}


def tiny_model(kind, seed=0, dtype=np.float64, num_classes=3):
  """A built tiny model ("mlp" or "cnn") with weights of seed `seed`.

  The CNN's batch norm gets moving statistics from a training-mode call
  (mean and variance of random inputs), so inference mode differs from
  training mode.
  """
  tf.random.set_seed(seed)
  model = TinyMLP(num_classes) if kind == "mlp" else TinyCNN(num_classes)
  rng = np.random.default_rng(seed + 1000)
  x = rng.normal(size=(16,) + IMAGE_SHAPES[kind]).astype(dtype)
  model(tf.constant(x), is_training=False)
  if kind == "cnn":
    for _ in range(3):
      model(tf.constant(x * 2.0 + 0.5), is_training=True)
  return model


def tiny_data(kind, n, seed=0, dtype=np.float64, num_classes=3):
  """(images [n, ...], labels [n], ids [n]) random, ids shuffled."""
  rng = np.random.default_rng(seed)
  images = rng.normal(size=(n,) + IMAGE_SHAPES[kind]).astype(dtype)
  labels = rng.integers(0, num_classes, size=n)
  ids = rng.permutation(3 * n)[:n]
  return images, labels, ids
