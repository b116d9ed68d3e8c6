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
through the batch statistics). Caveat for scores at initialisation
("epoch 0") of batch-norm models: Sonnet's batch norm starts its moving
averages from the statistics of its first call, which for a model built on
zeros (as `train.loop.Trainer` builds them) are mean 0 and variance 0, so
inputs are scaled by 1/sqrt(eps) per layer; Data Diet's Flax models start
from mean 0, variance 1. Those scores are computed as the model stands.

Per-example gradient norms are computed vectorized, two ways:

- "layers" (the default when it applies): one forward and one backward pass
  of the batch. In inference mode each example's loss depends on that example
  alone, so the gradient of the summed loss with respect to a layer's output
  holds every example's output gradient d_i, and per layer the example's
  weight gradient has a closed form: snt.Linear, x_i d_i^T (squared norm
  ||x_i||^2 ||d_i||^2, bias ||d_i||^2); snt.Conv2D (NHWC, string padding),
  P_i^T D_i with P_i the example's im2col patches [locations, kh*kw*c_in]
  (`tf.image.extract_patches`, the convolution's stride, rate and padding)
  and D_i its output gradients [locations, c_out], bias sum_l D_i[l];
  Sonnet batch norm (moving statistics), scale sum_l d_i[l] * xhat_i[l],
  offset sum_l d_i[l]. The layers are found by recording the calls of those
  Sonnet classes while the model is traced; it applies when they own every
  trainable variable of the model and each is called once.
- "pfor": `tf.vectorized_map` of a single-example GradientTape over the batch
  (batch norm traced unfused, as pfor has no rule for FusedBatchNormV2). It
  takes any module, but TensorFlow's pfor runs Conv2DBackpropFilter as a
  while loop, so for conv nets it is no faster than a loop.

Both are checked against `gradient_norms_loop`, a per-example loop.
"""

import contextlib
import dataclasses
from typing import Optional, Sequence, Tuple
import weakref

import numpy as np
import sonnet as snt
import tensorflow as tf
import tqdm

from heldout.models import layer_calls
from heldout.readers import checkpoints
from heldout.scores import score_file

EL2N = "el2n"
GRAND = "grand"
DEFAULT_BATCH_SIZE = 64
# How per-example gradient norms are vectorized; see the module doc.
METHODS = ("auto", "layers", "pfor")


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


class _UnsupportedModel(Exception):
  """The "layers" way does not apply to this model (the reason)."""


def _layer_squared_norms(call, d):
  """([b] squared norm of this layer's per-example gradient, its variables)."""
  m = call.module
  x = call.inputs
  sq = lambda t: tf.reduce_sum(tf.square(t), axis=list(range(1, t.shape.rank)))
  if call.kind == layer_calls.LINEAR:
    if x.shape.rank != 2:
      raise _UnsupportedModel("snt.Linear on rank-{} inputs".format(
          x.shape.rank))
    d2 = sq(d)
    total = sq(x) * d2
    variables = [m.w]
    if m.with_bias:
      total += d2
      variables.append(m.b)
    return total, variables
  if call.kind == layer_calls.CONV:
    reason = layer_calls.conv_unsupported_reason(m, x.shape.rank)
    if reason:
      raise _UnsupportedModel(reason)
    patches = layer_calls.conv_patches(m, x)
    b = tf.shape(x)[0]
    dl = tf.reshape(d, [b, -1, d.shape[-1]])
    locations, n, o = patches.shape[1], patches.shape[2], dl.shape[2]
    if locations is not None and locations * (n + o) < n * o:
      # Few locations: ||P^T D||^2 = <P P^T, D D^T> costs L^2 (n + o)
      # instead of L n o (Li et al. 2022's "ghost norm").
      total = tf.reduce_sum(
          tf.einsum("bln,bmn->blm", patches, patches) *
          tf.einsum("blo,bmo->blm", dl, dl), axis=[1, 2])
    else:
      total = sq(tf.einsum("bln,blo->bno", patches, dl))
    variables = [m.w]
    if m.with_bias:
      total += sq(tf.reduce_sum(dl, axis=1))
      variables.append(m.b)
    return total, variables
  # Batch norm with its moving statistics.
  if not call.inference:
    raise _UnsupportedModel("{} called in training mode".format(m.name))
  if m._channel_index != -1:  # pylint: disable=protected-access
    raise _UnsupportedModel("{}: channels not last".format(m.name))
  axes = list(range(1, x.shape.rank - 1))
  total = tf.zeros(tf.shape(x)[:1], x.dtype)
  variables = []
  if m.scale.trainable:
    xhat = (x - m.moving_mean.value) * tf.math.rsqrt(
        m.moving_variance.value + m._eps)  # pylint: disable=protected-access
    total += sq(tf.reduce_sum(d * xhat, axis=axes))
    variables.append(m.scale)
  if m.offset.trainable:
    total += sq(tf.reduce_sum(d, axis=axes))
    variables.append(m.offset)
  return total, variables


def _layer_gradient_norms(model, images, labels):
  """(el2n, grand) of a batch the "layers" way; see the module doc."""
  with layer_calls.recording_layer_calls() as calls:
    with tf.GradientTape() as tape:
      loss, logits = _loss(model, images, labels)
      total = tf.reduce_sum(loss)
  modules = [id(c.module) for c in calls]
  if len(set(modules)) != len(modules):
    raise _UnsupportedModel("a layer is called more than once")
  deltas = tape.gradient(total, [c.outputs for c in calls])
  squared = tf.zeros(tf.shape(loss), loss.dtype)
  covered = set()
  for call, d in zip(calls, deltas):
    if d is None:
      d = tf.zeros_like(call.outputs)
    layer, variables = _layer_squared_norms(call, d)
    squared += layer
    covered.update(v.ref() for v in variables)
  missing = [v.name for v in model.trainable_variables
             if v.ref() not in covered]
  if missing:
    raise _UnsupportedModel("trainable variables outside snt.Linear, "
                            "snt.Conv2D and batch norm: {}".format(missing[:3]))
  return el2n_from_logits(logits, labels), tf.sqrt(squared)


class _Compiled:
  """A model's compiled scoring functions (traced once per input shape)."""

  def __init__(self, model):
    self.variables = list(model.trainable_variables)
    if not self.variables:
      raise ValueError("the model has no trainable variables; build it "
                       "(call it once) first")
    model_ref = weakref.ref(model)
    self._model_ref = model_ref
    self.unsupported = None  # why "layers" does not apply, once known

    def single_norm(image, label):
      model = model_ref()
      with tf.GradientTape() as tape:
        loss, _ = _loss(model, image[None], label[None])
        loss = tf.reduce_sum(loss)
      return tf.sqrt(_squared_norm(tape.gradient(loss, self.variables)))

    def pfor_scores(images, labels):
      model = model_ref()
      _, logits = _loss(model, images, labels)
      norms = tf.vectorized_map(lambda e: single_norm(e[0], e[1]),
                                (images, labels),
                                fallback_to_while_loop=True)
      return el2n_from_logits(logits, labels), norms

    def layer_scores(images, labels):
      return _layer_gradient_norms(model_ref(), images, labels)

    compiled_pfor = tf.function(pfor_scores, reduce_retracing=True)
    self.layer_scores = tf.function(layer_scores, reduce_retracing=True)

    def pfor_unfused(images, labels):
      with _unfused_batch_norm(model_ref()):
        return compiled_pfor(images, labels)

    self.pfor_scores = pfor_unfused
    self.single_norm = tf.function(single_norm, reduce_retracing=True)

  def scores(self, images, labels, method="auto"):
    if method not in METHODS:
      raise ValueError("`method` must be one of {}, got {!r}".format(
          METHODS, method))
    if method != "pfor" and self.unsupported is None:
      # Whether the "layers" way applies, found once, eagerly on one example
      # (an error raised while tracing would come back wrapped).
      try:
        _layer_gradient_norms(self._model_ref(), images[:1], labels[:1])
        self.unsupported = ""
      except _UnsupportedModel as e:
        self.unsupported = str(e)
    if method == "layers" and self.unsupported:
      raise ValueError("gradient norms by layers do not apply: {}".format(
          self.unsupported))
    if method == "pfor" or self.unsupported:
      return self.pfor_scores(images, labels)
    return self.layer_scores(images, labels)


_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model) -> _Compiled:
  if model not in _COMPILED:
    _COMPILED[model] = _Compiled(model)
  return _COMPILED[model]


def el2n_and_gradient_norms(model, images, labels, method="auto"
                            ) -> Tuple[np.ndarray, np.ndarray]:
  """EL2N and GraNd of one batch, vectorized.

  Args:
    model: a built Sonnet module called as `model(images, is_training)`,
      returning [batch, num_classes] logits.
    images: [batch, ...] float32 inputs as the model expects them.
    labels: [batch] int class ids.
    method: "layers", "pfor", or "auto" ("layers" where it applies, else
      "pfor"); see the module doc.

  Returns:
    (el2n [batch] float32, grand [batch] float32) numpy arrays.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.convert_to_tensor(labels, tf.int64)
  el2n, grand = _compiled(model).scores(images, labels, method)
  return el2n.numpy(), grand.numpy()


def gradient_norms(model, images, labels, method="auto") -> np.ndarray:
  """[batch] float32 per-example ||grad_w CE||_2 over all trainable variables."""
  return el2n_and_gradient_norms(model, images, labels, method)[1]


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
                batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
                method: str = "auto") -> SplitScores:
  """EL2N and GraNd of `model` on the examples `ids` of `split`.

  Args:
    model: a built Sonnet module (`model(images, is_training)` -> logits).
    split: a `heldout.data.dataset.SplitData` (images already preprocessed).
    ids: example ids to score (default: all, ascending).
    batch_size: examples per vectorized batch (memory: batch x parameters
      floats for the per-example gradients).
    progress: show a tqdm bar.
    method: how gradient norms are vectorized (`METHODS`).

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
    e, g = el2n_and_gradient_norms(model, split.images[pos], split.labels[pos],
                                   method)
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
