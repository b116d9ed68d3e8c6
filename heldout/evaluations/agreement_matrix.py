"""Spearman agreement between every pair of per-example scores.

SAMIS's check against memorization, generalised to all methods: for each pair
of scores, the Spearman correlation over the examples both define (lined up
by example id, NaN excluded; `heldout.released.agreement`), as a table, a
CSV and a heatmap.
"""

import io
from typing import Mapping, Sequence, Tuple

import numpy as np

from heldout.released import agreement


def spearman_matrix(scores: Mapping[str, Tuple[np.ndarray, np.ndarray]]
                    ) -> Tuple[Sequence[str], np.ndarray, np.ndarray]:
  """Spearman correlations of every pair.

  Args:
    scores: {name: (index [n] int, values [n] float)}.

  Returns:
    (names, rho [m, m] float64 with 1 on the diagonal, compared [m, m]
     int64: examples both define).
  """
  names = list(scores)
  m = len(names)
  rho = np.eye(m)
  compared = np.zeros((m, m), np.int64)
  for i, a in enumerate(names):
    index, values = scores[a]
    compared[i, i] = int(np.sum(~np.isnan(np.asarray(values, np.float64))))
    for j in range(i + 1, m):
      other_index, other = scores[names[j]]
      report = agreement.agreement_report(
          np.asarray(values, np.float64), np.asarray(other, np.float64),
          ours_index=index, published_index=other_index, top_ks=(),
          num_disagreements=0)
      rho[i, j] = rho[j, i] = report.spearman
      compared[i, j] = compared[j, i] = report.n_compared
  return names, rho, compared


def matrix_text(names, rho) -> str:
  width = max([len(n) for n in names] + [6])
  lines = [" " * width + "  " + "  ".join("{:>8}".format(n[:8])
                                          for n in names)]
  for name, row in zip(names, rho):
    lines.append("{:<{w}}  ".format(name, w=width) + "  ".join(
        "{:>8}".format("nan" if np.isnan(v) else "{:+.3f}".format(v))
        for v in row))
  return "\n".join(lines)


def matrix_csv(names, rho, compared) -> str:
  out = io.StringIO()
  out.write("a,b,spearman,compared\n")
  for i, a in enumerate(names):
    for j, b in enumerate(names):
      out.write("{},{},{!r},{}\n".format(a, b, float(rho[i, j]),
                                         int(compared[i, j])))
  return out.getvalue()


def heatmap_png(names, rho, title=None) -> bytes:
  """PNG bytes of the matrix as a heatmap, values written in the cells."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  m = len(names)
  fig, ax = plt.subplots(figsize=(1.0 + 0.8 * m, 0.8 + 0.7 * m), dpi=110)
  try:
    image = ax.imshow(rho, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(m))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticks(range(m))
    ax.set_yticklabels(names)
    for i in range(m):
      for j in range(m):
        if not np.isnan(rho[i, j]):
          ax.text(j, i, "{:.2f}".format(rho[i, j]), ha="center",
                  va="center", fontsize=8,
                  color="white" if abs(rho[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="Spearman")
    if title:
      ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
  finally:
    plt.close(fig)
