"""Mislabeled-example detection: how many corrupted labels a score finds.

Rank the training examples by a score from its suspicious end (the end at
which a method puts likely mislabeled examples: high memorization, many
forgetting events, high EL2N/GraNd, low SSFT, high self-influence, ...;
`SUSPICIOUS_END`), inspect the top fraction f, and report the fraction of
the corrupted examples found there, for each f, and the AUROC of the score
as a detector of the corrupted examples.

Ties are resolved in expectation, never by id: of the examples tied at the
cut, the inspected share is the same for each (so a score that gives every
example the same value finds exactly f of the corrupted ones), and the AUROC
counts a tied (corrupted, clean) pair as one half. Undefined (NaN) values
are ranked least suspicious, and their number is reported.
"""

import dataclasses
import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

HIGH = "high"
LOW = "low"
DEFAULT_FRACTIONS = (0.05, 0.10, 0.20, 0.30)

# Which end of each method's score holds the likely mislabeled examples.
SUSPICIOUS_END = {
    "memorization": HIGH,
    "forgetting_minibatch": HIGH,  # never learned (+inf) first
    "forgetting_per_epoch": HIGH,
    "el2n": HIGH,
    "grand": HIGH,
    "ssft": LOW,
    "fslt": HIGH,
    "self_influence": HIGH,
    "samis_l": HIGH,
    "samis_p": HIGH,
    "cleanlab": HIGH,  # 1 - label quality: high = likely label issue
    "consistency": LOW,
    "random": HIGH,
}


@dataclasses.dataclass(frozen=True)
class Detection:
  """One score's detection of the corrupted examples.

  Attributes:
    found: {fraction inspected: fraction of the corrupted examples found}.
    auroc: area under the ROC curve of the score as a detector.
    num_examples: examples ranked.
    num_corrupted: corrupted examples among them.
    num_undefined: examples with a NaN score (ranked least suspicious).
  """
  found: Dict[float, float]
  auroc: float
  num_examples: int
  num_corrupted: int
  num_undefined: int


def suspicion_keys(values, end: str) -> np.ndarray:
  """[n] float64, larger = more suspicious; NaN -> -inf (least)."""
  if end not in (HIGH, LOW):
    raise ValueError("`end` must be {!r} or {!r}, got {!r}".format(
        HIGH, LOW, end))
  values = np.asarray(values, np.float64)
  keys = values if end == HIGH else -values
  return np.where(np.isnan(keys), -np.inf, keys)


def fraction_found(keys, is_corrupted, fraction: float) -> float:
  """Expected fraction of corrupted examples among the top `fraction`.

  Args:
    keys: [n] float, larger = inspected first.
    is_corrupted: [n] bool.
    fraction: in (0, 1]; round(fraction * n) examples are inspected.

  Returns:
    The fraction of the corrupted examples found, ties at the cut shared
    in proportion (the expectation over random tie-breaking); NaN if none is
    corrupted.
  """
  if not 0.0 < fraction <= 1.0:
    raise ValueError("`fraction` must be in (0, 1], got {}".format(fraction))
  keys = np.asarray(keys, np.float64)
  is_corrupted = np.asarray(is_corrupted, bool)
  total = int(is_corrupted.sum())
  if total == 0:
    return float("nan")
  m = int(round(fraction * len(keys)))
  if m == 0:
    return 0.0
  cut = np.sort(keys)[::-1][m - 1]
  above = keys > cut
  tied = keys == cut
  inspected_tied = m - int(above.sum())
  found = (float(np.sum(is_corrupted & above)) +
           inspected_tied * float(np.sum(is_corrupted & tied)) /
           float(tied.sum()))
  return found / total


def auroc(keys, is_corrupted) -> float:
  """P(key of a corrupted > key of a clean example) + P(equal) / 2."""
  keys = np.asarray(keys, np.float64)
  is_corrupted = np.asarray(is_corrupted, bool)
  pos, neg = int(is_corrupted.sum()), int((~is_corrupted).sum())
  if pos == 0 or neg == 0:
    return float("nan")
  # Mid-ranks; -inf and +inf rank as ordinary values.
  ranks = stats.rankdata(keys, method="average")
  return float((ranks[is_corrupted].sum() - pos * (pos + 1) / 2.0) /
               (pos * neg))


def detect(index, values, corrupted_ids, end: str,
           fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Detection:
  """How well a score ranks the corrupted examples first.

  Args:
    index: [n] example ids of `values`.
    values: [n] the score.
    corrupted_ids: ids whose label was corrupted (those absent from `index`
      are ignored).
    end: `HIGH` or `LOW`, the suspicious end of the score.
    fractions: fractions of the examples inspected.

  Returns:
    `Detection`.
  """
  index = np.asarray(index, np.int64)
  values = np.asarray(values, np.float64)
  if index.shape != values.shape or index.ndim != 1:
    raise ValueError("`index` and `values` must be [n] alike, got {} and "
                     "{}".format(index.shape, values.shape))
  keys = suspicion_keys(values, end)
  is_corrupted = np.isin(index, np.asarray(corrupted_ids, np.int64))
  return Detection(
      found={float(f): fraction_found(keys, is_corrupted, f)
             for f in fractions},
      auroc=auroc(keys, is_corrupted), num_examples=len(index),
      num_corrupted=int(is_corrupted.sum()),
      num_undefined=int(np.isnan(values).sum()))


@dataclasses.dataclass(frozen=True)
class Summary:
  """A metric's mean over seeds and its standard error (NaN below 2)."""
  mean: float
  se: float
  num_seeds: int

  def __str__(self):
    if math.isnan(self.se):
      return "{:.3f}".format(self.mean)
    return "{:.3f}±{:.3f}".format(self.mean, self.se)


def summarize(values: Sequence[float]) -> Summary:
  """Mean and SE (sample SD / sqrt(k)) of per-seed values."""
  values = np.asarray([v for v in values if not math.isnan(v)], np.float64)
  if not len(values):
    return Summary(float("nan"), float("nan"), 0)
  se = (float(np.std(values, ddof=1) / np.sqrt(len(values)))
        if len(values) > 1 else float("nan"))
  return Summary(float(values.mean()), se, len(values))


def summarize_detections(per_seed: Sequence[Detection]
                         ) -> Dict[str, Summary]:
  """{"top 5%": Summary, ..., "AUROC": Summary} over seeds' detections."""
  if not per_seed:
    raise ValueError("no detection to summarize")
  out = {}
  for f in per_seed[0].found:
    out["top {:g}%".format(100 * f)] = summarize(
        [d.found[f] for d in per_seed])
  out["AUROC"] = summarize([d.auroc for d in per_seed])
  return out


def table_text(rows: Mapping[str, Mapping[str, Summary]],
               missing: Optional[Mapping[str, str]] = None) -> str:
  """A fixed-width table: one row per method, columns as in `rows`."""
  missing = dict(missing or {})
  if not rows and not missing:
    return "(no method)"
  columns = list(next(iter(rows.values()))) if rows else []
  width = max([len(m) for m in list(rows) + list(missing)] + [6])
  lines = ["{:<{w}}  ".format("method", w=width) +
           "  ".join("{:>13}".format(c) for c in columns)]
  for method, cells in rows.items():
    lines.append("{:<{w}}  ".format(method, w=width) + "  ".join(
        "{:>13}".format(str(cells[c])) for c in columns))
  for method, why in missing.items():
    lines.append("{:<{w}}  not available: {}".format(method, why, w=width))
  return "\n".join(lines)
