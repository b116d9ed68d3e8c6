"""Pre-activation (v2) ResNets for CIFAR, with upstream's attribute names.

No checkpoints of these were released, but the attribute names, nesting and
kernel shapes follow the original heldout-training code so that checkpoints
written by it restore here. In particular `BasicBlockV2` keeps upstream's
layout: a 1x1 `_conv_0` followed by a 3x3 `_conv_1` that carries the stride
(not the textbook two 3x3 convs).

Checkpoint paths, relative to the model:
  `_initial_conv/w`: [3, 3, in_channels, 64] (small inputs) or [7, 7, ., 64]
  `_block_groups/g/_blocks/b/_conv_i/w`, `.../_bn_i/{scale,offset,moving_*}`
  `_block_groups/g/_blocks/0/_proj_conv/w` (first block of each group)
  `_final_batchnorm/...`, `_logits/w`: [features, num_classes], `_logits/b`.
"""

from typing import Mapping, Optional, Sequence

import sonnet as snt
import tensorflow as tf

DEFAULT_BN_CONFIG = {"decay_rate": 0.9, "eps": 1e-5}


def _batch_norm(bn_config, name):
  return snt.BatchNorm(create_scale=True, create_offset=True, name=name,
                       **bn_config)


def _conv(channels, kernel_size, stride, name):
  return snt.Conv2D(channels, kernel_size, stride=stride, with_bias=False,
                    padding="SAME", name=name)


def _pre_activation_forward(layers, proj_conv, inputs, is_training):
  """(BN -> ReLU -> conv) for each (conv, bn) of `layers`, plus the shortcut.

  The projection shortcut, when present, is taken from the first
  pre-activation (after the first BN and ReLU), as in ResNet v2.

  Args:
    layers: sequence of (snt.Conv2D, snt.BatchNorm) pairs.
    proj_conv: 1x1 shortcut projection, or None for the identity.
    inputs: [batch, height, width, in_channels] float32.
    is_training: use batch statistics and update the moving averages.

  Returns:
    [batch, height / stride, width / stride, out_channels] float32.
  """
  net = inputs
  shortcut = inputs
  for i, (conv, bn) in enumerate(layers):
    net = tf.nn.relu(bn(net, is_training=is_training))
    if i == 0 and proj_conv is not None:
      shortcut = proj_conv(net)
    net = conv(net)
  return net + shortcut


class BasicBlockV2(snt.Module):
  """Pre-activation basic block: 1x1 `_conv_0`, 3x3 `_conv_1` (strided).

  Output channels: `channels`.
  """

  def __init__(self, channels: int, stride: int, use_projection: bool,
               bn_config: Mapping[str, float], name: Optional[str] = None):
    """Constructs the block.

    Args:
      channels: output channels.
      stride: stride of `_conv_1` and of the projection.
      use_projection: add a 1x1 `_proj_conv` on the shortcut (needed when the
        stride or the number of channels changes).
      bn_config: keyword arguments of every `snt.BatchNorm` (decay_rate, eps).
      name: module name.
    """
    super().__init__(name=name)
    self._proj_conv = (_conv(channels, 1, stride, "shortcut_conv")
                       if use_projection else None)
    self._conv_0 = _conv(channels, 1, 1, "conv_0")
    self._bn_0 = _batch_norm(bn_config, "batchnorm_0")
    self._conv_1 = _conv(channels, 3, stride, "conv_1")
    self._bn_1 = _batch_norm(bn_config, "batchnorm_1")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Applies the block to [batch, height, width, in_channels] float32."""
    return _pre_activation_forward(
        ((self._conv_0, self._bn_0), (self._conv_1, self._bn_1)),
        self._proj_conv, inputs, is_training)


class BottleNeckBlockV2(snt.Module):
  """Pre-activation bottleneck: 1x1, 3x3 (strided), 1x1 to 4 x `channels`."""

  def __init__(self, channels: int, stride: int, use_projection: bool,
               bn_config: Mapping[str, float], name: Optional[str] = None):
    """Constructs the block.

    Args:
      channels: bottleneck channels; the block outputs 4 * `channels`.
      stride: stride of `_conv_1` and of the projection.
      use_projection: add a 1x1 `_proj_conv` on the shortcut.
      bn_config: keyword arguments of every `snt.BatchNorm` (decay_rate, eps).
      name: module name.
    """
    super().__init__(name=name)
    self._proj_conv = (_conv(4 * channels, 1, stride, "shortcut_conv")
                       if use_projection else None)
    self._conv_0 = _conv(channels, 1, 1, "conv_0")
    self._bn_0 = _batch_norm(bn_config, "batchnorm_0")
    self._conv_1 = _conv(channels, 3, stride, "conv_1")
    self._bn_1 = _batch_norm(bn_config, "batchnorm_1")
    self._conv_2 = _conv(4 * channels, 1, 1, "conv_2")
    self._bn_2 = _batch_norm(bn_config, "batchnorm_2")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Applies the block to [batch, height, width, in_channels] float32."""
    return _pre_activation_forward(
        ((self._conv_0, self._bn_0), (self._conv_1, self._bn_1),
         (self._conv_2, self._bn_2)),
        self._proj_conv, inputs, is_training)


class BlockGroup(snt.Module):
  """`num_blocks` blocks in a list `_blocks`; the first strides and projects."""

  def __init__(self, channels: int, num_blocks: int, stride: int,
               bn_config: Mapping[str, float], bottleneck_block: bool = False,
               name: Optional[str] = None):
    """Constructs the group.

    Args:
      channels: channels argument of each block.
      num_blocks: number of blocks.
      stride: stride of the first block.
      bn_config: keyword arguments of every `snt.BatchNorm`.
      bottleneck_block: use `BottleNeckBlockV2` instead of `BasicBlockV2`.
      name: module name.

    Raises:
      ValueError: if `num_blocks` is not positive.
    """
    super().__init__(name=name)
    if num_blocks < 1:
      raise ValueError(f"`num_blocks` must be positive, got {num_blocks}")
    block = BottleNeckBlockV2 if bottleneck_block else BasicBlockV2
    self._blocks = [
        block(channels=channels, stride=stride if i == 0 else 1,
              use_projection=(i == 0), bn_config=bn_config, name=f"block_{i}")
        for i in range(num_blocks)]

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Applies the blocks to [batch, height, width, channels] float32."""
    net = inputs
    for block in self._blocks:
      net = block(net, is_training=is_training)
    return net


class ResNetV2(snt.Module):
  """Pre-activation ResNet.

  `_initial_conv` (64 channels: 3x3 stride 1 for small inputs; 7x7 stride 2
  and a 3x3/2 max pool otherwise), block groups (stride 1 for the first,
  2 after), `_final_batchnorm` and ReLU, a mean pool over height and width,
  then `_logits` (linear, zero-initialized weights).
  """

  def __init__(self, num_classes: int, blocks_per_group_list: Sequence[int],
               bottleneck_block: bool,
               bn_config: Optional[Mapping[str, float]] = None,
               small_input: bool = False,
               channels_per_group_list: Sequence[int] = (64, 128, 256, 512),
               name: Optional[str] = None):
    """Constructs the network.

    Args:
      num_classes: number of logits.
      blocks_per_group_list: number of blocks in each group.
      bottleneck_block: use bottleneck blocks (outputs 4 x channels).
      bn_config: `decay_rate` and `eps` of every batch norm; default
        decay 0.9, eps 1e-5.
      small_input: 3x3 stride-1 initial conv and no max pool (CIFAR).
      channels_per_group_list: channels of the blocks of each group.
      name: module name.

    Raises:
      ValueError: if `num_classes` is not positive or the two lists differ in
        length.
    """
    super().__init__(name=name)
    if num_classes < 1:
      raise ValueError(f"`num_classes` must be positive, got {num_classes}")
    if len(blocks_per_group_list) != len(channels_per_group_list):
      raise ValueError(
          "`blocks_per_group_list` and `channels_per_group_list` must have the "
          f"same length, got {len(blocks_per_group_list)} and "
          f"{len(channels_per_group_list)}")
    bn_config = dict(DEFAULT_BN_CONFIG if bn_config is None else bn_config)
    self._small_input = small_input
    if small_input:
      self._initial_conv = _conv(64, 3, 1, "initial_conv")
    else:
      self._initial_conv = _conv(64, 7, 2, "initial_conv")
    self._block_groups = [
        BlockGroup(channels=channels, num_blocks=num_blocks,
                   stride=1 if i == 0 else 2, bn_config=bn_config,
                   bottleneck_block=bottleneck_block, name=f"block_group_{i}")
        for i, (channels, num_blocks) in enumerate(
            zip(channels_per_group_list, blocks_per_group_list))]
    self._final_batchnorm = _batch_norm(bn_config, "final_batchnorm")
    self._logits = snt.Linear(num_classes, w_init=snt.initializers.Zeros(),
                              name="logits")

  def compute_repr(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns the pooled features.

    Args:
      images: [batch, height, width, channels] float32.
      is_training: use batch statistics and update the moving averages.

    Returns:
      features: [batch, channels of the last group (x4 for bottlenecks)].
    """
    net = self._initial_conv(images)
    if not self._small_input:
      net = tf.nn.max_pool2d(net, ksize=3, strides=2, padding="SAME")
    for group in self._block_groups:
      net = group(net, is_training)
    net = tf.nn.relu(self._final_batchnorm(net, is_training=is_training))
    return tf.reduce_mean(net, axis=[1, 2])

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns logits: [batch, num_classes] float32."""
    return self._logits(self.compute_repr(images, is_training))


class CifarResNet18(ResNetV2):
  """ResNetV2 with [2, 2, 2, 2] basic blocks for 32x32 inputs."""

  def __init__(self, num_classes: int, name: Optional[str] = None):
    super().__init__(num_classes=num_classes,
                     blocks_per_group_list=(2, 2, 2, 2),
                     bottleneck_block=False, small_input=True, name=name)


class CifarResNet50(ResNetV2):
  """ResNetV2 with [3, 4, 6, 3] bottleneck blocks for 32x32 inputs."""

  def __init__(self, num_classes: int, name: Optional[str] = None):
    super().__init__(num_classes=num_classes,
                     blocks_per_group_list=(3, 4, 6, 3),
                     bottleneck_block=True, small_input=True, name=name)
