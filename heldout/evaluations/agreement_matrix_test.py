"""Tests of the Spearman matrix: lined up by id, NaN excluded."""

from absl.testing import absltest
import numpy as np
from scipy import stats

from heldout.evaluations import agreement_matrix


class SpearmanMatrixTest(absltest.TestCase):

  def test_matches_scipy_on_ids_both_define(self):
    rng = np.random.default_rng(0)
    a = rng.random(50)
    b = a + rng.random(50)
    b[3] = np.nan
    perm = rng.permutation(50)
    c = -a[perm]  # the same ids in another order
    names, rho, compared = agreement_matrix.spearman_matrix({
        "a": (np.arange(50), a), "b": (np.arange(50), b),
        "c": (perm, c)})
    self.assertEqual(names, ["a", "b", "c"])
    keep = ~np.isnan(b)
    self.assertAlmostEqual(rho[0, 1], stats.spearmanr(a[keep],
                                                      b[keep]).statistic)
    self.assertAlmostEqual(rho[0, 2], -1.0)
    np.testing.assert_allclose(rho, rho.T)
    np.testing.assert_array_equal(np.diag(rho), 1.0)
    self.assertEqual(compared[0, 1], 49)
    self.assertEqual(compared[0, 2], 50)
    self.assertEqual(compared[1, 1], 49)
    csv = agreement_matrix.matrix_csv(names, rho, compared)
    self.assertRegex(csv, r"\na,c,-(0\.9999+|1\.0),50\n")
    self.assertIn("\na,b,{!r},49\n".format(float(rho[0, 1])), csv)
    self.assertTrue(agreement_matrix.heatmap_png(names, rho).startswith(
        b"\x89PNG"))


if __name__ == "__main__":
  absltest.main()
