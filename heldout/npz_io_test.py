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
    text = os.path.join(tmp, "notes.npz")
    with open(text, "w") as f:
      f.write("run 0 crashed\n")
    with self.assertRaisesRegex(ValueError,
                                "not an .npz archive: it starts with b'run 0 '"):
      npz_io.load_npz(text)

  def test_damaged_archives_are_value_errors(self):
    tmp = self.create_tempdir().full_path
    path = os.path.join(tmp, "a.npz")
    np.savez(path, x=np.arange(1000), y=np.arange(5))
    with open(path, "rb") as f:
      data = f.read()
    half = os.path.join(tmp, "half.npz")
    with open(half, "wb") as f:
      f.write(data[:len(data) // 2])
    with self.assertRaisesRegex(ValueError, "damaged .npz archive"):
      npz_io.load_npz(half)
    # A flipped byte inside the data of `x`: opens, fails on reading `x`.
    corrupt = os.path.join(tmp, "crc.npz")
    spoiled = bytearray(data)
    spoiled[data.index(b"x.npy") + 200] ^= 0xFF
    with open(corrupt, "wb") as f:
      f.write(bytes(spoiled))
    with npz_io.load_npz(corrupt) as npz:
      self.assertEqual(sorted(npz.files), ["x", "y"])
      with self.assertRaisesRegex(ValueError, "damaged .npz archive.*CRC"):
        npz["x"]  # pylint: disable=pointless-statement
      np.testing.assert_array_equal(npz["y"], np.arange(5))


if __name__ == "__main__":
  absltest.main()
