"""Forgetting events (Toneva et al., ICLR 2019), two variants.

Minibatch variant (Toneva's definition, as Data Diet's `forget` score):
acc_i^t is the correctness of example i the t-th time it appears in a
training minibatch, from the logits of that step (before the update), exactly
what `train.loop.Trainer` hands to `Callback.on_batch_end`. A forgetting event
is acc_i^t = 1 followed by acc_i^{t+1} = 0; F_i counts them.

Per-epoch variant (SSFT's code): the same count over acc_i^e, the correctness
of the model after epoch e on the full training data (no augmentation,
inference mode), i.e. over per-epoch correctness masks.

Never-learned examples (never correct in a run) have F_i = +inf by
convention; per run they are flagged (`never_learned`) and their `events` are
0 there, so that no +inf enters arithmetic by accident; rank them as most
forgettable.

Averaging over runs (`forgetting_scores`): an example's `values` is the mean
of F_i over the runs in which it was learned, +inf when it was never learned
in any run that saw it, NaN when no run saw it. Alongside: `num_runs` = runs
that saw it, `num_learned_runs`, `never_learned_fraction` (runs never
learned / runs that saw it) and `never_learned` (never learned in every run
that saw it). `se` is that of the mean over learned runs (NaN below 2). So an
example learned in 3 of 5 runs with 2, 4 and 0 events has value 2.0 with
never_learned_fraction 0.4: the count describes the runs where a count exists,
and the fraction the runs where it is +inf. Sorting by (never_learned_fraction,
value) ranks from least to most forgettable with the never-learned last.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np

from heldout.scores import score_file
from train import loop

MINIBATCH = "forgetting_minibatch"
PER_EPOCH = "forgetting_per_epoch"


@dataclasses.dataclass(frozen=True)
class ForgettingCounts:
  """Forgetting events of one run.

  Attributes:
    index: [n] int64 example ids seen in the run, ascending.
    events: [n] int64 forgetting events (0 where never learned).
    never_learned: [n] bool, never correct in the run (F = +inf).
    presentations: [n] int64 how many correctness values the example had
      (minibatch appearances, or epochs).
  """
  index: np.ndarray
  events: np.ndarray
  never_learned: np.ndarray
  presentations: np.ndarray

  @property
  def forgetting(self) -> np.ndarray:
    """[n] float64 F_i with +inf where never learned."""
    return np.where(self.never_learned, np.inf, self.events.astype(np.float64))


def count_forgetting_events(index, correct) -> ForgettingCounts:
  """Forgetting events from a run's correctness sequence.

  Args:
    index: [T] int example ids, in the order the model saw them (e.g. the
      concatenated minibatches of every step).
    correct: [T] bool correctness at each of those appearances.

  Returns:
    `ForgettingCounts` over the distinct ids of `index`.
  """
  index = np.asarray(index, np.int64)
  correct = np.asarray(correct, bool)
  if index.ndim != 1 or index.shape != correct.shape:
    raise ValueError("`index` and `correct` must be 1-D of one length, got {} "
                     "and {}".format(index.shape, correct.shape))
  order = np.argsort(index, kind="stable")  # keeps each example's time order
  ids, c = index[order], correct[order]
  same = ids[1:] == ids[:-1]
  forgotten = same & c[:-1] & ~c[1:]
  unique, counts = np.unique(ids, return_counts=True)
  # Event at sorted position j+1 belongs to the group of j+1.
  group = np.repeat(np.arange(len(unique)), counts)
  events = np.bincount(group[1:][forgotten], minlength=len(unique))
  learned = np.bincount(group[c], minlength=len(unique)) > 0
  return ForgettingCounts(index=unique, events=events.astype(np.int64),
                          never_learned=~learned,
                          presentations=counts.astype(np.int64))


def count_per_epoch_forgetting(correct_by_epoch, index=None) -> ForgettingCounts:
  """Forgetting events from per-epoch full-data correctness masks (SSFT's way).

  Args:
    correct_by_epoch: [E, n] bool, correctness of example column j after each
      epoch, epochs in order.
    index: [n] int example id of each column (default: 0..n-1).

  Returns:
    `ForgettingCounts` (presentations = E), ids ascending.
  """
  masks = np.asarray(correct_by_epoch, bool)
  if masks.ndim != 2:
    raise ValueError("`correct_by_epoch` must be [epochs, n], got shape "
                     "{}".format(masks.shape))
  n = masks.shape[1]
  index = np.arange(n, dtype=np.int64) if index is None else np.asarray(
      index, np.int64)
  if index.shape != (n,):
    raise ValueError("`index` must have shape ({},), got {}".format(
        n, index.shape))
  events = (masks[:-1] & ~masks[1:]).sum(axis=0).astype(np.int64)
  order = np.argsort(index)
  return ForgettingCounts(
      index=index[order], events=events[order],
      never_learned=~masks.any(axis=0)[order],
      presentations=np.full(n, masks.shape[0], np.int64))


class ForgettingCallback(loop.Callback):
  """Counts minibatch forgetting events during `Trainer.fit`, by example id.

  Attach one per run (or call `reset`); after training, `counts()` gives the
  run's `ForgettingCounts`, equal to `count_forgetting_events` on the
  concatenated batches.
  """

  def __init__(self, num_examples: int):
    """Args: num_examples: example ids lie in [0, num_examples)."""
    if num_examples <= 0:
      raise ValueError("`num_examples` must be positive, got {}".format(
          num_examples))
    self.num_examples = int(num_examples)
    self.reset()

  def reset(self):
    n = self.num_examples
    self._last = np.zeros(n, bool)
    self._learned = np.zeros(n, bool)
    self._events = np.zeros(n, np.int64)
    self._seen = np.zeros(n, np.int64)

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    del epoch, step, per_example_loss
    index = np.asarray(index, np.int64)
    correct = np.asarray(correct, bool)
    if len(index) and (index.min() < 0 or index.max() >= self.num_examples):
      raise ValueError("example ids must lie in [0, {}), got [{}, {}]".format(
          self.num_examples, index.min(), index.max()))
    if len(np.unique(index)) != len(index):
      for i, c in zip(index, correct):  # an id twice in one batch: in order
        self._update(np.array([i]), np.array([c]))
    else:
      self._update(index, correct)

  def _update(self, index, correct):
    seen_before = self._seen[index] > 0
    self._events[index] += seen_before & self._last[index] & ~correct
    self._last[index] = correct
    self._learned[index] |= correct
    self._seen[index] += 1

  def counts(self) -> ForgettingCounts:
    """The run's counts over the ids seen so far."""
    ids = np.flatnonzero(self._seen).astype(np.int64)
    return ForgettingCounts(index=ids, events=self._events[ids].copy(),
                            never_learned=~self._learned[ids],
                            presentations=self._seen[ids].copy())


class EpochCorrectnessCallback(loop.Callback):
  """Records full-data correctness after every epoch, for the per-epoch variant.

  `on_epoch_end` evaluates the model (inference mode, no augmentation) on
  `ids` of `split`; `masks` is then [epochs, len(ids)] and `counts()` the
  per-epoch forgetting events.
  """

  def __init__(self, split, ids: Optional[Sequence[int]] = None):
    self.split = split
    self.ids = (np.sort(np.asarray(split.index, np.int64)) if ids is None
                else np.asarray(ids, np.int64))
    self.masks = []

  def on_epoch_end(self, epoch, trainer):
    del epoch
    ids, correct = trainer.evaluate(self.split, self.ids)
    assert np.array_equal(ids, self.ids)
    self.masks.append(correct)

  def counts(self) -> ForgettingCounts:
    if not self.masks:
      raise ValueError("no epoch recorded yet")
    return count_per_epoch_forgetting(np.stack(self.masks), self.ids)


def forgetting_scores(runs: Sequence[ForgettingCounts], method: str = MINIBATCH,
                      args=None) -> score_file.Scores:
  """Averages runs' forgetting counts into a score file (see the module doc).

  Args:
    runs: one `ForgettingCounts` per run.
    method: `MINIBATCH` or `PER_EPOCH` (which variant the counts are).
    args: the arguments they ran with.

  Returns:
    `Scores` with extras `never_learned` (bool), `never_learned_fraction`
    (float64) and `num_learned_runs` (int64).
  """
  if method not in (MINIBATCH, PER_EPOCH):
    raise ValueError("`method` must be {} or {}, got {!r}".format(
        MINIBATCH, PER_EPOCH, method))
  index = (np.unique(np.concatenate([r.index for r in runs])) if runs
           else np.zeros(0, np.int64))
  seen = np.zeros(len(index), np.int64)
  never = np.zeros(len(index), np.int64)
  for r in runs:
    pos = np.searchsorted(index, r.index)
    seen[pos] += 1
    never[pos] += r.never_learned
  learned_runs = [(r.index[~r.never_learned],
                   r.events[~r.never_learned].astype(np.float64)) for r in runs]
  mean = score_file.average_over_runs(learned_runs, method, args, index=index)
  values = mean.values.copy()
  all_never = (seen > 0) & (never == seen)
  values[all_never] = np.inf
  with np.errstate(invalid="ignore", divide="ignore"):
    fraction = never / seen
  return score_file.Scores(
      index=index, values=values, se=mean.se, num_runs=seen, method=method,
      args=dict(args or {}),
      extras={"never_learned": all_never,
              "never_learned_fraction": fraction.astype(np.float64),
              "num_learned_runs": mean.num_runs})


def most_forgettable_first(scores: score_file.Scores) -> np.ndarray:
  """Example ids of a forgetting score file, most forgettable first.

  Orders by `never_learned_fraction` (descending), then the mean count over
  learned runs (descending; NaN last), then id: examples never learned in
  any run come first, as the convention F = +inf ranks them.

  Args:
    scores: `Scores` from `forgetting_scores`.

  Returns:
    [n] int64 example ids.
  """
  fraction = scores.extras["never_learned_fraction"]
  values = np.where(np.isposinf(scores.values), 0.0, scores.values)
  values = np.where(np.isnan(values), -np.inf, values)
  fraction = np.where(np.isnan(fraction), -np.inf, fraction)
  order = np.lexsort((scores.index, -values, -fraction))
  return scores.index[order]
