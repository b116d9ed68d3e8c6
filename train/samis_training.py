"""SAMIS: memorization proxies from paired SGD and SAM runs (Agiollo et al. 2024).

For fold k of `folds` and seed s, an SGD model and a SAM model
(`train.sam.SAMTrainer`, radius `rho`) are trained identically on the other
folds: the same initial weights, data order and learning-rate schedule (both
start from `Trainer.reset(pair_seed)`; the data order depends on that seed
only). For every held-out example x of fold k, with w_sgd and w_sam the final
weights, in inference mode:

  SAMIS-L(x, y) = | CE(f(x; w_sgd), y) - CE(f(x; w_sam), y) |
  SAMIS-P(x)    = || softmax f(x; w_sgd) - softmax f(x; w_sam) ||_1

Each example is held out by one fold, so each seed scores it once; the score
files hold the mean over seeds with its standard error and the number of
seeds (`heldout.scores.score_file`). The "premature" variant trains both on
the whole training set (one fold, subset ratio 1) for few epochs at a
constant learning rate (`premature_config`) and scores every example.

The folds are a fixed random partition of the training ids (fold k holds the
positions k, k + folds, ... of one permutation drawn from the number of
folds), the same for every seed.

Layout, beside the outputs (`SAMIS.npz` -> `SAMIS.runs/`):

    SAMIS.runs/args.json                  the per-run arguments
    SAMIS.runs/sgd/<ratio>/<run>/...      the SGD runs, released layout
    SAMIS.runs/sam/<ratio>/<run>/...      the SAM runs, released layout
    SAMIS.runs/pairs/<run>.<opt>.json     what each run started from
    SAMIS.runs/scores/<run>.npz           SAMIS-L/-P of run's held-out fold

with run id `seed * folds + fold` and ratio the fraction of the training set
the runs train on ((folds - 1) / folds, rounded to 6 decimals; 1 for
premature). `sgd/` and `sam/` are experiments that heldout estimators and
`heldout.readers.checkpoints.restore_run` read (each run's aux_arrays.npz
holds its correctness on its training folds, its held-out fold and the test
set). A run trains in a temporary folder, saves its progress there, and is
renamed into place once complete (`train.heldout_training.publish_run`), so a
killed job started again continues where it was and never retrains a finished
(fold, seed, optimizer). Before scoring a pair, its two records are compared:
a different initial weight fingerprint or epoch order raises
`PairMismatchError`.

Several workers share the runs of one output without a coordinator: pair
`run` goes to the worker `run % num_workers` (`train.subsets.select_runs`);
whoever finds every pair finished when it ends writes the score files.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tqdm

from heldout import atomic
from heldout import errors
from heldout import npz_io
from heldout.estimators import pipeline
from heldout.readers import checkpoints
from heldout.readers import layout
from heldout.released import agreement
from heldout.scores import score_file
from train import heldout_training
from train import loop
from train import sam
from train import subsets

OPTIMIZERS = ("sgd", "sam")
SAMIS_L = "samis_l"
SAMIS_P = "samis_p"
PREMATURE_EPOCHS = 20


class PairMismatchError(errors.ExperimentError):
  """The SGD and SAM runs of a pair did not start alike."""


@dataclasses.dataclass(frozen=True)
class SamisArgs:
  """What a SAMIS job computes.

  Attributes:
    dataset: the dataset's name.
    config: the `TrainConfig` of both runs of a pair, as a dict.
    seeds: the seeds averaged.
    folds: folds of the training set (>= 2); 1 for premature.
    rho: SAM's radius.
    premature: the premature variant (every example trained on and scored).
  """
  dataset: str
  config: Dict[str, object]
  seeds: Tuple[int, ...]
  folds: int = 10
  rho: float = sam.DEFAULT_RHO
  premature: bool = False

  def __post_init__(self):
    if not self.seeds:
      raise ValueError("`seeds` must name at least one seed")
    if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(
        self.seeds):
      raise ValueError("`seeds` must be distinct and >= 0, got {}".format(
          list(self.seeds)))
    if self.premature and self.folds != 1:
      raise ValueError("`folds` must be 1 for premature (every example is "
                       "trained on), got {}".format(self.folds))
    if not self.premature and self.folds < 2:
      raise ValueError("`folds` must be at least 2, got {}".format(
          self.folds))
    if not self.rho > 0:
      raise ValueError("`rho` must be positive, got {}".format(self.rho))
    object.__setattr__(self, "seeds", tuple(sorted(int(s) for s in self.seeds)))
    object.__setattr__(self, "folds", int(self.folds))
    object.__setattr__(self, "rho", float(self.rho))

  def as_dict(self):
    return json.loads(json.dumps(dataclasses.asdict(self)))

  def per_run_dict(self):
    """The arguments a run depends on (not the set of seeds)."""
    out = self.as_dict()
    del out["seeds"]
    return out

  @property
  def subset_ratio(self) -> float:
    """The ratio folder of the runs: (folds - 1) / folds; 1 for premature."""
    return 1.0 if self.premature else round((self.folds - 1) / self.folds, 6)

  @property
  def run_ids(self) -> List[int]:
    return [run_id(s, k, self.folds) for s in self.seeds
            for k in range(self.folds)]


def premature_config(config, epochs: Optional[int] = None):
  """The premature variant's recipe: `config` at a constant rate, few epochs.

  Args:
    config: a `TrainConfig`.
    epochs: its epochs (`PREMATURE_EPOCHS`, the paper's 20, if None).
  """
  return config.replace(epochs=int(epochs or PREMATURE_EPOCHS),
                        lr_schedule="constant", warmup_epochs=0.0,
                        lr_boundaries_epochs=())


def run_id(seed: int, fold: int, folds: int) -> int:
  """The run id of (seed, fold): `seed * folds + fold`."""
  return int(seed) * int(folds) + int(fold)


def seed_and_fold(run: int, folds: int) -> Tuple[int, int]:
  return int(run) // int(folds), int(run) % int(folds)


def pair_seed(args: SamisArgs, run: int) -> int:
  """The seed both runs of pair `run` start from (weights and data order)."""
  return subsets.run_seed(args.subset_ratio, run)


def fold_ids(num_train: int, folds: int) -> List[np.ndarray]:
  """The training ids of each fold: sorted int64 arrays partitioning ids.

  One permutation, drawn from `folds` only; fold k holds its positions
  k, k + folds, ...
  """
  if folds == 1:
    return [np.arange(num_train, dtype=np.int64)]
  seed = int.from_bytes(hashlib.sha256(
      "samis-folds:{}".format(int(folds)).encode()).digest()[:4], "big")
  order = np.random.RandomState(seed & 0x7FFFFFFF).permutation(num_train)
  return [np.sort(order[k::folds]).astype(np.int64) for k in range(folds)]


def train_and_held_out(num_train: int, args: SamisArgs, run: int):
  """(training ids, held-out ids) of pair `run`; both all ids if premature."""
  _, fold = seed_and_fold(run, args.folds)
  folds = fold_ids(num_train, args.folds)
  if args.premature:
    return folds[0], folds[0]
  train = np.sort(np.concatenate([f for k, f in enumerate(folds)
                                  if k != fold]))
  return train, folds[fold]


# -- files ----------------------------------------------------------------


def output_paths(output) -> Dict[str, str]:
  """{method: score file}: `S.npz` -> `S_l.npz` (SAMIS-L), `S_p.npz`."""
  root = str(output)[:-4] if str(output).endswith(".npz") else str(output)
  return {SAMIS_L: root + "_l.npz", SAMIS_P: root + "_p.npz"}


def work_dir_for(output) -> str:
  """`SAMIS.npz` -> `SAMIS.runs/`."""
  root = str(output)[:-4] if str(output).endswith(".npz") else str(output)
  return root + ".runs"


def experiment_dir(work_dir, optimizer) -> str:
  """The experiment folder of one optimizer's runs."""
  return os.path.join(work_dir, optimizer)


def run_dir(work_dir, args: SamisArgs, optimizer, run) -> str:
  return layout.run_dir(experiment_dir(work_dir, optimizer),
                        args.subset_ratio, run)


def _record_path(work_dir, run, optimizer):
  return os.path.join(work_dir, "pairs", "{}.{}.json".format(run, optimizer))


def _pair_scores_path(work_dir, run):
  return os.path.join(work_dir, "scores", "{}.npz".format(run))


def _check_work_dir(work_dir, args: SamisArgs, overwrite: bool):
  path = os.path.join(work_dir, "args.json")
  wanted = args.per_run_dict()
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != wanted:
      if not overwrite:
        raise errors.ArgumentsMismatchError(
            "{}: holds runs made with other arguments ({}); choose another "
            "output or overwrite (--overwrite)".format(
                work_dir,
                pipeline.describe_changed_arguments(previous, wanted)))
      for name in OPTIMIZERS + ("pairs", "scores"):
        shutil.rmtree(os.path.join(work_dir, name), ignore_errors=True)
  os.makedirs(work_dir, exist_ok=True)
  atomic.write_json(path, wanted)


# -- training -------------------------------------------------------------


def weights_fingerprint(model) -> str:
  """SHA-256 of every variable of `model` (names, shapes, values)."""
  digest = hashlib.sha256()
  for v in sorted(model.variables, key=lambda v: v.name):
    value = np.ascontiguousarray(v.numpy())
    digest.update("{}:{}:{}".format(v.name, value.shape, value.dtype).encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


class _EpochOrders(loop.Callback):
  """Records a fingerprint of each epoch's example order, kept across kills."""

  def __init__(self, path):
    self._path = path
    self.orders = {}
    if os.path.exists(path):
      with open(path) as f:
        self.orders = json.load(f)
    self._digest = None

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    if self._digest is None:
      self._digest = hashlib.sha256()
    self._digest.update(np.asarray(index, np.int64).tobytes())

  def on_epoch_end(self, epoch, trainer):
    self.orders[str(epoch)] = self._digest.hexdigest()
    self._digest = None
    atomic.write_json(self._path, self.orders)


def train_member(trainer: loop.Trainer, dataset, args: SamisArgs, run: int,
                 optimizer: str, work_dir: str) -> str:
  """Trains (or continues) and publishes one run of pair `run`.

  Returns:
    "trained" or "resumed".
  """
  config = trainer.config
  exp = experiment_dir(work_dir, optimizer)
  final = layout.run_dir(exp, args.subset_ratio, run)
  tmp = heldout_training.tmp_run_dir(exp, args.subset_ratio, run)
  seed = pair_seed(args, run)
  train_ids, _ = train_and_held_out(len(dataset.train), args, run)
  trainer.reset(seed)
  init = weights_fingerprint(trainer.model)
  progress = trainer.progress_checkpoint()
  manager = tf.train.CheckpointManager(
      progress, os.path.join(tmp, heldout_training.PROGRESS_DIRNAME),
      max_to_keep=1)
  if manager.latest_checkpoint:
    progress.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info("%s run %d: resuming at epoch %d", optimizer, run,
                 int(trainer.epoch.numpy()))
  else:
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
  status = "resumed" if int(trainer.epoch.numpy()) > 0 else "trained"
  orders = _EpochOrders(os.path.join(tmp, "orders.json"))
  last_save = [time.time()]

  def save_progress(epochs_done):
    if (epochs_done < config.epochs and
        time.time() - last_save[0] >= config.checkpoint_every_seconds):
      manager.save(checkpoint_number=epochs_done)
      last_save[0] = time.time()

  trainer.fit(dataset.train, train_ids, seed, callbacks=[orders],
              epoch_end_fn=save_progress)
  arrays = heldout_training.evaluate_run(trainer.evaluate, dataset, train_ids)
  os.makedirs(os.path.dirname(_record_path(work_dir, run, optimizer)),
              exist_ok=True)
  atomic.write_json(_record_path(work_dir, run, optimizer), {
      "optimizer": optimizer, "run": run, "seed": seed, "initial_weights": init,
      "num_train_ids": len(train_ids), "epoch_orders": orders.orders,
      "rho": args.rho if optimizer == "sam" else None})
  heldout_training.publish_run(tmp, final, trainer.final_checkpoint(),
                               config.epochs, arrays, len(dataset.train),
                               len(dataset.test))
  return status


def check_pair(work_dir, run: int):
  """Raises `PairMismatchError` unless the two runs of `run` started alike."""
  records = {}
  for optimizer in OPTIMIZERS:
    with open(_record_path(work_dir, run, optimizer)) as f:
      records[optimizer] = json.load(f)
  a, b = records["sgd"], records["sam"]
  for key, what in (("seed", "seed"), ("initial_weights",
                                       "initial weights (SHA-256)"),
                    ("num_train_ids", "number of training examples"),
                    ("epoch_orders", "example order of every epoch")):
    if a[key] != b[key]:
      raise PairMismatchError(
          "pair {} ({}): the SGD and SAM runs differ in their {}: SGD {}, "
          "SAM {}; delete both runs and their records to train the pair "
          "again".format(run, work_dir, what, _short(a[key]), _short(b[key])))


def _short(value):
  text = json.dumps(value, sort_keys=True)
  return text if len(text) < 80 else text[:77] + "..."


# -- scoring --------------------------------------------------------------


def predict_logits(model, split, ids, batch_size=200) -> np.ndarray:
  """[len(ids), C] float32 logits of `ids` in inference mode."""
  positions = split.positions_of(np.asarray(ids, np.int64))
  out = []
  for start in range(0, len(positions), batch_size):
    pos = positions[start:start + batch_size]
    out.append(model(tf.constant(split.images[pos]), is_training=False).numpy())
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def samis_from_logits(logits_sgd, logits_sam, labels):
  """(SAMIS-L [n], SAMIS-P [n]) float64 from the two models' logits.

  Args:
    logits_sgd: [n, C] logits of the SGD model.
    logits_sam: [n, C] logits of the SAM model.
    labels: [n] int labels.
  """
  def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

  a, b = log_softmax(logits_sgd), log_softmax(logits_sam)
  rows = np.arange(len(labels))
  labels = np.asarray(labels, np.int64)
  loss = np.abs(a[rows, labels] - b[rows, labels])
  prob = np.abs(np.exp(a) - np.exp(b)).sum(axis=1)
  return loss, prob


def score_pair(dataset, args: SamisArgs, run: int, work_dir: str):
  """SAMIS of pair `run`'s held-out examples from its two checkpoints.

  Returns:
    dict with `index` [m] int64 and `samis_l`, `samis_p` [m] float64.
  """
  check_pair(work_dir, run)
  _, held_out = train_and_held_out(len(dataset.train), args, run)
  config = args.config
  logits = {}
  for optimizer in OPTIMIZERS:
    restored = checkpoints.restore_run(
        run_dir(work_dir, args, optimizer, run), arch=config["arch"],
        num_classes=int(dataset.num_classes), **config["arch_kwargs"])
    logits[optimizer] = predict_logits(restored.model, dataset.train,
                                       held_out, config["eval_batch_size"])
  labels = dataset.train.labels[dataset.train.positions_of(held_out)]
  loss, prob = samis_from_logits(logits["sgd"], logits["sam"], labels)
  return {"index": held_out, SAMIS_L: loss, SAMIS_P: prob}


def _read_pair_scores(path):
  with npz_io.load_npz(path) as npz:
    return {k: npz[k] for k in npz.files}


def aggregate(pair_scores: Dict[int, Dict[str, np.ndarray]],
              args: SamisArgs, method: str) -> score_file.Scores:
  """The mean over seeds of each example's score, with SE and seed count."""
  per_seed = []
  for seed in args.seeds:
    parts = [pair_scores[run_id(seed, k, args.folds)]
             for k in range(args.folds)]
    per_seed.append((np.concatenate([p["index"] for p in parts]),
                     np.concatenate([p[method] for p in parts])))
  file_args = dict(args.as_dict(), score=method)
  return score_file.average_over_runs(per_seed, method, file_args)


def _empty_scores(args, method):
  return score_file.Scores(
      index=np.zeros(0, np.int64), values=np.zeros(0), se=np.zeros(0),
      num_runs=np.zeros(0, np.int64), method=method,
      args=dict(args.as_dict(), score=method))


def missing_runs(output, args: SamisArgs) -> List[Tuple[int, str]]:
  """(run, optimizer) of `args` without a finished run yet."""
  work_dir = work_dir_for(output)
  return [(r, o) for r in args.run_ids for o in OPTIMIZERS
          if not heldout_training.is_complete_run(
              run_dir(work_dir, args, o, r))]


def train_and_score(dataset, trainer_fn, args: SamisArgs, output,
                    overwrite: bool = False, progress: bool = True,
                    train_runs: Optional[Sequence[int]] = None
                    ) -> Dict[str, str]:
  """Trains this worker's unfinished runs, then writes the score files.

  Args:
    dataset: `heldout.data.dataset.Dataset`.
    trainer_fn: `optimizer -> train.loop.Trainer` ("sgd" or "sam") for the
      dataset and `args.config`.
    args: `SamisArgs`.
    output: the outputs' stem (`output_paths`).
    overwrite: replace outputs and runs made with other arguments.
    progress: show a progress bar over runs.
    train_runs: the pair ids this worker trains, among `args.run_ids`
      (default: all of them).

  Returns:
    {method: path written}; empty when runs of other workers are missing.

  Raises:
    ArgumentsMismatchError: if an output or the work folder holds results of
      other arguments and `overwrite` is False.
    PairMismatchError: if the two runs of a pair did not start alike.
    ValueError: if `train_runs` names pairs not in `args.run_ids`.
  """
  mine = args.run_ids if train_runs is None else [int(r) for r in train_runs]
  if not set(mine) <= set(args.run_ids):
    raise ValueError("`train_runs` must be among the pairs {}, got {}".format(
        args.run_ids, sorted(set(mine) - set(args.run_ids))))
  paths = output_paths(output)
  for method, path in paths.items():
    score_file.check_stored_arguments(path, _empty_scores(args, method),
                                      overwrite)
  work_dir = work_dir_for(output)
  _check_work_dir(work_dir, args, overwrite)
  job = {"dataset": args.dataset, "num_train": len(dataset.train),
         "num_test": len(dataset.test), "num_classes": dataset.num_classes,
         "config": args.config}
  for optimizer in OPTIMIZERS:
    heldout_training.check_or_write_arguments(
        experiment_dir(work_dir, optimizer), dict(job, optimizer=optimizer))
  missing = set(missing_runs(output, args))
  todo = [(r, o) for r in mine for o in OPTIMIZERS if (r, o) in missing]
  trainers = {}
  started = time.time()
  for done, (run, optimizer) in enumerate(tqdm.tqdm(
      todo, desc="samis", unit="run", disable=not progress)):
    if optimizer not in trainers:
      trainers[optimizer] = trainer_fn(optimizer)
    status = train_member(trainers[optimizer], dataset, args, run, optimizer,
                          work_dir)
    elapsed = time.time() - started
    logging.info("%s run %d (seed %d, fold %d) %s [%d/%d, ETA %.0fs]",
                 optimizer, run, *seed_and_fold(run, args.folds), status,
                 done + 1, len(todo), elapsed / (done + 1) *
                 (len(todo) - done - 1))
  if missing_runs(output, args):
    return {}
  pair_scores = {}
  for run in args.run_ids:
    path = _pair_scores_path(work_dir, run)
    if not os.path.exists(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
      atomic.write_npz(path, **score_pair(dataset, args, run, work_dir))
    pair_scores[run] = _read_pair_scores(path)
  for method, path in paths.items():
    score_file.save_scores(aggregate(pair_scores, args, method), path,
                           overwrite)
  return paths


def memorization_agreement(scores: score_file.Scores, estimates_path):
  """Spearman of `scores` against the `memorization` of an estimates file.

  Args:
    scores: SAMIS scores (example ids in `index`).
    estimates_path: what `//heldout:estimate` writes (`index`,
      `memorization`).

  Returns:
    `heldout.released.agreement.AgreementReport` (its `spearman` and
    `n_compared`, the examples with both values finite).
  """
  with npz_io.load_npz(str(estimates_path)) as npz:
    if "memorization" not in npz.files:
      raise ValueError("{}: key `memorization` not found; keys are {} (pass "
                       "what //heldout:estimate writes)".format(
                           estimates_path, sorted(npz.files)))
    memorization = np.asarray(npz["memorization"], np.float64)
    index = (np.asarray(npz["index"], np.int64) if "index" in npz.files
             else np.arange(len(memorization), dtype=np.int64))
  return agreement.agreement_report(scores.values, memorization,
                                    ours_index=scores.index,
                                    published_index=index)
