"""The calls of a Sonnet model's layers, for per-example gradients in closed form.

Per-example gradients of a layer's weights have closed forms in the layer's
inputs and the gradient of the loss with respect to its outputs: for
`snt.Linear`, x_i d_i^T; for `snt.Conv2D` (NHWC, string padding), P_i^T D_i,
with P_i the example's im2col patches [locations, kh*kw*c_in] (the
convolution's stride, rate and padding) and D_i its output gradients
[locations, c_out]. `recording_layer_calls` records, while a model is traced,
every call of `snt.Linear`, `snt.Conv2D` and the batch norms with their
inputs and outputs, so one forward and one backward pass of a batch give
every example's gradient. Shared by the GraNd scores
(`heldout.scores.el2n_grand`) and the influence functions
(`heldout.influence_functions`).
"""

import contextlib
import dataclasses

import sonnet as snt
import tensorflow as tf

LINEAR = "linear"
CONV = "conv"
BATCH_NORM = "batch_norm"


@dataclasses.dataclass
class LayerCall:
  """One call of a recorded layer.

  Attributes:
    module: the Sonnet module called.
    kind: `LINEAR`, `CONV` or `BATCH_NORM`.
    inputs: its input tensor.
    outputs: its output tensor.
    inference: for batch norm, whether it normalised with its moving
      statistics (`is_training=False`, `test_local_stats=False`); True for
      the other kinds.
  """
  module: snt.Module
  kind: str
  inputs: tf.Tensor
  outputs: tf.Tensor
  inference: bool


@contextlib.contextmanager
def recording_layer_calls():
  """Records every call of snt.Linear, snt.Conv2D and batch norm (class level).

  The classes' `__call__` is replaced while the block runs (only while a
  model is traced), so calls from other threads at that moment would be
  recorded too; run it in one thread.

  Yields:
    The list of `LayerCall`s, appended to in call order.
  """
  calls = []
  patched = []

  def patch(cls, kind):
    # The class that defines `__call__` (snt.Conv2D's is ConvND's).
    cls = next(c for c in cls.__mro__ if "__call__" in c.__dict__)
    original = cls.__dict__["__call__"]

    def call(self, inputs, *args, **kwargs):
      outputs = original(self, inputs, *args, **kwargs)
      inference = True
      if kind == BATCH_NORM:
        is_training = kwargs.get("is_training", args[0] if args else None)
        test_local_stats = kwargs.get(
            "test_local_stats", args[1] if len(args) > 1 else False)
        inference = (isinstance(is_training, bool) and not is_training and
                     isinstance(test_local_stats, bool) and not test_local_stats)
      calls.append(LayerCall(self, kind, tf.convert_to_tensor(inputs), outputs,
                             inference))
      return outputs

    cls.__call__ = call
    patched.append((cls, original))

  try:
    patch(snt.Linear, LINEAR)
    patch(snt.Conv2D, CONV)
    patch(snt.BaseBatchNorm, BATCH_NORM)
    yield calls
  finally:
    for cls, original in patched:
      cls.__call__ = original


def pair(value):
  """An int or a 1- or 2-sequence as a pair (height, width)."""
  if isinstance(value, int):
    return (value, value)
  value = tuple(value)
  return value * 2 if len(value) == 1 else value


def conv_unsupported_reason(module, inputs_rank):
  """Why `conv_patches` cannot take this snt.Conv2D call ("" if it can)."""
  if (inputs_rank != 4 or module.data_format != "NHWC" or
      module.padding_func is not None):
    return ("{} (only 2-D NHWC convolutions with string padding)".format(
        module.name))
  return ""


def conv_patches(module, inputs):
  """The im2col patches of an snt.Conv2D call, one row per output location.

  Args:
    module: the built snt.Conv2D (NHWC, string padding).
    inputs: [batch, height, width, c_in], its input.

  Returns:
    [batch, out_height * out_width, kh * kw * c_in] patches in the order of
    the kernel reshaped to [kh * kw * c_in, c_out] (row, column, channel),
    zeros where the padding is.
  """
  kh, kw = int(module.w.shape[0]), int(module.w.shape[1])
  sh, sw = pair(module.stride)
  rh, rw = pair(module.rate)
  patches = tf.image.extract_patches(
      inputs, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1],
      rates=[1, rh, rw, 1], padding=module.conv_padding)
  return tf.reshape(patches, [tf.shape(inputs)[0], -1, patches.shape[-1]])
