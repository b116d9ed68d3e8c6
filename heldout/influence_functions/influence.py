"""Influence functions of a Sonnet model, stage by stage, with saved artefacts.

    functions = InfluenceFunctions(model, FactorArgs(strategy="ekfac"),
                                   ScoreArgs(damping="heuristic"),
                                   model_id=run_dir, factors_dir="f/")
    functions.fit_factors(train)                  # stages 1-3
    pairwise = functions.pairwise_scores(queries, train, top_k=10)  # 4-5
    self_scores = functions.self_scores(train)

The stages (verb-named modules): `fit_covariances` -> `eigendecompose` ->
`fit_lambda` -> `precondition` (queries) -> `compute_scores`. With a
`factors_dir`, each stage's artefact is saved there with the arguments it
ran with (the model's identity, the examples' digest and the arguments that
change it): a later call with the same arguments reuses it, one with other
arguments is refused (`ArgumentsMismatchError`) unless `overwrite`.

Artefacts, by strategy: covariances.npz and eigendecomposition.npz (KFAC,
EKFAC), lambda_<strategy>.npz (EKFAC, diagonal), and for pairwise scores
the folder preconditioned_queries_<strategy>/: its arguments (args.json) and
one queries_<start>-<stop>.npz per chunk of `query_batch_size` queries.
Pairwise scores are computed chunk by chunk (each chunk preconditioned, or
loaded, then scored by a pass over the training examples), so memory holds
one chunk's preconditioned gradients whatever the number of queries; the
default chunk fills `query_memory_mb` (`default_query_batch_size`).
"""

import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from heldout.estimators import pipeline
from heldout.influence_functions import arguments
from heldout.influence_functions import artefacts
from heldout.influence_functions import compute_scores
from heldout.influence_functions import eigendecompose as eigen_lib
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import fit_covariances as covariances_lib
from heldout.influence_functions import fit_lambda as lambda_lib
from heldout.influence_functions import passes
from heldout.influence_functions import precondition as precondition_lib
from heldout.influence_functions import tracked_modules

COVARIANCES = "covariances.npz"
EIGENDECOMPOSITION = "eigendecomposition.npz"
# Preconditioned query gradients held at once, by default.
DEFAULT_QUERY_MEMORY_MB = 512


def lambda_name(strategy: str) -> str:
  return "lambda_{}.npz".format(strategy)


def preconditioned_queries_dir(strategy: str) -> str:
  return "preconditioned_queries_{}".format(strategy)


def query_chunk_name(start: int, stop: int) -> str:
  return "queries_{}-{}.npz".format(start, stop)


def default_query_batch_size(tracked: Sequence[tracked_modules.TrackedModule],
                             dtype: str = "float32",
                             memory_mb: float = DEFAULT_QUERY_MEMORY_MB
                             ) -> int:
  """Queries whose preconditioned gradients fill `memory_mb` (at least 1).

  A query's preconditioned gradient is one float per parameter of the
  tracked layers (compressed blocks are rebuilt whole for convolutions, so
  compression is not counted): SmallInception, 1.9M parameters in float32,
  7.6 MB a query, 70 queries in 512 MB.
  """
  per_query = sum(t.d_out * t.d_in for t in tracked) * (
      8 if dtype == "float64" else 4)
  return max(1, int(memory_mb * 2**20 // per_query))


def query_chunks(num_queries: int, query_batch_size: int
                 ) -> List[Tuple[int, int]]:
  """[(start, stop)] of consecutive chunks of at most `query_batch_size`."""
  return [(start, min(start + query_batch_size, num_queries))
          for start in range(0, num_queries, query_batch_size)]


class InfluenceFunctions:
  """One model's influence functions for one strategy.

  Attributes:
    tracked: the tracked layers (`find_tracked_modules`).
    preconditioner: the `Preconditioner`, once `fit_factors` has run.
  """

  def __init__(self, model, factor_args: arguments.FactorArgs,
               score_args: arguments.ScoreArgs, model_id: str = "",
               factors_dir: Optional[str] = None, overwrite: bool = False,
               batch_size: int = passes.DEFAULT_BATCH_SIZE,
               progress: bool = True,
               query_batch_size: Optional[int] = None,
               query_memory_mb: float = DEFAULT_QUERY_MEMORY_MB,
               distribute_strategy: Optional[tf.distribute.Strategy] = None):
    """Tracks the model's layers.

    Args:
      model: a built Sonnet module, `model(images, is_training)` -> logits.
      factor_args: `FactorArgs`.
      score_args: `ScoreArgs`.
      model_id: what the model is (its run directory and checkpoint), stored
        with every artefact.
      factors_dir: where artefacts are saved, None to keep them in memory.
      overwrite: replace artefacts made with other arguments.
      batch_size: examples per batch.
      progress: show progress bars.
      query_batch_size: queries preconditioned and scored per pass over the
        training examples; None: `default_query_batch_size` of
        `query_memory_mb`. It changes memory and time, not the scores.
      query_memory_mb: the memory the preconditioned gradients of one chunk
        of queries may take, when `query_batch_size` is None.
      distribute_strategy: None (the default device) or a
        `tf.distribute.Strategy` (`devices.make_strategy`): every pass
        splits each batch across its replicas. Like `batch_size`, it
        changes where and how fast, not the artefacts.

    Raises:
      UnsupportedModelError: if the model's layers cannot be tracked.
      ValueError: for a non-positive `batch_size`, `query_batch_size` or
        `query_memory_mb`.
    """
    if batch_size <= 0:
      raise ValueError("`batch_size` must be positive, got {}".format(
          batch_size))
    if query_batch_size is not None and query_batch_size <= 0:
      raise ValueError("`query_batch_size` must be positive or None, got {}"
                       .format(query_batch_size))
    if not query_memory_mb > 0:
      raise ValueError("`query_memory_mb` must be positive, got {}".format(
          query_memory_mb))
    self.model = model
    self.factor_args = factor_args
    self.score_args = score_args
    self.model_id = model_id
    self.factors_dir = factors_dir
    self.overwrite = overwrite
    self.batch_size = batch_size
    self.progress = progress
    self.distribute_strategy = distribute_strategy
    self.tracked = tracked_modules.find_tracked_modules(model)
    self.query_batch_size = query_batch_size or default_query_batch_size(
        self.tracked, factor_args.dtype, query_memory_mb)
    self.preconditioner = None
    self._fit_args = None

  def _path(self, name):
    return None if self.factors_dir is None else os.path.join(
        self.factors_dir, name)

  def _stage_args(self, stage, **extra):
    args = {"stage": stage, "model": self.model_id,
            "modules": [t.name for t in self.tracked]}
    args.update(extra)
    return args

  def fit_factors(self, train: examples_lib.Examples
                  ) -> precondition_lib.Preconditioner:
    """Stages 1-3 on `train`, then the `Preconditioner` with the damping."""
    fa = self.factor_args
    common = dict(train=train.description(), fisher=fa.fisher, seed=fa.seed,
                  dtype=fa.dtype)
    if fa.fisher == arguments.EMPIRICAL_FISHER:
      common["seed"] = None  # No label is sampled.
    self._fit_args = dict(common, strategy=fa.strategy)
    num_layers = len(self.tracked)
    eigen = lambdas = None
    if fa.strategy in (arguments.KFAC, arguments.EKFAC):
      covariances = artefacts.load_or_compute(
          self._path(COVARIANCES), self._stage_args("covariances", **common),
          lambda: covariances_lib.fit_covariances(
              self.model, self.tracked, train, fa, self.batch_size,
              self.progress, self.distribute_strategy), self.overwrite,
          "covariances")
      eigen = artefacts.load_or_compute(
          self._path(EIGENDECOMPOSITION),
          self._stage_args("eigendecomposition", **common),
          lambda: eigen_lib.eigendecompose(covariances), self.overwrite,
          "the eigendecomposition")
    if fa.strategy == arguments.KFAC:
      lambdas = lambda_lib.kfac_lambda(eigen, num_layers)
    elif fa.strategy in (arguments.EKFAC, arguments.DIAGONAL):
      lambdas = artefacts.load_or_compute(
          self._path(lambda_name(fa.strategy)),
          self._stage_args("lambda", **self._fit_args),
          lambda: lambda_lib.fit_lambda(self.model, self.tracked, train, fa,
                                        eigen, self.batch_size, self.progress,
                                        self.distribute_strategy),
          self.overwrite, "{} eigenvalues".format(fa.strategy))
    for what, arrays in (("eigendecomposition", eigen),
                         ("{} eigenvalues".format(fa.strategy), lambdas)):
      bad = [k for k, v in (arrays or {}).items()
             if np.asarray(v).dtype.kind == "f" and
             not np.isfinite(v).all()]
      if bad:
        raise ValueError(
            "the {} of {} hold non-finite values ({}); expected finite "
            "layer inputs and gradients: is a batch norm's moving variance "
            "0 (a model built on zeros, never trained)?".format(
                what, self.model_id or "the model", ", ".join(bad[:3])))
    self.preconditioner = precondition_lib.Preconditioner(
        fa.strategy, num_layers, fa.dtype, eigen=eigen, lambdas=lambdas,
        damping=self.score_args.damping)
    logging.info("%s preconditioner, dampings in [%g, %g]", fa.strategy,
                 self.preconditioner.dampings.min(),
                 self.preconditioner.dampings.max())
    return self.preconditioner

  def _check_fitted(self):
    if self.preconditioner is None:
      raise ValueError("fit_factors must run before scores are computed")

  def preconditioned_query_chunks(self, queries: examples_lib.Examples
                                  ) -> Iterator[Dict[str, np.ndarray]]:
    """Stage 4, chunk by chunk: each chunk's preconditioned gradients.

    The folder's arguments are checked at once (refused unless `overwrite`
    when they differ); each chunk of `query_batch_size` queries is then
    loaded or computed (and saved) only when the iterator reaches it.

    Returns:
      An iterator over consecutive chunks of `queries`, each
      `precondition.precondition_queries`'s arrays of its queries.

    Raises:
      ArgumentsMismatchError: if the folder holds preconditioned queries of
        other arguments and `overwrite` is False.
    """
    self._check_fitted()
    sa = self.score_args
    # Through JSON, as stored (tuples become lists).
    args = json.loads(json.dumps(self._stage_args(
        "preconditioned_queries", queries=queries.description(),
        damping=sa.damping, measurement=sa.measurement,
        query_rank=sa.query_rank, **self._fit_args)))
    folder = self._path(preconditioned_queries_dir(self.factor_args.strategy))
    if folder is not None:

      def clear():
        for name in os.listdir(folder):
          os.remove(os.path.join(folder, name))
      pipeline.check_folder_arguments(folder, args, self.overwrite, clear,
                                      "preconditioned queries")
    chunks = query_chunks(len(queries), self.query_batch_size)
    logging.info("%d queries preconditioned and scored in %d chunk(s) of at "
                 "most %d", len(queries), len(chunks), self.query_batch_size)

    def compute(start, stop):
      return precondition_lib.precondition_queries(
          self.model, self.tracked, queries.take(start, stop),
          self.preconditioner, sa.measurement, sa.query_rank,
          self.factor_args.dtype, self.batch_size, self.progress,
          self.distribute_strategy)

    def load_or_compute():
      for start, stop in chunks:
        yield artefacts.load_or_compute(
            None if folder is None else os.path.join(
                folder, query_chunk_name(start, stop)),
            dict(args, chunk=[start, stop]),
            lambda start=start, stop=stop: compute(start, stop),
            self.overwrite, "preconditioned queries")

    return load_or_compute()

  def precondition_queries(self, queries: examples_lib.Examples
                           ) -> Dict[str, np.ndarray]:
    """Stage 4 for every query at once: [Q, ...] arrays (Q x parameters)."""
    chunks = list(self.preconditioned_query_chunks(queries))
    return {key: np.concatenate([c[key] for c in chunks])
            for key in chunks[0]}

  def pairwise_scores(self, queries: examples_lib.Examples,
                      train: examples_lib.Examples,
                      top_k: Optional[int] = None,
                      per_module: bool = False
                      ) -> compute_scores.PairwiseScores:
    """Stages 4-5: scores [queries, train] (dense, or the top k per query).

    Chunk by chunk: memory holds one chunk of `query_batch_size` queries'
    preconditioned gradients, besides the scores.
    """
    return compute_scores.compute_pairwise_scores(
        self.model, self.tracked, train,
        self.preconditioned_query_chunks(queries), queries.index,
        self.factor_args.dtype, top_k=top_k, per_module=per_module,
        batch_size=self.batch_size, progress=self.progress,
        distribute_strategy=self.distribute_strategy)

  def self_scores(self, examples: examples_lib.Examples
                  ) -> compute_scores.SelfScores:
    """Stage 5: self-influence of every example of `examples`."""
    self._check_fitted()
    return compute_scores.compute_self_scores(
        self.model, self.tracked, examples, self.preconditioner,
        self.score_args.measurement, self.score_args.self_measurement,
        self.factor_args.dtype, self.batch_size, self.progress,
        self.distribute_strategy)

  def arguments(self) -> dict:
    """Every argument behind the scores, for the output's `args_json`."""
    self._check_fitted()
    out = dict(self._fit_args, model=self.model_id)
    out.update(self.score_args.to_dict())
    return out
