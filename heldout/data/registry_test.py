"""Tests for heldout.data.registry."""

import os

from absl.testing import absltest
import numpy as np

from heldout import data
from heldout.data import digits
from heldout.data import npz_format
from heldout.data import registry


class RegistryTest(absltest.TestCase):

  def test_digits(self):
    ds = registry.load_dataset("digits")
    np.testing.assert_array_equal(ds.train.images, digits.load_digits().train.images)

  def test_npz(self):
    path = os.path.join(self.create_tempdir().full_path, "mine.npz")
    npz_format.write_npz_dataset(path, {"train": {
        "image": np.zeros((2, 3, 3, 1), np.uint8), "label": [0, 1]}},
                                 num_classes=2)
    ds = registry.load_dataset("npz:" + path)
    self.assertEqual(ds.name, "npz:" + path)
    self.assertLen(ds.train, 2)

  def test_package_surface(self):
    self.assertIs(data.load_dataset, registry.load_dataset)
    self.assertIn("cifar10:3.0.2", data.DATASET_NAMES)

  def test_unknown_name_lists_known(self):
    with self.assertRaisesRegex(ValueError, "cifar10:3.0.2"):
      registry.load_dataset("imagenet")
    with self.assertRaisesRegex(ValueError, "path"):
      registry.load_dataset("npz:")


if __name__ == "__main__":
  absltest.main()
