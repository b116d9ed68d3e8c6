"""Tests for train.optim: schedules and the update rule, by hand."""

import math

import numpy as np
import tensorflow as tf

from train import optim
from train.configs import base


def _config(**kw):
  defaults = dict(name="t", dataset="digits", arch="mlp", epochs=10,
                  batch_size=8, learning_rate=0.4)
  defaults.update(kw)
  return base.TrainConfig(**defaults)


class ScheduleTest(tf.test.TestCase):

  def test_constant(self):
    for step in (0, 5, 99):
      self.assertAllClose(optim.learning_rate(step, 10, _config()), 0.4)

  def test_linear_warmup_then_decay(self):
    config = _config(lr_schedule="linear", warmup_epochs=2)
    # 10 steps per epoch: warmup 20 steps, then linear to 0 over 80.
    for step, expected in ((0, 0.4 / 20), (9, 0.4 * 10 / 20), (19, 0.4),
                           (20, 0.4), (60, 0.2), (99, 0.4 * 1 / 80),
                           (100, 0.0), (150, 0.0)):
      self.assertAllClose(optim.learning_rate(step, 10, config), expected,
                          msg=str(step))

  def test_cosine(self):
    config = _config(lr_schedule="cosine")
    for step in (0, 25, 50, 100):
      expected = 0.2 * (1 + math.cos(math.pi * step / 100))
      self.assertAllClose(optim.learning_rate(step, 10, config), expected)

  def test_step_by_hand(self):
    # 10 steps per epoch; x0.2 from epochs 3 and 6 on (Data Diet's rule).
    config = _config(lr_schedule="step", lr_boundaries_epochs=(3, 6),
                     lr_decay=0.2)
    for step, expected in ((0, 0.4), (29, 0.4), (30, 0.08), (59, 0.08),
                           (60, 0.016), (99, 0.016), (150, 0.016)):
      self.assertAllClose(optim.learning_rate(step, 10, config), expected,
                          msg=str(step))

  def test_step_data_diet_schedule(self):
    # 200 epochs of 391 steps, 0.1 x0.2 at 60/120/160, one value per epoch.
    config = _config(epochs=200, learning_rate=0.1, lr_schedule="step",
                     lr_boundaries_epochs=(60, 120, 160), lr_decay=0.2)
    expected = [0.1] * 60 + [0.02] * 60 + [0.004] * 40 + [0.0008] * 40
    got = [float(optim.learning_rate(e * 391, 391, config))
           for e in range(200)]
    self.assertAllClose(got, expected)
    self.assertAllClose(optim.learning_rate(60 * 391 - 1, 391, config), 0.1)

  def test_step_with_warmup(self):
    config = _config(lr_schedule="step", lr_boundaries_epochs=(5,),
                     lr_decay=0.5, warmup_epochs=1)
    for step, expected in ((0, 0.04), (9, 0.4), (10, 0.4), (49, 0.4),
                           (50, 0.2)):
      self.assertAllClose(optim.learning_rate(step, 10, config), expected,
                          msg=str(step))

  def test_triangular(self):
    # SSFT's triangular schedule: "linear" with warmup at 40% of 10 epochs;
    # 10 steps per epoch: up over 40 steps to 0.4, down to 0 over 60.
    config = _config(lr_schedule="linear", warmup_epochs=4)
    for step, expected in ((0, 0.01), (19, 0.2), (39, 0.4), (40, 0.4),
                           (70, 0.2), (85, 0.1), (99, 0.4 / 60),
                           (100, 0.0)):
      self.assertAllClose(optim.learning_rate(step, 10, config), expected,
                          msg=str(step))


class UpdateTest(tf.test.TestCase):

  def _run(self, config, steps=3):
    p = tf.Variable([1.0, -2.0])
    a = tf.Variable([0.0, 0.0])
    grads = [np.array([0.5, 1.0], np.float32), np.array([-1.0, 0.25],
                                                         np.float32),
             np.array([2.0, 0.0], np.float32)]
    for g in grads[:steps]:
      optim.apply_updates([p], [a], [tf.constant(g)], 0.1, config, [True])
    return p.numpy(), grads

  def test_momentum_matches_hand_loop(self):
    config = _config(momentum=0.9, weight_decay=0.01)
    got, grads = self._run(config)
    p, a = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
      g = g + 0.01 * p
      a = 0.9 * a + g
      p = p - 0.1 * a
    self.assertAllClose(got, p)

  def test_nesterov_and_sgd(self):
    got, grads = self._run(_config(momentum=0.5, nesterov=True))
    p, a = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
      a = 0.5 * a + g
      p = p - 0.1 * (g + 0.5 * a)
    self.assertAllClose(got, p)
    got, grads = self._run(_config(optimizer="sgd"))
    self.assertAllClose(got, np.array([1.0, -2.0]) - 0.1 * sum(grads))

  def test_decay_mask(self):
    self.assertTrue(optim.is_decayed(tf.Variable(1.0, name="mlp/linear_0/w")))
    self.assertFalse(optim.is_decayed(tf.Variable(1.0, name="mlp/linear_0/b")))
    self.assertFalse(optim.is_decayed(tf.Variable(1.0, name="bn/scale")))


if __name__ == "__main__":
  tf.test.main()
