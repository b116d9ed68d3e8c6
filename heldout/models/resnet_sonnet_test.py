"""Tests for heldout.models.resnet_sonnet against the released key listing."""

import os

import tensorflow as tf

from heldout.models import resnet_sonnet
from heldout.models import testing


class ResNet50Test(tf.test.TestCase):

  def test_checkpoint_keys_match_release(self):
    model = resnet_sonnet.ResNet50(1000)
    # Variable shapes do not depend on the image size; 64x64 keeps this fast.
    logits = model(tf.zeros([1, 64, 64, 3]), is_training=False)
    self.assertEqual(logits.shape, [1, 1000])
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-90"), model)
    found = testing.listed_variables(prefix)
    expected = testing.released_variables("imagenet-resnet50")
    self.assertLen(expected, 481)
    self.assertEqual(sorted(set(found) - set(expected)), [])
    self.assertEqual(sorted(set(expected) - set(found)), [])
    self.assertEqual(found, expected)


if __name__ == "__main__":
  tf.test.main()
