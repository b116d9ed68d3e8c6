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


def sum_replicas(parts):
  """The elementwise sum of the replicas' results (same structures)."""
  return tf.nest.map_structure(lambda *x: tf.add_n(list(x)), *parts)


def concat_replicas(axis: int):
  """Combines the replicas' results by concatenating along `axis`, in order."""
  return lambda parts: tf.nest.map_structure(
      lambda *x: tf.concat(list(x), axis), *parts)


def _replica_part(tensor):
  """The rows [i n / R, (i + 1) n / R) of `tensor` for replica i of R."""
  context = tf.distribute.get_replica_context()
  replicas = context.num_replicas_in_sync
  replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
  size = tf.shape(tensor, out_type=tf.int64)[0]
  return tensor[size * replica // replicas:
                size * (replica + 1) // replicas]


def compile_step(fn,
                 distribute_strategy: Optional[tf.distribute.Strategy] = None,
                 combine=None, num_batch_args: Optional[int] = None):
  """`fn(*tensors_or_None)` compiled once per pattern of None arguments.

  The batch dimension of every tensor argument is left unknown, so batches
  of any size (the last one is smaller) share one trace; autograph is off
  (the steps have no data-dependent Python control flow), which makes
  tracing a model several times faster.

  Under a `distribute_strategy` (`devices.make_strategy`), each call
  splits the batch arguments into consecutive parts, one per replica (sizes
  differing by at most one, possibly empty), runs `fn` on each part on its
  replica's device (`strategy.run`; the model's variables are read where
  they are) and returns `combine` of the replicas' results in replica
  order.

  Args:
    fn: a step taking tensors [batch, ...] (or None) and returning tensors.
    distribute_strategy: None (the default device) or a
      `tf.distribute.Strategy`.
    combine: with `distribute_strategy`, a function of the list of the
      replicas' results (`sum_replicas`, `concat_replicas(axis)`).
    num_batch_args: with `distribute_strategy`, the leading arguments that
      are split (the others, e.g. query gradients, go whole to every
      replica); None: all.

  Returns:
    The compiled callable.

  Raises:
    ValueError: for a `distribute_strategy` without `combine`.
  """
  strategy = distribute_strategy
  if strategy is not None and combine is None:
    raise ValueError("a step under a strategy needs `combine`")
  compiled = {}

  def call(*args):
    key = tuple(a is None for a in args)
    if key not in compiled:
      specs = [tf.TensorSpec([None] + a.shape[1:].as_list(), a.dtype)
               for a in args if a is not None]
      split = [num_batch_args is None or i < num_batch_args
               for i, a in enumerate(args) if a is not None]

      def on_replica(*tensors, key=key, split=tuple(split)):
        tensors = [_replica_part(t) if s else t
                   for t, s in zip(tensors, split)]
        given = iter(tensors)
        return fn(*[None if absent else next(given) for absent in key])

      def inner(*tensors, key=key):
        if strategy is None:
          given = iter(tensors)
          return fn(*[None if absent else next(given) for absent in key])
        results = strategy.run(on_replica, args=tensors)
        return combine(list(strategy.experimental_local_results(results)))

      compiled[key] = tf.function(inner, input_signature=specs,
                                  autograph=False)
    return compiled[key](*[a for a in args if a is not None])

  return call
