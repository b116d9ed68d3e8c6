"""Sharpness-aware minimization (Foret et al., ICLR 2021) as a `Trainer`.

One SAM step with radius `rho`, on the minibatch loss L (the cross-entropy
averaged over the global batch, as `train.loop.Trainer`'s step):

  g     = grad L(w)                      first forward-backward pass
  e     = rho * g / (||g||_2 + 1e-12)    ||.||_2 over every trainable variable
  g_sam = grad L(w + e)                  second forward-backward pass
  w    <- the base update of w with g_sam (`train.optim.apply_updates`: SGD
          momentum with the config's learning rate and weight decay)

Weight decay belongs to the base update (applied at w, not at w + e) and is
not part of g, as in the PyTorch SAM that SAMIS trains with; e is added to the
weights in place for the second pass and the saved weights are put back
exactly before the update.

Batch norm: the first pass (at w) runs in training mode and updates the
moving statistics; the second pass (at w + e) also normalises with its batch
statistics, but its updates of the moving statistics are undone, so they are
updated once per step, from the first pass, as the original SAM
implementations do (Foret et al.'s JAX code keeps the first pass's model
state; the PyTorch SAM sets the batch-norm momentum to 0 for the second).

Under `tf.distribute` (`snt.distribute.Replicator`, several replicas): by
default each replica computes e from the gradient of its own shard of the
global batch (its shard's loss, summed and divided by the global batch size;
the scale cancels in e) and perturbs its own replica-local copy of the
weights, as the original SAM does (m-sharpness with m the per-replica batch,
Foret et al.'s `sync_perturbations=False`); the second-pass gradients are
then summed across replicas and every replica applies the same update. With
`sync_perturbation=True` the first-pass gradients are summed across replicas
first, so e is that of the global batch and the step equals the one-device
SAM step on the same global batch (for models without batch norm, exactly).
"""

import tensorflow as tf

from train import loop
from train import optim

DEFAULT_RHO = 0.05
# Added to ||g|| as the PyTorch SAM does, so a zero gradient gives e = 0.
NORM_EPSILON = 1e-12


class SAMTrainer(loop.Trainer):
  """`train.loop.Trainer` whose update is a SAM step over the config's SGD."""

  def __init__(self, model_fn, image_shape, config, strategy=None,
               rho: float = DEFAULT_RHO, sync_perturbation: bool = False):
    """Builds the model, the optimizer state and the compiled step.

    Args:
      model_fn: returns a fresh module called as `model(images, is_training)`.
      image_shape: (height, width, channels).
      config: `TrainConfig` of the base update (optimizer, learning rate,
        schedule, weight decay).
      strategy: a `tf.distribute` strategy (`loop.make_strategy()` if None).
      rho: the radius of the perturbation, > 0.
      sync_perturbation: under several replicas, compute e from the global
        batch's gradient (summed across replicas) instead of each replica's
        own shard (the original SAM's default, False).

    Raises:
      ValueError: if `rho` is not positive, or for a plain (non-Sonnet)
        MirroredStrategy.
    """
    if not rho > 0:
      raise ValueError("`rho` must be positive, got {}".format(rho))
    self.rho = float(rho)
    self.sync_perturbation = bool(sync_perturbation)
    super().__init__(model_fn, image_shape, config, strategy=strategy)
    self._statistics = [v for v in self.model.variables if not v.trainable]
    with self.strategy.scope():
      # Replica-local copies of the weights at w during the second pass.
      self._saved = [tf.Variable(tf.zeros(p.shape, p.dtype), trainable=False)
                     for p in self._params]
      self._saved_statistics = [
          tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
          for v in self._statistics]

  def _gradients(self, batch, global_n):
    """(per-example loss [b], logits [b, C], grads) at the current weights."""
    labels = batch["label"]
    with tf.GradientTape() as tape:
      logits = self.model(batch["image"], is_training=True)
      per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=logits)
      loss = tf.reduce_sum(per_example) / global_n
    return per_example, logits, tape.gradient(loss, self._params)

  def _replica_step(self, batch, lr):
    ctx = tf.distribute.get_replica_context()
    labels = batch["label"]
    global_n = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(labels)[0], tf.float32))

    # First pass at w: the gradient that defines e; updates batch norm.
    per_example, logits, grads = self._gradients(batch, global_n)
    present = [i for i, g in enumerate(grads) if g is not None]
    first = [grads[i] for i in present]
    if self.sync_perturbation:
      first = ctx.all_reduce(tf.distribute.ReduceOp.SUM, first)
    norm = tf.linalg.global_norm(first)
    scale = self.rho / (norm + NORM_EPSILON)
    for s, v in zip(self._saved_statistics, self._statistics):
      s.assign(v)
    for i, g in zip(present, first):
      self._saved[i].assign(self._params[i])
      self._params[i].assign_add(scale * g)

    # Second pass at w + e: the gradient of the update.
    _, _, grads = self._gradients(batch, global_n)
    for i in present:
      self._params[i].assign(self._saved[i])
    for s, v in zip(self._saved_statistics, self._statistics):
      v.assign(s)
    present = [i for i, g in enumerate(grads) if g is not None]
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                             [grads[i] for i in present])
    grads = [None] * len(self._params)
    for i, g in zip(present, reduced):
      grads[i] = g
    optim.apply_updates(self._params, self._accumulators, grads, lr,
                        self.config, self._decay_mask)
    correct = tf.cast(tf.equal(
        tf.argmax(logits, axis=-1, output_type=labels.dtype), labels), tf.int32)
    return {"index": batch["index"], "loss": per_example, "correct": correct}


def make_trainer(optimizer: str, model_fn, image_shape, config, strategy=None,
                 rho: float = DEFAULT_RHO, sync_perturbation: bool = False
                 ) -> loop.Trainer:
  """`loop.Trainer` for "sgd" (the config's update) or `SAMTrainer` for "sam".

  Raises:
    ValueError: for another `optimizer`.
  """
  if optimizer == "sgd":
    return loop.Trainer(model_fn, image_shape, config, strategy=strategy)
  if optimizer == "sam":
    return SAMTrainer(model_fn, image_shape, config, strategy=strategy,
                      rho=rho, sync_perturbation=sync_perturbation)
  raise ValueError("`optimizer` must be 'sgd' or 'sam', got {!r}".format(
      optimizer))


__all__ = ["DEFAULT_RHO", "SAMTrainer", "make_trainer"]
