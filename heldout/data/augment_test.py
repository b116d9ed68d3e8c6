"""Tests for heldout.data.augment."""

import numpy as np
import tensorflow as tf

from heldout.data import augment


def _images(n=16, h=32, w=32, c=3):
  # Strictly positive, distinct pixels, so a crop's position can be read back.
  return (np.arange(n * h * w * c, dtype=np.float32).reshape(n, h, w, c) + 1)


class AugmentTest(tf.test.TestCase):

  def test_shape_and_dtype(self):
    out = augment.random_crop_and_flip(_images(), seed=[1, 2])
    self.assertEqual(out.shape, (16, 32, 32, 3))
    self.assertEqual(out.dtype, tf.float32)

  def test_same_seed_same_result(self):
    a = augment.random_crop_and_flip(_images(), seed=[3, 4])
    b = augment.random_crop_and_flip(_images(), seed=[3, 4])
    c = augment.random_crop_and_flip(_images(), seed=[3, 5])
    self.assertAllEqual(a, b)
    self.assertNotAllEqual(a, c)

  def test_crop_is_a_window_of_the_padded_image(self):
    images = _images(n=64)
    offsets, flips = augment.random_offsets_and_flips(64, [7, 8], pad=4)
    out = augment.pad_crop_flip(images, offsets, flips, pad=4).numpy()
    padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)])
    offsets, flips = offsets.numpy(), flips.numpy()
    for i in range(64):
      y, x = offsets[i]
      window = padded[i, y:y + 32, x:x + 32]
      if flips[i]:
        window = window[:, ::-1]
      np.testing.assert_array_equal(out[i], window)

  def test_offsets_cover_range_and_flips_are_mixed(self):
    offsets, flips = augment.random_offsets_and_flips(4000, [0, 1], pad=4)
    self.assertAllEqual(np.unique(offsets.numpy()), np.arange(9))
    self.assertBetween(float(np.mean(flips.numpy())), 0.45, 0.55)

  def test_random_result_is_some_flipped_window(self):
    images = _images(n=8)
    out = augment.random_crop_and_flip(images, seed=[5, 6]).numpy()
    padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)])
    for i in range(8):
      candidates = [padded[i, y:y + 32, x:x + 32][:, ::f]
                    for y in range(9) for x in range(9) for f in (1, -1)]
      self.assertTrue(any(np.array_equal(out[i], w) for w in candidates))

  def test_centre_offset_is_identity_and_flip_reverses_columns(self):
    images = _images(n=2, h=4, w=5, c=1)
    out = augment.pad_crop_flip(images, tf.constant([[4, 4], [4, 4]]),
                                tf.constant([False, True])).numpy()
    np.testing.assert_array_equal(out[0], images[0])
    np.testing.assert_array_equal(out[1], images[1][:, ::-1])

  def test_hand_computed_shift(self):
    image = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    out = augment.pad_crop_flip(image, tf.constant([[0, 1]]),
                                tf.constant([False]), pad=1).numpy()
    # Padded: [[0,0,0,0],[0,1,2,0],[0,3,4,0],[0,0,0,0]]; window at (0, 1).
    np.testing.assert_array_equal(out[0, ..., 0], [[0, 0], [1, 2]])

  def test_negative_pad_raises(self):
    with self.assertRaisesRegex(ValueError, "pad"):
      augment.random_crop_and_flip(_images(n=1), [0, 0], pad=-1)


if __name__ == "__main__":
  tf.test.main()
