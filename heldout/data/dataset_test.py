"""Tests for heldout.data.dataset."""

from absl.testing import absltest
import numpy as np

from heldout.data import dataset as dataset_lib


def _split(n, index=None):
  rng = np.random.RandomState(0)
  return dataset_lib.split_from_arrays(
      rng.randint(0, 256, size=(n, 4, 4, 3)), rng.randint(0, 3, size=n),
      index=index, scale=255.0)


class SplitDataTest(absltest.TestCase):

  def test_scales_and_defaults_index_to_position(self):
    raw = np.full((3, 2, 2), 51, np.uint8)
    split = dataset_lib.split_from_arrays(raw, [0, 1, 2], scale=255.0)
    self.assertEqual(split.images.shape, (3, 2, 2, 1))
    self.assertEqual(split.images.dtype, np.float32)
    np.testing.assert_allclose(split.images, 0.2, rtol=1e-6)
    np.testing.assert_array_equal(split.index, [0, 1, 2])

  def test_positions_of_inverts_index(self):
    index = np.array([3, 0, 4, 1, 2])
    split = _split(5, index=index)
    ids = np.array([4, 0, 2])
    positions = split.positions_of(ids)
    np.testing.assert_array_equal(split.index[positions], ids)

  def test_rejects_index_that_is_not_a_permutation(self):
    with self.assertRaisesRegex(dataset_lib.DatasetError, "permutation"):
      _split(3, index=[0, 0, 1])

  def test_rejects_length_mismatch(self):
    with self.assertRaisesRegex(dataset_lib.DatasetError, "labels"):
      dataset_lib.SplitData(np.zeros((3, 2, 2, 1), np.float32),
                            np.zeros(2, np.int64), np.arange(3))

  def test_labels_by_id(self):
    split = dataset_lib.SplitData(images=np.zeros((3, 2, 2, 1), np.float32),
                                  labels=np.array([7, 8, 9]),
                                  index=np.array([2, 0, 1]))
    # Position 0 holds id 2 (label 7), position 1 id 0 (label 8), ...
    np.testing.assert_array_equal(split.labels_by_id(), [8, 9, 7])

  def test_take_keeps_ids(self):
    split = _split(6, index=[5, 4, 3, 2, 1, 0])
    sub = split.take([1, 3])
    np.testing.assert_array_equal(sub.index, [4, 2])
    np.testing.assert_array_equal(sub.images, split.images[[1, 3]])


class DatasetTest(absltest.TestCase):

  def test_rejects_labels_out_of_range(self):
    with self.assertRaisesRegex(dataset_lib.DatasetError, "num_classes"):
      dataset_lib.Dataset("x", 2, {"train": _split(20)})

  def test_missing_split_names_present_ones(self):
    ds = dataset_lib.Dataset("x", 3, {"train": _split(4)})
    with self.assertRaisesRegex(dataset_lib.DatasetError, r"\['train'\]"):
      _ = ds.test

  def test_summary(self):
    ds = dataset_lib.Dataset("x", 3, {"train": _split(4), "test": _split(2)})
    self.assertEqual(ds.summary(), "x: 3 classes, images 4x4x3, test 2, train 4")


if __name__ == "__main__":
  absltest.main()
