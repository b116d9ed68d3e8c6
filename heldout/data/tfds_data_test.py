"""Tests for heldout.data.tfds_data, on `tfds.testing.mock_data` (no network).

The test writes the datasets' split metadata to a temporary data_dir
(`testing.write_tfds_metadata`) and mocks from it.
"""

from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from heldout.data import dataset as dataset_lib
from heldout.data import testing
from heldout.data import tfds_data

NUM_EXAMPLES = 9


class LoadTfdsTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("cifar10", "cifar10:3.0.2", (32, 32, 3), 10),
      ("cifar100", "cifar100:3.0.2", (32, 32, 3), 100),
      ("mnist", "mnist", (28, 28, 1), 10),
  )
  def test_loads_whole_in_file_order(self, name, shape, num_classes):
    data_dir = self.create_tempdir().full_path
    testing.write_tfds_metadata(data_dir, name, NUM_EXAMPLES)
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
      ds = tfds_data.load_tfds(name, data_dir=data_dir, download=False)
      # Reference: the same split read one example at a time, unshuffled.
      reference = {
          split: list(tfds.as_numpy(tfds.load(
              name, split=split, shuffle_files=False, data_dir=data_dir)))
          for split in ("train", "test")}
    self.assertEqual(ds.name, name)
    self.assertEqual(ds.num_classes, num_classes)
    for split in ("train", "test"):
      data = ds.split(split)
      ref = reference[split]
      self.assertLen(data, NUM_EXAMPLES)
      self.assertEqual(data.image_shape, shape)
      self.assertEqual(data.images.dtype, np.float32)
      np.testing.assert_array_equal(data.index, np.arange(NUM_EXAMPLES))
      for i, example in enumerate(ref):
        # Example i of the one-by-one read is the example with id i.
        np.testing.assert_allclose(data.images[i],
                                   example["image"].astype(np.float32) / 255,
                                   rtol=0, atol=1e-7)
        self.assertEqual(data.labels[i], example["label"])
      self.assertGreater(len(np.unique(data.labels)), 1)


class LoadTfdsIdsTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("cifar10_train", "cifar10:3.0.2", "train"),
      ("cifar100_test", "cifar100:3.0.2", "test"),
  )
  def test_ids_in_tfds_order(self, name, split):
    data_dir = self.create_tempdir().full_path
    testing.write_tfds_metadata(data_dir, name, NUM_EXAMPLES)
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
      ids = tfds_data.load_tfds_ids(name, split, data_dir=data_dir,
                                    download=False)
      # Reference: whole examples read one at a time, unshuffled.
      reference = [example["id"].decode("utf-8") for example in tfds.as_numpy(
          tfds.load(name, split=split, shuffle_files=False, data_dir=data_dir))]
    self.assertLen(reference, NUM_EXAMPLES)
    self.assertEqual(ids.shape, (NUM_EXAMPLES,))
    self.assertEqual(ids.tolist(), reference)
    self.assertLen(set(reference), NUM_EXAMPLES)

  def test_given_ids_come_back_in_order(self):
    # The mock's ids are random strings; here the split holds ids we chose,
    # in an order unlike the original one.
    chosen = ["train_00002", "train_00000", "train_00003", "train_00001"]
    name = "cifar10:3.0.2"
    data_dir = self.create_tempdir().full_path
    testing.write_tfds_metadata(data_dir, name, len(chosen))

    def as_dataset(self, *args, **kwargs):
      del args, kwargs
      return tf.data.Dataset.from_tensor_slices({
          "id": chosen,
          "image": tf.zeros([len(chosen), 32, 32, 3], tf.uint8),
          "label": tf.zeros([len(chosen)], tf.int64)})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
      ids = tfds_data.load_tfds_ids(name, data_dir=data_dir, download=False)
    self.assertEqual(ids.tolist(), chosen)

  def test_no_id_feature(self):
    data_dir = self.create_tempdir().full_path
    testing.write_tfds_metadata(data_dir, "mnist", NUM_EXAMPLES)
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
      with self.assertRaisesRegex(dataset_lib.DatasetError,
                                  r"mnist: expected an `id` feature, found "
                                  r"features \['image', 'label'\]"):
        tfds_data.load_tfds_ids("mnist", data_dir=data_dir, download=False)


class MissingDataTest(absltest.TestCase):

  def test_not_prepared_is_a_named_error(self):
    data_dir = self.create_tempdir().full_path
    with self.assertRaisesRegex(
        dataset_lib.DatasetError,
        r"cifar10:3.0.2: no prepared copy in .* downloading is off; .*"
        r"`tfds build cifar10:3.0.2`.*--data_dir"):
      tfds_data.load_tfds("cifar10:3.0.2", data_dir=data_dir, download=False)

  def test_failed_download_is_a_named_error(self):
    data_dir = self.create_tempdir().full_path
    def refuse(*unused_args, **unused_kwargs):
      raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'")
    with mock.patch.object(tfds, "load", refuse):
      with self.assertRaisesRegex(
          dataset_lib.DatasetError,
          r"downloading it failed \(Failed to resolve 'www.cs.toronto.edu'\)"):
        tfds_data.load_tfds("cifar10:3.0.2", data_dir=data_dir)


if __name__ == "__main__":
  absltest.main()
