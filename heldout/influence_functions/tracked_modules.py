"""The layers influence functions track, and their per-example gradients.

Every `snt.Linear` and `snt.Conv2D` of a model is tracked, found by walking
the module (`find_tracked_modules`); batch norm layers are not tracked and
run in inference mode (the model is always called with `is_training=False`,
so each example's output depends on that example alone). For a tracked
layer, each example contributes rows (Kronfluence 1.0.1's conventions,
`shared/spec/methods.md`):

- a: the layer's input, with a last column of ones for the bias:
  [batch, 1, d_in + 1] for `snt.Linear`; for `snt.Conv2D` the im2col patches
  with the layer's stride, rate and padding, one row per output location:
  [batch, out_h * out_w, kh * kw * c_in + 1];
- s: the gradient of the summed loss with respect to the layer's output, one
  row per location: [batch, locations, d_out].

The example's gradient, laid out [d_out, d_in + 1] (the transpose of a Sonnet
kernel [in, out], the bias the last column), is G = sum_l s_l a_l^T.
`layer_rows` computes the rows of a batch in one forward and one backward
pass (`heldout.models.layer_calls`); `variable_gradient_block` lays the
gradients of a layer's variables out the same way (for references and
tests).

Losses are summed over the batch: cross-entropy (`CROSS_ENTROPY`) or the
margin measurement -(logit_y - logsumexp_{c != y} logit_c) (`MARGIN`). The
true Fisher samples labels from the model's predictive distribution:
`sampled_label_noise` gives each example id its own Gumbel noise (a hash of
seed, pass and id, so independent of batching and order) and the sampled
label is argmax(logits + noise).
"""

import dataclasses
from typing import List, Sequence, Tuple

import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout.influence_functions import arguments
from heldout.models import layer_calls

# Independent label samples for the two passes of the true Fisher.
COVARIANCE_PASS = 1
LAMBDA_PASS = 2


class UnsupportedModelError(ValueError):
  """A model whose layers cannot be tracked as influence functions need."""


@dataclasses.dataclass(frozen=True)
class TrackedModule:
  """A tracked layer.

  Attributes:
    name: its attribute path in the model ("_layers/0", as in checkpoints).
    module: the `snt.Linear` or `snt.Conv2D` (built).
    kind: `layer_calls.LINEAR` or `layer_calls.CONV`.
  """
  name: str
  module: snt.Module
  kind: str

  @property
  def with_bias(self) -> bool:
    return bool(self.module.with_bias)

  @property
  def d_out(self) -> int:
    return int(self.module.w.shape[-1])

  @property
  def d_in(self) -> int:
    """Input columns, the bias column included."""
    return int(np.prod(self.module.w.shape[:-1])) + int(self.with_bias)

  @property
  def variables(self) -> Tuple[tf.Variable, ...]:
    return (self.module.w, self.module.b) if self.with_bias else (
        self.module.w,)


def find_tracked_modules(model) -> List[TrackedModule]:
  """Every snt.Linear and snt.Conv2D of `model`, in attribute-path order.

  Args:
    model: a built Sonnet module.

  Returns:
    The `TrackedModule`s.

  Raises:
    UnsupportedModelError: if there is none, one is not built, or a
      convolution is not 2-D NHWC with string padding.
  """
  # pylint: disable=protected-access
  found = model._flatten(
      predicate=lambda m: isinstance(m, (snt.Linear, snt.Conv2D)),
      with_path=True, expand_composites=False)
  # pylint: enable=protected-access
  tracked = []
  seen = set()
  for path, module in found:
    if id(module) in seen:
      continue
    seen.add(id(module))
    name = "/".join(str(p) for p in path)
    if not hasattr(module, "w"):
      raise UnsupportedModelError(
          "{} ({}) is not built; call the model once first".format(
              name, module.name))
    kind = (layer_calls.LINEAR if isinstance(module, snt.Linear)
            else layer_calls.CONV)
    if kind == layer_calls.CONV:
      reason = layer_calls.conv_unsupported_reason(module, 4)
      if reason:
        raise UnsupportedModelError("{}: {}".format(name, reason))
    tracked.append(TrackedModule(name, module, kind))
  if not tracked:
    raise UnsupportedModelError(
        "{} has no snt.Linear or snt.Conv2D layer to track".format(model.name))
  return tracked


def variable_gradient_block(tracked: TrackedModule, gradients) -> np.ndarray:
  """A layer's variable gradients as one [d_out, d_in (+1)] block.

  Args:
    tracked: the layer.
    gradients: its variables' gradients, as `tracked.variables`: the kernel
      ([in, out] or [kh, kw, c_in, c_out]) and the bias ([out]) if any.

  Returns:
    float64 [d_out, d_in] with the bias as the last column.
  """
  w = np.asarray(gradients[0], np.float64)
  block = w.reshape(-1, w.shape[-1]).T
  if tracked.with_bias:
    block = np.concatenate([block, np.asarray(gradients[1],
                                              np.float64)[:, None]], axis=1)
  return block


def losses(logits, labels, kind) -> tf.Tensor:
  """[batch] per-example loss or measurement.

  Args:
    logits: [batch, num_classes].
    labels: [batch] int class ids.
    kind: `arguments.CROSS_ENTROPY` or `arguments.MARGIN`.
  """
  labels = tf.cast(labels, tf.int64)
  if kind == arguments.CROSS_ENTROPY:
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                          logits=logits)
  if kind == arguments.MARGIN:
    onehot = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True,
                        off_value=False)
    correct = tf.reduce_sum(tf.where(onehot, logits, tf.zeros_like(logits)),
                            axis=-1)
    others = tf.reduce_logsumexp(
        tf.where(onehot, tf.constant(-np.inf, logits.dtype), logits), axis=-1)
    return -(correct - others)
  raise ValueError("`kind` must be one of {}, got {!r}".format(
      arguments.MEASUREMENTS, kind))


def _splitmix64(x):
  x = (x + np.uint64(0x9E3779B97F4A7C15))
  x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def sampled_label_noise(ids, num_classes: int, seed: int, pass_id: int
                        ) -> np.ndarray:
  """Gumbel noise that samples each example's label: argmax(logits + noise).

  Args:
    ids: [batch] int example ids.
    num_classes: number of logits.
    seed: the sampling seed.
    pass_id: `COVARIANCE_PASS` or `LAMBDA_PASS` (independent samples).

  Returns:
    [batch, num_classes] float64 standard Gumbel noise, a function of (seed,
    pass_id, id, class) only.
  """
  ids = np.asarray(ids, np.uint64)
  classes = np.arange(num_classes, dtype=np.uint64)
  with np.errstate(over="ignore"):
    key = _splitmix64(_splitmix64(np.uint64(seed)) ^ np.uint64(
        pass_id * 0x632BE59BD9B4E019 % 2**64))
    h = _splitmix64(_splitmix64(key ^ ids[:, None]) ^ classes[None, :])
  # 53 random bits -> (0, 1).
  u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)
  return -np.log(-np.log(u))


def model_dtype(model) -> tf.DType:
  return model.trainable_variables[0].dtype


def layer_rows(model, tracked: Sequence[TrackedModule], images, labels,
               loss_kinds=(arguments.CROSS_ENTROPY,), label_noise=None,
               dtype=tf.float64):
  """The rows a and s of every tracked layer for a batch (traceable).

  Args:
    model: the model, called as `model(images, is_training=False)`.
    tracked: its `find_tracked_modules`.
    images: [batch, ...] inputs in the model's dtype.
    labels: [batch] int true labels.
    loss_kinds: the losses whose output gradients are wanted (one backward
      pass each, from one forward pass).
    label_noise: None (true labels) or [batch, num_classes] Gumbel noise
      (`sampled_label_noise`): the labels are argmax(logits + noise).
    dtype: the rows' dtype.

  Returns:
    (a, s, logits): a: a list over layers of [batch, locations, d_in] (bias
    column last); s: a list over `loss_kinds` of lists over layers of
    [batch, locations, d_out]; logits [batch, num_classes].

  Raises:
    UnsupportedModelError: if a tracked layer is not called exactly once.
  """
  with layer_calls.recording_layer_calls() as calls:
    with tf.GradientTape(persistent=len(loss_kinds) > 1) as tape:
      logits = model(images, is_training=False)
      if label_noise is not None:
        labels = tf.argmax(
            tf.cast(logits, tf.float64) + tf.cast(label_noise, tf.float64),
            axis=-1)
      totals = [tf.reduce_sum(losses(logits, labels, kind))
                for kind in loss_kinds]
  by_module = {}
  for call in calls:
    by_module.setdefault(id(call.module), []).append(call)
  chosen = []
  for t in tracked:
    found = by_module.get(id(t.module), [])
    if len(found) != 1:
      raise UnsupportedModelError(
          "{} ({}) is called {} times in a forward pass; influence functions "
          "track layers called exactly once".format(t.name, t.module.name,
                                                    len(found)))
    chosen.append(found[0])
  outputs = [c.outputs for c in chosen]
  a_rows = []
  for t, call in zip(tracked, chosen):
    x = call.inputs
    if t.kind == layer_calls.CONV:
      x = layer_calls.conv_patches(t.module, x)
    else:
      if x.shape.rank != 2:
        raise UnsupportedModelError(
            "{}: snt.Linear on rank-{} inputs".format(t.name, x.shape.rank))
      x = x[:, None, :]
    x = tf.cast(x, dtype)
    if t.with_bias:
      x = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)
    a_rows.append(x)
  s_rows = []
  for total in totals:
    grads = tape.gradient(total, outputs)
    rows = []
    for call, g in zip(chosen, grads):
      if g is None:
        g = tf.zeros_like(call.outputs)
      g = tf.cast(g, dtype)
      rows.append(tf.reshape(g, [tf.shape(g)[0], -1, g.shape[-1]]))
    s_rows.append(rows)
  del tape
  return a_rows, s_rows, logits


def per_example_gradients(a, s):
  """[batch, d_out, d_in] = sum over locations of s a^T."""
  return tf.einsum("blo,bli->boi", s, a)
