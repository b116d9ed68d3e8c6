"""Tests for heldout.data.npz_format: round trip and named errors."""

import os

from absl.testing import absltest
import numpy as np

from heldout.data import dataset as dataset_lib
from heldout.data import npz_format


def _arrays(n, seed):
  rng = np.random.RandomState(seed)
  return {"image": rng.randint(0, 256, size=(n, 5, 5, 3)).astype(np.uint8),
          "label": rng.randint(0, 4, size=n)}


class NpzFormatTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.create_tempdir().full_path

  def _path(self, name="d.npz"):
    return os.path.join(self.dir, name)

  def test_round_trip(self):
    train = dict(_arrays(7, 0), index=np.array([6, 5, 4, 3, 2, 1, 0]))
    test = _arrays(3, 1)
    npz_format.write_npz_dataset(self._path(), {"train": train, "test": test},
                                 num_classes=4, data_scale=255.0)
    with np.load(self._path()) as raw:
      self.assertCountEqual(raw.files, [
          "__num_classes", "__data_scale", "train__image", "train__label",
          "train__index", "test__image", "test__label"])
    ds = npz_format.read_npz_dataset(self._path())
    self.assertEqual(ds.name, "npz:" + self._path())
    self.assertEqual(ds.num_classes, 4)
    np.testing.assert_allclose(ds.train.images, train["image"] / 255.0,
                               rtol=1e-6)
    np.testing.assert_array_equal(ds.train.labels, train["label"])
    np.testing.assert_array_equal(ds.train.index, train["index"])
    np.testing.assert_array_equal(ds.test.index, np.arange(3))

  def test_reads_a_file_written_by_plain_numpy(self):
    # As a user following upstream's format would write it.
    np.savez(self._path(), __num_classes=2, __data_scale=1.0,
             train__image=np.ones((4, 3, 3), np.float32),
             train__label=np.array([0, 1, 0, 1]))
    ds = npz_format.read_npz_dataset(self._path())
    self.assertEqual(ds.train.images.shape, (4, 3, 3, 1))
    np.testing.assert_array_equal(ds.train.images, 1.0)

  def _write_raw(self, **arrays):
    np.savez(self._path(), **arrays)
    return self._path()

  def _assert_read_error(self, regex, **arrays):
    path = self._write_raw(**arrays)
    with self.assertRaisesRegex(dataset_lib.DatasetError, regex) as ctx:
      npz_format.read_npz_dataset(path)
    self.assertIn(path, str(ctx.exception))

  def test_missing_file(self):
    with self.assertRaisesRegex(dataset_lib.DatasetError, "no such file"):
      npz_format.read_npz_dataset(self._path("absent.npz"))

  def test_not_an_npz(self):
    with open(self._path(), "w") as f:
      f.write("hello")
    with self.assertRaisesRegex(dataset_lib.DatasetError, "could not read"):
      npz_format.read_npz_dataset(self._path())

  def test_missing_meta(self):
    a = _arrays(3, 0)
    self._assert_read_error("`__data_scale`", __num_classes=4,
                            train__image=a["image"], train__label=a["label"])

  def test_missing_label(self):
    self._assert_read_error("missing `train__label`", __num_classes=4,
                            __data_scale=255, train__image=_arrays(3, 0)["image"])

  def test_bad_name(self):
    a = _arrays(3, 0)
    self._assert_read_error("`trainimage`", __num_classes=4, __data_scale=255,
                            trainimage=a["image"])

  def test_unknown_key(self):
    a = _arrays(3, 0)
    self._assert_read_error("`mask`", __num_classes=4, __data_scale=255,
                            train__image=a["image"], train__label=a["label"],
                            train__mask=a["label"])

  def test_length_mismatch(self):
    a = _arrays(3, 0)
    self._assert_read_error(r"`train__label`: expected shape \[3\]",
                            __num_classes=4, __data_scale=255,
                            train__image=a["image"], train__label=[0, 1])

  def test_label_out_of_range(self):
    a = _arrays(3, 0)
    self._assert_read_error("num_classes", __num_classes=2, __data_scale=255,
                            train__image=a["image"], train__label=[0, 1, 3])

  def test_bad_index(self):
    a = _arrays(3, 0)
    self._assert_read_error("permutation", __num_classes=4, __data_scale=255,
                            train__image=a["image"], train__label=a["label"],
                            train__index=[0, 0, 1])

  def test_writer_refuses_bad_input_and_writes_nothing(self):
    with self.assertRaisesRegex(dataset_lib.DatasetError, "missing `label`"):
      npz_format.write_npz_dataset(self._path(), {"train": {"image": np.zeros(
          (2, 3, 3))}}, num_classes=2)
    with self.assertRaisesRegex(dataset_lib.DatasetError, "num_classes"):
      npz_format.write_npz_dataset(self._path(), {"train": {
          "image": np.zeros((2, 3, 3)), "label": [0, 5]}}, num_classes=2)
    self.assertEmpty(os.listdir(self.dir))


if __name__ == "__main__":
  absltest.main()
