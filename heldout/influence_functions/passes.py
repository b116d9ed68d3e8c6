"""One pass of a model over examples in batches, with the labels a stage needs."""

from typing import Iterator, Optional, Tuple

import tensorflow as tf
import tqdm

from heldout.influence_functions import arguments
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import tracked_modules

DEFAULT_BATCH_SIZE = 256


def tf_dtype(name: str) -> tf.DType:
  return tf.float64 if name == "float64" else tf.float32


def batches(model, examples: examples_lib.Examples, batch_size: int,
            progress: bool, desc: str, fisher: str = arguments.EMPIRICAL_FISHER,
            seed: int = 0, pass_id: int = 0, num_classes: Optional[int] = None
            ) -> Iterator[Tuple[int, tf.Tensor, tf.Tensor, Optional[tf.Tensor]]]:
  """(start, images, labels, label_noise) per batch, with a progress bar.

  Args:
    model: the model (its variables' dtype is the images' dtype).
    examples: the examples.
    batch_size: examples per batch.
    progress: show a tqdm bar.
    desc: the bar's label.
    fisher: `TRUE_FISHER` gives each batch the Gumbel noise that samples its
      labels (`tracked_modules.sampled_label_noise`), else None.
    seed: the sampling seed.
    pass_id: which pass (independent samples per pass).
    num_classes: number of logits (needed for `TRUE_FISHER`).
  """
  dtype = tracked_modules.model_dtype(model)
  for start, images, labels, ids in tqdm.tqdm(
      examples.batches(batch_size), total=examples.num_batches(batch_size),
      desc=desc, unit="batch", disable=not progress, leave=False):
    noise = None
    if fisher == arguments.TRUE_FISHER:
      noise = tf.constant(tracked_modules.sampled_label_noise(
          ids, num_classes, seed, pass_id))
    yield (start, tf.constant(images, dtype), tf.constant(labels, tf.int64),
           noise)


def num_classes_of(model, examples: examples_lib.Examples) -> int:
  """The number of logits of `model` (one forward pass of one example)."""
  dtype = tracked_modules.model_dtype(model)
  logits = model(tf.constant(examples.images[:1], dtype), is_training=False)
  return int(logits.shape[-1])


def compile_step(fn):
  """`fn(*tensors_or_None)` compiled once per pattern of None arguments.

  The batch dimension of every tensor argument is left unknown, so batches
  of any size (the last one is smaller) share one trace; autograph is off
  (the steps have no data-dependent Python control flow), which makes
  tracing a model several times faster.

  Args:
    fn: a step taking tensors [batch, ...] (or None) and returning tensors.

  Returns:
    The compiled callable.
  """
  compiled = {}

  def call(*args):
    key = tuple(a is None for a in args)
    if key not in compiled:
      specs = [tf.TensorSpec([None] + a.shape[1:].as_list(), a.dtype)
               for a in args if a is not None]

      def inner(*tensors, key=key):
        given = iter(tensors)
        return fn(*[None if absent else next(given) for absent in key])

      compiled[key] = tf.function(inner, input_signature=specs,
                                  autograph=False)
    return compiled[key](*[a for a in args if a is not None])

  return call
