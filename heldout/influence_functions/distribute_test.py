"""Every pass under a 2-replica MirroredStrategy equals the one-device pass.

The CPU is split into two logical devices before TensorFlow initializes
them (`setUpModule`; hence a test target of its own), so the batches really
are split across two replicas. Float64 tiny models; 29 training examples in
batches of 7: every batch splits unevenly (3 + 4) and the last one holds a
single example (0 + 1, one replica empty); 5 queries in one batch (2 + 3).
Sums (covariances, eigenvalues) and concatenated rows (query gradients,
pairwise and self scores) agree with the single-device results to float64
rounding.
"""

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.influence_functions import arguments
from heldout.influence_functions import compute_scores
from heldout.influence_functions import devices
from heldout.influence_functions import eigendecompose
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import fit_covariances
from heldout.influence_functions import fit_lambda
from heldout.influence_functions import influence
from heldout.influence_functions import precondition
from heldout.influence_functions import testing

# Summation orders differ (two partial sums): float64 roundings only.
FLOAT64 = 1e-12
BATCH = 7


def setUpModule():
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _assert_arrays_close(test, actual, expected):
  test.assertEqual(sorted(actual), sorted(expected))
  for key in expected:
    if np.asarray(expected[key]).dtype.kind in "iu":
      np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    else:
      tolerance.assert_close(actual[key], expected[key], FLOAT64,
                             err_msg=key)


class MakeStrategyTest(absltest.TestCase):

  def test_choices(self):
    self.assertLen(tf.config.list_logical_devices("CPU"), 2)
    if not tf.config.list_logical_devices("GPU"):
      self.assertIsNone(devices.make_strategy("auto"))
    self.assertIsNone(devices.make_strategy("1"))
    two = devices.make_strategy("2")
    self.assertIsInstance(two, tf.distribute.MirroredStrategy)
    self.assertEqual(devices.num_replicas(two), 2)
    self.assertIn("2 replicas (MirroredStrategy", devices.describe(two))
    self.assertIsInstance(devices.make_strategy("cpu"),
                          tf.distribute.OneDeviceStrategy)
    with self.assertRaisesRegex(ValueError, "has 0 GPU.*2 logical CPU"):
      devices.make_strategy(3)
    for bad in ("gpus", "0", "-1"):
      with self.assertRaisesRegex(ValueError, "`devices` must be"):
        devices.make_strategy(bad)


class TwoReplicasTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.strategy = devices.make_strategy(2)

  def _setup(self, kind):
    model = testing.tiny_model(kind)
    train = examples_lib.Examples(*testing.tiny_data(kind, 29, seed=1),
                                  name="train")
    queries = examples_lib.Examples(*testing.tiny_data(kind, 5, seed=2),
                                    name="q")
    return model, train, queries

  def test_every_stage(self):
    # The CNN: convolutions (patches, locations) and a linear layer.
    model, train, queries = self._setup("cnn")
    args = arguments.FactorArgs(strategy="ekfac", fisher="true", seed=3,
                                dtype="float64")
    results = []
    for strategy in (None, self.strategy):
      functions = influence.InfluenceFunctions(
          model, args, arguments.ScoreArgs(damping="heuristic",
                                           measurement="margin"),
          batch_size=BATCH, progress=False, distribute_strategy=strategy)
      tracked = functions.tracked
      covariances = fit_covariances.fit_covariances(
          model, tracked, train, args, BATCH, False, strategy)
      functions.fit_factors(train)
      ekfac = fit_lambda.fit_lambda(
          model, tracked, train, args,
          eigendecompose.eigendecompose(covariances), BATCH, False,
          strategy)
      diagonal = fit_lambda.fit_lambda(
          model, tracked, train,
          arguments.FactorArgs(strategy="diagonal", dtype="float64"),
          None, BATCH, False, strategy)
      preconditioned = precondition.precondition_queries(
          model, tracked, queries, functions.preconditioner, "margin",
          dtype="float64", batch_size=BATCH, progress=False,
          distribute_strategy=strategy)
      dense = functions.pairwise_scores(queries, train, per_module=True)
      top = functions.pairwise_scores(queries, train, top_k=4)
      self_scores = compute_scores.compute_self_scores(
          model, tracked, train, functions.preconditioner, "margin",
          self_measurement=True, dtype="float64", batch_size=BATCH,
          progress=False, distribute_strategy=strategy)
      results.append(dict(covariances=covariances, ekfac=ekfac,
                          diagonal=diagonal, preconditioned=preconditioned,
                          dense=dense, top=top, self_scores=self_scores))
    one, two = results
    for key in ("covariances", "ekfac", "diagonal", "preconditioned"):
      _assert_arrays_close(self, two[key], one[key])
    self.assertEqual(int(two["covariances"]["num_rows"][0]),
                     int(one["covariances"]["num_rows"][0]))
    tolerance.assert_close(two["dense"].per_module, one["dense"].per_module,
                           FLOAT64)
    tolerance.assert_close(two["dense"].values, one["dense"].values, FLOAT64)
    tolerance.assert_close(two["top"].topk_values, one["top"].topk_values,
                           FLOAT64)
    np.testing.assert_array_equal(two["top"].topk_indices,
                                  one["top"].topk_indices)
    tolerance.assert_close(two["self_scores"].per_module,
                           one["self_scores"].per_module, FLOAT64)
    tolerance.assert_close(two["self_scores"].values,
                           one["self_scores"].values, FLOAT64)

  def test_query_chunks_and_rank_under_the_strategy(self):
    model, train, queries = self._setup("cnn")
    values = []
    for strategy, query_batch_size in ((None, None), (self.strategy, 2)):
      functions = influence.InfluenceFunctions(
          model, arguments.FactorArgs(strategy="kfac", dtype="float64"),
          arguments.ScoreArgs(damping=0.01, query_rank=2),
          batch_size=BATCH, progress=False, distribute_strategy=strategy,
          query_batch_size=query_batch_size)
      functions.fit_factors(train)
      values.append(functions.pairwise_scores(queries, train).values)
    tolerance.assert_close(values[1], values[0], FLOAT64)


if __name__ == "__main__":
  absltest.main()
