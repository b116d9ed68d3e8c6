"""The training loop of one model under a `tf.distribute` strategy.

`Trainer` owns one model, its momentum accumulators, the `epoch` and
`global_step` counters and one compiled training step. `reset(seed)` gives the
model fresh initial weights, so one `Trainer` (and its compiled step) serves
run after run of a heldout job.

Distribution: the default strategy on one device; for several GPUs,
`snt.distribute.Replicator`, Sonnet's `tf.distribute.MirroredStrategy`, whose
replica-local variables let each replica apply the (all-reduced, identical)
update itself as Sonnet modules and batch norm require (`make_strategy`). The
global batch is split across replicas by the input pipeline;
losses are summed per replica and divided by the global batch size, and
gradients are summed across replicas, so the update equals the single-device
update on the same global batch (for models without batch norm, exactly;
batch norm normalizes by per-replica statistics).

Several worker processes (a cluster's `TF_CONFIG` naming more than one
worker): `train.multi_worker.MultiWorkerReplicator`, the same replica-local
variables over `tf.distribute.MultiWorkerMirroredStrategy`. Each worker runs
its own input pipeline, which yields only its local replicas' slices of each
global batch, so the data do not depend on how many workers there are; the
per-example outputs are gathered from every replica, so every worker's
callbacks see the whole global batch in order.

Input: `distribute_datasets_from_function` yields per-replica
`{"index", "image", "label"}` batches (from in-memory arrays, orders read
from variables so one pipeline serves run after run); each epoch is one
compiled call that loops over its steps.

Hooks: each step returns the per-example loss and correctness with the
example ids, and callbacks receive them (for an epoch's steps, in order, when
that epoch's compiled call returns):
  `on_batch_end(epoch, step, index, per_example_loss, correct)` (numpy [b])
  `on_epoch_end(epoch, trainer)` (after `epoch` is complete; 0-based)
so that methods that record per-example quantities during training
(forgetting events, EL2N/GraNd, SSFT, ...) attach without touching the loop.
Methods that change the update itself (SAM) subclass `Trainer` and override
`_replica_step(batch, lr)`, which returns `{"index", "loss", "correct"}`.
"""

import math
import time
from typing import Callable, Optional, Sequence

from absl import logging
import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout.data import augment as augment_lib
from train import multi_worker
from train import optim
from train import subsets


class Callback:
  """Base class of training callbacks; override what you need."""

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    """After each update.

    Args:
      epoch: 0-based epoch.
      step: global step after this update (1-based count of updates).
      index: [b] int64 example ids of the global batch.
      per_example_loss: [b] float32 cross-entropy before the update.
      correct: [b] bool, argmax of the logits before the update == label.
    """

  def on_epoch_end(self, epoch, trainer):
    """After epoch `epoch` (0-based) is complete."""


_STRATEGIES = {}


def make_strategy(devices: Optional[Sequence[str]] = None):
  """The strategy for this machine.

  One strategy per device set and process: two multi-device strategies in one
  process would issue collectives with the same instance keys, which mix up.

  Args:
    devices: explicit devices (e.g. two logical CPUs in a test); if None,
      the multi-worker strategy when `TF_CONFIG` names several workers, else
      every GPU when there are several, else the default strategy.

  Returns:
    `train.multi_worker.MultiWorkerReplicator` across workers,
    `snt.distribute.Replicator` over several devices, or the default
    strategy.
  """
  if devices is None and multi_worker.is_multi_worker_environment():
    return multi_worker.make_strategy()
  if devices is None:
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
      devices = [d.name for d in gpus]
  if devices and len(devices) > 1:
    key = tuple(devices)
    if key not in _STRATEGIES:
      _STRATEGIES[key] = snt.distribute.Replicator(devices=list(devices))
    return _STRATEGIES[key]
  return tf.distribute.get_strategy()


def _check_strategy(strategy):
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
      not isinstance(strategy, multi_worker.MultiWorkerReplicator)):
    raise ValueError(
        "`strategy`: a plain MultiWorkerMirroredStrategy mirrors variables "
        "that Sonnet modules cannot update per replica; use "
        "train.multi_worker.MultiWorkerReplicator (replica-local variables), "
        "e.g. train.multi_worker.make_strategy()")
  if isinstance(strategy, tf.distribute.MirroredStrategy) and not isinstance(
      strategy, snt.distribute.Replicator):
    raise ValueError(
        "`strategy`: a plain MirroredStrategy mirrors variables that Sonnet "
        "modules cannot update per replica; use snt.distribute.Replicator "
        "(a MirroredStrategy with replica-local variables), e.g. "
        "train.loop.make_strategy(devices)")


class Trainer:
  """Trains one model at a time, reusing its compiled step across runs."""

  def __init__(self, model_fn: Callable[[], snt.Module], image_shape,
               config, strategy=None):
    """Builds the model, the optimizer state and the compiled step.

    Args:
      model_fn: returns a fresh module called as `model(images, is_training)`.
      image_shape: (height, width, channels).
      config: `TrainConfig`.
      strategy: a `tf.distribute` strategy (`make_strategy()` if None).

    Raises:
      ValueError: for a plain (non-Sonnet) MirroredStrategy or
        MultiWorkerMirroredStrategy.
    """
    self.config = config
    self.image_shape = tuple(int(d) for d in image_shape)
    self.strategy = strategy or make_strategy()
    _check_strategy(self.strategy)
    self._model_fn = model_fn
    with self.strategy.scope():
      self.model = model_fn()
      self.model(tf.zeros((1,) + self.image_shape), is_training=False)
      self._params = list(self.model.trainable_variables)
      self._accumulators = [tf.Variable(tf.zeros(p.shape, p.dtype),
                                        trainable=False)
                            for p in self._params]
    self._decay_mask = [optim.is_decayed(p) for p in self._params]
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                   name="global_step")
    self._optimizer_state = tf.Module(name="optimizer")
    self._optimizer_state.accumulators = self._accumulators
    self._pipeline_key = None
    self._epoch_fn_key = None
    self._predict_fn = tf.function(self._predict, input_signature=[
        tf.TensorSpec((None,) + self.image_shape, tf.float32)])

  # -- state ----------------------------------------------------------------

  def reset(self, seed: int):
    """Fresh initial weights for a run with seed `seed`; zero optimizer state.

    The weights are those of `model_fn()` built right after
    `tf.random.set_seed(subsets.init_seed(seed))`, so they depend on the
    seed only (not on what ran before).
    """
    tf.random.set_seed(subsets.init_seed(seed))
    fresh = self._model_fn()
    fresh(tf.zeros((1,) + self.image_shape), is_training=False)
    ours, theirs = self.model.variables, fresh.variables
    if [v.shape for v in ours] != [v.shape for v in theirs]:
      raise RuntimeError("model_fn() built a module with other variables")
    for v, f in zip(ours, theirs):
      v.assign(f)
    self.start_new_phase()

  def start_new_phase(self):
    """Keeps the weights; a fresh optimizer and schedule from step 0.

    As a new optimizer and learning-rate scheduler built over a trained
    model (e.g. SSFT's second phase): momentum accumulators zeroed, `epoch`
    and `global_step` back to 0, so `fit` then trains `epochs` more epochs
    on the config's schedule from its start.
    """
    for a in self._accumulators:
      a.assign(tf.zeros(a.shape, a.dtype))
    self.epoch.assign(0)
    self.global_step.assign(0)

  def sync_from_chief(self):
    """Sets the model, optimizer state and counters to the chief's.

    For several workers, after the chief alone restored a progress
    checkpoint; every worker must call it (a collective). Nothing to do in
    one process.
    """
    if not multi_worker.is_multi_worker(self.strategy):
      return
    variables = (list(self.model.variables) + list(self._accumulators) +
                 [self.epoch, self.global_step])
    values = multi_worker.broadcast_from_chief(self.strategy, variables)
    for v, value in zip(variables, values):
      v.assign(value)

  def final_checkpoint(self) -> tf.train.Checkpoint:
    """`tf.train.Checkpoint(model, epoch, global_step)`, as the released runs."""
    return tf.train.Checkpoint(model=self.model, epoch=self.epoch,
                               global_step=self.global_step)

  def progress_checkpoint(self) -> tf.train.Checkpoint:
    """The final checkpoint's objects plus the optimizer state, for resuming."""
    return tf.train.Checkpoint(model=self.model, epoch=self.epoch,
                               global_step=self.global_step,
                               optimizer=self._optimizer_state)

  # -- training -------------------------------------------------------------

  def _replica_step(self, batch, lr):
    ctx = tf.distribute.get_replica_context()
    labels = batch["label"]
    global_n = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(labels)[0], tf.float32))
    with tf.GradientTape() as tape:
      logits = self.model(batch["image"], is_training=True)
      per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=logits)
      loss = tf.reduce_sum(per_example) / global_n
    grads = tape.gradient(loss, self._params)
    present = [i for i, g in enumerate(grads) if g is not None]
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                             [grads[i] for i in present])
    grads = list(grads)
    for i, g in zip(present, reduced):
      grads[i] = g
    optim.apply_updates(self._params, self._accumulators, grads, lr,
                        self.config, self._decay_mask)
    correct = tf.cast(tf.equal(
        tf.argmax(logits, axis=-1, output_type=labels.dtype), labels), tf.int32)
    return {"index": batch["index"], "loss": per_example, "correct": correct}

  def _pipeline(self, split, n, start_epoch, epochs):
    """Per-replica batches of epochs [start_epoch, epochs), built once.

    The dataset reads the epoch orders and the augmentation seed from
    variables, so successive runs (same split, subset size and epochs) reuse
    it, and its traced functions, with new values. Element i is replica
    i % R's share of global step i // R: the global batch's positions (and
    augmentation draws) are computed whole, then sliced, so the data do not
    depend on the number of replicas. With several workers, each worker's
    pipeline yields its L local replicas' shares only (replicas
    worker * L ... worker * L + L - 1, the strategy's numbering).
    """
    # The split itself is kept in the key: holding it keeps its id unique.
    key = (split, n, start_epoch, epochs)
    if self._pipeline_key is not None and self._pipeline_key[0] is split and (
        self._pipeline_key[1:] == key[1:]):
      return self._dist
    config = self.config
    batch_size = config.batch_size
    steps = math.ceil(n / batch_size)
    replicas = self.strategy.num_replicas_in_sync
    with tf.device("/cpu:0"):
      self._orders = tf.Variable(tf.zeros([epochs, n], tf.int64),
                                 trainable=False)
      self._aug_seed = tf.Variable(0, dtype=tf.int64, trainable=False)
      images = tf.constant(split.images)
      labels = tf.constant(split.labels)
      ids = tf.constant(split.index)
    orders, aug_seed = self._orders, self._aug_seed

    def replica_batch(i, local_replicas, first_replica):
      step = i // local_replicas
      replica = first_replica + i % local_replicas
      epoch, s = step // steps, step % steps
      begin = s * batch_size
      pos = orders[epoch, begin:tf.minimum(begin + batch_size, n)]
      size = tf.shape(pos, out_type=tf.int64)[0]
      share = (size + replicas - 1) // replicas
      lo = tf.minimum(replica * share, size)
      hi = tf.minimum(lo + share, size)
      image = tf.gather(images, pos[lo:hi])
      if config.augment:
        offsets, flips = augment_lib.random_offsets_and_flips(
            size, tf.stack([aug_seed, step]))
        image = augment_lib.pad_crop_flip(image, offsets[lo:hi], flips[lo:hi])
      return {"index": tf.gather(ids, pos[lo:hi]), "image": image,
              "label": tf.gather(labels, pos[lo:hi])}

    def dataset_fn(input_context):
      # One pipeline per worker; its elements go round-robin to the
      # worker's local replicas.
      local = replicas // input_context.num_input_pipelines
      first = input_context.input_pipeline_id * local
      ds = tf.data.Dataset.range(start_epoch * steps * local,
                                 epochs * steps * local)
      return ds.map(lambda i: replica_batch(i, local, first),
                    num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True).prefetch(2 * local)

    self._dist = self.strategy.distribute_datasets_from_function(dataset_fn)
    self._pipeline_key = key
    return self._dist

  def _epoch_fn(self, iterator, steps_per_epoch):
    """One compiled call per epoch: `steps_per_epoch` updates in a loop."""
    key = (steps_per_epoch, iterator.element_spec)
    if self._epoch_fn_key == key:
      return self._compiled_epoch
    strategy = self.strategy
    config = self.config

    def concat_replicas(value):
      # Replica r holds slice r of the global batch: concatenating this
      # process's replicas in replica order restores the global order (one
      # process) or this worker's contiguous part of it (several workers;
      # `_gather_workers` completes it after the epoch: a collective inside
      # the loop keeps one instance key for every step, and TF refuses it a
      # different shape, as an uneven last batch would give it).
      return tf.concat(strategy.experimental_local_results(value), axis=0)

    def train_epoch(iterator):
      index = tf.TensorArray(tf.int64, size=steps_per_epoch, infer_shape=False)
      loss = tf.TensorArray(tf.float32, size=steps_per_epoch,
                            infer_shape=False)
      correct = tf.TensorArray(tf.int32, size=steps_per_epoch,
                               infer_shape=False)
      sizes = tf.TensorArray(tf.int32, size=steps_per_epoch)
      for s in tf.range(steps_per_epoch):
        lr = optim.learning_rate(self.global_step, steps_per_epoch, config)
        out = strategy.run(self._replica_step, args=(next(iterator), lr))
        self.global_step.assign_add(1)
        step_index = concat_replicas(out["index"])
        index = index.write(s, step_index)
        loss = loss.write(s, concat_replicas(out["loss"]))
        correct = correct.write(s, concat_replicas(out["correct"]))
        sizes = sizes.write(s, tf.shape(step_index)[0])
      return index.concat(), loss.concat(), correct.concat(), sizes.stack()

    self._compiled_epoch = tf.function(train_epoch)
    self._epoch_fn_key = key
    return self._compiled_epoch

  def _gather_workers(self, index, loss, correct, sizes):
    """The epoch's global batches from every worker's parts, in order.

    Args:
      index, loss, correct: this worker's parts of the epoch's steps,
        concatenated ([m] each).
      sizes: [steps] int, this worker's examples in each step.

    Returns:
      (index, loss, correct) of whole global batches, step after step, each
      batch in replica order (worker-major, as the strategy numbers
      replicas).
    """
    parts = multi_worker.allgather_workers(
        self.strategy, [index, loss, correct, sizes])
    offsets = [np.concatenate([[0], np.cumsum(p[3])]) for p in parts]
    out = []
    for k in range(3):
      steps = []
      for s in range(len(sizes)):
        steps.extend(p[k][o[s]:o[s + 1]] for p, o in zip(parts, offsets))
      out.append(np.concatenate(steps))
    return tuple(out)

  def fit(self, split, subset_ids, seed: int, epochs: Optional[int] = None,
          callbacks: Sequence[Callback] = (),
          epoch_end_fn: Optional[Callable[[int], None]] = None):
    """Trains from the current `epoch` counter to `epochs`.

    The order of every epoch depends on (`seed`, epoch) only, so training
    restored from a progress checkpoint continues exactly as the
    uninterrupted run would have. Each epoch is one compiled call; the
    callbacks' `on_batch_end` receive that epoch's steps, in order, when it
    returns (the model has moved on by then), then `on_epoch_end` runs.

    Args:
      split: the training `SplitData`.
      subset_ids: example ids to train on.
      seed: the run's seed (`subsets.run_seed`).
      epochs: total epochs (the config's if None).
      callbacks: `Callback`s.
      epoch_end_fn: called with the number of completed epochs after each
        epoch, after the callbacks (used to save progress).

    Returns:
      List of (epoch, mean training loss) for the epochs trained now.
    """
    epochs = self.config.epochs if epochs is None else int(epochs)
    start_epoch = int(self.epoch.numpy())
    if start_epoch >= epochs:
      return []
    positions = split.positions_of(np.sort(np.asarray(subset_ids)))
    n = len(positions)
    batch_size = self.config.batch_size
    steps_per_epoch = math.ceil(n / batch_size)
    dist = self._pipeline(split, n, start_epoch, epochs)
    orders = np.zeros([epochs, n], np.int64)
    for e in range(start_epoch, epochs):
      orders[e] = positions[subsets.epoch_order(seed, e, n)]
    self._orders.assign(orders)
    self._aug_seed.assign(subsets.augment_seed(seed))
    iterator = iter(dist)
    train_epoch = self._epoch_fn(iterator, steps_per_epoch)
    history = []
    started = time.time()
    for epoch in range(start_epoch, epochs):
      index, loss, correct, sizes = (
          t.numpy() for t in train_epoch(iterator))
      self.epoch.assign(epoch + 1)
      if multi_worker.is_multi_worker(self.strategy):
        index, loss, correct = self._gather_workers(index, loss, correct,
                                                    sizes)
      history.append((epoch, float(loss.mean())))
      if callbacks:
        correct = correct.astype(bool)
        first_step = int(self.global_step.numpy()) - steps_per_epoch
        for s in range(steps_per_epoch):
          part = slice(s * batch_size, (s + 1) * batch_size)
          for cb in callbacks:
            cb.on_batch_end(epoch, first_step + s + 1, index[part], loss[part],
                            correct[part])
      logging.log_every_n_seconds(
          logging.INFO, "epoch %d/%d: loss %.4f (%.1fs)", 30, epoch + 1,
          epochs, history[-1][1], time.time() - started)
      for cb in callbacks:
        cb.on_epoch_end(epoch, self)
      if epoch_end_fn is not None:
        epoch_end_fn(epoch + 1)
    return history

  # -- evaluation -----------------------------------------------------------

  def _predict(self, images):
    logits = self.model(images, is_training=False)
    return tf.argmax(logits, axis=-1)

  def evaluate(self, split, ids=None, batch_size: Optional[int] = None):
    """Correctness of the current model, no augmentation.

    Args:
      split: a `SplitData`.
      ids: example ids to evaluate, in this order (all, by id, if None).
      batch_size: evaluation batch size (the config's, 200, if None).

    Returns:
      (ids [m] int64, correct [m] bool).
    """
    batch_size = batch_size or self.config.eval_batch_size
    ids = np.arange(len(split), dtype=np.int64) if ids is None else np.asarray(
        ids, dtype=np.int64)
    positions = split.positions_of(ids)
    correct = []
    for start in range(0, len(positions), batch_size):
      pos = positions[start:start + batch_size]
      pred = self._predict_fn(tf.constant(split.images[pos])).numpy()
      correct.append(pred == split.labels[pos])
    correct = (np.concatenate(correct) if correct
               else np.zeros(0, dtype=bool))
    return ids, correct.astype(bool)
