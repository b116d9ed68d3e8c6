"""Every method's per-example scores on one dataset, as score files.

`score_methods(setting)` runs each method on `setting.dataset` (e.g. digits
with 10% of its labels corrupted) and writes one score file per method
(`heldout.scores.score_file`) under `setting.work_dir/scores/`:

- `memorization`: a heldout experiment (`setting.heldout_runs` runs at
  `setting.subset_ratio`, K at a time for the small models), estimated by
  `heldout.estimators.pipeline` (values, SE, and runs in + out as
  `num_runs`);
- `cleanlab`: cleanlab's label-issue score from the out-of-sample
  probabilities of the same runs (`out_of_sample.py`);
- `forgetting_minibatch`, `el2n` (at `setting.el2n_epoch`), `grand` (at
  initialisation) and `ssft` with `fslt` (its extra, also written as its own
  file): `train.scoring.train_and_score`, `setting.seeds` seeds;
- `samis_l` / `samis_p`: paired SGD / SAM runs over `setting.samis_folds`
  folds (`train.samis_training`), each example scored from its held-out
  fold;
- `self_influence`: EKFAC self-influence (`heldout.influence_functions`,
  Kronfluence's conventions, heuristic damping) of one model per seed
  trained on the whole training set, averaged over the models.
A method that cannot run on the setting (no recipe) is reported missing, by
name, never faked.

Everything is resumable: the heldout runs and the scoring seeds are skipped
when finished, and a score file already written with the same arguments is
read back instead of being computed again.
"""

import dataclasses
import json
import os
import time
from typing import Callable, Dict, Optional, Tuple

from absl import logging
import numpy as np

from heldout.evaluations import out_of_sample
from heldout.scores import score_file

MEMORIZATION = "memorization"
METHODS = (MEMORIZATION, out_of_sample.CLEANLAB, "forgetting_minibatch",
           "el2n", "grand", "ssft", "fslt", "samis_l", "samis_p",
           "self_influence")


@dataclasses.dataclass(frozen=True)
class Setting:
  """One dataset to score with every method, and the budget.

  Attributes:
    name: a short name (used in tables).
    dataset: `heldout.data.Dataset` (its train split is scored).
    work_dir: where runs and score files go.
    configs: {"heldout", "scores", "ssft", "samis"}: `TrainConfig` of each
      kind of training ("samis" may be absent: SAMIS is then missing).
    heldout_runs: heldout runs for memorization.
    subset_ratio: their subset ratio.
    seeds: seeds of the training-dynamics scores.
    ssft_seeds: seeds of SSFT (two trainings of two phases each).
    el2n_epoch: the epoch EL2N is scored at (GraNd: 0).
    samis_folds: folds of SAMIS's paired runs.
    samis_seeds: seeds of SAMIS (each a full pass over the folds).
    cleanlab_runs: heldout runs whose predictions feed cleanlab.
    batched_k: models trained at once where possible (0: one at a time).
  """
  name: str
  dataset: object
  work_dir: str
  configs: Dict[str, object]
  heldout_runs: int = 512
  subset_ratio: float = 0.7
  seeds: Tuple[int, ...] = (0, 1, 2, 3, 4)
  ssft_seeds: Tuple[int, ...] = (0, 1, 2)
  el2n_epoch: int = 2
  samis_folds: int = 10
  samis_seeds: Tuple[int, ...] = (0,)
  cleanlab_runs: int = 128
  batched_k: int = 64

  def score_path(self, method):
    return os.path.join(self.work_dir, "scores", method + ".npz")


@dataclasses.dataclass(frozen=True)
class MethodScores:
  """What `score_methods` produced.

  Attributes:
    scores: {method: `Scores`}.
    missing: {method: why it is not there}.
    seconds: {method: wall time spent now (0 when read back)}.
  """
  scores: Dict[str, score_file.Scores]
  missing: Dict[str, str]
  seconds: Dict[str, float]


def batched_trainable(config) -> bool:
  """Whether `config` trains batched (`train.batched.supports`)."""
  from train import batched  # pylint: disable=g-import-not-at-top
  return batched.supports(config)


def _stored(path, method, args) -> Optional[score_file.Scores]:
  """The score file at `path` if it holds `method` run with `args`."""
  if not os.path.exists(path):
    return None
  scores = score_file.read_scores(path)
  wanted = json.loads(json.dumps(args, sort_keys=True))
  if scores.method == method and scores.args == wanted:
    return scores
  return None


def _heldout_experiment(setting, progress):
  from train import batched  # pylint: disable=g-import-not-at-top
  from train import heldout_training  # pylint: disable=g-import-not-at-top
  config = setting.configs["heldout"]
  experiment = os.path.join(setting.work_dir, "experiment")
  runs = list(range(setting.heldout_runs))
  if batched_trainable(config) and setting.batched_k:
    batched.train_heldout_batched(setting.dataset, config.arch,
                                  setting.subset_ratio, runs, experiment,
                                  config, k=setting.batched_k,
                                  progress=progress)
  else:
    heldout_training.train_heldout(setting.dataset, config,
                                   setting.subset_ratio, runs, experiment,
                                   progress=progress)
  return experiment


def _memorization(setting, progress):
  from heldout.estimators import pipeline  # pylint: disable=g-import-not-at-top
  experiment = _heldout_experiment(setting, progress)
  estimates = pipeline.compute_estimates(
      pipeline.EstimateArgs(experiment_dir=experiment,
                            subset_ratio=setting.subset_ratio,
                            influence="none"), progress=progress)
  mem = estimates.memorization
  return {MEMORIZATION: score_file.Scores(
      index=estimates.index, values=mem.values, se=mem.se,
      num_runs=mem.n_in + mem.n_out, method=MEMORIZATION,
      args=_args(setting, MEMORIZATION),
      extras={"n_in": mem.n_in, "n_out": mem.n_out})}


def _cleanlab(setting, progress):
  experiment = _heldout_experiment(setting, progress)
  runs = range(min(setting.cleanlab_runs, setting.heldout_runs))
  split = setting.dataset.train
  probs, count = out_of_sample.out_of_sample_probabilities(
      experiment, setting.subset_ratio, runs, split, progress=progress)
  score, flagged = out_of_sample.cleanlab_scores(split.labels, probs)
  return {out_of_sample.CLEANLAB: score_file.Scores(
      index=np.asarray(split.index, np.int64), values=score,
      se=np.full(len(score), np.nan), num_runs=count,
      method=out_of_sample.CLEANLAB,
      args=_args(setting, out_of_sample.CLEANLAB),
      extras={"flagged": flagged})}


def _training_dynamics(setting, method, progress):
  """forgetting / el2n / grand / ssft through `train.scoring`."""
  from heldout.models import registry  # pylint: disable=g-import-not-at-top
  from train import batched  # pylint: disable=g-import-not-at-top
  from train import loop  # pylint: disable=g-import-not-at-top
  from train import scoring  # pylint: disable=g-import-not-at-top
  dataset = setting.dataset
  config = setting.configs["ssft" if method == "ssft" else "scores"]
  job = {"forgetting_minibatch": "forgetting"}.get(method, method)
  args = scoring.ScoringArgs(
      method=job, dataset=dataset.name,
      config=dataclasses.asdict(config),
      seeds=setting.ssft_seeds if method == "ssft" else setting.seeds,
      score_epochs={"el2n": (setting.el2n_epoch,), "grand": (0,)}.get(
          method, ()),
      second_epochs=config.epochs if method == "ssft" else 0)
  k = (setting.batched_k if method != "ssft" and batched_trainable(config) else 0)
  output = os.path.join(setting.work_dir, "runs", method + ".npz")
  os.makedirs(os.path.dirname(output), exist_ok=True)
  paths = scoring.train_and_score(
      dataset,
      lambda: loop.Trainer(lambda: registry.build_model(
          config.arch, dataset.num_classes, **config.arch_kwargs),
                           dataset.image_shape, config),
      args, output, progress=progress,
      batched_fn=lambda kk: batched.BatchedTrainer(
          config.arch, dataset.num_classes, dataset.image_shape, config, kk),
      batched_k=min(k, len(args.seeds)))
  scores = score_file.read_scores(next(iter(paths.values())))
  scores = dataclasses.replace(scores, method=method,
                               args=_args(setting, method))
  out = {method: scores}
  if method == "ssft":
    out["fslt"] = score_file.Scores(
        index=scores.index, values=scores.extras["fslt"],
        se=scores.extras["fslt_se"], num_runs=scores.num_runs,
        method="fslt", args=_args(setting, "fslt"))
  return out


def _samis(setting, progress):
  """SAMIS-L / -P: paired SGD / SAM runs over folds (`train.samis_training`)."""
  from heldout.models import registry  # pylint: disable=g-import-not-at-top
  from train import sam  # pylint: disable=g-import-not-at-top
  from train import samis_training  # pylint: disable=g-import-not-at-top
  config = setting.configs.get("samis")
  if config is None:
    return "no SAMIS recipe for {}".format(setting.dataset.name)
  dataset = setting.dataset
  args = samis_training.SamisArgs(
      dataset=dataset.name, config=config.to_json(),
      seeds=setting.samis_seeds, folds=setting.samis_folds)
  output = os.path.join(setting.work_dir, "runs", "samis.npz")
  os.makedirs(os.path.dirname(output), exist_ok=True)

  def trainer_fn(optimizer):
    return sam.make_trainer(
        optimizer, lambda: registry.build_model(
            config.arch, dataset.num_classes, **config.arch_kwargs),
        dataset.image_shape, config, rho=args.rho)

  paths = samis_training.train_and_score(dataset, trainer_fn, args, output,
                                         progress=progress)
  return {m: dataclasses.replace(score_file.read_scores(path), method=m,
                                 args=_args(setting, m))
          for m, path in paths.items()}


def _self_influence(setting, progress):
  """EKFAC self-influence (Kronfluence's conventions) of models trained on
  the whole training set, one per seed, averaged with its SE."""
  from heldout.influence_functions import arguments  # pylint: disable=g-import-not-at-top
  from heldout.influence_functions import examples as examples_lib  # pylint: disable=g-import-not-at-top
  from heldout.influence_functions import influence  # pylint: disable=g-import-not-at-top
  from heldout.readers import checkpoints  # pylint: disable=g-import-not-at-top
  from heldout.readers import layout  # pylint: disable=g-import-not-at-top
  from train import batched  # pylint: disable=g-import-not-at-top
  from train import heldout_training  # pylint: disable=g-import-not-at-top
  config = setting.configs["scores"]
  dataset = setting.dataset
  models = os.path.join(setting.work_dir, "full_data_models")
  runs = list(setting.seeds)
  if batched_trainable(config) and setting.batched_k:
    batched.train_heldout_batched(dataset, config.arch, 1.0, runs, models,
                                  config, k=setting.batched_k,
                                  progress=progress)
  else:
    heldout_training.train_heldout(dataset, config, 1.0, runs, models,
                                   progress=progress)
  train = examples_lib.Examples.from_split(dataset.train, name=dataset.name)
  per_model = []
  for run_id in runs:
    model = checkpoints.restore_run(layout.run_dir(models, 1.0, run_id)).model
    functions = influence.InfluenceFunctions(
        model, arguments.FactorArgs(strategy="ekfac"),
        arguments.ScoreArgs(damping="heuristic"), batch_size=512,
        progress=False)
    functions.fit_factors(train)
    scores = functions.self_scores(train)
    per_model.append((np.asarray(scores.index, np.int64),
                      np.asarray(scores.values, np.float64)))
  return {"self_influence": score_file.average_over_runs(
      per_model, "self_influence", _args(setting, "self_influence"))}


def _args(setting, method) -> dict:
  """The arguments a method's score file records for `setting`."""
  configs = {k: v.to_json() for k, v in setting.configs.items()}
  return {"evaluation": setting.name, "dataset": setting.dataset.name,
          "method": method, "configs": configs,
          "heldout_runs": setting.heldout_runs,
          "subset_ratio": setting.subset_ratio, "seeds": list(setting.seeds),
          "ssft_seeds": list(setting.ssft_seeds),
          "el2n_epoch": setting.el2n_epoch,
          "samis_folds": setting.samis_folds,
          "samis_seeds": list(setting.samis_seeds),
          "cleanlab_runs": setting.cleanlab_runs}


# Producers: (methods they write, function(setting, progress) -> {method:
# Scores} or a reason string when unavailable).
_PRODUCERS = (
    ((MEMORIZATION,), _memorization),
    ((out_of_sample.CLEANLAB,), _cleanlab),
    (("forgetting_minibatch",),
     lambda s, p: _training_dynamics(s, "forgetting_minibatch", p)),
    (("el2n",), lambda s, p: _training_dynamics(s, "el2n", p)),
    (("grand",), lambda s, p: _training_dynamics(s, "grand", p)),
    (("ssft", "fslt"), lambda s, p: _training_dynamics(s, "ssft", p)),
    (("samis_l", "samis_p"), _samis),
    (("self_influence",), _self_influence),
)


def score_methods(setting: Setting, methods=METHODS, progress: bool = True,
                  log: Callable[[str], None] = print) -> MethodScores:
  """Runs (or reads back) every method of `methods` on `setting`."""
  unknown = set(methods) - set(METHODS)
  if unknown:
    raise ValueError("unknown methods {}; known: {}".format(
        sorted(unknown), list(METHODS)))
  scores, missing, seconds = {}, {}, {}
  for names, producer in _PRODUCERS:
    wanted = [m for m in names if m in methods]
    if not wanted:
      continue
    stored = {m: _stored(setting.score_path(m), m, _args(setting, m))
              for m in names}
    if all(stored[m] is not None for m in wanted):
      scores.update({m: stored[m] for m in wanted})
      seconds.update({m: 0.0 for m in wanted})
      log("{}: {} read back".format(setting.name, ", ".join(wanted)))
      continue
    started = time.time()
    produced = producer(setting, progress)
    if isinstance(produced, str):
      missing.update({m: produced for m in wanted})
      log("{}: {} not available: {}".format(setting.name, ", ".join(wanted),
                                            produced))
      continue
    for m in wanted:
      score_file.save_scores(produced[m], setting.score_path(m),
                             overwrite=True)
      scores[m] = produced[m]
      seconds[m] = (time.time() - started) / len(wanted)
    log("{}: {} in {:.0f}s".format(setting.name, ", ".join(wanted),
                                   time.time() - started))
    logging.info("%s: %s done", setting.name, wanted)
  return MethodScores(scores, missing, seconds)
