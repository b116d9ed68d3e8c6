"""Tests for heldout.npz_io."""

import os

from absl.testing import absltest
import numpy as np

from heldout import npz_io


class LoadNpzTest(absltest.TestCase):

  def test_reads_local_and_memory_urls(self):
    tmp = self.create_tempdir().full_path
    path = os.path.join(tmp, "a.npz")
    np.savez(path, x=np.arange(3))
    with npz_io.load_npz(path) as npz:
      np.testing.assert_array_equal(npz["x"], np.arange(3))
    # ram:// is a tf.io.gfile file system: the URL branch.
    with open(path, "rb") as f:
      data = f.read()
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.gfile.GFile("ram://npz_io_test/a.npz", "wb") as f:
      f.write(data)
    with npz_io.load_npz("ram://npz_io_test/a.npz") as npz:
      np.testing.assert_array_equal(npz["x"], np.arange(3))

  def test_errors(self):
    tmp = self.create_tempdir().full_path
    with self.assertRaises(FileNotFoundError):
      npz_io.load_npz(os.path.join(tmp, "absent.npz"))
    with self.assertRaises(FileNotFoundError):
      npz_io.load_npz("ram://npz_io_test/absent.npz")
    single = os.path.join(tmp, "one.npy")
    np.save(single, np.arange(2))
    with self.assertRaisesRegex(ValueError, "a single .npy array"):
      npz_io.load_npz(single)


if __name__ == "__main__":
  absltest.main()
