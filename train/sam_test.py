"""Tests for train.sam: SAM steps against a numpy hand computation.

Run on one device and under a 2-replica `snt.distribute.Replicator` on two
logical CPUs (per-replica and synchronised perturbations).
"""

import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout import tolerance
from heldout.data import digits
from heldout.models import registry
from train import loop
from train import sam
from train.configs import base

LR, MOMENTUM, WEIGHT_DECAY, RHO = 0.1, 0.9, 1e-2, 0.05


def setUpModule():
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _config(**kw):
  defaults = dict(name="t", dataset="digits", arch="mlp", epochs=2,
                  batch_size=32, learning_rate=LR, momentum=MOMENTUM,
                  weight_decay=WEIGHT_DECAY, arch_kwargs={"hidden_sizes": (16,)})
  defaults.update(kw)
  return base.TrainConfig(**defaults)


def _mlp():
  return registry.build_model("mlp", 10, hidden_sizes=(16,))


def _replicator():
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  assert len(devices) == 2, devices
  return loop.make_strategy(devices)


# -- the numpy reference ----------------------------------------------------


def _grads(params, x, y, divide_by):
  """Gradient of sum_i CE(mlp(x_i), y_i) / divide_by, float64."""
  w0, b0, w1, b1 = params
  pre = x @ w0 + b0
  h = np.maximum(pre, 0.0)
  z = h @ w1 + b1
  p = np.exp(z - z.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  dz = (p - np.eye(10)[y]) / divide_by
  dh = (dz @ w1.T) * (pre > 0)
  return [x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]


def _norm(grads):
  return np.sqrt(sum(float((g ** 2).sum()) for g in grads))


def _reference_steps(params, batches, shards, sam_step, sync=False):
  """Weights after SGD-momentum steps (SAM steps if `sam_step`), float64.

  Args:
    params: [w0, b0, w1, b1] initial weights.
    batches: [(x [b, 64], y [b])] the global batch of each step.
    shards: replicas the global batch is split into (in order).
    sam_step: SAM (e per shard, or of the global batch if `sync`) or SGD.
    sync: the perturbation from the global batch's gradient.
  """
  params = [p.astype(np.float64) for p in params]
  momenta = [np.zeros_like(p) for p in params]
  for x, y in batches:
    n = len(y)
    parts = np.array_split(np.arange(n), shards)
    total = [np.zeros_like(p) for p in params]
    if sam_step and sync:
      g = _grads(params, x, y, n)
      e_all = [RHO * gi / (_norm(g) + 1e-12) for gi in g]
    for part in parts:
      at = params
      if sam_step:
        if sync:
          e = e_all
        else:
          g = _grads(params, x[part], y[part], n)
          e = [RHO * gi / (_norm(g) + 1e-12) for gi in g]
        at = [p + ei for p, ei in zip(params, e)]
      for t, gi in zip(total, _grads(at, x[part], y[part], n)):
        t += gi
    decayed = [True, False, True, False]
    for i, (p, a, g) in enumerate(zip(params, momenta, total)):
      if decayed[i]:
        g = g + WEIGHT_DECAY * p
      a[:] = MOMENTUM * a + g
      p -= LR * a
  return params


def _weights(model):
  """[w0, b0, w1, b1] of the MLP as numpy arrays (Sonnet sorts b before w)."""
  by_name = {v.name.split(":")[0].split("/", 1)[1]: v.numpy()
             for v in model.trainable_variables}
  return [by_name["linear_0/w"], by_name["linear_0/b"],
          by_name["linear_1/w"], by_name["linear_1/b"]]


class Recorder(loop.Callback):

  def __init__(self):
    self.index = []

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    self.index.append(np.array(index))


class SAMTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  def _train(self, trainer, ids, seed=5):
    trainer.reset(seed)
    before = _weights(trainer.model)
    recorder = Recorder()
    trainer.fit(self.data.train, ids, seed, callbacks=[recorder])
    after = _weights(trainer.model)
    split = self.data.train
    batches = []
    for index in recorder.index:
      pos = split.positions_of(index)
      batches.append((split.images[pos].reshape(len(pos), -1).astype(
          np.float64), split.labels[pos]))
    return before, after, batches

  def _check(self, before, after, reference, other):
    """`after` moved from `before` as `reference` did, not as `other` did."""
    expected = [r - a for a, r in zip(before, reference)]
    for name, a, b, e in zip(("w0", "b0", "w1", "b1"), before, after,
                             expected):
      # Float32 steps against float64 ones, at the scale of the displacement.
      tolerance.assert_close(b - a, e, tolerance.FORWARD, err_msg=name)
    # The other rule's displacement lies far outside that tolerance.
    gap = max(np.abs((o - a) - e).max()
              for a, o, e in zip(before, other, expected))
    self.assertGreater(gap, 100 * tolerance.scaled_atol(
        np.concatenate([e.ravel() for e in expected]), tolerance.FORWARD))

  def test_one_device_matches_numpy(self):
    config = _config(epochs=3)
    trainer = sam.SAMTrainer(_mlp, (8, 8, 1), config,
                             strategy=tf.distribute.get_strategy())
    ids = np.arange(200, 264)  # 2 steps per epoch, 6 steps
    before, after, batches = self._train(trainer, ids)
    self.assertLen(batches, 6)
    reference = _reference_steps(before, batches, 1, sam_step=True)
    sgd = _reference_steps(before, batches, 1, sam_step=False)
    self._check(before, after, reference, sgd)

  def test_replicas_perturb_their_own_shard(self):
    config = _config()
    trainer = sam.SAMTrainer(_mlp, (8, 8, 1), config, strategy=_replicator())
    ids = np.arange(300, 364)
    before, after, batches = self._train(trainer, ids)
    reference = _reference_steps(before, batches, 2, sam_step=True)
    synced = _reference_steps(before, batches, 2, sam_step=True, sync=True)
    self._check(before, after, reference, synced)
    for v in trainer.model.trainable_variables:  # replicas agree
      values = [x.numpy() for x in v.values]
      self.assertAllEqual(values[0], values[1])

  def test_synchronised_perturbation_is_the_global_batch_step(self):
    config = _config()
    trainer = sam.SAMTrainer(_mlp, (8, 8, 1), config, strategy=_replicator(),
                             sync_perturbation=True)
    ids = np.arange(400, 464)
    before, after, batches = self._train(trainer, ids)
    reference = _reference_steps(before, batches, 2, sam_step=True, sync=True)
    per_shard = _reference_steps(before, batches, 2, sam_step=True)
    self._check(before, after, reference, per_shard)

  def test_batch_norm_statistics_come_from_the_first_pass(self):

    class Net(snt.Module):

      def __init__(self):
        super().__init__(name="net")
        self.hidden = snt.Linear(8)
        self.bn = snt.BatchNorm(create_scale=True, create_offset=True,
                                decay_rate=0.5)
        self.out = snt.Linear(10)

      def __call__(self, images, is_training):
        net = self.hidden(snt.flatten(images))
        return self.out(tf.nn.relu(self.bn(net, is_training=is_training)))

    config = _config(epochs=1, weight_decay=0.0)
    trainer = sam.SAMTrainer(Net, (8, 8, 1), config,
                             strategy=tf.distribute.get_strategy())
    trainer.reset(7)
    ids = np.arange(32)
    reference = Net()
    reference(tf.zeros([1, 8, 8, 1]), is_training=False)
    for v, w in zip(reference.variables, trainer.model.variables):
      v.assign(w)
    recorder = Recorder()
    trainer.fit(self.data.train, ids, 7, callbacks=[recorder])
    pos = self.data.train.positions_of(recorder.index[0])
    reference(tf.constant(self.data.train.images[pos]), is_training=True)
    got = trainer.model.bn.moving_mean
    want = reference.bn.moving_mean
    self.assertEqual(int(got._counter.numpy()), 1)  # pylint: disable=protected-access
    tolerance.assert_close(got.value.numpy(), want.value.numpy(),
                           tolerance.FORWARD)
    tolerance.assert_close(trainer.model.bn.moving_variance.value.numpy(),
                           reference.bn.moving_variance.value.numpy(),
                           tolerance.FORWARD)
    # The weights did move (the step ran), so a second update would differ.
    self.assertGreater(np.abs(trainer.model.hidden.w.numpy() -
                              reference.hidden.w.numpy()).max(), 1e-4)

  def test_arguments(self):
    with self.assertRaisesRegex(ValueError, "`rho` must be positive"):
      sam.SAMTrainer(_mlp, (8, 8, 1), _config(), rho=0.0)
    with self.assertRaisesRegex(ValueError, "`optimizer`"):
      sam.make_trainer("adam", _mlp, (8, 8, 1), _config())
    self.assertIsInstance(sam.make_trainer("sgd", _mlp, (8, 8, 1), _config()),
                          loop.Trainer)
    self.assertNotIsInstance(
        sam.make_trainer("sgd", _mlp, (8, 8, 1), _config()), sam.SAMTrainer)


if __name__ == "__main__":
  tf.test.main()
