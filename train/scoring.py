"""Training runs that score every training example: forgetting, EL2N, GraNd, SSFT.

`train_and_score` trains one model per seed on the whole training split with
`train.loop.Trainer` and

- `forgetting` / `forgetting_per_epoch`: counts forgetting events during
  training (`heldout.scores.forgetting`: from the minibatch logits, or from
  the full-data correctness after each epoch), over the config's epochs;
- `el2n` / `grand`: scores the training split (`heldout.scores.el2n_grand`)
  at each of `score_epochs` (0 = at initialisation, e after e epochs),
  training up to the last, and saves the model there as a run in the released
  layout, `<work_dir>/epoch_<e>/<seed>/checkpoints/ckpt-<e>`
  (`heldout.readers.checkpoints.restore_run` reads it);
- `ssft`: the two-phase protocol of `heldout.scores.second_split` (phase 1
  up to the config's epochs, phase 2 up to `second_epochs` with a fresh
  optimizer and schedule, each stopping once fit), SSFT with FSLT as an
  extra.

Each finished seed is saved atomically as `<work_dir>/seed_<seed>.npz`, so a
job killed and started again skips finished seeds (an interrupted seed is
trained again from scratch). The work folder keeps the arguments that change
per-seed results (`args.json`) and refuses others (with `overwrite`, clears
them); to add seeds to an output, run again with more seeds and `overwrite`:
finished seeds are reused. Then the seeds are averaged
into score files (`heldout.scores.score_file`): one for forgetting, one per
scoring epoch for EL2N and GraNd.

Several workers (machines, array-job tasks) may share the seeds of one output
with no coordinator: each is given all of `args.seeds` and trains only its
`train_seeds` (e.g. `train.subsets.select_runs(seeds, W, I)`) into the shared
work folder; whichever finds every seed finished when it ends writes the
score files (the same files whoever writes them), the others return without
writing (`missing_seeds` says how many are left). Running any worker again
after all finished writes them.
"""

import dataclasses
import json
import math
import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tqdm

from heldout import atomic
from heldout import errors
from heldout import npz_io
from heldout.estimators import pipeline
from heldout.readers import layout
from heldout.scores import el2n_grand
from heldout.scores import forgetting
from heldout.scores import score_file
from heldout.scores import second_split
from train import batched
from train import loop

METHODS = ("forgetting", "forgetting_per_epoch", "el2n", "grand", "ssft")
_SCORE_METHOD = {"forgetting": forgetting.MINIBATCH,
                 "forgetting_per_epoch": forgetting.PER_EPOCH,
                 "el2n": el2n_grand.EL2N, "grand": el2n_grand.GRAND,
                 "ssft": second_split.SSFT}


@dataclasses.dataclass(frozen=True)
class ScoringArgs:
  """What a scoring job computes.

  Attributes:
    method: one of `METHODS`.
    dataset: the dataset's name.
    config: the `TrainConfig` as a dict (`dataclasses.asdict`).
    seeds: the seeds averaged.
    score_epochs: for el2n/grand, the epochs scored (0 = initialisation).
    second_epochs: for ssft, the second phase's epoch limit (the first
      phase's is the config's epochs); each phase runs the config's
      learning-rate schedule from its start.
    patience: for ssft, each phase stops after this many epochs (over the
      phase) at 100% training accuracy (`heldout.scores.second_split`).
  """
  method: str
  dataset: str
  config: Dict[str, object]
  seeds: Tuple[int, ...]
  score_epochs: Tuple[int, ...] = ()
  second_epochs: int = 0
  patience: int = 5

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError("`method` must be one of {}, got {!r}".format(
          list(METHODS), self.method))
    if not self.seeds:
      raise ValueError("`seeds` must name at least one seed")
    if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
      raise ValueError("`seeds` must be distinct and >= 0, got {}".format(
          list(self.seeds)))
    if self.method in ("el2n", "grand"):
      if not self.score_epochs or any(e < 0 for e in self.score_epochs):
        raise ValueError("`score_epochs` must be epochs >= 0 for {}, got "
                         "{}".format(self.method, list(self.score_epochs)))
    elif self.score_epochs:
      raise ValueError("`score_epochs` is for el2n and grand, not {}".format(
          self.method))
    if self.method == "ssft":
      if self.second_epochs < 1 or self.patience < 1:
        raise ValueError("ssft needs `second_epochs` and `patience` >= 1, got "
                         "{} and {}".format(self.second_epochs, self.patience))
    elif self.second_epochs:
      raise ValueError("`second_epochs` is for ssft, not {}".format(
          self.method))
    object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
    object.__setattr__(self, "score_epochs",
                       tuple(sorted(set(int(e) for e in self.score_epochs))))

  def as_dict(self):
    return json.loads(json.dumps(dataclasses.asdict(self)))

  def per_seed_dict(self):
    """The arguments a seed's result depends on (not the set of seeds)."""
    out = self.as_dict()
    del out["seeds"]
    return out


def output_paths(output, args: ScoringArgs) -> Dict[int, str]:
  """{score epoch (or -1 for forgetting): score file path}.

  One scoring epoch, or forgetting: `output` itself; several:
  `<output without .npz>_epoch<e>.npz`.
  """
  if len(args.score_epochs) <= 1:
    key = args.score_epochs[0] if args.score_epochs else -1
    return {key: str(output)}
  root = str(output)[:-4] if str(output).endswith(".npz") else str(output)
  return {e: "{}_epoch{}.npz".format(root, e) for e in args.score_epochs}


def work_dir_for(output) -> str:
  """`SCORES.npz` -> `SCORES.runs/`, the per-seed results and checkpoints."""
  root = str(output)[:-4] if str(output).endswith(".npz") else str(output)
  return root + ".runs"


def _check_work_dir(work_dir, args, overwrite):
  """Keeps finished seeds of the same per-seed arguments; else refuses or clears."""
  path = os.path.join(work_dir, "args.json")
  wanted = args.per_seed_dict()
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != wanted:
      if not overwrite:
        raise errors.ArgumentsMismatchError(
            "{}: holds seeds run with other arguments ({}); choose another "
            "output or overwrite (--overwrite)".format(
                work_dir, pipeline.describe_changed_arguments(previous,
                                                              wanted)))
      for name in os.listdir(work_dir):
        if name.startswith("seed_") and name.endswith(".npz"):
          os.remove(os.path.join(work_dir, name))
        elif name.startswith("epoch_"):
          shutil.rmtree(os.path.join(work_dir, name))
  atomic.write_json(path, wanted)


def _seed_path(work_dir, seed):
  return os.path.join(work_dir, "seed_{}.npz".format(seed))


class _ScoreAtEpochs(loop.Callback):
  """Scores the split and saves the model after the chosen epochs."""

  def __init__(self, save_and_score, epochs):
    self._save_and_score = save_and_score
    self._epochs = set(epochs)

  def on_epoch_end(self, epoch, trainer):
    if epoch + 1 in self._epochs:
      self._save_and_score(epoch + 1)


def score_seed(trainer: loop.Trainer, split, args: ScoringArgs, seed: int,
               work_dir: str) -> Dict[str, np.ndarray]:
  """Trains and scores one seed; returns the arrays of its `seed_<s>.npz`."""
  trainer.reset(seed)
  ids = np.sort(np.asarray(split.index, np.int64))
  epochs = int(args.config["epochs"])
  if args.method == "forgetting":
    callback = forgetting.ForgettingCallback(len(split))
    trainer.fit(split, ids, seed, epochs=epochs, callbacks=[callback])
    counts = callback.counts()
  elif args.method == "ssft":
    result = second_split.run_two_phases(
        trainer, split, seed, max_epochs=epochs, patience=args.patience,
        second_epochs=args.second_epochs, ids=ids)
    return {"index": result.index, "fslt": result.fslt, "ssft": result.ssft,
            "first_epochs": result.first_epochs,
            "second_epochs": result.second_epochs}
  elif args.method == "forgetting_per_epoch":
    callback = forgetting.EpochCorrectnessCallback(split, ids)
    trainer.fit(split, ids, seed, epochs=epochs, callbacks=[callback])
    counts = callback.counts()
  else:
    out = {"index": ids}

    def save_and_score(epoch):
      run = os.path.join(work_dir, "epoch_{}".format(epoch), str(seed))
      trainer.final_checkpoint().write(layout.checkpoint_prefix(run, epoch))
      scores = el2n_grand.score_split(trainer.model, split, ids,
                                      progress=False)
      out["{}_{}".format(args.method, epoch)] = getattr(scores, args.method)

    if 0 in args.score_epochs:
      save_and_score(0)
    last = max(args.score_epochs)
    if last:
      trainer.fit(split, ids, seed, epochs=last,
                  callbacks=[_ScoreAtEpochs(save_and_score, args.score_epochs)])
    return out
  return _counts_arrays(counts)


def _counts_arrays(counts: forgetting.ForgettingCounts):
  return {"index": counts.index, "events": counts.events,
          "never_learned": counts.never_learned,
          "presentations": counts.presentations}


def score_seeds_batched(batched_trainer, split, args: ScoringArgs,
                        seeds: Sequence[int], work_dir: str
                        ) -> List[Dict[str, np.ndarray]]:
  """`score_seed` for up to K seeds at once, on a `BatchedTrainer`.

  Seed s's model gets what the single-model loop gives it (initial weights,
  epoch orders, update; `train/batched.py`), so the arrays are those of
  `score_seed(trainer, split, args, s, work_dir)` up to floating-point
  summation order. A group shorter than K is padded with copies of its last
  seed, whose results are dropped.

  Args:
    batched_trainer: a `train.batched.BatchedTrainer` (no augmentation).
    split: the training `SplitData`.
    args: `ScoringArgs` of method forgetting, forgetting_per_epoch, el2n or
      grand (ssft ends each model at its own epoch: single-model loop).
    seeds: at most K seeds.
    work_dir: where el2n/grand save each scored model.

  Returns:
    One dict of arrays per seed, in order.
  """
  if args.method == "ssft":
    raise ValueError("ssft stops each model at its own epoch; train it one "
                     "model at a time (drop --batched_k)")
  k = batched_trainer.k
  if not 1 <= len(seeds) <= k:
    raise ValueError("`seeds` must be 1 to k={} seeds, got {}".format(
        k, len(seeds)))
  seeds = [int(s) for s in seeds]
  padded = seeds + [seeds[-1]] * (k - len(seeds))
  ids = np.sort(np.asarray(split.index, np.int64))
  subsets_ids = [ids] * k
  epochs = int(args.config["epochs"])
  if args.method == "forgetting":
    callbacks = [forgetting.ForgettingCallback(len(split)) for _ in seeds]

    def count_events(epoch, positions, correct):
      for cb, pos, right in zip(callbacks, positions, correct):
        cb.on_batch_end(epoch, None, split.index[pos], None, right)

    batched_trainer.fit(split, subsets_ids, padded, epochs=epochs,
                        epoch_end_fn=count_events)
    return [_counts_arrays(cb.counts()) for cb in callbacks]
  if args.method == "forgetting_per_epoch":
    positions = split.positions_of(ids)
    masks = []

    def record(epoch, order, correct):
      del epoch, order, correct
      predicted = batched_trainer.predict(split)[:len(seeds), positions]
      masks.append(predicted == split.labels[positions][None, :])

    batched_trainer.fit(split, subsets_ids, padded, epochs=epochs,
                        epoch_end_fn=record)
    stacked = np.stack(masks, axis=1)  # [seeds, epochs, n]
    return [_counts_arrays(forgetting.count_per_epoch_forgetting(m, ids))
            for m in stacked]
  outs = [{"index": ids} for _ in seeds]
  module = batched_trainer.new_module()
  epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
  step_var = tf.Variable(0, dtype=tf.int64, name="global_step")
  checkpoint = tf.train.Checkpoint(model=module, epoch=epoch_var,
                                   global_step=step_var)
  steps_per_epoch = math.ceil(len(ids) / batched_trainer.config.batch_size)

  def save_and_score(epoch):
    epoch_var.assign(epoch)
    step_var.assign(epoch * steps_per_epoch)
    for i, seed in enumerate(seeds):
      batched_trainer.export(i, module)
      run = os.path.join(work_dir, "epoch_{}".format(epoch), str(seed))
      checkpoint.write(layout.checkpoint_prefix(run, epoch))
      scores = el2n_grand.score_split(module, split, ids, progress=False)
      outs[i]["{}_{}".format(args.method, epoch)] = getattr(scores,
                                                            args.method)

  if 0 in args.score_epochs:
    batched_trainer.reset(padded)
    save_and_score(0)
  last = max(args.score_epochs)
  if last:
    batched_trainer.fit(
        split, subsets_ids, padded, epochs=last,
        epoch_end_fn=lambda e, *_: (save_and_score(e + 1)
                                    if e + 1 in args.score_epochs else None))
  return outs


def _read_seed(path):
  with npz_io.load_npz(path) as npz:
    return {k: npz[k] for k in npz.files}


def missing_seeds(output, args: ScoringArgs) -> List[int]:
  """The seeds of `args.seeds` without a finished `seed_<s>.npz` yet."""
  work_dir = work_dir_for(output)
  return [s for s in args.seeds
          if not os.path.exists(_seed_path(work_dir, s))]


def train_and_score(dataset, trainer_fn, args: ScoringArgs, output,
                    overwrite: bool = False, progress: bool = True,
                    train_seeds: Optional[Sequence[int]] = None,
                    batched_fn=None, batched_k: int = 0) -> Dict[int, str]:
  """Runs this worker's seeds not yet finished, then writes the score file(s).

  Args:
    dataset: `heldout.data.dataset.Dataset` (its train split is scored).
    trainer_fn: returns a `train.loop.Trainer` for the dataset and config.
    args: `ScoringArgs`.
    output: the score file (see `output_paths`).
    overwrite: replace outputs made with other arguments (e.g. fewer seeds:
      finished seeds of the same training arguments are reused) and seed
      results made with other training arguments.
    progress: show a progress bar over seeds.
    train_seeds: the seeds this worker trains, a subset of `args.seeds`
      (default: all of them).
    batched_fn: with `batched_k` > 0, `batched_fn(k)` returns a
      `train.batched.BatchedTrainer` of k models: the seeds to train are
      then trained in balanced groups of at most `batched_k`
      (`score_seeds_batched`), each seed saved when its group ends.
    batched_k: models trained at once (0: one at a time with `trainer_fn`).

  Returns:
    {score epoch (-1 for forgetting): path written}; empty if seeds of other
    workers are still missing (`missing_seeds`), nothing written then.

  Raises:
    ArgumentsMismatchError: if an output or the work folder holds results of
      other arguments and `overwrite` is False.
    ValueError: if `train_seeds` names seeds not in `args.seeds`.
  """
  mine = args.seeds if train_seeds is None else tuple(train_seeds)
  if not set(mine) <= set(args.seeds):
    raise ValueError("`train_seeds` must be among `seeds` {}, got {}".format(
        list(args.seeds), sorted(set(mine) - set(args.seeds))))
  paths = output_paths(output, args)
  for e, path in paths.items():
    score_file.check_stored_arguments(path, _empty_scores(args, e), overwrite)
  work_dir = work_dir_for(output)
  _check_work_dir(work_dir, args, overwrite)
  split = dataset.train
  todo = [s for s in mine if not os.path.exists(_seed_path(work_dir, s))]
  bar = tqdm.tqdm(total=len(todo), desc=args.method, unit="seed",
                  disable=not progress)
  with bar:
    if batched_k and todo:
      groups, size = batched.balanced_groups(todo, batched_k)
      trainer = batched_fn(size)
      for group in groups:
        for seed, arrays in zip(group, score_seeds_batched(
            trainer, split, args, group, work_dir)):
          atomic.write_npz(_seed_path(work_dir, seed), **arrays)
        bar.update(len(group))
    elif todo:
      trainer = trainer_fn()
      for seed in todo:
        arrays = score_seed(trainer, split, args, seed, work_dir)
        atomic.write_npz(_seed_path(work_dir, seed), **arrays)
        bar.update(1)
  if missing_seeds(output, args):
    return {}
  runs = [_read_seed(_seed_path(work_dir, s)) for s in args.seeds]
  for e, path in paths.items():
    score_file.save_scores(_aggregate(runs, args, e), path, overwrite)
  return paths


def _file_args(args, epoch):
  out = args.as_dict()
  if epoch >= 0:
    out["score_epoch"] = epoch
  return out


def _empty_scores(args, epoch):
  """An empty `Scores` with the method and arguments of output `epoch`."""
  return score_file.Scores(
      index=np.zeros(0, np.int64), values=np.zeros(0), se=np.zeros(0),
      num_runs=np.zeros(0, np.int64), method=_SCORE_METHOD[args.method],
      args=_file_args(args, epoch))


def _aggregate(runs: List[Dict[str, np.ndarray]], args: ScoringArgs,
               epoch: int) -> score_file.Scores:
  if args.method in ("forgetting", "forgetting_per_epoch"):
    counts = [forgetting.ForgettingCounts(
        r["index"], r["events"], r["never_learned"], r["presentations"])
              for r in runs]
    return forgetting.forgetting_scores(counts, _SCORE_METHOD[args.method],
                                        _file_args(args, epoch))
  if args.method == "ssft":
    return second_split.two_phase_scores([second_split.TwoPhaseResult(
        r["index"], r["fslt"], r["ssft"], r["first_epochs"],
        r["second_epochs"]) for r in runs], _file_args(args, epoch))
  key = "{}_{}".format(args.method, epoch)
  return score_file.average_over_runs([(r["index"], r[key]) for r in runs],
                                      _SCORE_METHOD[args.method],
                                      _file_args(args, epoch))


def parse_epochs(text: str) -> Sequence[int]:
  """`--score_epochs`: "0,20" -> [0, 20]."""
  out = []
  for item in [t.strip() for t in str(text or "").split(",") if t.strip()]:
    try:
      out.append(int(item))
    except ValueError:
      raise ValueError("`score_epochs`: {!r} is not an epoch".format(
          item)) from None
  return out
