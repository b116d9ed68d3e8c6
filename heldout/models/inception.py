"""SmallInception: the CIFAR architecture of the released heldout checkpoints.

The attribute names and nesting below are the checkpoint format: a TF2
object-based checkpoint stores each variable under the path of attributes that
leads to it (`model/stage1/_body/0/conv1x1/conv/w`), so renaming an attribute
or reordering a list breaks compatibility with the released runs.
"""

from typing import Optional, Sequence, Tuple

import sonnet as snt
import tensorflow as tf

# (1x1 channels, 3x3 channels) of each block, and the channels of the stride-2
# downsampling conv after the blocks (0: no downsampling), stage by stage.
STAGE1_BLOCKS = ((32, 32), (32, 48))
STAGE1_DOWNSAMPLE = 160
STAGE2_BLOCKS = ((112, 48), (96, 64), (80, 80), (48, 96))
STAGE2_DOWNSAMPLE = 240
STAGE3_BLOCKS = ((176, 160), (176, 160))
STAGE3_DOWNSAMPLE = 0
CONV1_CHANNELS = 96
# snt.BatchNorm's defaults in dm-sonnet 2.0.x, which the original code relied
# on (it passed neither): decay 0.999, eps 1e-5.
BN_DECAY_RATE = 0.999
BN_EPS = 1e-5


class ConvBNReLU(snt.Module):
  """Bias-free SAME convolution, batch norm with scale and offset, ReLU.

  Variables (checkpoint paths relative to this module):
    `conv/w`: [k, k, in_channels, output_channels]
    `bn/scale`, `bn/offset`: [output_channels] (decay 0.999, eps 1e-5)
    `bn/moving_mean/{average,_hidden}`, `bn/moving_variance/{average,_hidden}`:
      [1, 1, 1, output_channels]; `bn/moving_*/_counter`: [] int64.
  """

  def __init__(self, output_channels: int, kernel_size: int, stride: int = 1,
               name: Optional[str] = None):
    """Constructs the layer.

    Args:
      output_channels: number of output channels.
      kernel_size: side of the square kernel.
      stride: stride of the convolution.
      name: module name.

    Raises:
      ValueError: if an argument is not positive.
    """
    super().__init__(name=name)
    for arg, value in (("output_channels", output_channels),
                       ("kernel_size", kernel_size), ("stride", stride)):
      if value < 1:
        raise ValueError(f"`{arg}` must be positive, got {value}")
    self.conv = snt.Conv2D(output_channels, kernel_size, stride=stride,
                           padding="SAME", with_bias=False, name="conv")
    # The released runs used dm-sonnet 2.0's defaults; pinned here.
    self.bn = snt.BatchNorm(create_scale=True, create_offset=True,
                            decay_rate=BN_DECAY_RATE, eps=BN_EPS, name="bn")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Applies the layer.

    Args:
      inputs: [batch, height, width, in_channels] float32.
      is_training: use batch statistics and update the moving averages.

    Returns:
      [batch, height / stride, width / stride, output_channels] float32.
    """
    return tf.nn.relu(self.bn(self.conv(inputs), is_training=is_training))


class MultiBranchBlock(snt.Module):
  """A 1x1 and a 3x3 ConvBNReLU side by side, concatenated (1x1 first)."""

  def __init__(self, channels_1x1: int, channels_3x3: int,
               name: Optional[str] = None):
    """Constructs the block.

    Args:
      channels_1x1: output channels of the 1x1 branch `conv1x1`.
      channels_3x3: output channels of the 3x3 branch `conv3x3`.
      name: module name.
    """
    super().__init__(name=name)
    self.conv1x1 = ConvBNReLU(channels_1x1, 1, name="conv1x1")
    self.conv3x3 = ConvBNReLU(channels_3x3, 3, name="conv3x3")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns [batch, height, width, channels_1x1 + channels_3x3] float32."""
    return tf.concat([self.conv1x1(inputs, is_training),
                      self.conv3x3(inputs, is_training)], axis=3)


class SmallInceptionStage(snt.Module):
  """MultiBranchBlocks in a list `_body`, then an optional `_downsample`."""

  def __init__(self, block_channels: Sequence[Tuple[int, int]],
               downsample_channels: int, with_residual: bool = False,
               name: Optional[str] = None):
    """Constructs the stage.

    Args:
      block_channels: (1x1 channels, 3x3 channels) of each block, in order.
      downsample_channels: output channels of the stride-2 3x3 ConvBNReLU that
        ends the stage; 0 for none.
      with_residual: add the stage input to the output of the blocks (needs
        the blocks' output channels to equal the input channels).
      name: module name.

    Raises:
      ValueError: if `block_channels` is empty or `downsample_channels` < 0.
    """
    super().__init__(name=name)
    if not block_channels:
      raise ValueError("`block_channels` must not be empty")
    if downsample_channels < 0:
      raise ValueError("`downsample_channels` must be >= 0, got "
                       f"{downsample_channels}")
    self._with_residual = with_residual
    self._body = [MultiBranchBlock(c1, c3, name=f"block{i + 1}")
                  for i, (c1, c3) in enumerate(block_channels)]
    if downsample_channels:
      self._downsample = ConvBNReLU(downsample_channels, 3, stride=2,
                                    name="downsample")
    else:
      self._downsample = None

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Applies the stage to [batch, height, width, channels] float32."""
    x = inputs
    for block in self._body:
      x = block(x, is_training)
    if self._with_residual:
      x += inputs
    if self._downsample is not None:
      x = self._downsample(x, is_training)
    return x


class SmallInception(snt.Module):
  """Inception-like network for small images (CIFAR-10/100).

  `conv1` (96 channels, 3x3; or 7x7 stride 2 and a 3x3/2 max pool with
  `large_inputs`), three stages (`stage1`, `stage2` downsample by 2 each), a
  global max pool over height and width (336 features), then `_pred`, a linear
  layer with bias. With 32x32x3 inputs this holds 173 variables, exactly the
  `model/...` keys of the released `cifar10-inception` / `cifar100-inception`
  checkpoints.
  """

  def __init__(self, num_classes: int, large_inputs: bool = False,
               with_residual: bool = False, name: Optional[str] = None):
    """Constructs the network.

    Args:
      num_classes: number of logits.
      large_inputs: start with a 7x7 stride-2 conv and a 3x3 stride-2 max pool
        instead of a 3x3 stride-1 conv.
      with_residual: add each stage's input to its blocks' output (off in the
        released runs; it adds no variables, so a checkpoint cannot tell).
      name: module name.

    Raises:
      ValueError: if `num_classes` is not positive.
    """
    super().__init__(name=name)
    if num_classes < 1:
      raise ValueError(f"`num_classes` must be positive, got {num_classes}")
    self._num_classes = num_classes
    self._large_inputs = large_inputs
    if large_inputs:
      self.conv1 = ConvBNReLU(CONV1_CHANNELS, 7, stride=2, name="conv1")
    else:
      self.conv1 = ConvBNReLU(CONV1_CHANNELS, 3, name="conv1")
    self.stage1 = SmallInceptionStage(STAGE1_BLOCKS, STAGE1_DOWNSAMPLE,
                                      with_residual, name="stage1")
    self.stage2 = SmallInceptionStage(STAGE2_BLOCKS, STAGE2_DOWNSAMPLE,
                                      with_residual, name="stage2")
    self.stage3 = SmallInceptionStage(STAGE3_BLOCKS, STAGE3_DOWNSAMPLE,
                                      with_residual, name="stage3")
    self._pred = snt.Linear(num_classes, name="pred")

  def compute_repr(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns the pooled features.

    Args:
      images: [batch, height, width, channels] float32 in [0, 1].
      is_training: use batch statistics and update the moving averages.

    Returns:
      features: [batch, 336] float32.
    """
    x = self.conv1(images, is_training)
    if self._large_inputs:
      x = tf.nn.max_pool2d(x, ksize=3, strides=2, padding="SAME")
    x = self.stage1(x, is_training)
    x = self.stage2(x, is_training)
    x = self.stage3(x, is_training)
    return tf.reduce_max(x, axis=[1, 2])

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Returns logits: [batch, num_classes] float32 for images as above."""
    return self._pred(self.compute_repr(images, is_training))
