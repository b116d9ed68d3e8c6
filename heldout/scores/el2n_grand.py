"""EL2N and GraNd scores (Paul, Ganguli & Dziugaite, NeurIPS 2021).

For a model f with weights w and an example (x, y):

  EL2N(x, y)  = || softmax(f(x; w)) - onehot(y) ||_2
  GraNd(x, y) = || grad_w CE(f(x; w), y) ||_2

the gradient over ALL trainable variables of the module (Data Diet flattens
the per-example Jacobian of the loss). Scores of several runs are averaged per
example (`el2n_grand_scores`).

The model is evaluated in inference mode (`is_training=False`): batch norm
normalises with its moving averages, so each example's logits and gradient
depend on that example alone and the gradient is that of a fixed function of
x (in training mode a per-example gradient would include the other examples
through the batch statistics). Sonnet's batch norm has no moving averages
before its first training step, so scores at initialisation of a batch-norm
model ("epoch 0") use what its moving-average variables hold then.

Per-example gradient norms are computed vectorized: `tf.vectorized_map`
(pfor) over the batch of a single-example GradientTape, compiled once per
model, which works for any Sonnet module (dense, conv, batch norm) and is
checked against `gradient_norms_loop`, a per-example loop.
"""

import contextlib
import dataclasses
from typing import Optional, Sequence, Tuple
import weakref

import numpy as np
import sonnet as snt
import tensorflow as tf
import tqdm

from heldout.readers import checkpoints
from heldout.scores import score_file

EL2N = "el2n"
GRAND = "grand"
DEFAULT_BATCH_SIZE = 64


def el2n_from_logits(logits, labels) -> tf.Tensor:
  """EL2N of each example.

  Args:
    logits: [batch, num_classes] float32.
    labels: [batch] int class ids.

  Returns:
    [batch] float32 || softmax(logits) - onehot(labels) ||_2.
  """
  logits = tf.convert_to_tensor(logits)
  onehot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
  return tf.norm(tf.nn.softmax(logits) - onehot, axis=-1)


def _loss(model, images, labels):
  logits = model(images, is_training=False)
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int64), logits=logits), logits


@contextlib.contextmanager
def _unfused_batch_norm(model):
  """Traces Sonnet batch norms with `tf.nn.batch_normalization`.

  pfor has no rule for FusedBatchNormV2, Sonnet's kernel for 4-D NHWC
  inputs; the unfused ops compute the same normalisation (inference mode:
  (x - moving_mean) / sqrt(moving_variance + eps) * scale + offset) and
  vectorize.
  """
  changed = [m for m in model.submodules
             if isinstance(m, snt.BaseBatchNorm) and getattr(m, "_fused", False)]
  for m in changed:
    m._fused = False  # pylint: disable=protected-access
  try:
    yield
  finally:
    for m in changed:
      m._fused = True  # pylint: disable=protected-access


def _squared_norm(tensors):
  return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


class _Compiled:
  """A model's compiled scoring functions (traced once per input shape)."""

  def __init__(self, model):
    self.variables = list(model.trainable_variables)
    if not self.variables:
      raise ValueError("the model has no trainable variables; build it "
                       "(call it once) first")
    model_ref = weakref.ref(model)

    def single_norm(image, label):
      model = model_ref()
      with tf.GradientTape() as tape:
        loss, _ = _loss(model, image[None], label[None])
        loss = tf.reduce_sum(loss)
      return tf.sqrt(_squared_norm(tape.gradient(loss, self.variables)))

    def scores(images, labels):
      model = model_ref()
      _, logits = _loss(model, images, labels)
      norms = tf.vectorized_map(lambda e: single_norm(e[0], e[1]),
                                (images, labels),
                                fallback_to_while_loop=False)
      return el2n_from_logits(logits, labels), norms

    compiled_scores = tf.function(scores, reduce_retracing=True)

    def scores_unfused(images, labels):
      with _unfused_batch_norm(model_ref()):
        return compiled_scores(images, labels)

    self.scores = scores_unfused
    self.single_norm = tf.function(single_norm, reduce_retracing=True)


_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model) -> _Compiled:
  if model not in _COMPILED:
    _COMPILED[model] = _Compiled(model)
  return _COMPILED[model]


def el2n_and_gradient_norms(model, images, labels) -> Tuple[np.ndarray, np.ndarray]:
  """EL2N and GraNd of one batch, vectorized.

  Args:
    model: a built Sonnet module called as `model(images, is_training)`,
      returning [batch, num_classes] logits.
    images: [batch, ...] float32 inputs as the model expects them.
    labels: [batch] int class ids.

  Returns:
    (el2n [batch] float32, grand [batch] float32) numpy arrays.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.convert_to_tensor(labels, tf.int64)
  el2n, grand = _compiled(model).scores(images, labels)
  return el2n.numpy(), grand.numpy()


def gradient_norms(model, images, labels) -> np.ndarray:
  """[batch] float32 per-example ||grad_w CE||_2 over all trainable variables."""
  return el2n_and_gradient_norms(model, images, labels)[1]


def gradient_norms_loop(model, images, labels, compiled=True) -> np.ndarray:
  """The slow reference: one GradientTape per example, in a Python loop.

  Args:
    model: as `gradient_norms`.
    images: [batch, ...] float32.
    labels: [batch] int.
    compiled: run each example's tape in a compiled `tf.function` (the fair
      baseline for timing); False runs it eagerly.

  Returns:
    [batch] float32 norms.
  """
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int64)
  if compiled:
    fn = _compiled(model).single_norm
    return np.array([fn(tf.constant(x), tf.constant(y)).numpy()
                     for x, y in zip(images, labels)], np.float32)
  variables = list(model.trainable_variables)
  out = []
  for x, y in zip(images, labels):
    with tf.GradientTape() as tape:
      logits = model(tf.constant(x[None]), is_training=False)
      loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.constant([y]), logits=logits)[0]
    grads = tape.gradient(loss, variables)
    out.append(np.sqrt(sum(float(np.sum(np.square(g.numpy().astype(np.float64))))
                           for g in grads)))
  return np.array(out, np.float32)


@dataclasses.dataclass(frozen=True)
class SplitScores:
  """EL2N and GraNd of one model on (part of) a split.

  Attributes:
    index: [n] int64 example ids.
    el2n: [n] float32.
    grand: [n] float32.
  """
  index: np.ndarray
  el2n: np.ndarray
  grand: np.ndarray


def score_split(model, split, ids: Optional[Sequence[int]] = None,
                batch_size: int = DEFAULT_BATCH_SIZE,
                progress: bool = True) -> SplitScores:
  """EL2N and GraNd of `model` on the examples `ids` of `split`.

  Args:
    model: a built Sonnet module (`model(images, is_training)` -> logits).
    split: a `heldout.data.dataset.SplitData` (images already preprocessed).
    ids: example ids to score (default: all, ascending).
    batch_size: examples per vectorized batch (memory: batch x parameters
      floats for the per-example gradients).
    progress: show a tqdm bar.

  Returns:
    `SplitScores` in the order of `ids`.
  """
  if batch_size <= 0:
    raise ValueError("`batch_size` must be positive, got {}".format(batch_size))
  ids = (np.sort(np.asarray(split.index, np.int64)) if ids is None
         else np.asarray(ids, np.int64))
  positions = split.positions_of(ids)
  el2n, grand = [], []
  starts = range(0, len(positions), batch_size)
  for start in tqdm.tqdm(starts, desc="el2n/grand", unit="batch",
                         disable=not progress):
    pos = positions[start:start + batch_size]
    e, g = el2n_and_gradient_norms(model, split.images[pos], split.labels[pos])
    el2n.append(e)
    grand.append(g)
  cat = lambda xs: (np.concatenate(xs) if xs else np.zeros(0, np.float32))
  return SplitScores(index=ids, el2n=cat(el2n), grand=cat(grand))


def score_run(run_dir, split, ids=None, arch=None, num_classes=None,
              batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
              **arch_kwargs) -> SplitScores:
  """`score_split` of a run's checkpoint (`heldout.readers.checkpoints.restore_run`)."""
  run = checkpoints.restore_run(run_dir, arch=arch, num_classes=num_classes,
                                **arch_kwargs)
  return score_split(run.model, split, ids, batch_size=batch_size,
                     progress=progress)


def el2n_grand_scores(runs: Sequence[SplitScores], args=None
                      ) -> Tuple[score_file.Scores, score_file.Scores]:
  """Averages runs' scores per example: (EL2N `Scores`, GraNd `Scores`).

  Each value is the mean over the runs that scored the example, `se` the
  standard error of that mean (NaN below 2 runs), `num_runs` their number.
  """
  el2n = score_file.average_over_runs([(r.index, r.el2n) for r in runs],
                                      EL2N, args)
  grand = score_file.average_over_runs([(r.index, r.grand) for r in runs],
                                       GRAND, args)
  return el2n, grand
