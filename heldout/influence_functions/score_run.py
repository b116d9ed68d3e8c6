"""Influence functions of a trained run: the library behind the binary.

`score_run` restores a run (released layout, architecture inferred from the
checkpoint as `//heldout:predict` does, or given), selects the query and
training examples of a dataset (`parse_selection`: "test", "test[:2000]",
"train[100:200]"), runs the stages with their artefacts in a factors folder,
and writes

- pairwise scores (`save_pairwise`): an .npz with `query_index` [Q],
  `train_index` [N], `module_names` [M], and either `values` [Q, N] (dense;
  `per_module` [M, Q, N] on request) or `topk_values` / `topk_indices`
  [Q, k] (training example ids), with `args_json`; or
- self-influence of every selected training example: the per-example score
  artefact (`heldout.scores.score_file`), method `self_influence_<strategy>`,
  with the per-layer values as extras `module.<layer path>`.

Outputs and artefacts made with other arguments are refused unless
`overwrite`.
"""

import dataclasses
import json
import os
import re
from typing import Optional, Tuple

import numpy as np

from heldout import atomic
from heldout.estimators import pipeline
from heldout.influence_functions import arguments
from heldout.influence_functions import compute_scores
from heldout.influence_functions import devices as devices_lib
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import influence
from heldout.readers import checkpoints
from heldout.scores import score_file

SELF_INFLUENCE_METHOD = "self_influence_{}"
_SELECTION = re.compile(r"^([A-Za-z0-9_\-]+)(?:\[(-?\d*):(-?\d*)\])?$")


def parse_selection(text: str) -> Tuple[str, slice]:
  """"split" or "split[a:b]" -> (split, slice over the split's sorted ids).

  Raises:
    ValueError: naming the expected form.
  """
  match = _SELECTION.match(text or "")
  if not match:
    raise ValueError("expected a split name or split[start:stop] (e.g. test, "
                     "test[:2000]), got {!r}".format(text))
  start, stop = match.group(2), match.group(3)
  return match.group(1), slice(int(start) if start else None,
                               int(stop) if stop else None)


def select_examples(dataset, text: str) -> examples_lib.Examples:
  """The examples of `dataset` that `text` selects, in ascending id order.

  Raises:
    DatasetError: for a split the dataset lacks.
    ValueError: for a malformed or empty selection.
  """
  name, part = parse_selection(text)
  split = dataset.split(name)
  ids = np.sort(np.asarray(split.index, np.int64))[part]
  if not len(ids):
    raise ValueError("{!r} selects no example of split {} ({} examples)"
                     .format(text, name, len(split)))
  return examples_lib.Examples.from_split(
      split, ids, name="{}/{}".format(dataset.name, text))


def default_factors_dir(output: str) -> str:
  """`SCORES.npz` -> `SCORES.factors/`."""
  root, ext = os.path.splitext(output)
  return (root if ext == ".npz" else output) + ".factors"


@dataclasses.dataclass(frozen=True)
class Written:
  """What `score_run` wrote: the output, the factors folder, what it holds."""
  output: str
  factors_dir: str
  summary: str


def save_pairwise(path: str, scores: compute_scores.PairwiseScores,
                  args: dict, overwrite: bool = False):
  """Writes pairwise scores and `args` atomically (refusing other arguments)."""
  pipeline.check_stored_arguments(path, args, overwrite=overwrite,
                                  what="pairwise influence scores")
  arrays = dict(scores.arrays())
  arrays["args_json"] = np.array(json.dumps(args, sort_keys=True))
  atomic.write_npz(path, **arrays)


def self_influence_scores(scores: compute_scores.SelfScores, strategy: str,
                          args: dict) -> score_file.Scores:
  """Self-influence as the per-example score artefact."""
  n = len(scores.index)
  extras = {"module." + name.replace("/", "."): scores.per_module[i].astype(
      np.float64) for i, name in enumerate(scores.module_names)}
  return score_file.Scores(
      index=scores.index, values=scores.values.astype(np.float64),
      se=np.full(n, np.nan), num_runs=np.ones(n, np.int64),
      method=SELF_INFLUENCE_METHOD.format(strategy), args=args, extras=extras)


def score_run(model_dir: str, dataset, output: str,
              factor_args: arguments.FactorArgs,
              score_args: arguments.ScoreArgs, queries: str = "test",
              train: str = "train", self_influence: bool = False,
              top_k: Optional[int] = None, per_module: bool = False,
              factors_dir: Optional[str] = None, arch: Optional[str] = None,
              num_classes: Optional[int] = None,
              batch_size: int = 256, overwrite: bool = False,
              progress: bool = True, log=print,
              query_batch_size: Optional[int] = None,
              query_memory_mb: float = influence.DEFAULT_QUERY_MEMORY_MB,
              devices: str = devices_lib.AUTO) -> Written:
  """Influence functions of one run, written to `output`.

  Args:
    model_dir: the run folder (`checkpoints/ckpt-<epoch>.index`).
    dataset: the `heldout.data.dataset.Dataset` (preprocessed images).
    output: the .npz to write (pairwise scores, or self-influence with
      `self_influence`).
    factor_args: `FactorArgs`.
    score_args: `ScoreArgs`.
    queries: the query selection (`parse_selection`), for pairwise scores.
    train: the training selection: the factors are fitted on it and it is
      scored.
    self_influence: write self-influence instead of pairwise scores.
    top_k: keep the k largest pairwise scores per query (streamed), else
      dense.
    per_module: also write per-layer pairwise scores (dense only).
    factors_dir: the stages' artefacts (default `default_factors_dir`).
    arch: architecture (inferred when None).
    num_classes: number of classes (inferred when None).
    batch_size: examples per batch.
    overwrite: replace outputs and artefacts made with other arguments.
    progress: progress bars.
    log: prints a line.
    query_batch_size: queries preconditioned and scored per pass over the
      training examples (None: as many as fill `query_memory_mb`).
    query_memory_mb: memory of one chunk of preconditioned queries.
    devices: where the passes run (`devices.make_strategy`): "auto" (every
      GPU when there are several, else the default device), "cpu", or a
      number of replicas.

  Returns:
    `Written`.

  Raises:
    ArgumentsMismatchError: if the output or an artefact exists with other
      arguments and `overwrite` is False.
    ValueError / HeldoutError: for bad selections, runs or datasets.
  """
  output = str(output)
  factors_dir = factors_dir or default_factors_dir(output)
  strategy = devices_lib.make_strategy(devices)
  run = checkpoints.restore_run(model_dir, arch=arch, num_classes=num_classes)
  log("restored {} (num_classes={}), epoch {}, from {}".format(
      run.arch, run.num_classes, run.epoch, run.checkpoint_prefix))
  if dataset.num_classes != run.num_classes:
    raise ValueError("dataset {} has {} classes, the run's model {}".format(
        dataset.name, dataset.num_classes, run.num_classes))
  train_examples = select_examples(dataset, train)
  query_examples = None if self_influence else select_examples(dataset,
                                                               queries)
  if top_k is not None:
    top_k = min(top_k, len(train_examples))
  functions = influence.InfluenceFunctions(
      run.model, factor_args, score_args,
      model_id="{} ({})".format(os.path.abspath(run.checkpoint_prefix),
                                run.arch),
      factors_dir=factors_dir, overwrite=overwrite, batch_size=batch_size,
      progress=progress, query_batch_size=query_batch_size,
      query_memory_mb=query_memory_mb,
      distribute_strategy=strategy)
  log("{} tracked layers ({} parameters); {} training examples ({}); {}"
      .format(len(functions.tracked),
              sum(t.d_out * t.d_in for t in functions.tracked),
              len(train_examples), train, devices_lib.describe(strategy)))
  # Refuse a mismatched output before any work.
  args = {"factors": factor_args.to_dict(), "scores": score_args.to_dict(),
          "model_dir": os.path.abspath(model_dir), "arch": run.arch,
          "dataset": dataset.name, "train": train,
          "train_sha1": train_examples.digest()}
  if self_influence:
    args["self_influence"] = True
    method = SELF_INFLUENCE_METHOD.format(factor_args.strategy)
    score_file.check_stored_arguments(output, score_file.Scores(
        index=np.zeros(0, np.int64), values=np.zeros(0), se=np.zeros(0),
        num_runs=np.zeros(0, np.int64), method=method, args=args), overwrite)
  else:
    args.update(queries=queries, query_sha1=query_examples.digest(),
                top_k=top_k, per_module=per_module)
    pipeline.check_stored_arguments(output, args, overwrite=overwrite,
                                    what="pairwise influence scores")
  functions.fit_factors(train_examples)
  if self_influence:
    scores = functions.self_scores(train_examples)
    score_file.save_scores(self_influence_scores(
        scores, factor_args.strategy, args), output, overwrite=overwrite)
    summary = "self-influence of {} training examples ({})".format(
        len(train_examples), factor_args.strategy)
  else:
    scores = functions.pairwise_scores(query_examples, train_examples,
                                       top_k=top_k, per_module=per_module)
    save_pairwise(output, scores, args, overwrite=overwrite)
    summary = "{} pairwise scores {}x{} ({})".format(
        "dense" if top_k is None else "top-{}".format(top_k),
        len(query_examples), len(train_examples), factor_args.strategy)
  return Written(output=output, factors_dir=factors_dir, summary=summary)
