"""CIFAR training augmentation: zero-pad 4, random 32x32 crop, random flip.

As the released CIFAR runs were trained: each image is padded with 4 zero
pixels on every side, a window of the original size is cut at a uniformly
random offset in [0, 2 * pad] along each axis (every window of the padded
image is possible), and the result is flipped left-right with probability
1/2. (Upstream's numpy version draws offsets in [0, 2 * pad); TF's
`random_crop` and this module allow all 2 * pad + 1.)

Randomness is stateless: the same `seed` gives the same augmentation, so an
interrupted run that resumes re-draws exactly what it would have drawn.
"""

import tensorflow as tf


def random_offsets_and_flips(batch_size, seed, pad=4):
  """Draws the crop offsets and flip decisions of one batch.

  Args:
    batch_size: number of images (scalar int).
    seed: [2] int32/int64 stateless seed.
    pad: padding on each side.

  Returns:
    (offsets [batch, 2] int32 (row, col) in [0, 2 * pad],
     flips [batch] bool).
  """
  seed = tf.cast(seed, tf.int64)
  crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=2))
  offsets = tf.random.stateless_uniform(
      [batch_size, 2], seed=crop_seed, minval=0, maxval=2 * pad + 1,
      dtype=tf.int32)
  flips = tf.random.stateless_uniform([batch_size], seed=flip_seed) < 0.5
  return offsets, flips


def pad_crop_flip(images, offsets, flips, pad=4):
  """Applies given crop offsets and flips to zero-padded images.

  Args:
    images: [batch, height, width, channels].
    offsets: [batch, 2] int32 (row, col) offsets into the padded image, each
      in [0, 2 * pad].
    flips: [batch] bool, flip left-right after cropping.
    pad: zero padding on each side.

  Returns:
    [batch, height, width, channels], same dtype as `images`.
  """
  images = tf.convert_to_tensor(images)
  shape = tf.shape(images)
  height, width = shape[1], shape[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  rows = offsets[:, :1] + tf.range(height)[None, :]  # [batch, height]
  cols = offsets[:, 1:] + tf.range(width)[None, :]   # [batch, width]
  out = tf.gather(padded, rows, axis=1, batch_dims=1)
  out = tf.gather(out, cols, axis=2, batch_dims=1)
  return tf.where(flips[:, None, None, None], tf.reverse(out, axis=[2]), out)


def random_crop_and_flip(images, seed, pad=4):
  """Zero-pad `pad`, random crop back to size, random left-right flip.

  Args:
    images: [batch, height, width, channels] float32.
    seed: [2] int stateless seed; same seed, same augmentation.
    pad: padding on each side (4 for CIFAR).

  Returns:
    [batch, height, width, channels] augmented images.

  Raises:
    ValueError: if `pad` is negative.
  """
  if pad < 0:
    raise ValueError("`pad` must be non-negative, got {}".format(pad))
  offsets, flips = random_offsets_and_flips(tf.shape(images)[0], seed, pad)
  return pad_crop_flip(images, offsets, flips, pad)
