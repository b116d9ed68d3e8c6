"""How well our per-example estimates agree with the published ones.

`agreement_report` aligns two per-example arrays by example id, drops pairs
where either is NaN (counting them), and reports Spearman and Pearson
correlation, the overlap of the top-k and bottom-k examples at several k, and
the examples whose ranks differ most. `write_report` saves it as CSV files and
a scatter plot, atomically.
"""

import dataclasses
import io
from typing import List, Sequence
import warnings

import numpy as np
from scipy import stats

from heldout import atomic

DEFAULT_TOP_KS = (10, 100, 1000)


@dataclasses.dataclass(frozen=True)
class TopKOverlap:
  """Overlap of the k highest (and k lowest) examples by each estimate.

  `top` = |top_k(ours) & top_k(published)| / k; `bottom` likewise for the k
  lowest. Ties are broken by example id (lower id first), so the sets are
  deterministic.
  """
  k: int
  top: float
  bottom: float


@dataclasses.dataclass(frozen=True)
class Disagreement:
  """One example where the two estimates disagree.

  Attributes:
    index: example id.
    ours: our value.
    published: the published value.
    ours_rank: percentile rank of ours among the compared examples, in [0, 1]
      (ties share their average rank).
    published_rank: the same for the published value.
  """
  index: int
  ours: float
  published: float
  ours_rank: float
  published_rank: float

  @property
  def rank_gap(self):
    return self.ours_rank - self.published_rank


@dataclasses.dataclass(frozen=True)
class AgreementReport:
  """See `agreement_report`.

  Attributes:
    n_ours: examples with an estimate of ours (NaN included).
    n_published: examples with a published value (NaN included).
    n_common: examples in both.
    n_only_ours: examples only we estimate.
    n_only_published: examples only published.
    n_nan_ours: common examples where ours is NaN.
    n_nan_published: common examples where the published value is NaN.
    n_compared: common examples with both values finite.
    spearman, spearman_p: Spearman's rank correlation and its p-value (NaN
      for fewer than 2 examples or a constant array).
    pearson, pearson_p: Pearson's correlation and its p-value.
    mean_abs_diff: mean |ours - published| over the compared examples.
    topk: `TopKOverlap` per k (k clipped to n_compared, duplicates dropped).
    disagreements: the examples with the largest |rank gap| (then the largest
      |value difference|, then the lowest id), largest first.
    index: [n_compared] example ids compared, ascending.
    ours: [n_compared] our values there.
    published: [n_compared] published values there.
  """
  n_ours: int
  n_published: int
  n_common: int
  n_only_ours: int
  n_only_published: int
  n_nan_ours: int
  n_nan_published: int
  n_compared: int
  spearman: float
  spearman_p: float
  pearson: float
  pearson_p: float
  mean_abs_diff: float
  topk: List[TopKOverlap]
  disagreements: List[Disagreement]
  index: np.ndarray
  ours: np.ndarray
  published: np.ndarray

  def summary_rows(self):
    """[(metric, value)] of the scalar results, in a fixed order."""
    rows = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
            if f.name not in ("topk", "disagreements", "index", "ours", "published")]
    for t in self.topk:
      rows.append(("top_{}_overlap".format(t.k), t.top))
      rows.append(("bottom_{}_overlap".format(t.k), t.bottom))
    return rows

  def format_text(self, names=("ours", "published")):
    """A human-readable summary."""
    a, b = names
    lines = [
        "compared {} examples ({} in {}, {} in {}, {} in both; {} only in {}, {} only "
        "in {}; NaN excluded: {} in {}, {} in {})".format(
            self.n_compared, self.n_ours, a, self.n_published, b, self.n_common,
            self.n_only_ours, a, self.n_only_published, b, self.n_nan_ours, a,
            self.n_nan_published, b),
        "Spearman {:.4f} (p={:.3g})   Pearson {:.4f} (p={:.3g})   mean |diff| {:.4f}".format(
            self.spearman, self.spearman_p, self.pearson, self.pearson_p,
            self.mean_abs_diff),
    ]
    for t in self.topk:
      lines.append("top-{} overlap {:.3f}   bottom-{} overlap {:.3f}".format(
          t.k, t.top, t.k, t.bottom))
    if self.disagreements:
      lines.append("largest disagreements (percentile ranks):")
      lines.append("  {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}".format(
          "index", a[:10], b[:10], "rank_" + a[:3], "rank_" + b[:3], "gap"))
      for d in self.disagreements:
        lines.append("  {:>10d} {:>10.4f} {:>10.4f} {:>8.3f} {:>8.3f} {:>+8.3f}".format(
            d.index, d.ours, d.published, d.ours_rank, d.published_rank, d.rank_gap))
    return "\n".join(lines)


def _as_index(index, n, name):
  if index is None:
    return np.arange(n, dtype=np.int64)
  index = np.asarray(index)
  if index.ndim != 1 or len(index) != n:
    raise ValueError("`{}` must be 1-D of length {}, got shape {}".format(
        name, n, index.shape))
  if not np.issubdtype(index.dtype, np.integer):
    raise ValueError("`{}` must hold integer example ids, got dtype {}".format(
        name, index.dtype))
  index = index.astype(np.int64)
  unique, counts = np.unique(index, return_counts=True)
  if (counts > 1).any():
    raise ValueError("`{}` repeats example ids (first: {})".format(
        name, int(unique[counts > 1][0])))
  return index


def _as_values(values, name):
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1:
    raise ValueError("`{}` must be 1-D, got shape {}".format(name, values.shape))
  return values


def _top_ids(index, values, k, highest):
  key = -values if highest else values
  order = np.lexsort((index, key))
  return set(index[order[:k]].tolist())


def _correlation(fn, x, y):
  if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
    return float("nan"), float("nan")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = fn(x, y)
  return float(result[0]), float(result[1])


def agreement_report(ours, published, *, ours_index=None, published_index=None,
                     top_ks: Sequence[int] = DEFAULT_TOP_KS, num_disagreements=20):
  """Compares two per-example estimates.

  Args:
    ours: [n_ours] float, our estimate (NaN where undefined).
    published: [n_published] float, the published values (NaN allowed).
    ours_index: [n_ours] int example id of each of `ours`; None: positions.
    published_index: [n_published] int example ids of `published`; None: positions.
    top_ks: the k of the top-k / bottom-k overlaps (clipped to n_compared).
    num_disagreements: how many of the largest disagreements to list.

  Returns:
    `AgreementReport`.

  Raises:
    ValueError: for arrays and indices of different lengths, repeated ids,
      or a non-positive k.
  """
  ours = _as_values(ours, "ours")
  published = _as_values(published, "published")
  ours_index = _as_index(ours_index, len(ours), "ours_index")
  published_index = _as_index(published_index, len(published), "published_index")
  if any(int(k) <= 0 for k in top_ks):
    raise ValueError("`top_ks` must be positive, got {}".format(list(top_ks)))
  if num_disagreements < 0:
    raise ValueError("`num_disagreements` must be non-negative, got {}".format(
        num_disagreements))

  common, a, b = np.intersect1d(ours_index, published_index, assume_unique=True,
                                return_indices=True)
  x, y = ours[a], published[b]
  nan_x, nan_y = np.isnan(x), np.isnan(y)
  keep = ~(nan_x | nan_y)
  index, x, y = common[keep], x[keep], y[keep]
  n = len(index)

  spearman, spearman_p = _correlation(stats.spearmanr, x, y)
  pearson, pearson_p = _correlation(stats.pearsonr, x, y)
  ks = sorted({min(int(k), n) for k in top_ks} - {0})
  topk = [TopKOverlap(k,
                      len(_top_ids(index, x, k, True) & _top_ids(index, y, k, True)) / k,
                      len(_top_ids(index, x, k, False) & _top_ids(index, y, k, False)) / k)
          for k in ks]

  disagreements = []
  if n:
    denom = max(n - 1, 1)
    rank_x = (stats.rankdata(x) - 1) / denom
    rank_y = (stats.rankdata(y) - 1) / denom
    gap = np.abs(rank_x - rank_y)
    order = np.lexsort((index, -np.abs(x - y), -gap))[:num_disagreements]
    disagreements = [Disagreement(int(index[i]), float(x[i]), float(y[i]),
                                  float(rank_x[i]), float(rank_y[i])) for i in order]

  return AgreementReport(
      n_ours=len(ours), n_published=len(published), n_common=len(common),
      n_only_ours=len(ours) - len(common), n_only_published=len(published) - len(common),
      n_nan_ours=int(nan_x.sum()), n_nan_published=int(nan_y.sum()), n_compared=n,
      spearman=spearman, spearman_p=spearman_p, pearson=pearson, pearson_p=pearson_p,
      mean_abs_diff=float(np.mean(np.abs(x - y))) if n else float("nan"),
      topk=topk, disagreements=disagreements, index=index, ours=x, published=y)


def _csv_text(header, rows):
  out = io.StringIO()
  import csv  # pylint: disable=g-import-not-at-top
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(header)
  for row in rows:
    writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
  return out.getvalue()


def scatter_png(report, names=("ours", "published"), title=None):
  """PNG bytes of a scatter plot (published on x, ours on y), disagreements in red."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
  try:
    if report.n_compared:
      alpha = float(np.clip(2000.0 / report.n_compared, 0.05, 0.8))
      ax.scatter(report.published, report.ours, s=4, alpha=alpha, color="tab:blue",
                 linewidths=0, label="{} examples".format(report.n_compared))
      lo = float(min(report.published.min(), report.ours.min()))
      hi = float(max(report.published.max(), report.ours.max()))
      ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.8, linestyle="--",
              label="y = x")
      if report.disagreements:
        ax.scatter([d.published for d in report.disagreements],
                   [d.ours for d in report.disagreements], s=14, color="tab:red",
                   label="largest disagreements")
      ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel(names[1])
    ax.set_ylabel(names[0])
    ax.set_title(title or "Spearman {:.3f}, Pearson {:.3f}, n = {}".format(
        report.spearman, report.pearson, report.n_compared), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
  finally:
    plt.close(fig)
  return buf.getvalue()


def write_report(report, output_prefix, names=("ours", "published"), title=None):
  """Writes `<prefix>_summary.csv`, `<prefix>_disagreements.csv`, `<prefix>_scatter.png`.

  The three are written as a set (`atomic.write_files`): all in full under
  temporary names first, so a failed write replaces none of them.

  Returns:
    {"summary": path, "disagreements": path, "scatter": path}.
  """
  paths = {
      "summary": "{}_summary.csv".format(output_prefix),
      "disagreements": "{}_disagreements.csv".format(output_prefix),
      "scatter": "{}_scatter.png".format(output_prefix),
  }
  png = scatter_png(report, names, title)
  summary = _csv_text(("metric", "value"), report.summary_rows())
  disagreements = _csv_text(
      ("index", names[0], names[1], "rank_" + names[0], "rank_" + names[1], "rank_gap"),
      [(d.index, d.ours, d.published, d.ours_rank, d.published_rank, d.rank_gap)
       for d in report.disagreements])
  atomic.write_files({paths["summary"]: summary.encode("utf-8"),
                      paths["disagreements"]: disagreements.encode("utf-8"),
                      paths["scatter"]: png})
  return paths
