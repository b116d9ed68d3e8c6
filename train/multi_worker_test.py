"""Tests for train.multi_worker in one process.

Two processes are tested end to end by //tests:multi_worker_e2e_test; here a
`MultiWorkerReplicator` without `TF_CONFIG` (one worker, two logical CPUs)
checks the variables, the per-worker input pipeline and the helpers'
one-process paths.
"""

import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.data import digits
from heldout.models import registry
from train import loop
from train import multi_worker
from train import subsets
from train.configs import base


def setUpModule():
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


_STRATEGY = []


def _strategy():
  if not _STRATEGY:
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    # TF's own tests' way to give a one-worker strategy several CPU devices
    # (without it, it takes one CPU).
    replicator = multi_worker.MultiWorkerReplicator
    _STRATEGY.append(
        replicator._from_local_devices(devices))  # pylint: disable=protected-access
  return _STRATEGY[0]


def _config(**kw):
  defaults = dict(name="t", dataset="digits", arch="mlp", epochs=2,
                  batch_size=64, learning_rate=0.1, momentum=0.9,
                  arch_kwargs={"hidden_sizes": (16,)})
  defaults.update(kw)
  return base.TrainConfig(**defaults)


class TfConfigTest(tf.test.TestCase):

  def test_unset_or_empty_is_one_process(self):
    self.assertEqual(multi_worker.parse_tf_config(""), {})
    self.assertEqual(multi_worker.num_training_tasks({}), 0)
    self.assertFalse(multi_worker.is_multi_worker_environment({}))

  def test_counts_chief_and_workers(self):
    config = multi_worker.parse_tf_config(
        '{"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"], '
        '"ps": ["d:1"]}, "task": {"type": "worker", "index": 1}}')
    self.assertEqual(multi_worker.num_training_tasks(config), 3)
    self.assertTrue(multi_worker.is_multi_worker_environment(config))
    one = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker",
                                                    "index": 0}}
    self.assertFalse(multi_worker.is_multi_worker_environment(one))

  def test_malformed_is_refused(self):
    for value in ("{", "[]", '{"cluster": {}}'):
      with self.assertRaisesRegex(ValueError, "TF_CONFIG"):
        multi_worker.parse_tf_config(value)


class MultiWorkerReplicatorTest(tf.test.TestCase):

  def test_variables_are_replica_local(self):
    strategy = _strategy()
    with strategy.scope():
      v = tf.Variable(1.0)
    self.assertEqual(v.synchronization, tf.VariableSynchronization.ON_READ)
    self.assertEqual(v.aggregation,
                     tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.assertTrue(v.trainable)

  def test_one_worker_is_not_multi_worker(self):
    strategy = _strategy()
    self.assertFalse(multi_worker.is_multi_worker(strategy))
    self.assertTrue(multi_worker.is_chief(strategy))
    self.assertFalse(multi_worker.is_multi_worker(
        tf.distribute.get_strategy()))
    values = [np.arange(3), np.ones([2, 2], np.float32)]
    for got, want in zip(multi_worker.broadcast_from_chief(strategy, values),
                         values):
      self.assertAllEqual(got, want)
    (got,), = [multi_worker.allgather_workers(strategy, [values[0]])]
    self.assertAllEqual(got[0], values[0])

  def test_plain_multi_worker_strategy_is_refused(self):
    plain = tf.distribute.MultiWorkerMirroredStrategy.__new__(
        tf.distribute.MultiWorkerMirroredStrategy)
    with self.assertRaisesRegex(ValueError, "MultiWorkerReplicator"):
      loop._check_strategy(plain)  # pylint: disable=protected-access

  def test_trains_like_one_device(self):
    # Two local replicas of one worker: the pipeline's per-worker slicing
    # with one input pipeline, and the same run as the default strategy.
    data = digits.load_digits()
    config = _config()
    ids = subsets.draw_subset(len(data.train), 0.3, 0)
    weights = []
    for strategy in (_strategy(), tf.distribute.get_strategy()):
      trainer = loop.Trainer(
          lambda: registry.build_model("mlp", 10, hidden_sizes=(16,)),
          (8, 8, 1), config, strategy=strategy)
      self.assertEqual(trainer.strategy.num_replicas_in_sync,
                       2 if strategy is _strategy() else 1)
      trainer.reset(seed=4)
      trainer.sync_from_chief()  # nothing to do in one process
      trainer.fit(data.train, ids, seed=4)
      weights.append([v.numpy() for v in trainer.model.trainable_variables])
    # Replicas all-reduce half-batch gradients: another summation order.
    for a, b in zip(*weights):
      tolerance.assert_close(a, b, tolerance.TRAINED)


if __name__ == "__main__":
  tf.test.main()
