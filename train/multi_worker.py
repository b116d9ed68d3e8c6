"""One model trained across several worker processes.

A cluster starts one process per worker with the same program and a
`TF_CONFIG` environment variable naming every worker and this process's
task, e.g. for the second of two workers:

    TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]},
                "task": {"type": "worker", "index": 1}}'

`make_strategy()` then returns a `MultiWorkerReplicator`: a
`tf.distribute.MultiWorkerMirroredStrategy` (collective all-reduce over all
workers' devices) whose `scope()` creates replica-local variables, as
`snt.distribute.Replicator` does for one machine. Sonnet modules and its
optimizers update their variables inside the replica function
(`variable.assign_sub` in replica context); a mirrored variable refuses that,
while a replica-local one (synchronization ON_READ, aggregation
ONLY_FIRST_REPLICA) takes it, and since every replica applies the same
all-reduced gradient, every copy holds the same value. Reading one outside a
replica (checkpoints, evaluation) takes the first local copy, with no
collective.

The chief (the "chief" task, else worker 0) is the only one that writes;
`is_chief` says which process this is, `broadcast_from_chief` gives every
worker the chief's values (its resume decisions and restored state), so the
other workers never read the output folder.
"""

import contextlib
import json
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

TF_CONFIG = "TF_CONFIG"
_TRAINING_JOBS = ("chief", "worker")


def _replica_local_creator(next_creator, **kwargs):
  # Sonnet's `replica_local_creator` (sonnet/src/distribute/replicator.py),
  # which Sonnet does not export: variables default to one copy per replica,
  # each updated by its own replica.
  if kwargs["synchronization"] == tf.VariableSynchronization.AUTO:
    kwargs["synchronization"] = tf.VariableSynchronization.ON_READ
    if kwargs["aggregation"] == tf.VariableAggregation.NONE:
      kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
    if kwargs["trainable"] is None:
      kwargs["trainable"] = True
  return next_creator(**kwargs)


class MultiWorkerReplicator(tf.distribute.MultiWorkerMirroredStrategy):
  """`MultiWorkerMirroredStrategy` with Sonnet's replica-local variables.

  What `snt.distribute.Replicator` is to `tf.distribute.MirroredStrategy`,
  across workers: inside `scope()` new variables are replica-local, so a
  Sonnet module's update in the replica function is allowed, and each
  replica applies the identical all-reduced update itself.
  """

  @contextlib.contextmanager
  def scope(self):
    with contextlib.ExitStack() as stack:
      stack.enter_context(super().scope())
      stack.enter_context(tf.variable_creator_scope(_replica_local_creator))
      yield


def parse_tf_config(value: Optional[str] = None) -> dict:
  """`TF_CONFIG` (the environment's if None) as a dict; {} when unset.

  Raises:
    ValueError: if it is not a JSON object with a "cluster" and a "task".
  """
  if value is None:
    value = os.environ.get(TF_CONFIG, "")
  if not value.strip():
    return {}
  try:
    config = json.loads(value)
  except ValueError as e:
    raise ValueError("`TF_CONFIG` is not JSON ({}): {!r}".format(e, value))
  if (not isinstance(config, dict) or
      not isinstance(config.get("cluster"), dict) or
      not isinstance(config.get("task"), dict)):
    raise ValueError(
        "`TF_CONFIG` must be a JSON object with \"cluster\" (job -> "
        "addresses) and \"task\" ({{\"type\", \"index\"}}), got {!r}".format(
            value))
  return config


def num_training_tasks(tf_config: Optional[dict] = None) -> int:
  """Chief and worker tasks in `tf_config` (the environment's if None)."""
  config = parse_tf_config() if tf_config is None else tf_config
  cluster = config.get("cluster", {})
  return sum(len(cluster.get(job, ())) for job in _TRAINING_JOBS)


def is_multi_worker_environment(tf_config: Optional[dict] = None) -> bool:
  """Whether `TF_CONFIG` names more than one chief or worker task."""
  return num_training_tasks(tf_config) > 1


_STRATEGY = []


def make_strategy() -> MultiWorkerReplicator:
  """The process's `MultiWorkerReplicator`, from `TF_CONFIG`.

  Create it before any other TensorFlow op runs: it configures collective
  ops and starts this worker's server, which TensorFlow allows only at
  startup. Every worker must create it; the call blocks until all of them
  have. One per process (a second would start a second server).
  """
  if not _STRATEGY:
    _STRATEGY.append(MultiWorkerReplicator())
  return _STRATEGY[0]


def is_multi_worker(strategy) -> bool:
  """Whether `strategy` spans more than one worker process."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  if strategy.cluster_resolver is None:
    return False
  return _num_workers(strategy) > 1


def is_chief(strategy) -> bool:
  """Whether this process writes: the chief, worker 0, or a lone process."""
  return bool(strategy.extended.should_checkpoint)


def broadcast_from_chief(strategy, values: Sequence) -> list:
  """The chief's `values` on every worker.

  Every worker must call it with values of the same shapes and dtypes (a
  collective). Values are carried as float64, which holds float32 and
  integers below 2**53 exactly.

  Args:
    strategy: the training strategy.
    values: tensors, variables or arrays.

  Returns:
    List of numpy arrays: the chief's values, with the dtypes of `values`.
  """
  arrays = [np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            for v in values]
  if not is_multi_worker(strategy):
    return arrays
  flat = np.concatenate([a.reshape(-1).astype(np.float64) for a in arrays]
                        + [np.zeros(0)])
  chief = _rows_from_workers(strategy, flat)[0]
  out, start = [], 0
  for a in arrays:
    out.append(chief[start:start + a.size].reshape(a.shape).astype(a.dtype))
    start += a.size
  return out


def allgather_workers(strategy, values: Sequence) -> list:
  """Every worker's `values`, in worker order (the chief's first).

  Every worker must call it with as many values, of the same ranks and
  dtypes; their lengths (first dimension) may differ between workers. Values
  are carried as float64, which holds float32 and integers below 2**53
  exactly.

  Args:
    strategy: the training strategy.
    values: numpy arrays, [n_i, ...] on this worker.

  Returns:
    One list per worker, of numpy arrays with the dtypes of `values`.
  """
  values = [np.asarray(v) for v in values]
  if not is_multi_worker(strategy):
    return [values]
  workers = _num_workers(strategy)
  lengths = np.array([len(v) for v in values], np.int64)
  all_lengths = _rows_from_workers(strategy, lengths).astype(np.int64)
  longest = all_lengths.max(axis=0)
  padded = []
  for v, n in zip(values, longest):
    flat = v.reshape(len(v), -1).astype(np.float64)
    padded.append(np.pad(flat, [(0, n - len(v)), (0, 0)]).reshape(-1))
  rows = _rows_from_workers(strategy, np.concatenate(padded))
  out = []
  for w in range(workers):
    parts, start = [], 0
    for v, n in zip(values, longest):
      size = int(n) * int(np.prod(v.shape[1:], dtype=np.int64))
      part = rows[w, start:start + size].reshape((int(n),) + v.shape[1:])
      parts.append(part[:all_lengths[w][len(parts)]].astype(v.dtype))
      start += size
    out.append(parts)
  return out


def _num_workers(strategy) -> int:
  spec = strategy.cluster_resolver.cluster_spec().as_dict()
  return sum(len(spec.get(job, ())) for job in _TRAINING_JOBS)


_ROWS_FNS = {}


def _rows_from_workers(strategy, row):
  """[workers, len(row)] float64: row w is worker w's `row`."""
  key = id(strategy)
  if key not in _ROWS_FNS:
    workers = _num_workers(strategy)
    local = strategy.num_replicas_in_sync // workers

    def replica_fn(row):
      ctx = tf.distribute.get_replica_context()
      replica = ctx.replica_id_in_sync_group
      # The first local replica of each worker fills the worker's row, the
      # others contribute zeros: the sum holds every row exactly (tf.where,
      # not a product with 0/1: a NaN stays where it was).
      mine = tf.logical_and(tf.equal(tf.range(workers), replica // local),
                            tf.equal(replica % local, 0))
      return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.where(
          mine[:, None], row[None, :], tf.zeros_like(row)[None, :]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float64)])
    def rows_fn(row):
      return strategy.run(replica_fn, args=(row,))

    # The strategy is kept with its function, so its id stays unique.
    _ROWS_FNS[key] = (strategy, rows_fn)
  rows = _ROWS_FNS[key][1](tf.constant(np.asarray(row, np.float64)))
  return strategy.experimental_local_results(rows)[0].numpy()
