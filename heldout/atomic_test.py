"""Tests for heldout.atomic."""

import errno
import json
import os
import resource
import signal

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout import atomic


class AtomicTest(absltest.TestCase):

  def test_write_npz_roundtrip(self):
    path = os.path.join(self.create_tempdir().full_path, "sub", "a.npz")
    atomic.write_npz(path, x=np.arange(3), y=np.ones(2, bool))
    with np.load(path) as f:
      np.testing.assert_array_equal(f["x"], np.arange(3))
      np.testing.assert_array_equal(f["y"], np.ones(2, bool))

  def test_failure_leaves_old_file_and_no_temp(self):
    tmp = self.create_tempdir().full_path
    path = os.path.join(tmp, "out.txt")
    atomic.write_text(path, "finished result")
    with self.assertRaisesRegex(RuntimeError, "interrupted"):
      with atomic.atomic_open(path, "w") as f:
        f.write("half of a new res")
        raise RuntimeError("interrupted")
    with open(path) as f:
      self.assertEqual(f.read(), "finished result")
    self.assertEqual(os.listdir(tmp), ["out.txt"])

  def test_refused_write_names_the_destination(self):
    # RLIMIT_FSIZE makes the kernel refuse writes past 4 KiB with EFBIG (once
    # SIGXFSZ is ignored), as a full disk refuses them with ENOSPC.
    tmp = self.create_tempdir().full_path
    path = os.path.join(tmp, "out.bin")
    atomic.write_bytes(path, b"finished result")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
      with self.assertRaisesRegex(OSError,
                                  "out.bin: cannot write it .File too large"):
        atomic.write_bytes(path, b"x" * 100000)
    finally:
      resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
      signal.signal(signal.SIGXFSZ, previous)
    with open(path, "rb") as f:
      self.assertEqual(f.read(), b"finished result")
    self.assertEqual(os.listdir(tmp), ["out.bin"])

  def test_write_files_replaces_none_when_one_fails(self):
    tmp = self.create_tempdir().full_path
    small, large = os.path.join(tmp, "a.csv"), os.path.join(tmp, "b.png")
    atomic.write_files({small: b"old a", large: b"old b"})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
      with self.assertRaisesRegex(OSError, "b.png: cannot write it"):
        atomic.write_files({small: b"new a", large: b"x" * 100000})
    finally:
      resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
      signal.signal(signal.SIGXFSZ, previous)
    for path, old in ((small, b"old a"), (large, b"old b")):
      with open(path, "rb") as f:
        self.assertEqual(f.read(), old)
    self.assertEqual(sorted(os.listdir(tmp)), ["a.csv", "b.png"])

  def test_write_json(self):
    path = os.path.join(self.create_tempdir().full_path, "a.json")
    atomic.write_json(path, {"b": 1, "a": [1, 2]})
    with open(path) as f:
      self.assertEqual(json.load(f), {"a": [1, 2], "b": 1})

  def test_named_write_errors(self):
    folder = self.create_tempdir().full_path
    with self.assertRaises(OSError) as caught:
      with atomic.named_write_errors(folder, "run 3"):
        raise OSError(errno.ENOSPC, "disk full")
    self.assertEqual(caught.exception.errno, errno.ENOSPC)
    self.assertRegex(str(caught.exception),
                     folder + r": cannot write run 3 \(No space left on "
                     r"device; [\d.]+ MB free there\); finished results "
                     r"there are kept")
    # TensorFlow words it inside an OpError (a checkpoint's SaveV2).
    with self.assertRaisesRegex(OSError, r"cannot write run 4 \(Read-only "
                                r"file system"):
      with atomic.named_write_errors(os.path.join(folder, "not", "yet"),
                                     "run 4"):
        raise tf.errors.UnknownError(None, None, "Graph execution error: "
                                     "... SaveV2: Read-only file system")
    # Other errors pass unchanged.
    with self.assertRaisesRegex(ValueError, "other"):
      with atomic.named_write_errors(folder, "run 5"):
        raise ValueError("other")
    with self.assertRaises(tf.errors.NotFoundError):
      with atomic.named_write_errors(folder, "run 6"):
        raise tf.errors.NotFoundError(None, None, "no such file")

  def test_bad_mode(self):
    with self.assertRaisesRegex(ValueError, "`mode`"):
      with atomic.atomic_open("x", "a"):
        pass


if __name__ == "__main__":
  absltest.main()
