"""Tests for heldout.released.samis_scores: the published SAMIS pickles."""

import os
import pickle

from absl.testing import absltest
import numpy as np

from heldout import errors
from heldout.released import published
from heldout.released import samis_scores


class SamisScoresTest(absltest.TestCase):

  def _write(self, obj, name="s.pkl"):
    path = os.path.join(self.create_tempdir().full_path, name)
    with open(path, "wb") as f:
      pickle.dump(obj, f)
    return path

  def test_reads_and_maps_to_tfds_order(self):
    rng = np.random.RandomState(0)
    original = rng.rand(6)
    # Keys in any order, numpy and Python numbers mixed.
    data = {int(k): (np.float32(original[k]) if k % 2 else float(original[k]))
            for k in (3, 0, 5, 1, 4, 2)}
    scores = samis_scores.read_samis_pickle(self._write(data), num_train=6,
                                            allow_pickle=True)
    self.assertEqual((scores.kind, scores.order), ("samis", "original"))
    np.testing.assert_array_equal(scores.index, np.arange(6))
    np.testing.assert_allclose(scores.values, original, rtol=1e-7)
    # TFDS reads original example 4 first, 0 second, ...
    ids = np.array([b"train_4", b"train_0", b"train_5", b"train_2",
                    b"train_1", b"train_3"])
    mapping = published.original_index_from_tfds_ids(ids)
    tfds = samis_scores.to_tfds_order(scores, mapping)
    self.assertEqual(tfds.order, "tfds")
    np.testing.assert_array_equal(tfds.index, np.arange(6))
    np.testing.assert_allclose(tfds.values, original[[4, 0, 5, 2, 1, 3]],
                               rtol=1e-7)

  def test_named_errors(self):
    good = self._write({0: 0.5, 1: 0.25})
    cases = [
        (good, dict(allow_pickle=False), "allow_pickle=True"),
        ("/nonexistent/s.pkl", {}, "no such file"),
        (self._write([0.5, 0.25]), {}, "expected a dict .* found a list"),
        (self._write({"0": 0.5}), {}, "the key '0' of type str"),
        (self._write({-1: 0.5}), {}, "the key -1"),
        (self._write({0: "high"}), {}, "real number for sample 0, found 'high'"),
        (self._write({0: 0.5, 2: 0.1}), dict(num_train=2),
         "keys 0..1 .*1 missing \\(first 1\\), 1 beyond \\(first 2\\)"),
    ]
    path = os.path.join(self.create_tempdir().full_path, "bad.pkl")
    with open(path, "wb") as f:
      f.write(b"not a pickle")
    cases.append((path, {}, "unreadable file"))
    for path, kw, message in cases:
      kw = dict(dict(allow_pickle=True), **kw)
      with self.assertRaisesRegex(errors.PublishedFormatError, message,
                                  msg=message):
        samis_scores.read_samis_pickle(path, **kw)

  def test_map_errors(self):
    scores = samis_scores.read_samis_pickle(
        self._write({0: 0.5, 1: 0.25}), allow_pickle=True)
    with self.assertRaisesRegex(errors.PublishedFormatError,
                                "none for 1 of them .*position 2"):
      samis_scores.to_tfds_order(scores, np.array([2, 0, 1]))
    with self.assertRaisesRegex(ValueError, "permutation"):
      samis_scores.to_tfds_order(scores, np.array([0, 0]))
    tfds = samis_scores.to_tfds_order(scores, np.array([1, 0]))
    with self.assertRaisesRegex(errors.PublishedFormatError,
                                "original dataset order"):
      samis_scores.to_tfds_order(tfds, np.array([1, 0]))


if __name__ == "__main__":
  absltest.main()
