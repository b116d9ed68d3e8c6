"""Consistency scores (C-scores) from heldout training (Jiang et al. 2021).

The consistency of training example i at one subset ratio is the expected
accuracy on i of models trained on random subsets of that size that do not
contain i: the mean of `correct[r, i]` over the runs r that held i out. The
C-score averages it over the subset ratios. Means over no runs are NaN, with
the count.

Standard errors are of the Agresti-Caffo family used for memorization and
influence (one success and one failure added before the binomial variance;
see `counts.adjusted_variance_of_mean`), so they never collapse to 0 when
every held-out run agrees.
"""

import dataclasses

import numpy as np

from heldout.estimators import counts as counts_lib


@dataclasses.dataclass(frozen=True)
class Consistency:
  """Consistency at one subset ratio.

  Attributes:
    values: [n_train] float64, mean correctness over the runs that held the
      example out; NaN where `n_out` is 0.
    se: [n_train] float64, standard error of `values`,
      sqrt(p (1 - p) / (n_out + 2)) with p = (k_out + 1) / (n_out + 2)
      (Agresti-Caffo); NaN where `values` is.
    n_in: [n_train] int64, number of runs that trained on the example.
    n_out: [n_train] int64, number of runs that held the example out.
  """
  values: np.ndarray
  se: np.ndarray
  n_in: np.ndarray
  n_out: np.ndarray


@dataclasses.dataclass(frozen=True)
class CScore:
  """Consistency averaged over subset ratios.

  Attributes:
    values: [n_train] float64, mean over the ratios where the consistency is
      defined; NaN where it is defined at none.
    se: [n_train] float64, standard error of `values`: sqrt(sum of se_q^2
      over the contributing ratios q) / n_ratios; NaN where `values` is, or
      where a contributing ratio was given without an SE.
    n_ratios: [n_train] int64, how many ratios contributed to each value.
    ratios: [n_ratios] float64, the ratios given, sorted.
  """
  values: np.ndarray
  se: np.ndarray
  n_ratios: np.ndarray
  ratios: np.ndarray


def consistency(mask, correct_train, block_size=16384):
  """Consistency of every training example at one subset ratio.

  values[i] = k_out[i] / n_out[i], with n_out[i] = sum_r (1 - mask[r, i]) and
  k_out[i] = sum_r (1 - mask[r, i]) correct[r, i]; NaN where n_out[i] is 0.

  se[i] = sqrt(p (1 - p) / (n_out[i] + 2)), p = (k_out[i] + 1) / (n_out[i] + 2):
  the Agresti-Caffo standard error of a proportion, the held-out half of
  memorization's; NaN where n_out[i] is 0.

  Args:
    mask: [R, n_train] bool, True where run r trained on example i (all runs
      of one subset ratio).
    correct_train: [R, n_train] bool, run r correct on training example i.
    block_size: examples processed at a time (memory bound, same result).

  Returns:
    `Consistency`.

  Raises:
    ValueError: if the shapes disagree or `block_size` is not positive.
  """
  n_in, _, n_out, k_out = counts_lib.split_counts(
      mask, correct_train, block_size=block_size, name="correct_train")
  with np.errstate(divide="ignore", invalid="ignore"):
    values = k_out / n_out
  se = np.sqrt(counts_lib.adjusted_variance_of_mean(k_out, n_out))
  se[n_out == 0] = np.nan
  return Consistency(values=values, se=se, n_in=n_in, n_out=n_out)


def undefined_consistency(n_train):
  """Consistency at a ratio without usable runs: NaN values and SEs, counts 0.

  Args:
    n_train: number of training examples.

  Returns:
    `Consistency` of [n_train] arrays.
  """
  return Consistency(values=np.full(n_train, np.nan),
                     se=np.full(n_train, np.nan),
                     n_in=np.zeros(n_train, np.int64),
                     n_out=np.zeros(n_train, np.int64))


def cscore(by_ratio):
  """Averages consistency over the subset ratios present (NaN-aware).

  values[i] = mean of by_ratio[q][i] over the ratios q where it is not NaN;
  NaN where it is NaN at every ratio. Each ratio counts once, whatever its
  number of runs (an unweighted average, as the C-score integrates over the
  subset ratio).

  se[i] = sqrt(sum_q se_q[i]^2) / n_ratios[i] over the same ratios: the
  standard error of a mean of independent estimates (each ratio has its own
  runs), with the Agresti-Caffo se_q of `consistency`. NaN where no ratio
  contributes, or where a contributing ratio was given as a plain array
  (which has no SE).

  Args:
    by_ratio: dict subset ratio -> `Consistency`, or [n_train] float array of
      values (then without an SE).

  Returns:
    `CScore`.

  Raises:
    ValueError: if `by_ratio` is empty or its arrays differ in shape.
  """
  if not by_ratio:
    raise ValueError("`by_ratio` must hold at least one subset ratio, got none")
  ratios = sorted(by_ratio)
  arrays = []
  ses = []
  for ratio in ratios:
    value = by_ratio[ratio]
    if isinstance(value, Consistency):
      se = np.asarray(value.se, dtype=np.float64)
      value = value.values
    else:
      se = None
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 1 or (arrays and value.shape != arrays[0].shape):
      raise ValueError(
          "`by_ratio` must map each ratio to an [n_train] array of one length, "
          "got shape {} for ratio {}{}".format(
              value.shape, ratio,
              " (expected {})".format(arrays[0].shape) if arrays else ""))
    if se is not None and se.shape != value.shape:
      raise ValueError(
          "`by_ratio` must hold an `se` of the shape of its `values`, got {} "
          "and {} for ratio {}".format(se.shape, value.shape, ratio))
    arrays.append(value)
    ses.append(np.full(value.shape, np.nan) if se is None else se)
  total = np.zeros_like(arrays[0])
  total_variance = np.zeros_like(arrays[0])
  n_ratios = np.zeros(arrays[0].shape, np.int64)
  for value, se in zip(arrays, ses):
    defined = ~np.isnan(value)
    total[defined] += value[defined]
    total_variance[defined] += np.square(se[defined])
    n_ratios += defined
  with np.errstate(divide="ignore", invalid="ignore"):
    values = total / n_ratios
    se = np.sqrt(total_variance) / n_ratios
  se[n_ratios == 0] = np.nan
  return CScore(values=values, se=se, n_ratios=n_ratios,
                ratios=np.asarray(ratios, dtype=np.float64))
