"""Per-example counts of runs in and out of the training subset.

The building block of memorization and consistency: for every training example,
how many runs trained on it / held it out, and how many of each were correct.
Works on bool arrays in blocks of examples so that no [R, n] array wider than
bool is ever made. Also the Agresti-Caffo variance that every estimator's
standard error is made of.
"""

import numpy as np


def check_runs_array(value, name, num_runs=None, width=None):
  """Checks a [R, n] array of 0/1 outcomes and returns it as bool.

  Args:
    value: array-like, [R, n] bool (or 0/1 integers).
    name: argument name for error messages.
    num_runs: expected R, if known.
    width: expected n, if known.

  Returns:
    [R, n] bool ndarray (no copy when it already is one).

  Raises:
    ValueError: naming the argument, for a wrong rank, shape or dtype.
  """
  value = np.asarray(value)
  if value.ndim != 2:
    raise ValueError("`{}` must be a [runs, examples] array, got shape {}".format(
        name, value.shape))
  if num_runs is not None and value.shape[0] != num_runs:
    raise ValueError("`{}` must have {} runs (rows) like `mask`, got {}".format(
        name, num_runs, value.shape[0]))
  if width is not None and value.shape[1] != width:
    raise ValueError("`{}` must have {} examples (columns), got {}".format(
        name, width, value.shape[1]))
  if value.dtype != bool:
    if not np.issubdtype(value.dtype, np.integer):
      raise ValueError("`{}` must be bool (or 0/1 integers), got dtype {}".format(
          name, value.dtype))
    if value.size and (value.min() < 0 or value.max() > 1):
      raise ValueError("`{}` must hold only 0 and 1, got values in [{}, {}]".format(
          name, value.min(), value.max()))
    value = value.astype(bool)
  return value


def split_counts(mask, correct, block_size=16384, name="correct"):
  """Counts runs in / out of the subset, and correct ones, for each example.

  Args:
    mask: [R, n] bool, True where run r trained on example i.
    correct: [R, n] bool, run r correct on example i.
    block_size: examples per block; the temporary is R * block_size bytes.
    name: name of `correct` for error messages.

  Returns:
    (n_in, k_in, n_out, k_out), each [n] int64: runs with mask True, those of
    them correct, runs with mask False, those of them correct.

  Raises:
    ValueError: if the shapes disagree or `block_size` is not positive.
  """
  if int(block_size) <= 0:
    raise ValueError("`block_size` must be positive, got {}".format(block_size))
  block_size = int(block_size)
  mask = check_runs_array(mask, "mask")
  correct = check_runs_array(correct, name, num_runs=mask.shape[0],
                             width=mask.shape[1])
  num_runs, n = mask.shape
  n_in = np.zeros(n, np.int64)
  k_in = np.zeros(n, np.int64)
  k_all = np.zeros(n, np.int64)
  for start in range(0, n, block_size):
    cols = slice(start, min(n, start + block_size))
    m = mask[:, cols]
    c = correct[:, cols]
    n_in[cols] = np.count_nonzero(m, axis=0)
    k_in[cols] = np.count_nonzero(m & c, axis=0)
    k_all[cols] = np.count_nonzero(c, axis=0)
  return n_in, k_in, num_runs - n_in, k_all - k_in


def adjusted_variance_of_mean(k, n, dtype=np.float64):
  """Agresti-Caffo variance of a proportion: p (1 - p) / (n + 2).

  p = (k + 1) / (n + 2): one success and one failure are added before the
  usual binomial variance of a mean (Agresti & Caffo 2000), so the variance is
  never 0, even with n = 0 (the caller masks those: the mean is undefined).
  Every estimator's standard error is built from it, so they are of one family.

  Args:
    k: integer array (or floats holding integers), successes.
    n: integer array broadcastable with `k`, trials.
    dtype: float dtype of the computation and the result.

  Returns:
    float array of `dtype`, broadcast shape of `k` and `n`.
  """
  denominator = np.asarray(n, dtype) + 2
  p = np.empty(np.broadcast_shapes(np.shape(k), np.shape(n)), dtype)
  np.copyto(p, k, casting="unsafe")
  p += 1
  p /= denominator
  variance = np.subtract(1, p, dtype=dtype)
  variance *= p
  del p
  variance /= denominator
  return variance
