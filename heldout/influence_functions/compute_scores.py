"""Stage 5: pairwise scores and self-influence.

  score(q, n) = sum over layers of <P(grad measurement(q)), grad loss(n)>
  self(n)     = sum over layers of <P(grad loss(n)), grad loss(n)>

(Kronfluence 1.0.1: no minus sign, no 1/N; the training loss is the
cross-entropy with the true label; `self_measurement` puts the measurement
on the preconditioned side of self-influence.) The total is the sum of the
per-layer scores, which are returned too.

Pairwise scores come dense ([queries, train]) or, with `top_k`, streamed: the
training examples are scored batch by batch and only the k largest of each
query are kept (memory queries x (k + batch), whatever the number of
training examples). The queries' preconditioned gradients come in chunks
(`InfluenceFunctions`'s `query_batch_size`), each scored by its own pass over
the training examples, so memory holds one chunk, not every query's
gradients (Q x parameters). Ranking, as the heldout influence's
(`heldout.estimators.influence_estimator`): larger first, equal values by
the smaller training id, NaN last; dense and top-k compute every value with
the same operations, so they agree exactly on the entries both hold.
"""

import collections.abc
import dataclasses
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from heldout.influence_functions import arguments
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import passes
from heldout.influence_functions import precondition as precondition_lib
from heldout.influence_functions import tracked_modules
from heldout.models import layer_calls


@dataclasses.dataclass(frozen=True)
class PairwiseScores:
  """Scores of training examples for query examples.

  Attributes:
    query_index: [Q] int64 query example ids (rows).
    train_index: [N] int64 training example ids (columns of `values`).
    module_names: [M] the tracked layers, in the order of `per_module`.
    values: [Q, N] dense scores, or None (top-k).
    per_module: [M, Q, N] per-layer scores (sum over M = `values`), or None.
    topk_values: [Q, k] the k largest scores of each query, or None (dense).
    topk_indices: [Q, k] int64 their training example ids, or None.
  """
  query_index: np.ndarray
  train_index: np.ndarray
  module_names: Sequence[str]
  values: Optional[np.ndarray] = None
  per_module: Optional[np.ndarray] = None
  topk_values: Optional[np.ndarray] = None
  topk_indices: Optional[np.ndarray] = None

  def arrays(self) -> Mapping[str, np.ndarray]:
    out = dict(query_index=self.query_index, train_index=self.train_index,
               module_names=np.array(list(self.module_names)))
    for key in ("values", "per_module", "topk_values", "topk_indices"):
      value = getattr(self, key)
      if value is not None:
        out[key] = value
    return out


def _layer_queries(preconditioned, i, expand):
  """(block [Q, d_out, d_in],) or the factors (left, right) of layer i.

  `expand`: rebuild compressed blocks whole (for convolutions, whose
  example gradients sum over locations: <U V^T, G> through the factors
  would cost r times the dense product).
  """
  if precondition_lib.query_key(i) in preconditioned:
    return (preconditioned[precondition_lib.query_key(i)],)
  left = preconditioned[precondition_lib.query_left_key(i)]
  right = preconditioned[precondition_lib.query_right_key(i)]
  if expand:
    return (np.einsum("qor,qir->qoi", left, right),)
  return left, right


def _layer_scores(queries, a, s):
  """[Q, batch] <query block, example gradient> of one layer."""
  if len(queries) == 1:
    (left,) = queries
    return tf.einsum("qoi,boi->qb", left,
                     tracked_modules.per_example_gradients(a, s))
  # A linear layer (one location): <U V^T, s a^T> = sum_r (s . U_r)(a . V_r),
  # no gradient block formed.
  left, right = queries
  return tf.einsum("qor,bo,qir,bi->qb", left, s[:, 0], right, a[:, 0])


def _merge_topk(best_keys, best_ids, keys, ids, k):
  """The k best of the running and the new entries: larger key, then smaller id."""
  keys = np.concatenate([best_keys, keys], axis=1)
  ids = np.concatenate([best_ids, ids], axis=1)
  by_id = np.argsort(ids, axis=1, kind="stable")
  keys = np.take_along_axis(keys, by_id, axis=1)
  ids = np.take_along_axis(ids, by_id, axis=1)
  by_key = np.argsort(-keys, axis=1, kind="stable")[:, :k]
  return (np.take_along_axis(keys, by_key, axis=1),
          np.take_along_axis(ids, by_key, axis=1))


def compute_pairwise_scores(
    model, tracked: Sequence[tracked_modules.TrackedModule],
    train: examples_lib.Examples,
    preconditioned: Union[Mapping[str, np.ndarray],
                          Iterable[Mapping[str, np.ndarray]]],
    query_index, dtype: str = "float32", top_k: Optional[int] = None,
    per_module: bool = False, batch_size: int = passes.DEFAULT_BATCH_SIZE,
    progress: bool = True,
    distribute_strategy: Optional[tf.distribute.Strategy] = None
) -> PairwiseScores:
  """Scores of every training example for every preconditioned query.

  The queries come whole or in chunks: each chunk is scored by its own pass
  over the training examples, so memory holds one chunk's preconditioned
  gradients (a generator computes each when it is needed) besides the
  output ([Q, N] dense, [Q, k] top-k). Every value is computed with the
  same operations whatever the chunking.

  Args:
    model: the model.
    tracked: its `find_tracked_modules`.
    train: the training examples (their true labels).
    preconditioned: `precondition.precondition_queries`'s arrays of every
      query, or an iterable of such arrays for consecutive chunks of the
      queries, in `query_index` order.
    query_index: [Q] the queries' example ids.
    dtype: of the products.
    top_k: None (dense) or k in [1, N]: keep the k largest per query.
    per_module: also return the per-layer scores (dense only).
    batch_size: training examples per batch.
    progress: show a progress bar.
    distribute_strategy: None (the default device) or a
      `tf.distribute.Strategy` (`devices.make_strategy`): each batch split
      across its replicas.

  Returns:
    `PairwiseScores`.

  Raises:
    ValueError: if `top_k` is out of range or given with `per_module`, or
      the chunks do not hold exactly Q queries laid out alike.
  """
  n = len(train)
  if top_k is not None and not 1 <= top_k <= n:
    raise ValueError("`top_k` must be in [1, {}] (training examples), got {}"
                     .format(n, top_k))
  if top_k is not None and per_module:
    raise ValueError("per-module scores are dense; ask for them without "
                     "`top_k`")
  tf_dtype = passes.tf_dtype(dtype)
  query_index = np.asarray(query_index, np.int64)
  num_queries = len(query_index)
  chunked = not isinstance(preconditioned, collections.abc.Mapping)
  chunks = preconditioned if chunked else [preconditioned]
  values = layers = best_values = best_ids = None
  if top_k is None:
    values = np.zeros((num_queries, n), dtype)
    if per_module:
      layers = np.zeros((len(tracked), num_queries, n), dtype)
  else:
    best_values = np.zeros((num_queries, top_k), dtype)
    best_ids = np.zeros((num_queries, top_k), np.int64)
  step = structure = None
  first = 0
  for chunk in chunks:
    queries = [_layer_queries(chunk, i, expand=t.kind != layer_calls.LINEAR)
               for i, t in enumerate(tracked)]
    if structure is None:
      structure = [len(q) for q in queries]

      def step(images, labels, *flat, structure=tuple(structure)):
        a, s, _ = tracked_modules.layer_rows(model, tracked, images, labels,
                                             dtype=tf_dtype)
        flat = iter(flat)
        scores = [_layer_scores([next(flat) for _ in range(size)], x, d)
                  for size, x, d in zip(structure, a, s[0])]
        scores = tf.stack(scores)
        return scores, tf.reduce_sum(scores, axis=0)

      # Queries are arguments, not captures: one trace serves every chunk.
      step = passes.compile_step(step, distribute_strategy,
                                 passes.concat_replicas(-1), num_batch_args=2)
    elif structure != [len(q) for q in queries]:
      raise ValueError("query chunks must be compressed alike; chunk at "
                       "query {} is not".format(first))
    flat = [tf.constant(x, tf_dtype) for q in queries for x in q]
    rows = int(flat[0].shape[0])
    stop_row = first + rows
    if stop_row > num_queries:
      raise ValueError("the preconditioned chunks hold more than the {} "
                       "queries of `query_index`".format(num_queries))
    desc = "pairwise scores" + (" (queries {}:{} of {})".format(
        first, stop_row, num_queries) if chunked else "")
    best_keys = np.zeros((rows, 0), dtype)
    chunk_ids = np.zeros((rows, 0), np.int64)
    for start, images, labels, _ in passes.batches(model, train, batch_size,
                                                   progress, desc):
      batch_layers, batch_total = step(images, labels, *flat)
      batch_total = batch_total.numpy()
      stop = start + batch_total.shape[1]
      if top_k is None:
        values[first:stop_row, start:stop] = batch_total
        if per_module:
          layers[:, first:stop_row, start:stop] = batch_layers.numpy()
      else:
        keys = np.where(np.isnan(batch_total), -np.inf, batch_total)
        ids = np.broadcast_to(train.index[start:stop], keys.shape)
        best_keys, chunk_ids = _merge_topk(best_keys, chunk_ids, keys, ids,
                                           top_k)
    if top_k is not None:
      # Values back from the keys (NaN was ranked as -inf).
      best_values[first:stop_row] = np.where(np.isneginf(best_keys), np.nan,
                                             best_keys)
      best_ids[first:stop_row] = chunk_ids
    del flat, queries, chunk
    first = stop_row
  if first != num_queries:
    raise ValueError("the preconditioned chunks hold {} queries, "
                     "`query_index` {}".format(first, num_queries))
  return PairwiseScores(
      query_index=query_index, train_index=train.index,
      module_names=[t.name for t in tracked], values=values,
      per_module=layers, topk_values=best_values, topk_indices=best_ids)


@dataclasses.dataclass(frozen=True)
class SelfScores:
  """Self-influence of training examples.

  Attributes:
    index: [N] int64 example ids.
    values: [N] the total.
    per_module: [M, N] per-layer self-influence (sum over M = `values`).
    module_names: [M] the tracked layers.
  """
  index: np.ndarray
  values: np.ndarray
  per_module: np.ndarray
  module_names: Sequence[str]


def compute_self_scores(model, tracked: Sequence[tracked_modules.TrackedModule],
                        examples: examples_lib.Examples,
                        preconditioner: precondition_lib.Preconditioner,
                        measurement: str = arguments.CROSS_ENTROPY,
                        self_measurement: bool = False,
                        dtype: str = "float32",
                        batch_size: int = passes.DEFAULT_BATCH_SIZE,
                        progress: bool = True,
                        distribute_strategy: Optional[
                            tf.distribute.Strategy] = None) -> SelfScores:
  """<P(g_n), g_n> for every example, per layer and in total.

  Args:
    model: the model.
    tracked: its `find_tracked_modules`.
    examples: the examples (their true labels).
    preconditioner: the fitted `Preconditioner`.
    measurement: with `self_measurement`, the preconditioned side's
      measurement.
    self_measurement: precondition the measurement's gradient instead of the
      loss's.
    dtype: of the products.
    batch_size: examples per batch.
    progress: show a progress bar.
    distribute_strategy: None (the default device) or a
      `tf.distribute.Strategy` (`devices.make_strategy`): each batch split
      across its replicas.

  Returns:
    `SelfScores`.
  """
  tf_dtype = passes.tf_dtype(dtype)
  kinds = ((arguments.CROSS_ENTROPY, measurement) if self_measurement
           else (arguments.CROSS_ENTROPY,))

  def step(images, labels):
    a, s, _ = tracked_modules.layer_rows(model, tracked, images, labels,
                                         loss_kinds=kinds, dtype=tf_dtype)
    out = []
    for i, x in enumerate(a):
      g = tracked_modules.per_example_gradients(x, s[0][i])
      q = g if len(kinds) == 1 else tracked_modules.per_example_gradients(
          x, s[1][i])
      out.append(tf.reduce_sum(preconditioner.apply(i, q) * g, axis=[1, 2]))
    layers = tf.stack(out)
    return layers, tf.reduce_sum(layers, axis=0)

  step = passes.compile_step(step, distribute_strategy,
                             passes.concat_replicas(-1))
  layers = np.zeros((len(tracked), len(examples)), dtype)
  values = np.zeros(len(examples), dtype)
  for start, images, labels, _ in passes.batches(model, examples, batch_size,
                                                 progress, "self-influence"):
    batch_layers, batch_total = step(images, labels)
    stop = start + batch_total.shape[0]
    layers[:, start:stop] = batch_layers.numpy()
    values[start:stop] = batch_total.numpy()
  return SelfScores(index=examples.index, values=values, per_module=layers,
                    module_names=[t.name for t in tracked])
