"""Memorization estimates from heldout training (Feldman & Zhang 2020).

With runs r = 1..R, `mask[r, i]` True when training example i was in run r's
subset and `correct[r, i]` whether run r's final model classified it correctly:

  memorization(i) = mean_{r: mask[r,i]} correct[r,i]
                    - mean_{r: not mask[r,i]} correct[r,i]

Means over no runs are undefined and reported as NaN, with the counts.
"""

import dataclasses

import numpy as np

from heldout.estimators import counts as counts_lib


@dataclasses.dataclass(frozen=True)
class Memorization:
  """Per-example memorization estimates.

  Attributes:
    values: [n_train] float64, mean correctness over runs that trained on the
      example minus over runs that held it out; NaN when either count is 0.
    se: [n_train] float64, standard error of `values` (Agresti-Caffo, see
      `memorization`); NaN where `values` is.
    n_in: [n_train] int64, number of runs that trained on the example.
    n_out: [n_train] int64, number of runs that held it out.
  """
  values: np.ndarray
  se: np.ndarray
  n_in: np.ndarray
  n_out: np.ndarray


def memorization(mask, correct_train, block_size=16384):
  """Memorization of every training example, with standard errors and counts.

  With n_in / n_out the number of runs that trained on / held out example i and
  k_in / k_out how many of those were correct on it:

    values = k_in / n_in - k_out / n_out
    se = sqrt(p_in (1 - p_in) / (n_in + 2) + p_out (1 - p_out) / (n_out + 2)),
    p = (k + 1) / (n + 2),

  the Agresti-Caffo standard error of a difference of two proportions (one
  success and one failure added to each side; Agresti & Caffo 2000). The two
  means are independent, as they come from disjoint sets of runs. Unlike the
  plain sample-variance formula it does not collapse to 0 when every run on a
  side agrees (typical here: most examples are always classified correctly),
  so an estimate from few runs never looks exact. `values` itself is the plain
  difference of the definition. Both are NaN where n_in or n_out is 0. The
  consistency and influence SEs are of the same family
  (`counts.adjusted_variance_of_mean`).

  Args:
    mask: [R, n_train] bool, True where run r trained on example i.
    correct_train: [R, n_train] bool, run r correct on training example i.
    block_size: examples processed at a time; bounds the temporary memory to
      about R * block_size bytes. Does not change the result.

  Returns:
    `Memorization`.

  Raises:
    ValueError: if the shapes disagree or `block_size` is not positive.
  """
  n_in, k_in, n_out, k_out = counts_lib.split_counts(
      mask, correct_train, block_size=block_size, name="correct_train")
  with np.errstate(divide="ignore", invalid="ignore"):
    values = k_in / n_in - k_out / n_out
    se = np.sqrt(counts_lib.adjusted_variance_of_mean(k_in, n_in) +
                 counts_lib.adjusted_variance_of_mean(k_out, n_out))
  se = np.where(np.isnan(values), np.nan, se)
  return Memorization(values=values, se=se, n_in=n_in, n_out=n_out)
