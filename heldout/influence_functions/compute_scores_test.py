"""Pairwise scores: dense and streamed top-k agree exactly; per-layer sums."""

from absl.testing import absltest
import numpy as np

from heldout import tolerance
from heldout.estimators import influence_estimator
from heldout.influence_functions import arguments
from heldout.influence_functions import compute_scores
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import influence
from heldout.influence_functions import testing


def _functions(model, batch_size):
  return influence.InfluenceFunctions(
      model, arguments.FactorArgs(strategy="ekfac", dtype="float32"),
      arguments.ScoreArgs(damping="heuristic"), batch_size=batch_size,
      progress=False)


class PairwiseScoresTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = testing.tiny_model("cnn", dtype=np.float32)
    images, labels, _ = testing.tiny_data("cnn", 37, seed=3, dtype=np.float32)
    # Duplicated examples under other ids: tied scores.
    images = np.concatenate([images, images[:5]])
    labels = np.concatenate([labels, labels[:5]])
    # Ids ascending, so "smaller id first" is "smaller column first".
    ids = np.arange(len(images)) * 3 + 1
    cls.train = examples_lib.Examples(images, labels, ids, "train")
    cls.queries = examples_lib.Examples(
        *testing.tiny_data("cnn", 6, seed=4, dtype=np.float32), name="q")

  def test_topk_equals_dense_top_k(self):
    functions = _functions(self.model, batch_size=7)
    functions.fit_factors(self.train)
    dense = functions.pairwise_scores(self.queries, self.train)
    for k in (1, 5, len(self.train)):
      streamed = functions.pairwise_scores(self.queries, self.train, top_k=k)
      self.assertIsNone(streamed.values)
      top_values, top_columns = influence_estimator.topk_from_dense(
          dense.values, k)
      np.testing.assert_array_equal(streamed.topk_values, top_values)
      np.testing.assert_array_equal(streamed.topk_indices,
                                    self.train.index[top_columns])
    # Ties really occurred: duplicates score alike.
    np.testing.assert_allclose(dense.values[:, :5], dense.values[:, -5:],
                               rtol=1e-5)

  def test_chunked_queries(self):
    functions = _functions(self.model, batch_size=7)
    functions.fit_factors(self.train)
    whole = functions.pairwise_scores(self.queries, self.train)
    functions.query_batch_size = 4  # 6 queries: 4 + 2
    chunked = functions.pairwise_scores(self.queries, self.train)
    tolerance.assert_close(chunked.values, whole.values,
                           tolerance.ELEMENTWISE * 4)
    # Streamed top-k of the same chunks: the dense top-k exactly, ties
    # included.
    streamed = functions.pairwise_scores(self.queries, self.train, top_k=5)
    top_values, top_columns = influence_estimator.topk_from_dense(
        chunked.values, 5)
    np.testing.assert_array_equal(streamed.topk_values, top_values)
    np.testing.assert_array_equal(streamed.topk_indices,
                                  self.train.index[top_columns])
    # Chunks that do not hold the queries of `query_index`.
    chunks = list(functions.preconditioned_query_chunks(self.queries))
    for bad, message in ((chunks[:1], "hold 4 queries, `query_index` 6"),
                         (chunks + chunks[1:], "more than the 6 queries")):
      with self.assertRaisesRegex(ValueError, message):
        compute_scores.compute_pairwise_scores(
            self.model, functions.tracked, self.train, bad,
            self.queries.index, progress=False)

  def test_per_module_scores_sum_to_the_total(self):
    functions = _functions(self.model, batch_size=16)
    functions.fit_factors(self.train)
    dense = functions.pairwise_scores(self.queries, self.train,
                                      per_module=True)
    self.assertEqual(dense.per_module.shape,
                     (3, len(self.queries), len(self.train)))
    self.assertEqual(list(dense.module_names), [t.name
                                                for t in functions.tracked])
    # Summed in another order than the total: float32 roundings.
    tolerance.assert_close(dense.per_module.sum(axis=0), dense.values,
                           tolerance.ELEMENTWISE * 4)
    self_scores = functions.self_scores(self.train)
    tolerance.assert_close(self_scores.per_module.sum(axis=0),
                           self_scores.values, tolerance.ELEMENTWISE * 4)
    # Every layer contributes.
    self.assertTrue((np.abs(dense.per_module).max(axis=(1, 2)) > 0).all())

  def test_bad_top_k(self):
    functions = _functions(self.model, batch_size=16)
    functions.fit_factors(self.train)
    with self.assertRaisesRegex(ValueError, r"`top_k` must be in \[1, 42\]"):
      functions.pairwise_scores(self.queries, self.train, top_k=43)
    with self.assertRaisesRegex(ValueError, "per-module scores are dense"):
      functions.pairwise_scores(self.queries, self.train, top_k=2,
                                per_module=True)

  def test_merge_ranks_ties_by_smaller_id(self):
    keys, ids = compute_scores._merge_topk(  # pylint: disable=protected-access
        np.array([[3.0, 1.0]]), np.array([[9, 4]]),
        np.array([[3.0, 1.0, 2.0]]), np.array([[2, 1, 7]]), 4)
    np.testing.assert_array_equal(keys, [[3.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(ids, [[2, 9, 7, 1]])


if __name__ == "__main__":
  absltest.main()
