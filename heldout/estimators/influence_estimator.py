"""Influence of training examples on test examples (Feldman & Zhang 2020).

With runs r = 1..R, `mask[r, i]` True when training example i was in run r's
subset and `correct_test[r, j]` whether run r's final model got test example j
right:

  influence(i, j) = mean_{r: mask[r,i]} correct_test[r,j]
                    - mean_{r: not mask[r,i]} correct_test[r,j]

computed as matrix products in TensorFlow: sum_in = correct_test^T @ mask and
sum_out = total_correct - sum_in, then the two means in float32. Training
examples are streamed in blocks whose working set stays within a memory
budget; the masks stay bool and are cast one block at a time.

The matmuls are exact, so the result depends neither on the block size nor on
the matmul path (`MATMUL_DTYPES`; tested bit for bit):
- "float32": every partial sum is an integer below 2^24 (R < 2^24 is checked).
- "packed_float32": three test examples share one float32 operand entry,
  c_0 + 2^8 c_1 + 2^16 c_2, and the runs are split into chunks of 255, so
  each field of a chunk's sum is an integer of at most 255 and the whole sum
  an integer below 2^24, which float32 holds exactly whatever the
  accumulation order; the fields are then split off in int32 and the chunks
  added. A third of the float32 multiply-adds on every CPU, for a little
  integer work per output.
- "bfloat16": the runs are split into chunks of 256, so every partial sum of a
  chunk is an integer of at most 256, which bfloat16 (8 significant bits)
  holds exactly whatever the accumulation order; the chunk sums are added in
  float32. Fast where the CPU multiplies bfloat16 in hardware (AMX-BF16 tiles
  run about 16x the float32 vector rate), slow where it is emulated.
- "auto" (default, `resolve_matmul_dtype`): "bfloat16" on a CPU with
  AMX-BF16, "packed_float32" on other CPUs, "float32" on a GPU (whose float32
  matmuls may run in TF32, which keeps 0/1 operands exact but would round
  packed ones).
No int8 path: TensorFlow exposes no exact int8 x int8 -> int32 matmul on
CPU tensors (its quantized matmul ran at half the float32 rate here).
The means and their difference are IEEE float32 divisions and a subtraction
(fused by XLA), so the values are bitwise those of
float32(sum_in / n_in) - float32(sum_out / n_out).

The influence is NaN for a training example that is in all runs or in none
(an empty mean), never 0.

Standard errors are Agresti-Caffo, as for memorization and consistency: with
k_in = sum_in[j, i], k_out = total_correct[j] - k_in and p = (k + 1) / (n + 2)
on each side,

  se(i, j) = sqrt(p_in (1 - p_in) / (n_in + 2)
                  + p_out (1 - p_out) / (n_out + 2)),

NaN where the influence is. `influence_se` computes it from the exact integer
sums (in float32, elementwise, so the same entry gets the same bits in
`influence_dense` and `influence_topk`); `influence_topk` carries the sums of
the kept entries through the selection and computes the SE of those only.

Ranking (top-k): larger value first; equal values by smaller training index;
NaN ranks below every real value (and NaNs among themselves by smaller
index), so a NaN only appears in a top-k when fewer than k real values exist.
`influence_topk` and `topk_from_dense` apply the same rule, and `influence_dense`
and `influence_topk` compute every value with the same operations, so the two
agree exactly on the entries both hold.
"""

import dataclasses
import functools

import numpy as np
import tensorflow as tf
from tqdm import auto as tqdm

from heldout.estimators import counts as counts_lib

DEFAULT_MEMORY_BUDGET_BYTES = 256 * 2**20
MATMUL_DTYPES = ("auto", "float32", "packed_float32", "bfloat16")

# Integers up to 2^8 are exact in bfloat16, whatever the order of the sums.
_BFLOAT16_CHUNK = 256
# Three 8-bit fields fill float32's 24 exact bits: a chunk of 255 runs keeps
# every field's sum at most 255.
_PACK_FIELDS = 3
_PACK_BITS = 8
_PACK_CHUNK = 2**_PACK_BITS - 1
_MAX_EXACT_RUNS = 2**24


@dataclasses.dataclass(frozen=True)
class Influence:
  """The dense influence matrix.

  Attributes:
    values: [n_test, n_train] float32, influence of training example i on test
      example j at [j, i]; NaN where n_in or n_out is 0.
    se: [n_test, n_train] float32, standard error of `values`
      (`influence_se`); NaN where `values` is.
    n_in: [n_train] int64, runs that trained on each training example.
    n_out: [n_train] int64, runs that held it out.
    total_correct: [n_test] int64, runs correct on each test example.
  """
  values: np.ndarray
  se: np.ndarray
  n_in: np.ndarray
  n_out: np.ndarray
  total_correct: np.ndarray


@dataclasses.dataclass(frozen=True)
class InfluenceTopK:
  """The k most influential training examples of each test example.

  Attributes:
    values: [n_test, k] float32, influence values, ranked as in the module
      docstring (largest first).
    se: [n_test, k] float32, standard error of `values` (`influence_se`);
      NaN where `values` is.
    indices: [n_test, k] int64, the training example ids of `values`.
    n_in: [n_train] int64, runs that trained on each training example (of
      every training example: index it with `indices`).
    n_out: [n_train] int64, runs that held it out.
    total_correct: [n_test] int64, runs correct on each test example.
  """
  values: np.ndarray
  se: np.ndarray
  indices: np.ndarray
  n_in: np.ndarray
  n_out: np.ndarray
  total_correct: np.ndarray


@functools.lru_cache(maxsize=None)
def cpu_flags():
  """The CPU's feature flags from /proc/cpuinfo (empty where unreadable)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


def resolve_matmul_dtype(matmul_dtype="auto"):
  """The matmul path that "auto" stands for on this machine.

  "bfloat16" on a CPU with AMX-BF16 (hardware bfloat16 tiles) and no visible
  GPU; "float32" with a GPU (TF32 keeps 0/1 operands exact, not packed
  ones); "packed_float32" otherwise (AVX2, AVX-512, AVX512_BF16 CPUs: a
  third of the float32 work beats bfloat16's at most 2x there).

  Args:
    matmul_dtype: one of `MATMUL_DTYPES`.

  Returns:
    "float32", "packed_float32" or "bfloat16".

  Raises:
    ValueError: for an unknown path.
  """
  if matmul_dtype not in MATMUL_DTYPES:
    raise ValueError("`matmul_dtype` must be one of {}, got {!r}".format(
        ", ".join(MATMUL_DTYPES), matmul_dtype))
  if matmul_dtype != "auto":
    return matmul_dtype
  if tf.config.list_logical_devices("GPU"):
    return "float32"
  if "amx_bf16" in cpu_flags():
    return "bfloat16"
  return "packed_float32"


def describe_matmul_path(matmul_dtype="auto"):
  """One line saying which matmul path and kernels run, e.g.
  "packed_float32 matmuls, oneDNN kernels"."""
  path = resolve_matmul_dtype(matmul_dtype)
  if tf.config.list_logical_devices("GPU"):
    return "{} matmuls on GPU".format(path)
  try:
    # pylint: disable=g-import-not-at-top
    from tensorflow.python.util import _pywrap_util_port
    kernels = "oneDNN" if _pywrap_util_port.IsMklEnabled() else "Eigen"
  except (ImportError, AttributeError):
    kernels = "TensorFlow's default"
  return "{} matmuls, {} kernels".format(path, kernels)


def _bytes_per_train_example(num_runs, num_test, matmul_dtype):
  runs = max(1, num_runs)
  if matmul_dtype == "float32":
    partial = 4
  elif matmul_dtype == "packed_float32":
    # Each chunk's packed float32 sums, then their int32 fields.
    partial = 4 * -(-runs // _PACK_CHUNK) / _PACK_FIELDS + 8
  else:
    partial = 2 * -(-runs // _BFLOAT16_CHUNK)
  # The partial sums, then seven float32 [n_test] columns (the values or keys,
  # their sum_in, and either the top-k candidates and slack for unfused
  # temporaries or the four temporaries of `influence_se`), and the mask
  # column as bool, float32 and padded bfloat16.
  return int(max(1, num_test) * (partial + 28) + 8 * runs)


def block_size_for_budget(num_runs, num_test, memory_budget_bytes,
                          matmul_dtype="float32"):
  """Training examples per block so that one block's working set fits a budget.

  The working set of a block of B training examples is about
  B * (n_test * (p + 28) + 8 R) bytes, p being the bytes of the partial sums
  per entry (4 for float32, 4 * ceil(R / 255) / 3 + 8 for packed float32,
  2 * ceil(R / 256) for chunked bfloat16). The
  inputs (the bool arrays and correct_test cast for the matmul) come on top.

  Args:
    num_runs: R.
    num_test: n_test.
    memory_budget_bytes: the budget, positive.
    matmul_dtype: one of `MATMUL_DTYPES`.

  Returns:
    The block size, at least 1.

  Raises:
    ValueError: if `memory_budget_bytes` is not positive.
  """
  if memory_budget_bytes <= 0:
    raise ValueError("`memory_budget_bytes` must be positive, got {}".format(
        memory_budget_bytes))
  per_example = _bytes_per_train_example(num_runs, num_test,
                                         resolve_matmul_dtype(matmul_dtype))
  return max(1, int(memory_budget_bytes // per_example))


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.bool),
])
def _partial_sums_float32(correct_test_t, mask_block):
  """[1, n_test, B] float32 sum_in, from correct_test^T [n_test, R]."""
  return tf.linalg.matmul(correct_test_t, tf.cast(mask_block, tf.float32))[
      tf.newaxis]


def _chunked_products(operand_chunks, mask_block):
  """[chunks, rows, B]: chunk c of the operand times runs c*C..(c+1)*C - 1 of
  the mask block, cast to the operand's dtype and zero-padded to whole
  chunks of C runs."""
  chunks = tf.shape(operand_chunks)[0]
  chunk = tf.shape(operand_chunks)[2]
  mask_block = tf.cast(mask_block, operand_chunks.dtype)
  padding = chunks * chunk - tf.shape(mask_block)[0]
  mask_block = tf.pad(mask_block, [[0, padding], [0, 0]])
  mask_block = tf.reshape(mask_block, [chunks, chunk, -1])
  return tf.linalg.matmul(operand_chunks, mask_block)


@tf.function(input_signature=[
    tf.TensorSpec([None, None, None], tf.bfloat16),
    tf.TensorSpec([None, None], tf.bool),
])
def _partial_sums_bfloat16(correct_test_chunks, mask_block):
  """[chunks, n_test, B] bfloat16 sum_in per chunk of 256 runs (exact)."""
  return _chunked_products(correct_test_chunks, mask_block)


@tf.function(input_signature=[
    tf.TensorSpec([None, None, None], tf.float32),
    tf.TensorSpec([None, None], tf.bool),
])
def _packed_sums_float32(packed_chunks, mask_block):
  """[chunks, ceil(n_test / 3), B] float32 packed sum_in per chunk of 255 runs."""
  return _chunked_products(packed_chunks, mask_block)


@tf.function(jit_compile=True)
def _unpack_sums(packed, num_test):
  """[1, n_test, B] float32 sum_in from the packed chunk sums (exact ints)."""
  packed = tf.cast(packed, tf.int32)
  fields = [tf.reduce_sum(tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(packed, _PACK_BITS * f), _PACK_CHUNK), axis=0)
            for f in range(_PACK_FIELDS)]
  # Field f of packed row p is test example _PACK_FIELDS * p + f.
  sums = tf.reshape(tf.stack(fields, axis=1), [-1, tf.shape(packed)[2]])
  return tf.cast(sums[:num_test], tf.float32)[tf.newaxis]


def _influence_from_partial_sums(partial_sums, mask_block, total_correct):
  """([n_test, B] float32 influence, [n_test, B] float32 sum_in) from the
  partial sums of sum_in."""
  sum_in = tf.reduce_sum(tf.cast(partial_sums, tf.float32), axis=0)
  mask_block = tf.cast(mask_block, tf.float32)
  num_runs = tf.cast(tf.shape(mask_block)[0], tf.float32)
  n_in = tf.reduce_sum(mask_block, axis=0)
  sum_out = total_correct[:, tf.newaxis] - sum_in
  return sum_in / n_in - sum_out / (num_runs - n_in), sum_in


@tf.function(jit_compile=True)
def _influence_values(partial_sums, mask_block, total_correct):
  return _influence_from_partial_sums(partial_sums, mask_block, total_correct)


@tf.function(jit_compile=True)
def _influence_keys(partial_sums, mask_block, total_correct):
  """The influence with NaN replaced by -inf, which no real value equals, and
  sum_in."""
  values, sum_in = _influence_from_partial_sums(partial_sums, mask_block,
                                                total_correct)
  keys = tf.where(tf.math.is_nan(values), tf.constant(-np.inf, tf.float32),
                  values)
  return keys, sum_in


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.int64),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([], tf.int64),
    tf.TensorSpec([], tf.int32),
])
def _merge_topk(block_keys, block_sum_in, best_keys, best_indices,
                best_sum_in, offset, k):
  """Merges a block's keys [n_test, B] (and sum_in) into the running top-k."""
  block_keys, block_positions = tf.math.top_k(
      block_keys, tf.minimum(k, tf.shape(block_keys)[1]), sorted=True)
  block_sum_in = tf.gather(block_sum_in, block_positions, batch_dims=1)
  # The running entries come first and hold smaller training indices, and
  # top_k puts the lower position first among equal keys: ties go to the
  # smaller training index across blocks as within one.
  keys = tf.concat([best_keys, block_keys], axis=1)
  indices = tf.concat(
      [best_indices, tf.cast(block_positions, tf.int64) + offset], axis=1)
  sum_in = tf.concat([best_sum_in, block_sum_in], axis=1)
  keys, positions = tf.math.top_k(keys, tf.minimum(k, tf.shape(keys)[1]),
                                  sorted=True)
  return (keys, tf.gather(indices, positions, batch_dims=1),
          tf.gather(sum_in, positions, batch_dims=1))


class _SumOperand:
  """correct_test, cast (and packed) once for the matmuls of every block."""

  def __init__(self, correct_test, matmul_dtype):
    num_runs, self.num_test = correct_test.shape
    # Transposed as bool (a quarter of the float32 bytes), then cast.
    correct_t = tf.constant(np.ascontiguousarray(correct_test.T))
    self.total_correct = tf.cast(
        tf.math.count_nonzero(correct_t, axis=1), tf.float32)
    self.matmul_dtype = matmul_dtype
    if matmul_dtype == "float32":
      self.operand = tf.cast(correct_t, tf.float32)
    elif matmul_dtype == "packed_float32":
      self.operand = _packed_operand(correct_test)
    else:
      chunks = -(-max(1, num_runs) // _BFLOAT16_CHUNK)
      padded = tf.pad(tf.cast(correct_t, tf.bfloat16),
                      [[0, 0], [0, chunks * _BFLOAT16_CHUNK - num_runs]])
      self.operand = tf.transpose(
          tf.reshape(padded, [self.num_test, chunks, _BFLOAT16_CHUNK]),
          [1, 0, 2])

  def partial_sums(self, mask_block):
    if self.matmul_dtype == "float32":
      return _partial_sums_float32(self.operand, mask_block)
    if self.matmul_dtype == "packed_float32":
      return _unpack_sums(_packed_sums_float32(self.operand, mask_block),
                          tf.constant(self.num_test, tf.int32))
    return _partial_sums_bfloat16(self.operand, mask_block)


def _packed_operand(correct_test):
  """[chunks, ceil(n_test / 3), 255] float32: test examples 3p, 3p + 1 and
  3p + 2 packed as c_0 + 2^8 c_1 + 2^16 c_2 at row p, runs in chunks of 255
  (zero-padded)."""
  num_runs, num_test = correct_test.shape
  rows = -(-max(1, num_test) // _PACK_FIELDS)
  chunks = -(-max(1, num_runs) // _PACK_CHUNK)
  packed = np.zeros((rows, chunks * _PACK_CHUNK), np.float32)
  for f in range(_PACK_FIELDS):
    # Field f holds test examples f, f + 3, ...: at most `rows` of them.
    field = correct_test[:, f::_PACK_FIELDS].T
    packed[:field.shape[0], :num_runs] += field * np.float32(
        2**(_PACK_BITS * f))
  return tf.constant(np.ascontiguousarray(
      packed.reshape(rows, chunks, _PACK_CHUNK).transpose(1, 0, 2)))


def _prepare(mask, correct_test, matmul_dtype):
  mask = counts_lib.check_runs_array(mask, "mask")
  correct_test = counts_lib.check_runs_array(
      correct_test, "correct_test", num_runs=mask.shape[0])
  if mask.shape[0] >= _MAX_EXACT_RUNS:
    raise ValueError("`mask` must have fewer than 2**24 runs for exact float32 "
                     "sums, got {}".format(mask.shape[0]))
  operand = _SumOperand(correct_test, resolve_matmul_dtype(matmul_dtype))
  n_in = np.count_nonzero(mask, axis=0).astype(np.int64)
  total_correct = np.count_nonzero(correct_test, axis=0).astype(np.int64)
  return mask, operand, n_in, total_correct


def _resolve_block_size(block_size, memory_budget_bytes, num_runs, num_test,
                        matmul_dtype):
  if block_size is not None and memory_budget_bytes is not None:
    raise ValueError("give `block_size` or `memory_budget_bytes`, not both; "
                     "got {} and {}".format(block_size, memory_budget_bytes))
  if block_size is not None:
    if int(block_size) <= 0:
      raise ValueError("`block_size` must be positive, got {}".format(block_size))
    return int(block_size)
  if memory_budget_bytes is None:
    memory_budget_bytes = DEFAULT_MEMORY_BUDGET_BYTES
  return block_size_for_budget(num_runs, num_test, memory_budget_bytes,
                               matmul_dtype)


def _blocks(n_train, block_size, progress, desc):
  starts = range(0, n_train, block_size)
  return tqdm.tqdm(starts, desc=desc, unit="block", disable=not progress,
                   leave=False)


def influence_dense(mask, correct_test, block_size=None,
                    memory_budget_bytes=None, matmul_dtype="auto",
                    progress=False):
  """The full influence matrix, computed in blocks of training examples.

  Args:
    mask: [R, n_train] bool, True where run r trained on example i.
    correct_test: [R, n_test] bool, run r correct on test example j.
    block_size: training examples per block; default from the budget.
    memory_budget_bytes: bound on one block's working set (see
      `block_size_for_budget`); default `DEFAULT_MEMORY_BUDGET_BYTES`. The
      result itself, values and SEs, 8 * n_test * n_train bytes, comes on top.
    matmul_dtype: one of `MATMUL_DTYPES` (speed only: the result is the same).
    progress: show a progress bar over blocks.

  Returns:
    `Influence` with values and se [n_test, n_train] float32.

  Raises:
    ValueError: for shapes that disagree or a bad block size / budget / dtype.
  """
  mask, operand, n_in, total_correct = _prepare(mask, correct_test,
                                                matmul_dtype)
  num_runs, n_train = mask.shape
  n_out = num_runs - n_in
  block_size = _resolve_block_size(block_size, memory_budget_bytes, num_runs,
                                   operand.num_test, operand.matmul_dtype)
  values = np.empty((operand.num_test, n_train), np.float32)
  se = np.empty((operand.num_test, n_train), np.float32)
  for start in _blocks(n_train, block_size, progress, "influence (dense)"):
    cols = slice(start, min(n_train, start + block_size))
    mask_block = tf.constant(mask[:, cols])
    block_values, block_sum_in = _influence_values(
        operand.partial_sums(mask_block), mask_block, operand.total_correct)
    values[:, cols] = block_values.numpy()
    del block_values
    se[:, cols] = influence_se(block_sum_in.numpy(), n_in[cols], n_out[cols],
                               total_correct)
    del block_sum_in
  return Influence(values=values, se=se, n_in=n_in, n_out=n_out,
                   total_correct=total_correct)


def influence_topk(mask, correct_test, k, block_size=None,
                   memory_budget_bytes=None, matmul_dtype="auto",
                   progress=False):
  """The k most influential training examples of each test example.

  Streams over blocks of training examples, keeping a running top-k per test
  example; the [n_test, n_train] matrix is never made. Ranking and NaN
  handling are those of the module docstring.

  Args:
    mask: [R, n_train] bool, True where run r trained on example i.
    correct_test: [R, n_test] bool, run r correct on test example j.
    k: how many training examples to keep per test example, in
      [1, n_train].
    block_size: training examples per block; default from the budget.
    memory_budget_bytes: bound on one block's working set (see
      `block_size_for_budget`); default `DEFAULT_MEMORY_BUDGET_BYTES`.
    matmul_dtype: one of `MATMUL_DTYPES` (speed only: the result is the same).
    progress: show a progress bar over blocks.

  Returns:
    `InfluenceTopK` with values and se [n_test, k] float32 and indices
    [n_test, k] int64. The result depends neither on `block_size` nor on
    `matmul_dtype`, and its entries (SEs included) are bitwise those of
    `influence_dense` at the same [test, training] pair.

  Raises:
    ValueError: for shapes that disagree, `k` out of range or a bad block
      size / budget / dtype.
  """
  mask, operand, n_in, total_correct = _prepare(mask, correct_test,
                                                matmul_dtype)
  num_runs, n_train = mask.shape
  n_out = num_runs - n_in
  if not 1 <= int(k) <= n_train:
    raise ValueError("`k` must be in [1, n_train={}], got {}".format(n_train, k))
  k = tf.constant(int(k), tf.int32)
  block_size = _resolve_block_size(block_size, memory_budget_bytes, num_runs,
                                   operand.num_test, operand.matmul_dtype)
  keys = tf.zeros([operand.num_test, 0], tf.float32)
  indices = tf.zeros([operand.num_test, 0], tf.int64)
  sum_in = tf.zeros([operand.num_test, 0], tf.float32)
  for start in _blocks(n_train, block_size, progress, "influence (top-k)"):
    cols = slice(start, min(n_train, start + block_size))
    mask_block = tf.constant(mask[:, cols])
    block_keys, block_sum_in = _influence_keys(
        operand.partial_sums(mask_block), mask_block, operand.total_correct)
    keys, indices, sum_in = _merge_topk(block_keys, block_sum_in, keys,
                                        indices, sum_in,
                                        tf.constant(start, tf.int64), k)
    del block_keys, block_sum_in
  values = keys.numpy()
  values[np.isneginf(values)] = np.nan
  indices = indices.numpy()
  se = influence_se(sum_in.numpy(), n_in[indices], n_out[indices],
                    total_correct)
  return InfluenceTopK(values=values, se=se, indices=indices, n_in=n_in,
                       n_out=n_out, total_correct=total_correct)


def influence_se(k_in, n_in, n_out, total_correct):
  """Standard errors of influence values, from their integer sums.

  For training example i and test example j, with k_in runs among the n_in
  that trained on i correct on j and k_out = total_correct[j] - k_in among the
  n_out that held i out:

    se = sqrt(p_in (1 - p_in) / (n_in + 2) + p_out (1 - p_out) / (n_out + 2)),
    p = (k + 1) / (n + 2),

  the Agresti-Caffo standard error of a difference of two proportions, as for
  memorization (`memorization_estimator.memorization`). Each side's
  p (1 - p) / (n + 2) is computed as (k + 1) (n + 1 - k) / (n + 2)^3,
  elementwise in float32, so one entry gets the same bits whatever array it is
  part of (the dense matrix or a top-k selection).

  Args:
    k_in: [n_test, m] integers (any int or float dtype holding integers below
      2^24): sum_r mask[r, i] correct_test[r, j] for each entry.
    n_in: [m] or [n_test, m] integers, runs that trained on each entry's
      training example (`n_in[indices]` for a top-k selection).
    n_out: like `n_in`, runs that held it out.
    total_correct: [n_test] integers, runs correct on each test example.

  Returns:
    [n_test, m] float32; NaN where n_in or n_out is 0 (influence undefined).

  Raises:
    ValueError: for shapes that disagree.
  """
  k_in = np.asarray(k_in)
  total_correct = np.asarray(total_correct)
  n_in = np.asarray(n_in)
  n_out = np.asarray(n_out)
  if k_in.ndim != 2 or total_correct.shape != k_in.shape[:1]:
    raise ValueError(
        "`k_in` must be [n_test, m] and `total_correct` [n_test], got shapes "
        "{} and {}".format(k_in.shape, total_correct.shape))
  for name, value in (("n_in", n_in), ("n_out", n_out)):
    if value.shape not in (k_in.shape, k_in.shape[1:]):
      raise ValueError("`{}` must be [m] or [n_test, m] like `k_in` {}, got "
                       "shape {}".format(name, k_in.shape, value.shape))
  # p (1 - p) / (n + 2) = (k + 1) (n + 1 - k) / (n + 2)^3: integer factors
  # (exact in float32), one scale per side that is NaN without runs, no
  # division over the [n_test, m] entries.
  k_in = k_in.astype(np.float32, copy=False)
  total = total_correct.astype(np.float32)[:, np.newaxis]
  n_in_plus_1 = n_in.astype(np.float32) + 1
  n_out_plus_1 = n_out.astype(np.float32) + 1
  variance = k_in + 1
  factor = n_in_plus_1 - k_in
  variance *= factor
  variance *= _side_scale(n_in)
  # k_out + 1 = T + 1 - k_in and n_out + 1 - k_out = n_out + 1 - T + k_in.
  np.subtract(total + 1, k_in, out=factor)
  other = n_out_plus_1 - total
  other += k_in
  factor *= other
  del other
  factor *= _side_scale(n_out)
  variance += factor
  del factor
  return np.sqrt(variance, out=variance)


def _side_scale(n):
  """1 / (n + 2)^3 as float32, NaN where n is 0 (an empty mean)."""
  n = np.asarray(n)
  scale = 1.0 / np.square(n.astype(np.float64) + 2) / (n.astype(np.float64) + 2)
  scale[n == 0] = np.nan
  return scale.astype(np.float32)


def k_in_from_values(values, n_in, n_out, total_correct):
  """Recovers k_in of `influence_se` from influence values alone.

  value = k_in / n_in - (T - k_in) / n_out (T = total_correct[j]) is strictly
  increasing in the integer k_in, so

    k_in = round((value + T / n_out) / (1 / n_in + 1 / n_out)).

  Exact for the float32 values of this module (and for float64 ones): their
  error is at most 3 * 2^-25, which moves k_in by at most
  3 * 2^-25 * n_in n_out / (n_in + n_out) <= 3 * 2^-27 * R, below 1/2 for the
  R < 2^24 runs this module accepts. Prefer the integer sums where they exist;
  this is for values saved without them.

  Args:
    values: [n_test, m] float influence values.
    n_in: [m] or [n_test, m] integers, as in `influence_se`.
    n_out: like `n_in`.
    total_correct: [n_test] integers.

  Returns:
    [n_test, m] int64 k_in; -1 where the influence is undefined (NaN value or
    n_in or n_out 0).

  Raises:
    ValueError: if a value is not one an integer k_in in
      [max(0, T - n_out), min(n_in, T)] gives (not an influence of these
      counts).
  """
  values = np.asarray(values, np.float64)
  n_in = np.broadcast_to(np.asarray(n_in, np.float64), values.shape)
  n_out = np.broadcast_to(np.asarray(n_out, np.float64), values.shape)
  total = np.asarray(total_correct, np.float64)[:, np.newaxis]
  defined = (n_in > 0) & (n_out > 0) & ~np.isnan(values)
  with np.errstate(divide="ignore", invalid="ignore"):
    k_in = np.rint((values + total / n_out) / (1 / n_in + 1 / n_out))
  k_in = np.where(defined, k_in, -1).astype(np.int64)
  low = np.maximum(0, total - n_out)
  high = np.minimum(n_in, total)
  bad = defined & ((k_in < low) | (k_in > high))
  if bad.any():
    j, i = np.argwhere(bad)[0]
    raise ValueError(
        "`values` holds {} at [{}, {}], which no k_in in [{}, {}] gives with "
        "n_in={}, n_out={}, total_correct={}".format(
            values[j, i], j, i, int(low[j, i]), int(high[j, i]),
            int(n_in[j, i]), int(n_out[j, i]), int(total[j, 0])))
  return k_in


def topk_from_dense(values, k, rows_per_chunk=256):
  """Top-k of each row of a dense influence matrix, ranked like `influence_topk`.

  Args:
    values: [n_test, n_train] float influence matrix (NaN allowed).
    k: entries to keep per row, in [1, n_train].
    rows_per_chunk: rows partitioned at a time (bounds the temporary copy).

  Returns:
    (top_values [n_test, k] of `values`' dtype, top_indices [n_test, k] int64),
    larger value first, ties by smaller column index, NaN below all reals.

  Raises:
    ValueError: if `values` is not 2-D or `k` is out of range.
  """
  values = np.asarray(values)
  if values.ndim != 2:
    raise ValueError("`values` must be [n_test, n_train], got shape {}".format(
        values.shape))
  n_test, n_train = values.shape
  if not 1 <= int(k) <= n_train:
    raise ValueError("`k` must be in [1, n_train={}], got {}".format(n_train, k))
  k = int(k)
  top_values = np.empty((n_test, k), values.dtype)
  top_indices = np.empty((n_test, k), np.int64)
  for start in range(0, n_test, rows_per_chunk):
    rows = slice(start, min(n_test, start + rows_per_chunk))
    keys = np.where(np.isnan(values[rows]), -np.inf, values[rows])
    kth_largest = np.partition(keys, n_train - k, axis=1)[:, n_train - k]
    for offset, (row_keys, threshold) in enumerate(zip(keys, kth_largest)):
      candidates = np.flatnonzero(row_keys >= threshold)
      order = np.lexsort((candidates, -row_keys[candidates]))[:k]
      chosen = candidates[order]
      top_indices[start + offset] = chosen
      top_values[start + offset] = values[start + offset, chosen]
  return top_values, top_indices
