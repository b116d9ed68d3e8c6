"""Small models for digits- and MNIST-size images.

Both are plain Sonnet modules called as `model(images, is_training)` on
float32 NHWC images; `is_training` is accepted for a uniform interface and
ignored (neither model has batch norm or dropout). Their variable paths are a
checkpoint format: a batched K-models-at-once trainer must save into exactly
the variables listed in each class docstring so that one run restores here.
"""

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf

KERNEL_SIZE = 3


def _check_sizes(arg, sizes):
  for size in sizes:
    if size < 1:
      raise ValueError(f"`{arg}` must hold positive sizes, got {tuple(sizes)}")


class MLP(snt.Module):
  """Flatten, then linear layers with ReLU between them (none after the last).

  Variables, with D = height * width * channels of the input, H_i =
  `hidden_sizes[i]`, L = len(hidden_sizes), checkpoint paths relative to the
  model:
    `_layers/0/w`: [D, H_0]          `_layers/0/b`: [H_0]
    `_layers/i/w`: [H_{i-1}, H_i]    `_layers/i/b`: [H_i]      (0 < i < L)
    `_layers/L/w`: [H_{L-1}, num_classes]  `_layers/L/b`: [num_classes]
  (with no hidden layer, `_layers/0/w` is [D, num_classes]). Weights are
  `snt.Linear`'s defaults: truncated normal with stddev 1 / sqrt(fan_in),
  zero biases.
  """

  def __init__(self, num_classes: int, hidden_sizes: Sequence[int] = (256,),
               name: Optional[str] = None):
    """Constructs the MLP.

    Args:
      num_classes: number of logits.
      hidden_sizes: width of each hidden layer, in order; () for a linear
        classifier.
      name: module name.

    Raises:
      ValueError: if `num_classes` or a hidden size is not positive.
    """
    super().__init__(name=name)
    if num_classes < 1:
      raise ValueError(f"`num_classes` must be positive, got {num_classes}")
    _check_sizes("hidden_sizes", hidden_sizes)
    sizes = list(hidden_sizes) + [num_classes]
    self._layers = [snt.Linear(size, name=f"linear_{i}")
                    for i, size in enumerate(sizes)]

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns logits.

    Args:
      images: [batch, height, width, channels] (or any [batch, ...]) float32.
      is_training: ignored.

    Returns:
      logits: [batch, num_classes] float32.
    """
    del is_training
    net = snt.flatten(tf.convert_to_tensor(images))
    for i, layer in enumerate(self._layers):
      if i:
        net = tf.nn.relu(net)
      net = layer(net)
    return net


class SmallCNN(snt.Module):
  """(3x3 conv -> ReLU -> 2x2/2 max pool) per channel entry, then 2 linears.

  Convs use SAME padding and a bias; pooling is SAME, so an H x W input leaves
  ceil(H / 2^n) x ceil(W / 2^n) after n conv stages. Variables, with C = input
  channels, c_i = `channels[i]`, n = len(channels), F = (pooled height) *
  (pooled width) * c_{n-1}, checkpoint paths relative to the model:
    `_convs/0/w`: [3, 3, C, c_0]          `_convs/0/b`: [c_0]
    `_convs/i/w`: [3, 3, c_{i-1}, c_i]    `_convs/i/b`: [c_i]
    `_hidden/w`: [F, hidden]              `_hidden/b`: [hidden]
    `_logits/w`: [hidden, num_classes]    `_logits/b`: [num_classes]
  The flattening before `_hidden` is row-major over (height, width, channel).
  For 8x8x1 digits with the defaults: F = 2 * 2 * 64 = 256.
  """

  def __init__(self, num_classes: int, channels: Sequence[int] = (32, 64),
               hidden: int = 128, name: Optional[str] = None):
    """Constructs the CNN.

    Args:
      num_classes: number of logits.
      channels: output channels of each conv stage, in order (at least one).
      hidden: width of the hidden linear layer.
      name: module name.

    Raises:
      ValueError: if a size is not positive or `channels` is empty.
    """
    super().__init__(name=name)
    if num_classes < 1:
      raise ValueError(f"`num_classes` must be positive, got {num_classes}")
    if not channels:
      raise ValueError("`channels` must not be empty")
    _check_sizes("channels", channels)
    if hidden < 1:
      raise ValueError(f"`hidden` must be positive, got {hidden}")
    self._convs = [snt.Conv2D(c, KERNEL_SIZE, padding="SAME", name=f"conv_{i}")
                   for i, c in enumerate(channels)]
    self._hidden = snt.Linear(hidden, name="hidden")
    self._logits = snt.Linear(num_classes, name="logits")

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns logits.

    Args:
      images: [batch, height, width, channels] float32.
      is_training: ignored.

    Returns:
      logits: [batch, num_classes] float32.
    """
    del is_training
    net = images
    for conv in self._convs:
      net = tf.nn.max_pool2d(tf.nn.relu(conv(net)), ksize=2, strides=2,
                             padding="SAME")
    net = tf.nn.relu(self._hidden(snt.flatten(net)))
    return self._logits(net)
