"""Learning-rate schedules and the SGD-momentum update, shared by every trainer.

The single-model loop (`train/loop.py`) and the K-models-at-once trainer
(`train/batched.py`) both call these, so the same config gives the same
update rule in both.
"""

import math

import tensorflow as tf


def learning_rate(step, steps_per_epoch, config):
  """The learning rate of optimizer step `step` (0-based).

  Args:
    step: scalar int, the number of updates done before this one.
    steps_per_epoch: updates per epoch (Python int).
    config: a `TrainConfig` (its `lr_schedule`, `learning_rate`,
      `warmup_epochs`, `epochs`; for "step", `lr_boundaries_epochs` and
      `lr_decay`).

  Returns:
    scalar float32 tensor.
  """
  peak = float(config.learning_rate)
  step = tf.cast(step, tf.float32)
  total = float(config.epochs * steps_per_epoch)
  warmup = float(config.warmup_epochs * steps_per_epoch)
  if config.lr_schedule == "constant" and warmup == 0:
    return tf.constant(peak, tf.float32)
  if warmup > 0:
    warm = peak * (step + 1.0) / warmup
  else:
    warm = tf.constant(peak, tf.float32)
  progress = tf.clip_by_value((step - warmup) / max(total - warmup, 1.0),
                              0.0, 1.0)
  if config.lr_schedule == "linear":
    after = peak * (1.0 - progress)
  elif config.lr_schedule == "cosine":
    after = peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
  elif config.lr_schedule == "step":
    # Epoch-based multistep: x lr_decay at the start of each boundary epoch.
    epoch = tf.floor(step / float(steps_per_epoch))
    passed = tf.reduce_sum(tf.cast(
        epoch >= tf.constant(config.lr_boundaries_epochs, tf.float32),
        tf.float32))
    after = peak * tf.pow(float(config.lr_decay), passed)
  else:
    after = tf.constant(peak, tf.float32)
  return tf.where(step < warmup, warm, after)


def is_decayed(variable):
  """Whether weight decay applies: weights `w` of linear/conv layers."""
  name = variable.name.split(":")[0]
  return name.split("/")[-1] == "w"


def apply_updates(params, accumulators, grads, lr, config, decay_mask):
  """One SGD(-momentum) update with L2 weight decay, in place.

  Sonnet's momentum rule: `a <- momentum * a + g; p <- p - lr * a` (Nesterov:
  `p <- p - lr * (g + momentum * a)`), with `g = grad + weight_decay * p` for
  decayed parameters. Works elementwise, so it applies unchanged to stacked
  [K, ...] parameters of K models.

  Args:
    params: list of variables.
    accumulators: list of momentum variables like `params` (unused for "sgd").
    grads: list of gradients like `params` (None entries are skipped).
    lr: scalar learning rate.
    config: the `TrainConfig`.
    decay_mask: list of bools, weight decay per parameter.
  """
  wd = float(config.weight_decay)
  mu = float(config.momentum)
  for p, a, g, decay in zip(params, accumulators, grads, decay_mask):
    if g is None:
      continue
    if decay and wd:
      g = g + wd * p
    if config.optimizer == "sgd":
      p.assign_sub(lr * g)
      continue
    a.assign(mu * a + g)
    if config.nesterov:
      p.assign_sub(lr * (g + mu * a))
    else:
      p.assign_sub(lr * a)
