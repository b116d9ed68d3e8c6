"""Figures a person would rather look at than read: influence and memorization.

- `influence_examples_figure`: the figure of Feldman & Zhang's MNIST example:
  each row a test example, then the training examples with the highest
  influence on it, then random training examples of its class, each with its
  label and influence.
- `memorization_histogram`: the distribution of memorization estimates, with
  the typical standard error marked.
- `most_memorized_figure`: the most memorized training examples with their
  labels and estimates.

Images are taken from `heldout.data.dataset.SplitData` by example id, so rows
of the estimates (indexed by id) and images always agree. Files are written
atomically (PNG).
"""

import io

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from heldout import atomic
from heldout.estimators import influence_estimator


def png_bytes(fig, **savefig_kwargs) -> bytes:
  """The figure as PNG bytes; closes it."""
  buf = io.BytesIO()
  try:
    fig.savefig(buf, format="png", **savefig_kwargs)
  finally:
    plt.close(fig)
  return buf.getvalue()


def _save(fig, path):
  atomic.write_bytes(path, png_bytes(fig, dpi=110, bbox_inches="tight"))
  return path


def _show(ax, image, title):
  image = np.asarray(image)
  ax.axis("off")
  if image.ndim == 3 and image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap="gray_r" if image.max() <= 1.0 else "gray",
              vmin=0.0, vmax=max(1.0, float(image.max())))
  else:
    ax.imshow(np.clip(image, 0.0, 1.0))
  ax.set_title(title, fontsize=7)


def strongest_test_examples(influence, n):
  """Test example ids sorted by their largest influence value, strongest first.

  Args:
    influence: [n_test, n_train] float (NaN allowed) or the top-k values
      [n_test, k] (the first column is each row's largest value).
    n: how many to return.

  Returns:
    [min(n, n_test)] int64 test example ids.
  """
  influence = np.asarray(influence, dtype=np.float64)
  best = np.where(np.isnan(influence), -np.inf, influence).max(axis=1)
  order = np.lexsort((np.arange(len(best)), -best))
  return order[:n].astype(np.int64)


def influence_examples_figure(path, train, test, influence=None,
                              topk_values=None, topk_indices=None, n_show=8,
                              n_top=4, n_random=4, seed=0):
  """Saves the influence figure of Feldman & Zhang's MNIST example.

  Args:
    path: the PNG to write.
    train: `SplitData` of the training set (looked up by example id).
    test: `SplitData` of the test set.
    influence: [n_test, n_train] dense influence by example id, or None when
      only top-k is given.
    topk_values: [n_test, k] the largest influence values per test example.
    topk_indices: [n_test, k] their training example ids.
    n_show: rows (test examples with the strongest influence).
    n_top: most influential training examples shown per row.
    n_random: random training examples of the test example's class per row.
    seed: for the random examples.

  Returns:
    `path`.

  Raises:
    ValueError: if neither dense nor top-k influence is given.
  """
  if influence is None and (topk_values is None or topk_indices is None):
    raise ValueError("give `influence` or both `topk_values` and `topk_indices`")
  if influence is not None:
    influence = np.asarray(influence)
    # Ranked as the streamed top-k is: largest first, ties to the smaller
    # training id, NaN last.
    top_vals, top_ids = influence_estimator.topk_from_dense(
        influence, min(n_top, influence.shape[1]))
    rows = strongest_test_examples(influence, n_show)
  else:
    top_ids = np.asarray(topk_indices)[:, :n_top]
    top_vals = np.asarray(topk_values)[:, :n_top]
    rows = strongest_test_examples(topk_values, n_show)
  rng = np.random.default_rng(seed)
  train_pos = lambda ids: train.positions_of(np.asarray(ids))
  test_labels_by_id = test.labels_by_id()
  train_labels_by_id = train.labels_by_id()

  ncols = 1 + n_top + n_random
  fig, axs = plt.subplots(len(rows), ncols, figsize=(1.15 * ncols, 1.3 * len(rows)),
                          squeeze=False)
  for r, j in enumerate(rows):
    label = test_labels_by_id[j]
    _show(axs[r, 0], test.images[test.positions_of([j])[0]],
          "test {}\nlabel {}".format(j, label))
    for c in range(n_top):
      i = int(top_ids[j, c])
      _show(axs[r, 1 + c], train.images[train_pos([i])[0]],
            "train {}, L={}\ninfl={:.3f}".format(i, train_labels_by_id[i],
                                                top_vals[j, c]))
    same_class = np.flatnonzero(train_labels_by_id == label)
    picks = rng.choice(same_class, size=min(n_random, len(same_class)),
                       replace=False)
    for c in range(n_random):
      ax = axs[r, 1 + n_top + c]
      if c >= len(picks):
        ax.axis("off")
        continue
      i = int(picks[c])
      score = ("infl={:.3f}".format(influence[j, i]) if influence is not None
               else "random")
      _show(ax, train.images[train_pos([i])[0]],
            "train {}, L={}\n{}".format(i, label, score))
  fig.suptitle("Each row: a test example | its {} most influential training "
               "examples | {} random training examples of its class".format(
                   n_top, n_random), fontsize=8)
  fig.tight_layout()
  return _save(fig, path)


def memorization_histogram(path, memorization, se=None, bins=40, title=None):
  """Saves a histogram of memorization estimates.

  Args:
    path: the PNG to write.
    memorization: [n_train] float, NaN where undefined (left out, counted).
    se: [n_train] standard errors; their median is marked if given.
    bins: histogram bins over [-1, 1].
    title: figure title.

  Returns:
    `path`.
  """
  values = np.asarray(memorization, dtype=np.float64)
  defined = values[~np.isnan(values)]
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.hist(defined, bins=np.linspace(-1, 1, bins + 1), color="#4C72B0")
  ax.set_yscale("log")
  ax.set_xlabel("memorization estimate")
  ax.set_ylabel("training examples (log scale)")
  note = "{} examples".format(len(defined))
  if len(defined) != len(values):
    note += ", {} undefined (NaN) left out".format(len(values) - len(defined))
  if se is not None:
    se = np.asarray(se, dtype=np.float64)
    if np.isfinite(se).any():
      note += "; median standard error {:.3f}".format(np.nanmedian(se))
  ax.set_title((title + "\n" if title else "") + note, fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def most_memorized_figure(path, train, memorization, se=None, n_show=24,
                          ncols=8):
  """Saves the training examples with the highest memorization estimates.

  Args:
    path: the PNG to write.
    train: `SplitData` of the training set.
    memorization: [n_train] float by example id (NaN never shown).
    se: [n_train] standard errors, shown when given.
    n_show: how many examples.
    ncols: columns of the grid.

  Returns:
    `path`.
  """
  values = np.asarray(memorization, dtype=np.float64)
  keyed = np.where(np.isnan(values), -np.inf, values)
  ids = np.lexsort((np.arange(len(values)), -keyed))[:n_show]
  ids = ids[np.isfinite(keyed[ids])]
  nrows = max(1, int(np.ceil(len(ids) / ncols)))
  fig, axs = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.35 * nrows),
                          squeeze=False)
  labels_by_id = train.labels_by_id()
  for ax, i in zip(axs.flat, list(ids) + [None] * (nrows * ncols - len(ids))):
    if i is None:
      ax.axis("off")
      continue
    text = "id {}, L={}\nmem={:.2f}".format(i, labels_by_id[i], values[i])
    if se is not None:
      text += "±{:.2f}".format(se[i])
    _show(ax, train.images[train.positions_of([i])[0]], text)
  fig.suptitle("Most memorized training examples", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)
