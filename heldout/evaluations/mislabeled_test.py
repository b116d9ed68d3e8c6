"""Tests of mislabeled detection against slow references."""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.evaluations import mislabeled


def _slow_found(keys, corrupted, m):
  """Mean found over every order of the examples tied at the cut."""
  keys = np.asarray(keys, float)
  order = sorted(range(len(keys)), key=lambda i: -keys[i])
  cut = keys[order[m - 1]]
  above = [i for i in order if keys[i] > cut]
  tied = [i for i in order if keys[i] == cut]
  totals = []
  for perm in itertools.permutations(tied):
    inspected = above + list(perm[:m - len(above)])
    totals.append(sum(corrupted[i] for i in inspected))
  return np.mean(totals) / sum(corrupted)


def _slow_auroc(keys, corrupted):
  pos = [k for k, c in zip(keys, corrupted) if c]
  neg = [k for k, c in zip(keys, corrupted) if not c]
  total = 0.0
  for p in pos:
    for q in neg:
      total += 1.0 if p > q else 0.5 if p == q else 0.0
  return total / (len(pos) * len(neg))


class DetectionTest(parameterized.TestCase):

  @parameterized.parameters(0, 1, 2, 3)
  def test_against_slow_references(self, seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 4, 9).astype(float)  # many ties
    corrupted = rng.random(9) < 0.4
    corrupted[0] = True
    corrupted[1] = False
    for m in range(1, 10):
      self.assertAlmostEqual(
          mislabeled.fraction_found(keys, corrupted, m / 9),
          _slow_found(keys, corrupted, m), places=12)
    self.assertAlmostEqual(mislabeled.auroc(keys, corrupted),
                           _slow_auroc(keys, corrupted), places=12)

  def test_hand_computed(self):
    # Ids 0..9, the first 2 corrupted; a score that puts them first.
    index = np.arange(10)
    values = np.array([9, 8, 1, 2, 3, 4, 5, 6, 7, 0], float)
    d = mislabeled.detect(index, values, [0, 1], mislabeled.HIGH,
                          fractions=(0.1, 0.2, 0.3))
    self.assertEqual(d.found, {0.1: 0.5, 0.2: 1.0, 0.3: 1.0})
    self.assertEqual(d.auroc, 1.0)
    self.assertEqual((d.num_examples, d.num_corrupted, d.num_undefined),
                     (10, 2, 0))
    # The same score read from its low end puts them last.
    low = mislabeled.detect(index, values, [0, 1], mislabeled.LOW,
                            fractions=(0.2,))
    self.assertEqual(low.found, {0.2: 0.0})
    self.assertEqual(low.auroc, 0.0)
    # A constant score finds exactly the fraction inspected.
    flat = mislabeled.detect(index, np.ones(10), [0, 1], mislabeled.HIGH,
                             fractions=(0.1, 0.3))
    self.assertAlmostEqual(flat.found[0.1], 0.1)
    self.assertAlmostEqual(flat.found[0.3], 0.3)
    self.assertEqual(flat.auroc, 0.5)

  def test_nan_least_suspicious_and_inf_most(self):
    index = np.arange(4)
    values = np.array([np.nan, np.inf, 1.0, 0.0])
    d = mislabeled.detect(index, values, [0], mislabeled.HIGH,
                          fractions=(0.25, 0.75, 1.0))
    self.assertEqual(d.found, {0.25: 0.0, 0.75: 0.0, 1.0: 1.0})
    self.assertEqual(d.num_undefined, 1)
    d = mislabeled.detect(index, values, [1], mislabeled.HIGH,
                          fractions=(0.25,))
    self.assertEqual(d.found, {0.25: 1.0})

  def test_summaries_and_table(self):
    s = mislabeled.summarize([0.2, 0.4])
    self.assertAlmostEqual(s.mean, 0.3)
    self.assertAlmostEqual(s.se, np.std([0.2, 0.4], ddof=1) / np.sqrt(2))
    self.assertTrue(np.isnan(mislabeled.summarize([0.5]).se))
    detections = [mislabeled.detect(np.arange(4), np.arange(4.0), [3],
                                    mislabeled.HIGH, fractions=(0.25,))] * 2
    rows = {"x": mislabeled.summarize_detections(detections)}
    self.assertEqual(list(rows["x"]), ["top 25%", "AUROC"])
    text = mislabeled.table_text(rows, {"y": "not built"})
    self.assertIn("1.000±0.000", text)
    self.assertRegex(text, r"\ny +not available: not built")
    with self.assertRaisesRegex(ValueError, "`end`"):
      mislabeled.suspicion_keys([1.0], "middle")
    with self.assertRaisesRegex(ValueError, "`fraction`"):
      mislabeled.fraction_found([1.0], [True], 0.0)


if __name__ == "__main__":
  absltest.main()
