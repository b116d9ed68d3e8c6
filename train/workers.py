"""Which share of a job this process does: from the flags or the scheduler.

A job of many runs (heldout runs, scoring seeds, SAMIS pairs) is split
across workers with no coordinator: item r goes to worker r % W
(`train.subsets.select_runs`). Each worker learns (W, I) from

1. the flags `--num_workers` / `--worker_index`, when given; else
2. a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` is I; W comes from
   `--num_workers` or `HELDOUT_NUM_WORKERS` (a Job does not expose its
   `completions` to its pods; `deploy/kubernetes/heldout-indexed-job.yaml`
   passes it as a flag);
3. a Slurm job array: I = `SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`,
   W = `SLURM_ARRAY_TASK_COUNT` (arrays with a step, `--array=0-30:2`, are
   refused: their ids are not consecutive);
4. `TF_CONFIG`, when the binary takes it as a share of the items
   (`tf_config_shards`: `//train:scores` and `//train:samis` always,
   `//train:heldout --tf_config=shard`): W = the chief and worker tasks it
   names, I = this task's place among them (the chief first);
5. none of them: one worker (W = 1, I = 0).

In `//train:heldout` `TF_CONFIG` means by default synchronous multi-worker
training of each model (`train/multi_worker.py`), not a share of the runs.
"""

import dataclasses
import json
import os
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Worker:
  """This process's share: worker `index` of `count`, and where that came from."""
  count: int
  index: int
  source: str

  def describe(self) -> str:
    return "worker {} of {} ({})".format(self.index, self.count, self.source)


def _int(environ, name):
  value = environ.get(name)
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ValueError("environment variable {}={!r} is not an integer".format(
        name, value)) from None


def _tf_config_worker(value) -> Optional[Worker]:
  """(W, I) of the training tasks a `TF_CONFIG` names; None if it names none."""
  try:
    config = json.loads(value)
    cluster, task = config["cluster"], config["task"]
    tasks = [(job, i) for job in ("chief", "worker")
             for i in range(len(cluster.get(job, ())))]
    mine = (task["type"], int(task["index"]))
  except (ValueError, KeyError, TypeError, AttributeError):
    raise ValueError(
        "TF_CONFIG must be JSON with \"cluster\" (job -> addresses) and "
        "\"task\" ({{\"type\": ..., \"index\": ...}}), got {!r}".format(
            value)) from None
  if not tasks:
    return None
  if mine not in tasks:
    raise ValueError("TF_CONFIG's task {}:{} is not one of its cluster's chief "
                     "and worker tasks ({})".format(
                         mine[0], mine[1], ", ".join(
                             "{}:{}".format(*t) for t in tasks)))
  return Worker(len(tasks), tasks.index(mine),
                "TF_CONFIG: task {}:{} of {} chief/worker tasks".format(
                    mine[0], mine[1], len(tasks)))


def resolve_worker(num_workers: Optional[int] = None,
                   worker_index: Optional[int] = None,
                   environ: Optional[Mapping[str, str]] = None,
                   tf_config_shards: bool = False) -> Worker:
  """(W, I) from the flags, else the scheduler's environment (module doc).

  Args:
    num_workers: `--num_workers`, or None.
    worker_index: `--worker_index`, or None.
    environ: the environment (`os.environ` if None).
    tf_config_shards: whether a `TF_CONFIG` shares the items among its tasks.

  Raises:
    ValueError: naming the flag or variable, for inconsistent values.
  """
  environ = os.environ if environ is None else environ
  if worker_index is not None:
    count = 1 if num_workers is None else num_workers
    worker = Worker(count, worker_index, "--num_workers/--worker_index")
  elif "JOB_COMPLETION_INDEX" in environ:
    if num_workers is None and "HELDOUT_NUM_WORKERS" not in environ:
      raise ValueError(
          "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the "
          "number of workers is not: pass --num_workers=<the Job's "
          "completions> (or set HELDOUT_NUM_WORKERS)")
    count = (num_workers if num_workers is not None
             else _int(environ, "HELDOUT_NUM_WORKERS"))
    worker = Worker(count, _int(environ, "JOB_COMPLETION_INDEX"),
                    "Kubernetes Indexed Job: JOB_COMPLETION_INDEX")
  elif "SLURM_ARRAY_TASK_ID" in environ:
    task, first = (_int(environ, "SLURM_ARRAY_TASK_ID"),
                   _int(environ, "SLURM_ARRAY_TASK_MIN"))
    count = _int(environ, "SLURM_ARRAY_TASK_COUNT")
    last = (_int(environ, "SLURM_ARRAY_TASK_MAX")
            if "SLURM_ARRAY_TASK_MAX" in environ else first + count - 1)
    if last - first + 1 != count:
      raise ValueError(
          "Slurm array ids {}..{} with {} tasks are not consecutive (a step "
          "in --array?); use --array=<first>-<last> or pass --num_workers "
          "and --worker_index".format(first, last, count))
    if num_workers is not None and num_workers != count:
      raise ValueError("--num_workers={} but the Slurm array has {} tasks "
                       "(SLURM_ARRAY_TASK_COUNT)".format(num_workers, count))
    worker = Worker(count, task - first,
                    "Slurm array: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN")
  elif (tf_config_shards and environ.get("TF_CONFIG", "").strip() and
        _tf_config_worker(environ["TF_CONFIG"]) is not None):
    worker = _tf_config_worker(environ["TF_CONFIG"])
    if num_workers is not None and num_workers != worker.count:
      raise ValueError("--num_workers={} but {}".format(num_workers,
                                                        worker.source))
  else:
    worker = Worker(1 if num_workers is None else num_workers, 0,
                    "no scheduler: one worker" if num_workers in (None, 1)
                    else "--num_workers, index 0")
  if worker.count < 1:
    raise ValueError("the number of workers must be positive, got {} ({})"
                     .format(worker.count, worker.source))
  if not 0 <= worker.index < worker.count:
    raise ValueError("worker index {} is not in [0, {}) ({})".format(
        worker.index, worker.count, worker.source))
  return worker


def define_flags(what: str = "items"):
  """Defines a binary's `--num_workers` and `--worker_index` flags.

  Args:
    what: what the job's items are, for the help ("runs", "seeds").

  Returns:
    (num_workers, worker_index) `FlagHolder`s, None when not given: pass
    their values to `resolve_worker`.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from heldout import cli  # pylint: disable=g-import-not-at-top
  module = cli.calling_module_name()
  num_workers = flags.DEFINE_integer(
      "num_workers", None,
      "Machines sharing the {} (default: from the scheduler, "
      "train/workers.py: a Kubernetes Indexed Job, a Slurm array or "
      "TF_CONFIG; else 1).".format(what), module_name=module)
  worker_index = flags.DEFINE_integer(
      "worker_index", None,
      "This machine's index in [0, num_workers): it takes item r of the {} "
      "if r % num_workers == worker_index (default: from the scheduler: "
      "JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, TF_CONFIG; else 0).".format(
          what), module_name=module)
  return num_workers, worker_index
