"""Which examples a run trains on, and in what order: all derived from its id.

A heldout run is identified by (subset ratio, run id). Everything random
about it is derived from those two numbers, so a run can be recomputed,
resumed or trained on another machine (or K at a time) with the same result:
  * `run_seed(ratio, run_id)`: a 31-bit seed from SHA-256 of the ratio's
    folder name and the id;
  * `draw_subset`: `floor(ratio * num_train)` distinct training example ids,
    `np.random.RandomState(run_seed).choice(..., replace=False)`, sorted;
  * `epoch_order`: the order of the subset in each epoch,
    `np.random.RandomState(derived seed).permutation`;
  * `init_seed`: the `tf.random.set_seed` value for the model's initial
    weights.
NumPy keeps the streams of the legacy `RandomState` fixed across versions.
"""

import hashlib
import math
from typing import Iterable, List

import numpy as np

from heldout.readers import layout


def _hash31(*parts):
  text = ":".join(str(p) for p in parts).encode("utf-8")
  return int.from_bytes(hashlib.sha256(text).digest()[:4], "big") & 0x7FFFFFFF


def run_seed(subset_ratio, run_id) -> int:
  """The seed of run `run_id` at `subset_ratio` (31-bit int)."""
  if int(run_id) < 0:
    raise ValueError("`run_id` must be non-negative, got {}".format(run_id))
  return _hash31("heldout-run", layout.ratio_dirname(subset_ratio), int(run_id))


def init_seed(seed) -> int:
  """Seed for the model's initial weights of a run with seed `seed`."""
  return _hash31("init", int(seed))


def subset_size(num_train, subset_ratio) -> int:
  """`floor(subset_ratio * num_train)` (at least 1), as upstream."""
  layout.ratio_dirname(subset_ratio)  # validates the ratio
  return max(1, int(math.floor(num_train * float(subset_ratio) + 1e-9)))


def draw_subset(num_train, subset_ratio, run_id) -> np.ndarray:
  """The training example ids of run `run_id`: sorted int64 [subset_size]."""
  rng = np.random.RandomState(run_seed(subset_ratio, run_id))
  ids = rng.choice(num_train, size=subset_size(num_train, subset_ratio),
                   replace=False)
  return np.sort(ids).astype(np.int64)


def removed_ids(num_train, subset) -> np.ndarray:
  """Training ids not in `subset`, ascending."""
  mask = np.ones(num_train, dtype=bool)
  mask[subset] = False
  return np.flatnonzero(mask).astype(np.int64)


def epoch_order(seed, epoch, n) -> np.ndarray:
  """Permutation of range(n) giving the subset order of `epoch` [n] int64."""
  rng = np.random.RandomState(_hash31("order", int(seed), int(epoch)))
  return rng.permutation(n).astype(np.int64)


def augment_seed(seed) -> int:
  """Base seed of a run's stateless augmentation."""
  return _hash31("augment", int(seed))


def parse_runs(spec: str) -> List[int]:
  """The run ids of `--runs` ("a:b" for a <= id < b, "n", "a:b,c,d:e"), sorted.

  The grammar of `heldout.readers.layout.parse_run_ranges`, less open ends:
  training needs to know when to stop.

  Raises:
    ValueError: naming the malformed part, an open end, or an empty spec.
  """
  ranges = layout.parse_run_ranges(spec)
  if ranges is None:
    raise ValueError("`runs` must name run ids, e.g. 0:256, got {!r}".format(
        spec))
  out = set()
  for lo, hi in ranges:
    if hi == layout.OPEN_END:
      raise ValueError("`runs`: '{}:' has no end; training needs ranges "
                       "a:b, e.g. {}:{}".format(lo, lo, lo + 100))
    out.update(range(lo, hi))
  return sorted(out)


def select_runs(run_ids: Iterable[int], num_workers: int = 1,
                worker_index: int = 0) -> List[int]:
  """The runs of one worker: run r goes to worker `r % num_workers`.

  Raises:
    ValueError: if `num_workers < 1` or `worker_index` not in [0, num_workers).
  """
  if num_workers < 1:
    raise ValueError("`num_workers` must be positive, got {}".format(
        num_workers))
  if not 0 <= worker_index < num_workers:
    raise ValueError("`worker_index` must be in [0, {}), got {}".format(
        num_workers, worker_index))
  return [r for r in run_ids if r % num_workers == worker_index]
