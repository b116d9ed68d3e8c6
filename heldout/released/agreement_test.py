"""Tests of `agreement_report` against hand-computed cases."""

import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.released import agreement


class AgreementReportTest(parameterized.TestCase):

  def test_perfect_agreement(self):
    values = np.array([0.3, 0.1, 0.9, 0.5, 0.7])
    report = agreement.agreement_report(values, values, top_ks=(1, 2, 10))
    self.assertAlmostEqual(report.spearman, 1.0)
    self.assertAlmostEqual(report.pearson, 1.0)
    self.assertEqual(report.mean_abs_diff, 0.0)
    self.assertEqual(report.n_compared, 5)
    self.assertEqual([(t.k, t.top, t.bottom) for t in report.topk],
                     [(1, 1.0, 1.0), (2, 1.0, 1.0), (5, 1.0, 1.0)])  # 10 clipped to 5.
    self.assertTrue(all(d.rank_gap == 0 for d in report.disagreements))

  def test_reversed_order(self):
    ours = np.arange(10, dtype=float)
    published = ours[::-1].copy()
    report = agreement.agreement_report(ours, published, top_ks=(3, 5, 10),
                                        num_disagreements=2)
    self.assertAlmostEqual(report.spearman, -1.0)
    self.assertAlmostEqual(report.pearson, -1.0)
    # Top 3 of ours: ids {9, 8, 7}; of published: {0, 1, 2}: no overlap.
    self.assertEqual([(t.k, t.top, t.bottom) for t in report.topk],
                     [(3, 0.0, 0.0), (5, 0.0, 0.0), (10, 1.0, 1.0)])
    # Ids 0 and 9 have percentile ranks 0 vs 1: the largest gaps; equal |diff| 9,
    # so the lower id comes first.
    self.assertEqual([(d.index, d.ours_rank, d.published_rank, d.rank_gap)
                      for d in report.disagreements],
                     [(0, 0.0, 1.0, -1.0), (9, 1.0, 0.0, 1.0)])
    self.assertAlmostEqual(report.mean_abs_diff, np.mean(np.abs(ours - published)))

  def test_hand_computed_pearson_and_spearman(self):
    # Deviations from the mean 2.5: ours (-1.5, -.5, .5, 1.5), published
    # (-1.5, .5, -.5, 1.5): covariance 4, variances 5 -> r = 0.8; the values are
    # their own ranks, so Spearman is 0.8 as well.
    report = agreement.agreement_report([1, 2, 3, 4], [1, 3, 2, 4])
    self.assertAlmostEqual(report.pearson, 0.8)
    self.assertAlmostEqual(report.spearman, 0.8)

  def test_ties(self):
    # Average ranks: ours (1.5, 1.5, 3, 4), published (1, 2.5, 2.5, 4); deviations
    # (-1, -1, .5, 1.5) and (-1.5, 0, 0, 1.5): covariance 3.75, variances 4.5 each.
    report = agreement.agreement_report([1, 1, 2, 3], [1, 2, 2, 3], top_ks=(1, 2, 3))
    self.assertAlmostEqual(report.spearman, 3.75 / 4.5)
    # Ties break by lower id: top-2 of ours {3, 2}; of published {3, 1} (ids 1 and
    # 2 tie at 2). Bottom-2 of ours {0, 1} (tie at 1); of published {0, 1}.
    # Top-3: ours {3, 2, 0} (0 before 1), published {3, 1, 2}; bottom-3 of both
    # {0, 1, 2}.
    self.assertEqual([(t.k, t.top, t.bottom) for t in report.topk],
                     [(1, 1.0, 1.0), (2, 0.5, 1.0), (3, 2 / 3, 1.0)])
    # Percentile ranks (rank - 1) / 3: ours (1/6, 1/6, 2/3, 1), published
    # (0, 1/2, 1/2, 1): gaps 1/6, 1/3, 1/6, 0.
    self.assertEqual(report.disagreements[0].index, 1)
    self.assertAlmostEqual(report.disagreements[0].rank_gap, 1 / 6 - 1 / 2)
    # Ids 0 and 2 tie on gap 1/6 and on |diff| (0 for both): the lower id first.
    self.assertEqual([d.index for d in report.disagreements], [1, 0, 2, 3])

  def test_nans_are_excluded_and_counted(self):
    ours = np.array([0.1, 0.2, np.nan, 0.4, 0.5, 0.6])
    published = np.array([0.1, 0.2, np.nan, 0.4, 0.5, np.nan])
    report = agreement.agreement_report(ours, published)
    self.assertEqual(report.n_nan_ours, 1)
    self.assertEqual(report.n_nan_published, 2)
    self.assertEqual(report.n_compared, 4)
    np.testing.assert_array_equal(report.index, [0, 1, 3, 4])
    self.assertAlmostEqual(report.spearman, 1.0)
    self.assertEqual([t.k for t in report.topk], [4])

  def test_alignment_by_example_id(self):
    ours = np.array([10.0, 20.0, 30.0, 40.0])
    ours_index = np.array([3, 1, 0, 2])  # ours: id0=30, id1=20, id2=40, id3=10
    published = np.array([40.0, 10.0, 20.0, 99.0])
    published_index = np.array([2, 3, 1, 7])  # no id 0; id 7 only published
    report = agreement.agreement_report(ours, published, ours_index=ours_index,
                                        published_index=published_index)
    self.assertEqual(report.n_common, 3)
    self.assertEqual(report.n_only_ours, 1)
    self.assertEqual(report.n_only_published, 1)
    np.testing.assert_array_equal(report.index, [1, 2, 3])
    np.testing.assert_array_equal(report.ours, [20.0, 40.0, 10.0])
    np.testing.assert_array_equal(report.published, [20.0, 40.0, 10.0])
    self.assertAlmostEqual(report.pearson, 1.0)

  def test_degenerate_cases(self):
    empty = agreement.agreement_report([np.nan], [1.0])
    self.assertEqual(empty.n_compared, 0)
    self.assertTrue(np.isnan(empty.spearman))
    self.assertTrue(np.isnan(empty.mean_abs_diff))
    self.assertEqual(empty.topk, [])
    self.assertEqual(empty.disagreements, [])
    constant = agreement.agreement_report([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    self.assertTrue(np.isnan(constant.spearman))
    self.assertTrue(np.isnan(constant.pearson))
    self.assertIn("compared 3 examples", constant.format_text())

  def test_matches_a_slow_reference_on_random_data(self):
    rng = np.random.default_rng(0)
    ours = rng.random(300)
    published = ours + 0.3 * rng.standard_normal(300)
    report = agreement.agreement_report(ours, published, top_ks=(10, 50))
    x, y = ours - ours.mean(), published - published.mean()
    self.assertAlmostEqual(report.pearson, (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # No ties in random data.
    rx, ry = rank(ours) - 149.5, rank(published) - 149.5
    self.assertAlmostEqual(report.spearman, (rx * ry).sum() / (rx * rx).sum())
    for t in report.topk:
      top = lambda v: set(np.argsort(-v)[:t.k].tolist())
      self.assertEqual(t.top, len(top(ours) & top(published)) / t.k)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "`ours_index` must be 1-D of length 2"):
      agreement.agreement_report([1, 2], [1, 2], ours_index=[0])
    with self.assertRaisesRegex(ValueError, "repeats example ids"):
      agreement.agreement_report([1, 2], [1, 2], published_index=[4, 4])
    with self.assertRaisesRegex(ValueError, "integer example ids"):
      agreement.agreement_report([1, 2], [1, 2], ours_index=[0.0, 1.0])
    with self.assertRaisesRegex(ValueError, "`top_ks` must be positive"):
      agreement.agreement_report([1, 2], [1, 2], top_ks=(0,))


class WriteReportTest(absltest.TestCase):

  def test_writes_csv_and_png(self):
    report = agreement.agreement_report([1.0, 2.0, 3.0, 5.0], [1.0, 3.0, 2.0, 4.0],
                                        top_ks=(2,), num_disagreements=2)
    prefix = os.path.join(self.create_tempdir().full_path, "out", "cmp")
    paths = agreement.write_report(report, prefix, names=("ours", "theirs"))
    with open(paths["summary"]) as f:
      rows = dict(line.split(",", 1) for line in f.read().splitlines())
    self.assertEqual(rows["metric"], "value")
    self.assertEqual(rows["n_compared"], "4")
    self.assertAlmostEqual(float(rows["spearman"]), 0.8)
    self.assertEqual(float(rows["top_2_overlap"]), 0.5)
    with open(paths["disagreements"]) as f:
      lines = f.read().splitlines()
    self.assertEqual(lines[0], "index,ours,theirs,rank_ours,rank_theirs,rank_gap")
    self.assertLen(lines, 3)
    self.assertEqual({l.split(",")[0] for l in lines[1:]}, {"1", "2"})
    with open(paths["scatter"], "rb") as f:
      self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
    self.assertEqual(sorted(os.listdir(os.path.dirname(prefix))),
                     ["cmp_disagreements.csv", "cmp_scatter.png", "cmp_summary.csv"])


if __name__ == "__main__":
  absltest.main()
