"""Tests for heldout.estimators.influence_estimator."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout.estimators import influence_estimator
from heldout.estimators import testing


def _assert_same(test, got, want):
  """Bitwise equality, NaN included."""
  test.assertEqual(got.dtype, want.dtype)
  np.testing.assert_array_equal(got, want)


class InfluenceDenseTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("few_runs", 0, 6, 0.5, None),
      ("many_runs", 1, 40, 0.7, 5),
      ("sparse_subsets", 2, 25, 0.1, 1),
  )
  def test_matches_loop(self, seed, num_runs, ratio, block_size):
    mask, _, correct_test = testing.random_runs(
        seed, num_runs=num_runs, n_train=19, n_test=8, ratio=ratio,
        always_in=(3,), never_in=(0, 7))
    got = influence_estimator.influence_dense(mask, correct_test,
                                              block_size=block_size)
    want = testing.influence_loop(mask, correct_test)
    want_se = testing.influence_se_loop(mask, correct_test)
    self.assertEqual(got.values.shape, (8, 19))
    self.assertEqual(got.values.dtype, np.float32)
    self.assertEqual(got.se.shape, (8, 19))
    self.assertEqual(got.se.dtype, np.float32)
    np.testing.assert_allclose(got.values, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.se, want_se, rtol=1e-6, atol=0)
    # In every run or in none: NaN (an empty mean), never 0; SE too.
    self.assertTrue(np.isnan(got.values[:, [0, 3, 7]]).all())
    undefined = (mask.sum(0) == 0) | (mask.sum(0) == num_runs)
    np.testing.assert_array_equal(np.isnan(got.values),
                                  np.broadcast_to(undefined, (8, 19)))
    np.testing.assert_array_equal(np.isnan(got.se), np.isnan(got.values))
    self.assertTrue((got.se[~np.isnan(got.se)] > 0).all())
    np.testing.assert_array_equal(got.n_in, mask.sum(0))
    np.testing.assert_array_equal(got.n_out, num_runs - mask.sum(0))
    np.testing.assert_array_equal(got.total_correct, correct_test.sum(0))

  def test_hand_computed(self):
    # Training example 0 in runs 0, 1; test example correct in runs 0, 2.
    mask = np.array([[1, 1], [1, 0], [0, 1]], bool)
    correct_test = np.array([[1], [0], [1]], bool)
    got = influence_estimator.influence_dense(mask, correct_test)
    # i=0: in {0, 1} -> 1/2, out {2} -> 1; i=1: in {0, 2} -> 1, out {1} -> 0.
    np.testing.assert_allclose(got.values, [[-0.5, 1.0]])
    np.testing.assert_array_equal(got.total_correct, [2])
    # Agresti-Caffo, p = (k + 1) / (n + 2), se^2 = sum of p (1 - p) / (n + 2).
    # i=0: p_in = 2/4, p_out = 2/3; i=1: p_in = 3/4, p_out = 1/3.
    np.testing.assert_allclose(
        got.se, [[math.sqrt(1 / 16 + 2 / 27), math.sqrt(3 / 64 + 2 / 27)]],
        rtol=1e-6)

  @parameterized.named_parameters(("one", 1), ("four", 4), ("odd", 13),
                                  ("whole", 64))
  def test_block_size_invariance(self, block_size):
    mask, _, correct_test = testing.random_runs(4, num_runs=33, n_train=50,
                                                n_test=12)
    want = influence_estimator.influence_dense(mask, correct_test,
                                               block_size=50)
    got = influence_estimator.influence_dense(mask, correct_test,
                                              block_size=block_size)
    _assert_same(self, got.values, want.values)
    _assert_same(self, got.se, want.se)

  def test_memory_budget_sets_block_size(self):
    # float32: 100 * (4 + 28) + 8 * 10 bytes per training example.
    self.assertEqual(influence_estimator.block_size_for_budget(
        10, 100, 10 * 3280, "float32"), 10)
    self.assertEqual(influence_estimator.block_size_for_budget(
        10, 100, 10 * 3280 - 1, "float32"), 9)
    # bfloat16, one chunk of runs: 100 * (2 + 28) + 8 * 10.
    self.assertEqual(influence_estimator.block_size_for_budget(
        10, 100, 10 * 3080, "bfloat16"), 10)
    self.assertEqual(influence_estimator.block_size_for_budget(10, 100, 1), 1)
    mask, _, correct_test = testing.random_runs(5, n_train=30)
    want = influence_estimator.influence_dense(mask, correct_test)
    got = influence_estimator.influence_dense(mask, correct_test,
                                              memory_budget_bytes=2000)
    _assert_same(self, got.values, want.values)
    _assert_same(self, got.se, want.se)

  @parameterized.named_parameters(("float32", "float32"),
                                  ("packed_float32", "packed_float32"),
                                  ("bfloat16", "bfloat16"))
  def test_matmul_dtypes_are_exact(self, matmul_dtype):
    # 700 runs: three chunks of 256 for bfloat16 (of 255 for packed float32),
    # sums well above 256; 7 test examples: the last packed row half empty.
    mask, _, correct_test = testing.random_runs(8, num_runs=700, n_train=37,
                                                n_test=7, ratio=0.6)
    got = influence_estimator.influence_dense(mask, correct_test, block_size=16,
                                              matmul_dtype=matmul_dtype)
    n_in = mask.sum(0)
    sum_in = correct_test.T.astype(np.int64) @ mask.astype(np.int64)
    sum_out = correct_test.sum(0)[:, None] - sum_in
    want = (np.float32(sum_in / n_in) - np.float32(sum_out / (700 - n_in)))
    _assert_same(self, got.values, want.astype(np.float32))
    # The SE from the exact integer sums, whatever the matmul dtype.
    want_se = influence_estimator.influence_se(sum_in, n_in, 700 - n_in,
                                               correct_test.sum(0))
    _assert_same(self, got.se, want_se)
    np.testing.assert_allclose(
        got.se, testing.influence_se_loop(mask, correct_test), rtol=1e-6)
    top = influence_estimator.influence_topk(mask, correct_test, 5,
                                             block_size=9,
                                             matmul_dtype=matmul_dtype)
    want_values, want_indices = influence_estimator.topk_from_dense(want, 5)
    np.testing.assert_array_equal(top.indices, want_indices)
    _assert_same(self, top.values, want_values.astype(np.float32))
    _assert_same(self, top.se, np.take_along_axis(want_se, want_indices, 1))

  def test_matmul_paths_agree_bit_for_bit_at_full_chunks(self):
    # 511 runs = two full chunks of 255 (+1): columns in every run and test
    # examples right in every run put 255 in every packed field, the most a
    # float32 sum of three fields holds exactly (2^24 - 1).
    rng = np.random.default_rng(3)
    mask = rng.random((511, 40)) < 0.5
    mask[:, :3] = True
    mask[:, 3] = False
    mask[::2, 4] = True
    correct_test = rng.random((511, 11)) < 0.7
    correct_test[:, :4] = True
    correct_test[:, 7] = False
    results = {}
    for path in ("float32", "packed_float32", "bfloat16"):
      results[path] = (
          influence_estimator.influence_dense(mask, correct_test,
                                              block_size=13,
                                              matmul_dtype=path),
          influence_estimator.influence_topk(mask, correct_test, 6,
                                             block_size=7, matmul_dtype=path))
    sum_in = correct_test.T.astype(np.int64) @ mask.astype(np.int64)
    n_in = mask.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
      want = (np.float32(sum_in / n_in) -
              np.float32((correct_test.sum(0)[:, None] - sum_in) /
                         (511 - n_in)))
    ref_dense, ref_top = results["float32"]
    for dense, top in results.values():
      _assert_same(self, dense.values, want.astype(np.float32))
      for got, ref in ((dense, ref_dense), (top, ref_top)):
        for name in ("values", "se", "n_in", "n_out", "total_correct"):
          _assert_same(self, getattr(got, name), getattr(ref, name))
      _assert_same(self, top.indices, ref_top.indices)

  def test_describe_matmul_path(self):
    self.assertRegex(
        influence_estimator.describe_matmul_path("float32"),
        r"^float32 matmuls(, (oneDNN|Eigen|TensorFlow's default) kernels| on GPU)$")

  def test_resolve_matmul_dtype(self):
    auto = influence_estimator.resolve_matmul_dtype("auto")
    if tf.config.list_logical_devices("GPU"):
      self.assertEqual(auto, "float32")
    elif "amx_bf16" in influence_estimator.cpu_flags():
      self.assertEqual(auto, "bfloat16")
    else:
      self.assertEqual(auto, "packed_float32")
    self.assertEqual(influence_estimator.resolve_matmul_dtype("bfloat16"),
                     "bfloat16")
    with self.assertRaisesRegex(ValueError, "`matmul_dtype` must be one of"):
      influence_estimator.resolve_matmul_dtype("float16")

  def test_rejects_bad_inputs(self):
    mask = np.zeros((3, 4), bool)
    with self.assertRaisesRegex(ValueError, "`correct_test` must have 3 runs"):
      influence_estimator.influence_dense(mask, np.zeros((2, 4), bool))
    with self.assertRaisesRegex(ValueError, "`block_size` must be positive"):
      influence_estimator.influence_dense(mask, mask, block_size=0)
    with self.assertRaisesRegex(ValueError, "not both"):
      influence_estimator.influence_dense(mask, mask, block_size=1,
                                          memory_budget_bytes=10)
    with self.assertRaisesRegex(ValueError, "`memory_budget_bytes` must be"):
      influence_estimator.influence_dense(mask, mask, memory_budget_bytes=0)


class InfluenceTopKTest(parameterized.TestCase):

  @parameterized.named_parameters(
      # Few runs give few distinct values: many ties to break.
      ("ties", 0, 4, 5, 1),
      ("k_above_block", 1, 20, 7, 3),
      ("k_one", 2, 30, 1, 8),
      ("k_is_n_train", 3, 10, 26, 5),
      ("one_block", 4, 15, 6, 1000),
  )
  def test_agrees_with_dense(self, seed, num_runs, k, block_size):
    mask, _, correct_test = testing.random_runs(
        seed, num_runs=num_runs, n_train=26, n_test=11, always_in=(4,),
        never_in=(9,))
    dense = influence_estimator.influence_dense(mask, correct_test)
    got = influence_estimator.influence_topk(mask, correct_test, k,
                                             block_size=block_size)
    want_values, want_indices = influence_estimator.topk_from_dense(
        dense.values, k)
    np.testing.assert_array_equal(got.indices, want_indices)
    _assert_same(self, got.values, want_values)
    # Exactly the dense entries at those indices, SEs included.
    _assert_same(self, got.values,
                 np.take_along_axis(dense.values, got.indices, axis=1))
    _assert_same(self, got.se,
                 np.take_along_axis(dense.se, got.indices, axis=1))
    self.assertEqual(got.se.shape, (11, k))
    np.testing.assert_array_equal(np.isnan(got.se), np.isnan(got.values))
    # And the ranking rule, by a full Python sort of the dense matrix.
    sorted_values, sorted_indices = testing.topk_sort(dense.values, k)
    np.testing.assert_array_equal(got.indices, sorted_indices)
    np.testing.assert_array_equal(got.values, sorted_values.astype(np.float32))
    np.testing.assert_array_equal(got.n_in, dense.n_in)
    np.testing.assert_array_equal(got.n_out, dense.n_out)
    np.testing.assert_array_equal(got.total_correct, dense.total_correct)
    np.testing.assert_array_equal(got.total_correct, correct_test.sum(0))

  def test_matches_loop(self):
    mask, _, correct_test = testing.random_runs(6, num_runs=50, n_train=21,
                                                n_test=7, always_in=(),
                                                never_in=())
    got = influence_estimator.influence_topk(mask, correct_test, 4,
                                             block_size=5)
    want = testing.influence_loop(mask, correct_test)
    np.testing.assert_allclose(
        got.values, np.take_along_axis(want, got.indices, axis=1), atol=1e-6)
    want_se = testing.influence_se_loop(mask, correct_test)
    np.testing.assert_allclose(
        got.se, np.take_along_axis(want_se, got.indices, axis=1), rtol=1e-6)
    for j in range(7):
      self.assertLessEqual(np.max(np.delete(want[j], got.indices[j])),
                           got.values[j, -1] + 1e-6)

  def test_nan_ranks_below_real_values(self):
    # Training examples 0 and 2 are in every run: their influence is NaN.
    mask = np.array([[1, 1, 1, 0], [1, 0, 1, 1], [1, 1, 1, 0]], bool)
    correct_test = np.array([[1, 0], [0, 1], [1, 1]], bool)
    got = influence_estimator.influence_topk(mask, correct_test, 4,
                                             block_size=1)
    np.testing.assert_array_equal(got.indices[:, 2:], [[0, 2], [0, 2]])
    self.assertTrue(np.isnan(got.values[:, 2:]).all())
    self.assertFalse(np.isnan(got.values[:, :2]).any())
    self.assertTrue(np.isnan(got.se[:, 2:]).all())
    self.assertFalse(np.isnan(got.se[:, :2]).any())
    # Test example 0: i=1 -> 1 - 0 = 1, i=3 -> 0 - 1 = -1.
    np.testing.assert_array_equal(got.indices[0, :2], [1, 3])
    np.testing.assert_allclose(got.values[0, :2], [1.0, -1.0])
    # Two NaNs asked for, not ahead of any real value.
    top2 = influence_estimator.influence_topk(mask, correct_test, 2)
    self.assertFalse(np.isnan(top2.values).any())

  def test_ties_go_to_smaller_index_across_blocks(self):
    # Columns 0..5 identical: every influence ties; order must be by index.
    column = np.array([1, 0, 1, 0, 1], bool)[:, None]
    mask = np.repeat(column, 6, axis=1)
    correct_test = np.array([[1], [0], [1], [1], [0]], bool)
    for block_size in (1, 2, 4, 6):
      got = influence_estimator.influence_topk(mask, correct_test, 4,
                                               block_size=block_size)
      np.testing.assert_array_equal(got.indices, [[0, 1, 2, 3]])

  @parameterized.named_parameters(("one", 1), ("two", 2), ("seven", 7),
                                  ("all", 40))
  def test_block_size_invariance(self, block_size):
    mask, _, correct_test = testing.random_runs(7, num_runs=9, n_train=40,
                                                n_test=10)
    want = influence_estimator.influence_topk(mask, correct_test, 5,
                                              block_size=40)
    got = influence_estimator.influence_topk(mask, correct_test, 5,
                                             block_size=block_size)
    np.testing.assert_array_equal(got.indices, want.indices)
    _assert_same(self, got.values, want.values)
    _assert_same(self, got.se, want.se)

  def test_rejects_bad_k(self):
    mask = np.zeros((3, 4), bool)
    for k in (0, 5):
      with self.assertRaisesRegex(ValueError, "`k` must be in \\[1, n_train=4\\]"):
        influence_estimator.influence_topk(mask, mask[:, :2], k)


class InfluenceSeTest(parameterized.TestCase):

  def test_hand_computed(self):
    # Test 0 (3 correct runs): k_in = 2 of n_in = 4, k_out = 1 of n_out = 3.
    # Test 1 (0 correct runs). Training example 1 is in no run.
    got = influence_estimator.influence_se(
        np.array([[2, 0], [0, 0]]), np.array([4, 0]), np.array([3, 7]),
        np.array([3, 0]))
    self.assertEqual(got.dtype, np.float32)
    # p_in = 3/6, p_out = 2/5; then p_in = 1/6, p_out = 1/5.
    np.testing.assert_allclose(
        got[:, 0], [math.sqrt(0.25 / 6 + 0.24 / 5),
                    math.sqrt((5 / 36) / 6 + 0.16 / 5)], rtol=1e-6)
    self.assertTrue(np.isnan(got[:, 1]).all())

  def test_per_entry_counts_match_per_column(self):
    mask, _, correct_test = testing.random_runs(3, num_runs=15, n_train=12,
                                                n_test=5)
    k_in = correct_test.T.astype(np.int64) @ mask.astype(np.int64)
    n_in = mask.sum(0)
    total = correct_test.sum(0)
    per_column = influence_estimator.influence_se(k_in, n_in, 15 - n_in, total)
    per_entry = influence_estimator.influence_se(
        k_in.astype(np.float32), np.broadcast_to(n_in, k_in.shape),
        np.broadcast_to(15 - n_in, k_in.shape), total)
    _assert_same(self, per_entry, per_column)
    np.testing.assert_allclose(per_column,
                               testing.influence_se_loop(mask, correct_test),
                               rtol=1e-6)

  def test_rejects_bad_shapes(self):
    with self.assertRaisesRegex(ValueError, "`k_in` must be \[n_test, m\]"):
      influence_estimator.influence_se(np.zeros((2, 3)), np.ones(3),
                                       np.ones(3), np.zeros(3))
    with self.assertRaisesRegex(ValueError, "`n_out` must be \[m\]"):
      influence_estimator.influence_se(np.zeros((2, 3)), np.ones(3),
                                       np.ones(2), np.zeros(2))


class KInFromValuesTest(parameterized.TestCase):

  @parameterized.named_parameters(("few_runs", 0, 7, 0.5),
                                  ("many_runs", 1, 3000, 0.7),
                                  ("sparse", 2, 200, 0.05))
  def test_recovers_exact_sums(self, seed, num_runs, ratio):
    mask, _, correct_test = testing.random_runs(
        seed, num_runs=num_runs, n_train=30, n_test=6, ratio=ratio,
        always_in=(2,), never_in=(5,))
    dense = influence_estimator.influence_dense(mask, correct_test)
    k_in = correct_test.T.astype(np.int64) @ mask.astype(np.int64)
    got = influence_estimator.k_in_from_values(dense.values, dense.n_in,
                                               dense.n_out, dense.total_correct)
    self.assertEqual(got.dtype, np.int64)
    defined = ~np.isnan(dense.values)
    np.testing.assert_array_equal(got[defined], k_in[defined])
    np.testing.assert_array_equal(got[~defined], -1)
    self.assertTrue((~defined[:, [2, 5]]).all())
    # Hence the SE of saved values alone, bitwise.
    _assert_same(self, influence_estimator.influence_se(
        got, dense.n_in, dense.n_out, dense.total_correct), dense.se)
    # From a top-k selection, with per-entry counts.
    top = influence_estimator.influence_topk(mask, correct_test, 4)
    got_top = influence_estimator.k_in_from_values(
        top.values, top.n_in[top.indices], top.n_out[top.indices],
        top.total_correct)
    np.testing.assert_array_equal(got_top,
                                  np.take_along_axis(k_in, top.indices, 1))

  def test_rejects_values_of_other_counts(self):
    # n_in = n_out = 2, T = 1: values can only be 1/2 or -1/2.
    with self.assertRaisesRegex(ValueError, "no k_in in \[0, 1\]"):
      influence_estimator.k_in_from_values(np.array([[1.0]]), [2], [2], [1])


class TopKFromDenseTest(parameterized.TestCase):

  def test_matches_sort(self):
    rng = np.random.default_rng(0)
    values = rng.integers(-3, 4, (9, 30)).astype(np.float32) / 4
    values[rng.random(values.shape) < 0.2] = np.nan
    values[2] = np.nan
    for k in (1, 5, 30):
      got_values, got_indices = influence_estimator.topk_from_dense(
          values, k, rows_per_chunk=4)
      want_values, want_indices = testing.topk_sort(values, k)
      np.testing.assert_array_equal(got_indices, want_indices)
      np.testing.assert_array_equal(got_values, want_values)


if __name__ == "__main__":
  absltest.main()
