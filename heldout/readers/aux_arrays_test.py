"""Tests for heldout.readers.aux_arrays: every validation path."""

import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout import errors
from heldout.readers import aux_arrays


def make_arrays(seed=0, n_train=20, n_test=7, n_subset=14):
  rng = np.random.default_rng(seed)
  perm = rng.permutation(n_train)
  subset = perm[:n_subset]
  index_train = rng.permutation(subset)  # evaluation order differs from subsample_idx
  return dict(
      subsample_idx=subset.astype(np.int64),
      correctness_train=rng.random(n_subset) < 0.9,
      correctness_removed=rng.random(n_train - n_subset) < 0.5,
      correctness_test=rng.random(n_test) < 0.5,
      index_train=index_train.astype(np.int64),
      index_removed=perm[n_subset:].astype(np.int64),
      index_test=rng.permutation(n_test).astype(np.int64),
  )


class AuxArraysTest(parameterized.TestCase):

  def test_roundtrip_and_scatter(self):
    arrays = make_arrays()
    path = os.path.join(self.create_tempdir().full_path, "aux_arrays.npz")
    aux_arrays.write_aux_arrays(path, **arrays)
    aux = aux_arrays.read_aux_arrays(path, num_train=20, num_test=7)
    self.assertEqual(aux.path, path)
    for key in aux_arrays.AUX_KEYS:
      np.testing.assert_array_equal(getattr(aux, key), arrays[key])
    with np.load(path) as f:
      self.assertEqual(sorted(f.files), sorted(aux_arrays.AUX_KEYS))
      self.assertEqual(f["correctness_test"].dtype, bool)
      self.assertEqual(f["index_test"].dtype, np.int64)
    # The scatter helpers go through index_<split>, checked by a slow loop.
    full = aux.correctness_on_train_set()
    mask = aux.subset_mask()
    for pos, i in enumerate(arrays["index_train"]):
      self.assertEqual(full[i], arrays["correctness_train"][pos])
      self.assertTrue(mask[i])
    for pos, i in enumerate(arrays["index_removed"]):
      self.assertEqual(full[i], arrays["correctness_removed"][pos])
      self.assertFalse(mask[i])
    test = aux.correctness_on_test_set()
    for pos, j in enumerate(arrays["index_test"]):
      self.assertEqual(test[j], arrays["correctness_test"][pos])

  def test_integer_correctness_is_accepted(self):
    arrays = make_arrays()
    arrays["correctness_test"] = arrays["correctness_test"].astype(np.uint8)
    aux = aux_arrays.validate_aux_arrays(arrays)
    self.assertEqual(aux.correctness_test.dtype, bool)

  @parameterized.named_parameters(
      ("missing_key", lambda a: a.pop("index_test"),
       r"missing key\(s\) `index_test`"),
      ("float_correctness",
       lambda a: a.update(correctness_test=np.full(7, 0.5)),
       r"key `correctness_test`: expected bool .* found dtype float64"),
      ("float_index", lambda a: a.update(index_test=np.arange(7.0)),
       r"key `index_test`: expected an integer array, found dtype float64"),
      ("two_d", lambda a: a.update(index_test=np.zeros((7, 1), int)),
       r"key `index_test`: expected a 1-D array, found shape \(7, 1\)"),
      ("short_correctness",
       lambda a: a.update(correctness_removed=a["correctness_removed"][:-1]),
       r"key `correctness_removed`: expected length 6 \(len\(index_removed\)\), found length 5"),
      ("subset_vs_correctness",
       lambda a: a.update(correctness_train=a["correctness_train"][:-1],
                          index_train=a["index_train"][:-1]),
       r"key `correctness_train`: expected length 14 \(len\(subsample_idx\)\), found length 13"),
      ("duplicate_id",
       lambda a: a["index_removed"].__setitem__(0, a["index_train"][0]),
       r"`index_train` \+ `index_removed`: expected a permutation of range\(20\).*1 duplicated"),
      ("id_out_of_range",
       lambda a: a["index_test"].__setitem__(0, 99),
       r"`index_test`: expected example ids in \[0, 7\), found values in \[.*, 99\]"),
      ("subsample_differs",
       lambda a: a.update(subsample_idx=np.sort(a["index_removed"].tolist() +
                                                a["index_train"].tolist())[:14]),
       r"key `subsample_idx`: expected the same set of example ids as `index_train`"),
  )
  def test_invalid(self, mutate, pattern):
    arrays = make_arrays()
    mutate(arrays)
    path = os.path.join(self.create_tempdir().full_path, "aux_arrays.npz")
    with self.assertRaisesRegex(errors.AuxArraysError, pattern):
      aux_arrays.validate_aux_arrays(arrays, path)
    if "index_test" in arrays:
      with self.assertRaisesRegex(errors.AuxArraysError, pattern):
        aux_arrays.write_aux_arrays(path, **arrays)
    self.assertFalse(os.path.exists(path), "nothing is written on error")
    # The same file written without validation fails on read, naming the file.
    np.savez(path, **arrays)
    with self.assertRaisesRegex(errors.AuxArraysError, "^" + path):
      aux_arrays.read_aux_arrays(path)

  def test_expected_sizes(self):
    arrays = make_arrays()
    with self.assertRaisesRegex(errors.AuxArraysError,
                                "expected 50000 training examples in all, found 20"):
      aux_arrays.validate_aux_arrays(arrays, num_train=50000)
    with self.assertRaisesRegex(errors.AuxArraysError,
                                "`index_test`: expected 10000 test examples, found 7"):
      aux_arrays.validate_aux_arrays(arrays, num_test=10000)

  def test_missing_and_unreadable_files(self):
    tmp = self.create_tempdir().full_path
    with self.assertRaisesRegex(errors.RunNotFoundError, "no such file"):
      aux_arrays.read_aux_arrays(os.path.join(tmp, "absent.npz"))
    garbage = os.path.join(tmp, "garbage.npz")
    with open(garbage, "wb") as f:
      f.write(b"not a zip file")
    with self.assertRaisesRegex(errors.AuxArraysError, "could not read it"):
      aux_arrays.read_aux_arrays(garbage)


if __name__ == "__main__":
  absltest.main()
