"""Test helpers of the estimators (not a public API).

Slow, obviously correct Python loops over the definitions, random heldout runs
with examples in every run and in none, and synthetic experiment directories
in the released layout with shuffled evaluation orders.
"""

import math
import os

import numpy as np

from heldout.readers import aux_arrays
from heldout.readers import layout


def _mean(values):
  return sum(values) / len(values) if values else math.nan


def _adjusted_variance_of_mean(values):
  """Agresti-Caffo: add one success and one failure, then p(1-p)/n."""
  p = (sum(values) + 1.0) / (len(values) + 2.0)
  return p * (1.0 - p) / (len(values) + 2.0)


def _difference_se(inside, outside):
  """Agresti-Caffo SE of mean(inside) - mean(outside); NaN if one is empty."""
  if not inside or not outside:
    return math.nan
  return math.sqrt(_adjusted_variance_of_mean(inside) +
                   _adjusted_variance_of_mean(outside))


def memorization_loop(mask, correct):
  """(values, se, n_in, n_out), each [n_train], by a loop over the definition."""
  num_runs, n = mask.shape
  values, se, n_in, n_out = [], [], [], []
  for i in range(n):
    inside = [float(correct[r, i]) for r in range(num_runs) if mask[r, i]]
    outside = [float(correct[r, i]) for r in range(num_runs) if not mask[r, i]]
    values.append(_mean(inside) - _mean(outside))
    se.append(_difference_se(inside, outside))
    n_in.append(len(inside))
    n_out.append(len(outside))
  return np.array(values), np.array(se), np.array(n_in), np.array(n_out)


def _influence_sides(mask, correct_test, j, i):
  num_runs = mask.shape[0]
  inside = [float(correct_test[r, j]) for r in range(num_runs) if mask[r, i]]
  outside = [float(correct_test[r, j]) for r in range(num_runs)
             if not mask[r, i]]
  return inside, outside


def influence_loop(mask, correct_test):
  """[n_test, n_train] float64 influence, by a loop over the definition."""
  n_train = mask.shape[1]
  n_test = correct_test.shape[1]
  out = np.empty((n_test, n_train))
  for j in range(n_test):
    for i in range(n_train):
      inside, outside = _influence_sides(mask, correct_test, j, i)
      out[j, i] = _mean(inside) - _mean(outside)
  return out


def influence_se_loop(mask, correct_test):
  """[n_test, n_train] float64 Agresti-Caffo SE of the influence, by a loop:
  the memorization SE with test example j's correctness in place of i's."""
  n_train = mask.shape[1]
  n_test = correct_test.shape[1]
  out = np.empty((n_test, n_train))
  for j in range(n_test):
    for i in range(n_train):
      out[j, i] = _difference_se(*_influence_sides(mask, correct_test, j, i))
  return out


def consistency_loop(mask, correct):
  """(values, se, n_in, n_out), each [n_train], by a loop over the definition.

  se is the Agresti-Caffo SE of the held-out mean, NaN without held-out runs.
  """
  num_runs, n = mask.shape
  values, se, n_in, n_out = [], [], [], []
  for i in range(n):
    outside = [float(correct[r, i]) for r in range(num_runs) if not mask[r, i]]
    values.append(_mean(outside))
    se.append(math.sqrt(_adjusted_variance_of_mean(outside)) if outside
              else math.nan)
    n_in.append(num_runs - len(outside))
    n_out.append(len(outside))
  return np.array(values), np.array(se), np.array(n_in), np.array(n_out)


def cscore_loop(by_ratio):
  """(values, se, n_ratios), each [n_train], from per-ratio loops.

  Args:
    by_ratio: list of (values, se) pairs of [n_train] arrays, one per ratio
      (as `consistency_loop` returns them).
  """
  n = len(by_ratio[0][0])
  values, se, n_ratios = [], [], []
  for i in range(n):
    defined = [(v[i], s[i]) for v, s in by_ratio if not math.isnan(v[i])]
    n_ratios.append(len(defined))
    if defined:
      values.append(sum(v for v, _ in defined) / len(defined))
      se.append(math.sqrt(sum(s * s for _, s in defined)) / len(defined))
    else:
      values.append(math.nan)
      se.append(math.nan)
  return np.array(values), np.array(se), np.array(n_ratios)


def topk_sort(values, k):
  """Top-k of each row by a full Python sort: larger first, then smaller index,
  NaN after every real value."""
  top_values, top_indices = [], []
  for row in values:
    order = sorted(range(len(row)), key=lambda i: (
        math.isnan(row[i]), -row[i] if not math.isnan(row[i]) else 0.0, i))
    top_indices.append(order[:k])
    top_values.append([row[i] for i in order[:k]])
  return np.array(top_values), np.array(top_indices, np.int64)


def random_runs(seed, num_runs=12, n_train=17, n_test=9, ratio=0.5,
                always_in=(0,), never_in=(1,)):
  """Random masks and correctness correlated with them.

  Args:
    seed: random seed.
    num_runs: R.
    n_train: training set size.
    n_test: test set size.
    ratio: probability that a run trains on an example.
    always_in: training examples in every run (empty held-out mean).
    never_in: training examples in no run (empty in-subset mean).

  Returns:
    (mask [R, n_train] bool, correct_train [R, n_train] bool,
     correct_test [R, n_test] bool).
  """
  rng = np.random.default_rng(seed)
  mask = rng.random((num_runs, n_train)) < ratio
  mask[:, list(always_in)] = True
  mask[:, list(never_in)] = False
  p_out = rng.uniform(0.1, 0.9, n_train)
  p_in = np.minimum(1.0, p_out + rng.uniform(0.0, 0.5, n_train))
  correct_train = rng.random((num_runs, n_train)) < np.where(mask, p_in, p_out)
  partner = rng.integers(0, n_train, n_test)
  p_test = rng.uniform(0.2, 0.8, n_test) + 0.2 * mask[:, partner]
  correct_test = rng.random((num_runs, n_test)) < p_test
  return mask, correct_train, correct_test


def write_runs(experiment_dir, ratio, mask, correct_train, correct_test, seed=0,
               run_ids=None):
  """Writes runs as `aux_arrays.npz` files with shuffled evaluation orders.

  Args:
    experiment_dir: the experiment folder.
    ratio: subset ratio folder to write into.
    mask: [R, n_train] bool.
    correct_train: [R, n_train] bool, by example id.
    correct_test: [R, n_test] bool, by example id.
    seed: seed of the shuffles.
    run_ids: folder number of each run; default 0..R-1.

  Returns:
    The run folders written.
  """
  rng = np.random.default_rng(seed)
  num_runs, _ = mask.shape
  n_test = correct_test.shape[1]
  if run_ids is None:
    run_ids = range(num_runs)
  folders = []
  for r, run_id in enumerate(run_ids):
    folder = layout.run_dir(experiment_dir, ratio, run_id)
    index_train = rng.permutation(np.flatnonzero(mask[r]))
    index_removed = rng.permutation(np.flatnonzero(~mask[r]))
    index_test = rng.permutation(n_test)
    aux_arrays.write_aux_arrays(
        layout.aux_arrays_path(folder),
        subsample_idx=rng.permutation(index_train),
        correctness_train=correct_train[r, index_train],
        correctness_removed=correct_train[r, index_removed],
        correctness_test=correct_test[r, index_test],
        index_train=index_train, index_removed=index_removed,
        index_test=index_test)
    folders.append(folder)
  return folders


def write_incomplete_run(experiment_dir, ratio, run_id):
  """A run folder with a checkpoint but no aux_arrays.npz (cut short)."""
  folder = layout.run_dir(experiment_dir, ratio, run_id)
  prefix = layout.checkpoint_prefix(folder, 1)
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  for suffix in (".index", ".data-00000-of-00001"):
    with open(prefix + suffix, "w"):
      pass
  return folder
