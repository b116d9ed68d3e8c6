"""Every strategy against the slow float64 reference (`reference.py`).

Tiny float64 models (an MLP; a CNN with a strided SAME convolution with bias,
batch norm in inference mode, a VALID convolution without bias), examples in
several batches of uneven size, ids shuffled. The implementation and the
reference share only the label sampler; everything else in the reference is
a loop over examples with one GradientTape each, explicit im2col, explicit
Kronecker products and `numpy.linalg.solve`. In float64 both agree to
~1e-13 of the scores' magnitude; the tolerance, 1e-9, is far below any
convention error (a missing bias column, locations counted in EKFAC's mean,
a transposed kernel: O(1)).
"""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.influence_functions import arguments
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import influence
from heldout.influence_functions import reference
from heldout.influence_functions import testing

FLOAT64 = 1e-9
N_TRAIN = 30
N_QUERIES = 4
BATCH = 16  # two batches of train examples: 16 + 14


def _setup(kind, dtype=np.float64):
  model = testing.tiny_model(kind, dtype=dtype)
  train = examples_lib.Examples(*testing.tiny_data(kind, N_TRAIN, seed=1,
                                                   dtype=dtype), name="train")
  queries = examples_lib.Examples(*testing.tiny_data(kind, N_QUERIES, seed=2,
                                                     dtype=dtype), name="q")
  return model, train, queries


def _functions(model, strategy, fisher="true", damping="heuristic",
               measurement="ce", query_rank=None, self_measurement=False,
               dtype="float64", **kwargs):
  return influence.InfluenceFunctions(
      model, arguments.FactorArgs(strategy=strategy, fisher=fisher, seed=7,
                                  dtype=dtype),
      arguments.ScoreArgs(damping=damping, measurement=measurement,
                          query_rank=query_rank,
                          self_measurement=self_measurement),
      batch_size=BATCH, progress=False, **kwargs)


def _reference_case(model, tracked, train, queries, strategy, fisher, damping,
                    measurement="ce"):
  curvature = reference.curvatures(model, tracked, train.images, train.labels,
                                   train.index, strategy, fisher, 7, damping)
  query_grads, _, _ = reference.per_example(model, tracked, queries.images,
                                            queries.labels, measurement)
  train_grads, _, _ = reference.per_example(model, tracked, train.images,
                                            train.labels)
  return curvature, query_grads, train_grads


CASES = [(kind + "_" + s, kind, s) for kind in ("mlp", "cnn")
         for s in arguments.STRATEGIES]


class StrategiesAgainstReferenceTest(parameterized.TestCase):

  @parameterized.named_parameters(*CASES)
  def test_pairwise_and_self_true_fisher_heuristic_damping(self, kind,
                                                           strategy):
    model, train, queries = _setup(kind)
    functions = _functions(model, strategy)
    functions.fit_factors(train)
    pairwise = functions.pairwise_scores(queries, train, per_module=True)
    self_scores = functions.self_scores(train)
    curvature, query_grads, train_grads = _reference_case(
        model, functions.tracked, train, queries, strategy, "true",
        "heuristic")
    expected = reference.pairwise_scores(curvature, query_grads, train_grads)
    tolerance.assert_close(pairwise.per_module, expected, FLOAT64)
    tolerance.assert_close(pairwise.values, expected.sum(axis=0), FLOAT64)
    expected_self = reference.self_scores(curvature, train_grads)
    tolerance.assert_close(self_scores.per_module, expected_self, FLOAT64)
    tolerance.assert_close(self_scores.values, expected_self.sum(axis=0),
                           FLOAT64)
    np.testing.assert_array_equal(pairwise.query_index, queries.index)
    np.testing.assert_array_equal(pairwise.train_index, train.index)
    # Self-influence of a PSD preconditioner is positive.
    self.assertTrue((self_scores.values > 0).all())

  @parameterized.named_parameters(
      ("mlp_kfac", "mlp", "kfac"), ("cnn_ekfac", "cnn", "ekfac"),
      ("cnn_diagonal", "cnn", "diagonal"))
  def test_empirical_fisher_margin_and_fixed_damping(self, kind, strategy):
    model, train, queries = _setup(kind)
    functions = _functions(model, strategy, fisher="empirical", damping=0.03,
                           measurement="margin")
    functions.fit_factors(train)
    pairwise = functions.pairwise_scores(queries, train)
    curvature, query_grads, train_grads = _reference_case(
        model, functions.tracked, train, queries, strategy, "empirical", 0.03,
        measurement="margin")
    expected = reference.pairwise_scores(curvature, query_grads, train_grads)
    tolerance.assert_close(pairwise.values, expected.sum(axis=0), FLOAT64)
    np.testing.assert_allclose(functions.preconditioner.dampings, 0.03)

  def test_self_influence_with_the_measurement_on_one_side(self):
    model, train, _ = _setup("cnn")
    functions = _functions(model, "ekfac", measurement="margin",
                           self_measurement=True)
    functions.fit_factors(train)
    scores = functions.self_scores(train)
    curvature, _, train_grads = _reference_case(
        model, functions.tracked, train, train, "ekfac", "true", "heuristic")
    margin_grads, _, _ = reference.per_example(
        model, functions.tracked, train.images, train.labels, "margin")
    expected = reference.self_scores(curvature, train_grads, margin_grads)
    tolerance.assert_close(scores.per_module, expected, FLOAT64)

  @parameterized.named_parameters(("mlp", "mlp"), ("cnn", "cnn"))
  def test_query_rank(self, kind):
    model, train, queries = _setup(kind)
    rank = 2
    functions = _functions(model, "ekfac", query_rank=rank)
    functions.fit_factors(train)
    pairwise = functions.pairwise_scores(queries, train, per_module=True)
    curvature, query_grads, train_grads = _reference_case(
        model, functions.tracked, train, queries, "ekfac", "true", "heuristic")
    expected = []
    for i, (k, t) in enumerate(zip(curvature, functions.tracked)):
      rows = []
      for g in query_grads:
        p = np.linalg.solve(k, g[i].reshape(-1)).reshape(g[i].shape)
        if min(p.shape) > rank:
          u, sigma, vt = np.linalg.svd(p)
          p = (u[:, :rank] * sigma[:rank]) @ vt[:rank]
        rows.append([np.sum(p * n[i]) for n in train_grads])
      expected.append(rows)
      del t
    tolerance.assert_close(pairwise.per_module, np.array(expected), FLOAT64)
    # Some block really was compressed, and that changed its scores.
    full = _functions(model, "ekfac")
    full.fit_factors(train)
    dense = full.pairwise_scores(queries, train)
    self.assertGreater(np.abs(dense.values - pairwise.values).max(),
                       1e-3 * np.abs(dense.values).max())

  @parameterized.named_parameters(("cnn", "cnn", None),
                                  ("mlp_rank", "mlp", 2),
                                  ("cnn_rank", "cnn", 2))
  def test_query_chunks_equal_the_whole(self, kind, rank):
    model, train, queries = _setup(kind)
    functions = _functions(model, "ekfac", query_rank=rank)
    functions.fit_factors(train)
    self.assertGreaterEqual(functions.query_batch_size, N_QUERIES)
    whole = functions.pairwise_scores(queries, train, per_module=True)
    whole_top = functions.pairwise_scores(queries, train, top_k=5)
    # 4 queries in chunks of 3 + 1, and one by one.
    for size in (3, 1):
      functions.query_batch_size = size
      chunked = functions.pairwise_scores(queries, train, per_module=True)
      tolerance.assert_close(chunked.per_module, whole.per_module, 1e-12)
      tolerance.assert_close(chunked.values, whole.values, 1e-12)
      top = functions.pairwise_scores(queries, train, top_k=5)
      tolerance.assert_close(top.topk_values, whole_top.topk_values, 1e-12)
      np.testing.assert_array_equal(top.topk_indices, whole_top.topk_indices)
    np.testing.assert_array_equal(chunked.query_index, queries.index)
    if rank is None:
      # And the whole against the reference.
      curvature, query_grads, train_grads = _reference_case(
          model, functions.tracked, train, queries, "ekfac", "true",
          "heuristic")
      tolerance.assert_close(chunked.per_module, reference.pairwise_scores(
          curvature, query_grads, train_grads), FLOAT64)

  def test_float32_agrees_with_float64(self):
    model64, train, queries = _setup("cnn")
    model32 = testing.tiny_model("cnn", dtype=np.float32)
    values = {v.name: v for v in model64.variables}
    for v in model32.variables:
      v.assign(tf.cast(values[v.name], v.dtype))
    train32 = examples_lib.Examples(train.images.astype(np.float32),
                                    train.labels, train.index, "train")
    queries32 = examples_lib.Examples(queries.images.astype(np.float32),
                                      queries.labels, queries.index, "q")
    results = []
    for model, tr, qu, dtype in ((model64, train, queries, "float64"),
                                 (model32, train32, queries32, "float32")):
      functions = _functions(model, "ekfac", dtype=dtype)
      functions.fit_factors(tr)
      pairwise = functions.pairwise_scores(qu, tr)
      self.assertEqual(pairwise.values.dtype, np.dtype(dtype))
      results.append(pairwise.values)
    # Float32 products of a damped inverse: its condition number (~1e3 here)
    # times float32's rounding.
    tolerance.assert_close(results[1], results[0], 1e-3)


if __name__ == "__main__":
  absltest.main()
