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
4. none of them: one worker (W = 1, I = 0).

`TF_CONFIG` is not read here: in `//train:heldout` it means synchronous
multi-worker training of each model (`train/multi_worker.py`), not a share
of the runs.
"""

import dataclasses
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


def resolve_worker(num_workers: Optional[int] = None,
                   worker_index: Optional[int] = None,
                   environ: Optional[Mapping[str, str]] = None) -> Worker:
  """(W, I) from the flags, else the scheduler's environment (module doc).

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
