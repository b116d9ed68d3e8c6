"""Tests for train.loop, under a 2-replica strategy on 2 logical CPUs."""

import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout import tolerance
from heldout.data import dataset as dataset_lib
from heldout.data import digits
from heldout.models import registry
from train import loop
from train import subsets
from train.configs import base


def setUpModule():
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _config(**kw):
  defaults = dict(name="t", dataset="digits", arch="mlp", epochs=1,
                  batch_size=32, learning_rate=0.1, arch_kwargs={
                      "hidden_sizes": (16,)})
  defaults.update(kw)
  return base.TrainConfig(**defaults)


def _model_fn(config):
  return lambda: registry.build_model(config.arch, 10, **config.arch_kwargs)


def _replicator():
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  assert len(devices) == 2, devices
  return loop.make_strategy(devices)


class Recorder(loop.Callback):

  def __init__(self):
    self.batches = []
    self.epochs = []

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    self.batches.append((epoch, step, index, per_example_loss, correct))

  def on_epoch_end(self, epoch, trainer):
    self.epochs.append(epoch)


class LoopTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  def test_make_strategy(self):
    strategy = _replicator()
    self.assertIsInstance(strategy, tf.distribute.MirroredStrategy)
    self.assertEqual(strategy.num_replicas_in_sync, 2)
    self.assertEqual(loop.make_strategy().num_replicas_in_sync, 1)

  def test_plain_mirrored_strategy_is_refused(self):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    with self.assertRaisesRegex(ValueError, "Replicator"):
      loop.Trainer(_model_fn(_config()), (8, 8, 1), _config(),
                   strategy=strategy)

  def test_one_step_matches_single_device_reference(self):
    config = _config(batch_size=32, momentum=0.9)
    trainer = loop.Trainer(_model_fn(config), (8, 8, 1), config,
                           strategy=_replicator())
    trainer.reset(seed=3)
    before = [v.numpy() for v in trainer.model.trainable_variables]
    ids = np.arange(100, 132)
    recorder = Recorder()
    trainer.fit(self.data.train, ids, seed=3, callbacks=[recorder])

    # Reference: the same weights on one device, the whole global batch.
    reference = _model_fn(config)()
    reference(tf.zeros([1, 8, 8, 1]), is_training=False)
    for v, value in zip(reference.trainable_variables, before):
      v.assign(value)
    (_, step, index, losses, correct), = recorder.batches
    self.assertEqual(step, 1)
    self.assertCountEqual(index, ids)
    pos = self.data.train.positions_of(index)
    images, labels = self.data.train.images[pos], self.data.train.labels[pos]
    with tf.GradientTape() as tape:
      logits = reference(images, is_training=True)
      ref_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=logits)
      loss = tf.reduce_mean(ref_losses)
    grads = tape.gradient(loss, reference.trainable_variables)
    # Two replicas' kernels against one device's on the whole batch.
    tolerance.assert_close(losses, ref_losses, tolerance.FORWARD)
    self.assertAllEqual(correct, np.argmax(logits, -1) == labels)
    for v, v0, g in zip(trainer.model.trainable_variables, before, grads):
      # First momentum step from zero state: p1 - p0 = -lr * g, compared
      # at the scale of the update itself (a wrong gradient shows).
      tolerance.assert_close(v.numpy() - v0, -0.1 * g.numpy(),
                             tolerance.FORWARD)
    for v in trainer.model.trainable_variables:  # replicas agree
      values = [x.numpy() for x in v.values]
      self.assertAllEqual(values[0], values[1])

  def test_two_replicas_train_like_one_device(self):
    config = _config(batch_size=64, epochs=3, momentum=0.9,
                     lr_schedule="linear", warmup_epochs=0.5,
                     weight_decay=1e-3)
    ids = subsets.draw_subset(len(self.data.train), 0.3, 0)
    weights = []
    for strategy in (_replicator(), tf.distribute.get_strategy()):
      trainer = loop.Trainer(_model_fn(config), (8, 8, 1), config,
                             strategy=strategy)
      trainer.reset(seed=11)
      history = trainer.fit(self.data.train, ids, seed=11)
      self.assertLen(history, 3)
      self.assertEqual(int(trainer.global_step.numpy()),
                       3 * int(np.ceil(len(ids) / 64)))
      weights.append([v.numpy() for v in trainer.model.trainable_variables])
    for a, b in zip(*weights):
      tolerance.assert_close(a, b, tolerance.TRAINED)

  def test_callbacks_see_every_example_once_per_epoch(self):
    config = _config(batch_size=50, epochs=2)
    trainer = loop.Trainer(_model_fn(config), (8, 8, 1), config,
                           strategy=_replicator())
    trainer.reset(seed=0)
    ids = np.arange(0, 1257, 7)
    recorder = Recorder()
    trainer.fit(self.data.train, ids, seed=0, callbacks=[recorder])
    self.assertEqual(recorder.epochs, [0, 1])
    steps = int(np.ceil(len(ids) / 50))
    self.assertEqual([b[1] for b in recorder.batches],
                     list(range(1, 2 * steps + 1)))
    for epoch in (0, 1):
      seen = np.concatenate([b[2] for b in recorder.batches if b[0] == epoch])
      self.assertCountEqual(seen, ids)
    # The epoch order is the documented one.
    first = recorder.batches[0][2]
    expected = ids[subsets.epoch_order(0, 0, len(ids))][:50]
    self.assertAllEqual(first, expected)

  def test_reset_depends_on_seed_only(self):
    config = _config()
    trainer = loop.Trainer(_model_fn(config), (8, 8, 1), config)
    trainer.reset(5)
    a = [v.numpy() for v in trainer.model.variables]
    trainer.fit(self.data.train, np.arange(64), seed=5)
    trainer.reset(6)
    trainer.reset(5)
    b = [v.numpy() for v in trainer.model.variables]
    for x, y in zip(a, b):
      self.assertAllEqual(x, y)
    self.assertEqual(int(trainer.epoch.numpy()), 0)

  def test_new_phase_is_a_fresh_optimizer_on_the_trained_weights(self):
    config = _config(optimizer="momentum", momentum=0.9, epochs=2,
                     lr_schedule="linear", warmup_epochs=1.0)
    trainer = loop.Trainer(_model_fn(config), (8, 8, 1), config)
    trainer.reset(3)
    trainer.fit(self.data.train, np.arange(200), seed=3)
    trained = [v.numpy() for v in trainer.model.variables]
    trainer.start_new_phase()
    self.assertEqual(int(trainer.global_step.numpy()), 0)
    self.assertEqual(int(trainer.epoch.numpy()), 0)
    for x, y in zip(trained, trainer.model.variables):
      self.assertAllEqual(x, y.numpy())
    trainer.fit(self.data.train, np.arange(200, 400), seed=4)
    # The reference: a new trainer given the trained weights, run from step
    # 0 (warmup from lr 0 again) with zero momentum.
    fresh = loop.Trainer(_model_fn(config), (8, 8, 1), config)
    fresh.reset(0)
    for v, x in zip(fresh.model.variables, trained):
      v.assign(x)
    fresh.fit(self.data.train, np.arange(200, 400), seed=4)
    for ours, ref in zip(trainer.model.variables, fresh.model.variables):
      tolerance.assert_close(ours.numpy(), ref.numpy(),
                             tolerance.ELEMENTWISE)
    self.assertFalse(all(np.array_equal(x, y.numpy()) for x, y in
                         zip(trained, trainer.model.variables)))

  def test_evaluate_matches_slow_loop(self):
    config = _config()
    trainer = loop.Trainer(_model_fn(config), (8, 8, 1), config,
                           strategy=_replicator())
    trainer.reset(1)
    trainer.fit(self.data.train, np.arange(300), seed=1)
    ids = np.array([5, 3, 400, 0, 539])
    got_ids, correct = trainer.evaluate(self.data.test, ids, batch_size=2)
    self.assertAllEqual(got_ids, ids)
    for i, c in zip(ids, correct):
      logits = trainer.model(self.data.test.images[i:i + 1], is_training=False)
      self.assertEqual(c, int(np.argmax(logits)) == self.data.test.labels[i])

  def test_augmentation_pipeline_with_batch_norm_model(self):
    # A model with batch norm and CIFAR-style augmentation, two replicas.
    rng = np.random.RandomState(0)
    split = dataset_lib.split_from_arrays(
        rng.randint(0, 256, (24, 12, 12, 3)), rng.randint(0, 3, 24),
        scale=255.0)

    class Tiny(snt.Module):

      def __init__(self):
        super().__init__()
        self.conv = snt.Conv2D(4, 3)
        self.bn = snt.BatchNorm(True, True)
        self.out = snt.Linear(3)

      def __call__(self, x, is_training):
        h = tf.nn.relu(self.bn(self.conv(x), is_training=is_training))
        return self.out(tf.reduce_mean(h, axis=[1, 2]))

    config = _config(batch_size=8, epochs=2, augment=True, weight_decay=1e-4)
    trainer = loop.Trainer(Tiny, (12, 12, 3), config, strategy=_replicator())
    trainer.reset(2)
    history = trainer.fit(split, np.arange(24), seed=2)
    self.assertLen(history, 2)
    self.assertTrue(np.isfinite([h[1] for h in history]).all())
    _, correct = trainer.evaluate(split)
    self.assertLen(correct, 24)


if __name__ == "__main__":
  tf.test.main()
