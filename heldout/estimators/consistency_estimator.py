"""Consistency scores (C-scores) from heldout training (Jiang et al. 2021).

The consistency of training example i at one subset ratio is the expected
accuracy on i of models trained on random subsets of that size that do not
contain i: the mean of `correct[r, i]` over the runs r that held i out. The
C-score averages it over the subset ratios. Means over no runs are NaN, with
the count.
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
    n_out: [n_train] int64, number of runs that held the example out.
  """
  values: np.ndarray
  n_out: np.ndarray


@dataclasses.dataclass(frozen=True)
class CScore:
  """Consistency averaged over subset ratios.

  Attributes:
    values: [n_train] float64, mean over the ratios where the consistency is
      defined; NaN where it is defined at none.
    n_ratios: [n_train] int64, how many ratios contributed to each value.
    ratios: [n_ratios] float64, the ratios given, sorted.
  """
  values: np.ndarray
  n_ratios: np.ndarray
  ratios: np.ndarray


def consistency(mask, correct_train, block_size=16384):
  """Consistency of every training example at one subset ratio.

  values[i] = (sum_r (1 - mask[r, i]) correct[r, i]) / n_out[i], with
  n_out[i] = sum_r (1 - mask[r, i]); NaN where n_out[i] is 0.

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
  _, _, n_out, k_out = counts_lib.split_counts(
      mask, correct_train, block_size=block_size, name="correct_train")
  with np.errstate(divide="ignore", invalid="ignore"):
    values = k_out / n_out
  return Consistency(values=values, n_out=n_out)


def cscore(by_ratio):
  """Averages consistency over the subset ratios present (NaN-aware).

  values[i] = mean of by_ratio[q][i] over the ratios q where it is not NaN;
  NaN where it is NaN at every ratio. Each ratio counts once, whatever its
  number of runs (an unweighted average, as the C-score integrates over the
  subset ratio).

  Args:
    by_ratio: dict subset ratio -> `Consistency` or [n_train] float array.

  Returns:
    `CScore`.

  Raises:
    ValueError: if `by_ratio` is empty or its arrays differ in shape.
  """
  if not by_ratio:
    raise ValueError("`by_ratio` must hold at least one subset ratio, got none")
  ratios = sorted(by_ratio)
  arrays = []
  for ratio in ratios:
    value = by_ratio[ratio]
    if isinstance(value, Consistency):
      value = value.values
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 1 or (arrays and value.shape != arrays[0].shape):
      raise ValueError(
          "`by_ratio` must map each ratio to an [n_train] array of one length, "
          "got shape {} for ratio {}{}".format(
              value.shape, ratio,
              " (expected {})".format(arrays[0].shape) if arrays else ""))
    arrays.append(value)
  total = np.zeros_like(arrays[0])
  n_ratios = np.zeros(arrays[0].shape, np.int64)
  for value in arrays:
    defined = ~np.isnan(value)
    total[defined] += value[defined]
    n_ratios += defined
  with np.errstate(divide="ignore", invalid="ignore"):
    values = total / n_ratios
  return CScore(values=values, n_ratios=n_ratios,
                ratios=np.asarray(ratios, dtype=np.float64))
