"""First-split learning time and second-split forgetting time (Maini et al. 2022).

Protocol (`run_two_phases`), as SSFT's code (`pratyushmaini/ssft`,
`train.py` and `utils.train`) runs it: split the training examples at random
into halves A and B. Phase 1 trains a fresh model on A for at most
`max_epochs` epochs, recording A's correctness after every epoch. Phase 2
continues the same weights on B only with a fresh optimizer (momentum
zeroed) and the learning-rate schedule started again from step 0, for at
most `second_epochs` epochs, recording A's correctness after every epoch.
Both phases end early once `patience` epochs (counted over the phase, not
necessarily consecutive: the code's counter is never reset) had 100%
training accuracy, measured as the code does: the training step's own
predictions on each minibatch (training mode, before the update). Then the
roles swap (a fresh model) to score B. The recorded correctness is measured
in inference mode, no augmentation.

Times, with phase epochs numbered 1..E (correctness after that epoch, E the
epochs the phase actually ran):

- FSLT(i) = the first epoch e* of phase 1 with acc_i^e = 1 for all e >= e*,
  i.e. 1 + the last epoch at which i was incorrect (1 if always correct);
  E + 1 if i is incorrect at the end of phase 1 (never learned).
- SSFT(i) = the first epoch e* of phase 2 with acc_i^e = 0 for all e >= e*,
  i.e. 1 + the last epoch at which i was still correct (the code's
  convention); 1 if never correct in phase 2, E + 1 if never forgotten.

Low SSFT: likely mislabeled; high FSLT: hard or rare.
"""

import dataclasses
from typing import Callable, Sequence, Tuple

import numpy as np

from heldout.scores import forgetting
from heldout.scores import score_file
from train import loop

SSFT = "ssft"


def _check_masks(masks):
  masks = np.asarray(masks, bool)
  if masks.ndim != 2 or masks.shape[0] < 1:
    raise ValueError("correctness masks must be [epochs >= 1, n], got shape "
                     "{}".format(masks.shape))
  return masks


def first_split_learning_time(masks) -> np.ndarray:
  """FSLT from phase-1 correctness masks.

  Args:
    masks: [E, n] bool, correctness after each phase-1 epoch.

  Returns:
    [n] int64 in [1, E + 1].
  """
  masks = _check_masks(masks)
  epochs = masks.shape[0]
  wrong = ~masks
  # Last epoch (1-based) at which the example was wrong; 0 if never.
  last_wrong = np.where(wrong.any(axis=0),
                        epochs - np.argmax(wrong[::-1], axis=0), 0)
  return (last_wrong + 1).astype(np.int64)


def second_split_forgetting_time(masks) -> np.ndarray:
  """SSFT from phase-2 correctness masks.

  Args:
    masks: [E, n] bool, correctness of the first split's examples after each
      phase-2 epoch.

  Returns:
    [n] int64 in [1, E + 1].
  """
  masks = _check_masks(masks)
  epochs = masks.shape[0]
  last_right = np.where(masks.any(axis=0),
                        epochs - np.argmax(masks[::-1], axis=0), 0)
  return (last_right + 1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TwoPhaseResult:
  """One seed's times for every example (both halves).

  Attributes:
    index: [n] int64 example ids, ascending.
    fslt: [n] int64 first-split learning time (of its half in phase 1).
    ssft: [n] int64 second-split forgetting time.
    first_epochs: [n] int64 phase-1 epochs trained for the example's half.
    second_epochs: [n] int64 phase-2 epochs trained after the example's
      half was fit (SSFT = this + 1 means never forgotten).
  """
  index: np.ndarray
  fslt: np.ndarray
  ssft: np.ndarray
  first_epochs: np.ndarray
  second_epochs: np.ndarray


class _Fitted(Exception):
  """Raised by `_UntilFit` to end a phase."""


class _UntilFit(forgetting.EpochCorrectnessCallback):
  """Records `ids`' correctness after every epoch; ends the phase once fit.

  Fit as SSFT's code decides it: the phase ends after the `patience`-th
  epoch (counted over the phase) whose training steps predicted every
  example of their minibatches right.
  """

  def __init__(self, split, ids, patience):
    super().__init__(split, ids)
    self.patience = patience
    self.fit_epochs = 0
    self._wrong = 0

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    del epoch, step, index, per_example_loss
    self._wrong += int(np.size(correct) - np.count_nonzero(correct))

  def on_epoch_end(self, epoch, trainer):
    super().on_epoch_end(epoch, trainer)
    if self._wrong == 0:
      self.fit_epochs += 1
    self._wrong = 0
    if self.fit_epochs == self.patience:
      raise _Fitted()


def split_halves(ids, seed) -> Tuple[np.ndarray, np.ndarray]:
  """A random split of `ids` into halves (A, B), each sorted, from `seed`."""
  ids = np.sort(np.asarray(ids, np.int64))
  perm = np.random.default_rng([seed, 0x55F7]).permutation(len(ids))
  half = len(ids) // 2
  return np.sort(ids[perm[:half]]), np.sort(ids[perm[half:]])


def _train_until_fit(trainer, split, train_ids, seed, epochs, record_ids,
                     patience):
  """One phase; returns the [epochs run, len(record_ids)] correctness masks."""
  until_fit = _UntilFit(split, record_ids, patience)
  try:
    trainer.fit(split, train_ids, seed, epochs=epochs, callbacks=[until_fit])
  except _Fitted:
    pass
  return np.stack(until_fit.masks)


def _phases(trainer: loop.Trainer, split, first, second, seed, max_epochs,
            patience, second_epochs):
  """Trains on `first` until fit, then on `second`.

  Returns:
    (FSLT, SSFT, phase-1 epochs, phase-2 epochs) of `first`'s examples.
  """
  trainer.reset(seed)
  learn = _train_until_fit(trainer, split, first, seed, max_epochs, first,
                           patience)
  trainer.start_new_phase()
  forget = _train_until_fit(trainer, split, second, seed + 1_000_003,
                            second_epochs, first, patience)
  return (first_split_learning_time(learn),
          second_split_forgetting_time(forget), len(learn), len(forget))


def run_two_phases(trainer: loop.Trainer, split, seed: int,
                   max_epochs: int = 100, patience: int = 5,
                   second_epochs: int = 50, ids=None) -> TwoPhaseResult:
  """Both halves' FSLT and SSFT for one seed (see the module doc).

  Args:
    trainer: a `train.loop.Trainer` (reset for each half; its
      `start_new_phase` between the phases).
    split: the training `SplitData`.
    seed: the seed of the split into halves and of training.
    max_epochs: phase-1 epoch limit.
    patience: each phase ends after this many epochs at 100% training
      accuracy (see the module doc).
    second_epochs: phase-2 epoch limit.
    ids: the examples to use (default: all).

  Returns:
    `TwoPhaseResult`.
  """
  if max_epochs < 1 or patience < 1 or second_epochs < 1:
    raise ValueError("`max_epochs`, `patience` and `second_epochs` must be "
                     "positive, got {}, {}, {}".format(max_epochs, patience,
                                                       second_epochs))
  ids = split.index if ids is None else ids
  a, b = split_halves(ids, seed)
  fslt_a, ssft_a, first_a, second_a = _phases(
      trainer, split, a, b, seed, max_epochs, patience, second_epochs)
  fslt_b, ssft_b, first_b, second_b = _phases(
      trainer, split, b, a, seed + 500_009, max_epochs, patience,
      second_epochs)
  index = np.concatenate([a, b])
  order = np.argsort(index)

  def per_half(value_a, value_b):
    return np.concatenate([np.full(len(a), value_a),
                           np.full(len(b), value_b)])[order].astype(np.int64)

  return TwoPhaseResult(
      index=index[order],
      fslt=np.concatenate([fslt_a, fslt_b])[order],
      ssft=np.concatenate([ssft_a, ssft_b])[order],
      first_epochs=per_half(first_a, first_b),
      second_epochs=per_half(second_a, second_b))


def two_phase_scores(runs: Sequence[TwoPhaseResult], args=None
                     ) -> score_file.Scores:
  """SSFT averaged over seeds, with FSLT's mean and SE as extras.

  Returns:
    `Scores` of method "ssft" (values: mean SSFT, se, num_runs) with extras
    `fslt`, `fslt_se` (float64).
  """
  ssft = score_file.average_over_runs(
      [(r.index, r.ssft.astype(np.float64)) for r in runs], SSFT, args)
  fslt = score_file.average_over_runs(
      [(r.index, r.fslt.astype(np.float64)) for r in runs], "fslt", args,
      index=ssft.index)
  return dataclasses.replace(ssft, extras={"fslt": fslt.values,
                                           "fslt_se": fslt.se})
