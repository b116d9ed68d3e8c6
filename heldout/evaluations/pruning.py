"""Data pruning: keep a fraction of the training set by a score, retrain.

Data Diet's protocol: keep the fraction p of the training examples a score
ranks first, train a fresh model on them with the usual recipe, and report
test accuracy against p, next to keeping a random fraction of the same size.
Which end a method keeps (`KEEP_END`): the hardest examples for the
training-dynamics scores (highest EL2N / GraNd / forgetting, as Data Diet;
highest first-split learning time and highest SSFT, whose low end is the
likely mislabeled), and the least memorized for the memorization-like scores
(lowest memorization / self-influence / SAMIS, as SAMIS's `min_mem`). Ties
at the cut are broken by a seeded random order, never by id.

Training runs K models at once where the architecture allows it
(`train.batched.BatchedTrainer`: every (method, seed) of one fraction has a
subset of the same size), one at a time otherwise (`train.loop.Trainer`).
"""

import io
import math
from typing import (Callable, Dict, Mapping, MutableMapping, Optional,
                    Sequence, Tuple)

import numpy as np

from heldout.evaluations import mislabeled

HIGH, LOW = mislabeled.HIGH, mislabeled.LOW
RANDOM = "random"
DEFAULT_FRACTIONS = (0.3, 0.5, 0.7, 0.9)

KEEP_END = {
    "el2n": HIGH,
    "grand": HIGH,
    "forgetting_minibatch": HIGH,
    "forgetting_per_epoch": HIGH,
    "fslt": HIGH,
    "ssft": HIGH,
    "memorization": LOW,
    "self_influence": LOW,
    "samis_l": LOW,
    "samis_p": LOW,
    "cleanlab": LOW,
    "consistency": HIGH,
}


def keep_ids(index, values, fraction: float, end: str, seed: int = 0
             ) -> np.ndarray:
  """The ids of the `fraction` of examples a score ranks first from `end`.

  Args:
    index: [n] example ids.
    values: [n] scores (NaN ranked last).
    fraction: in (0, 1]; round(fraction * n) ids are kept.
    end: `HIGH`, `LOW` or `RANDOM` (ignore the values).
    seed: the seed of the tie-breaking (and of `RANDOM`).

  Returns:
    [m] int64 kept ids, ascending.
  """
  if not 0.0 < fraction <= 1.0:
    raise ValueError("`fraction` must be in (0, 1], got {}".format(fraction))
  index = np.asarray(index, np.int64)
  m = int(round(fraction * len(index)))
  tiebreak = np.random.default_rng([seed, 0x9E11]).permutation(len(index))
  if end == RANDOM:
    chosen = tiebreak[:m]
  else:
    keys = mislabeled.suspicion_keys(values, end)
    # lexsort: last key primary; descending keys, then the random order.
    chosen = np.lexsort((tiebreak, -keys))[:m]
  return np.sort(index[chosen])


def accuracy_after_pruning(
    train_subsets: Callable[[Sequence[np.ndarray], Sequence[int]],
                            Sequence[float]],
    kept: Mapping[str, Mapping[float, Sequence[np.ndarray]]],
    seeds: Sequence[int], done: Optional[MutableMapping[str, float]] = None,
    on_fraction_done: Optional[Callable[[], None]] = None
) -> Dict[str, Dict[float, mislabeled.Summary]]:
  """Test accuracy of models trained on each kept set.

  Args:
    train_subsets: `train_subsets(subsets, seeds)` trains one fresh model per
      (subset, seed), all subsets of one size, and returns their test
      accuracies.
    kept: {method: {fraction: [ids kept for seed i, one per seed]}}.
    seeds: the training seeds.
    done: accuracies already measured, by `job_key(method, fraction, seed)`;
      those are not trained again, and new ones are added to it.
    on_fraction_done: called after each fraction's models are trained (e.g.
      to save `done`).

  Returns:
    {method: {fraction: Summary of test accuracy over seeds}}.
  """
  done = {} if done is None else done
  fractions = sorted({f for per in kept.values() for f in per})
  for fraction in fractions:
    jobs = [(method, i) for method in kept if fraction in kept[method]
            for i in range(len(seeds))
            if job_key(method, fraction, seeds[i]) not in done]
    if not jobs:
      continue
    accuracies = train_subsets([kept[m][fraction][i] for m, i in jobs],
                               [seeds[i] for _, i in jobs])
    for (method, i), accuracy in zip(jobs, accuracies):
      done[job_key(method, fraction, seeds[i])] = float(accuracy)
    if on_fraction_done is not None:
      on_fraction_done()
  return {method: {f: mislabeled.summarize(
      [done[job_key(method, f, s)] for s in seeds]) for f in per}
          for method, per in kept.items()}


def job_key(method, fraction, seed) -> str:
  return "{}|{!r}|{}".format(method, float(fraction), int(seed))


def curve_text(curves: Mapping[str, Mapping[float, mislabeled.Summary]]
               ) -> str:
  fractions = sorted({f for c in curves.values() for f in c})
  return mislabeled.table_text({
      method: {"keep {:g}%".format(100 * f): c.get(f, mislabeled.Summary(
          float("nan"), float("nan"), 0)) for f in fractions}
      for method, c in curves.items()})


def curve_csv(curves) -> str:
  out = io.StringIO()
  out.write("method,fraction_kept,test_accuracy,se,seeds\n")
  for method, curve in curves.items():
    for f, s in sorted(curve.items()):
      out.write("{},{!r},{!r},{!r},{}\n".format(method, f, s.mean, s.se,
                                                s.num_seeds))
  return out.getvalue()


def curve_png(curves, title=None) -> bytes:
  """PNG bytes: test accuracy against the fraction kept, SE error bars."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
  try:
    for method, curve in curves.items():
      fs = sorted(curve)
      means = [curve[f].mean for f in fs]
      ses = [0.0 if math.isnan(curve[f].se) else curve[f].se for f in fs]
      style = dict(color="black", linestyle="--") if method == RANDOM else {}
      ax.errorbar([100 * f for f in fs], means, yerr=ses, marker="o",
                  capsize=3, label=method, **style)
    ax.set_xlabel("training examples kept (%)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
      ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
  finally:
    plt.close(fig)


def batched_subset_trainer(dataset, config, k_max: int = 64
                           ) -> Callable[[Sequence[np.ndarray], Sequence[int]],
                                         Tuple[float, ...]]:
  """`train_subsets` for `accuracy_after_pruning` on the small models.

  Trains the subsets in groups of at most `k_max` models at once with
  `train.batched.BatchedTrainer` (the same models as one at a time), and
  returns each model's accuracy on `dataset.test`.
  """
  from train import batched  # pylint: disable=g-import-not-at-top

  def train_subsets(subsets, seeds):
    accuracies = []
    groups, size = batched.balanced_groups(list(range(len(subsets))), k_max)
    trainer = batched.BatchedTrainer(config.arch, dataset.num_classes,
                                     dataset.image_shape, config, size)
    for group in groups:
      padded = group + [group[-1]] * (size - len(group))
      trainer.fit(dataset.train, [subsets[i] for i in padded],
                  [seeds[i] for i in padded])
      predicted = trainer.predict(dataset.test)[:len(group)]
      accuracies.extend(
          float(a) for a in np.mean(predicted == dataset.test.labels[None],
                                    axis=1))
    return tuple(accuracies)

  return train_subsets


def loop_subset_trainer(dataset, trainer_fn
                        ) -> Callable[[Sequence[np.ndarray], Sequence[int]],
                                      Tuple[float, ...]]:
  """`train_subsets` one model at a time with a `train.loop.Trainer`."""

  def train_subsets(subsets, seeds):
    trainer = trainer_fn()
    accuracies = []
    for ids, seed in zip(subsets, seeds):
      trainer.reset(seed)
      trainer.fit(dataset.train, ids, seed)
      _, correct = trainer.evaluate(dataset.test)
      accuracies.append(float(np.mean(correct)))
    return tuple(accuracies)

  return train_subsets
