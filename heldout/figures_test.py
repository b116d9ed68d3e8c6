"""Tests for heldout.figures."""

import os

from absl.testing import absltest
import numpy as np

from heldout import figures
from heldout.data import dataset


def _split(n, seed):
  rng = np.random.default_rng(seed)
  return dataset.SplitData(
      images=rng.random((n, 8, 8, 1), dtype=np.float32),
      labels=np.arange(n) % 3, index=rng.permutation(n))


def _is_png(path):
  with open(path, "rb") as f:
    return f.read(8) == b"\x89PNG\r\n\x1a\n"


class FiguresTest(absltest.TestCase):

  def test_strongest_test_examples(self):
    influence = np.array([[0.1, 0.2, np.nan],
                          [0.5, -1.0, 0.0],
                          [np.nan, np.nan, np.nan],
                          [0.5, 0.1, 0.1]])
    # Row maxima 0.2, 0.5, undefined, 0.5: ties go to the smaller test id,
    # and a row with no defined value comes last.
    np.testing.assert_array_equal(
        figures.strongest_test_examples(influence, 4), [1, 3, 0, 2])
    np.testing.assert_array_equal(
        figures.strongest_test_examples(influence, 2), [1, 3])

  def test_figures_are_written(self):
    train, test = _split(30, 0), _split(12, 1)
    rng = np.random.default_rng(2)
    influence = rng.normal(size=(12, 30))
    influence[0, :] = np.nan
    tmp = self.create_tempdir().full_path
    dense = figures.influence_examples_figure(
        os.path.join(tmp, "dense.png"), train, test, influence=influence,
        n_show=3, n_top=2, n_random=2)
    order = np.argsort(-influence, axis=1)[:, :5]
    topk = figures.influence_examples_figure(
        os.path.join(tmp, "topk.png"), train, test,
        topk_values=np.take_along_axis(influence, order, axis=1),
        topk_indices=order, n_show=3, n_top=2, n_random=2)
    mem = rng.uniform(-0.2, 1.0, size=30)
    mem[3] = np.nan
    hist = figures.memorization_histogram(os.path.join(tmp, "hist.png"), mem,
                                          se=np.full(30, 0.05))
    gallery = figures.most_memorized_figure(os.path.join(tmp, "top.png"),
                                            train, mem, se=np.full(30, 0.05),
                                            n_show=5)
    for path in (dense, topk, hist, gallery):
      self.assertTrue(_is_png(path), path)
    self.assertEqual(sorted(os.listdir(tmp)),
                     ["dense.png", "hist.png", "top.png", "topk.png"])

  def test_needs_influence(self):
    with self.assertRaisesRegex(ValueError, "`influence`"):
      figures.influence_examples_figure("x.png", _split(3, 0), _split(3, 1))


if __name__ == "__main__":
  absltest.main()
