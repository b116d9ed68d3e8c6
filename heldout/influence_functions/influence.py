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
EKFAC), lambda_<strategy>.npz (EKFAC, diagonal),
preconditioned_queries_<strategy>.npz (pairwise scores).
"""

import os
from typing import Optional

from absl import logging
import numpy as np

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


def lambda_name(strategy: str) -> str:
  return "lambda_{}.npz".format(strategy)


def preconditioned_queries_name(strategy: str) -> str:
  return "preconditioned_queries_{}.npz".format(strategy)


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
               progress: bool = True):
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

    Raises:
      UnsupportedModelError: if the model's layers cannot be tracked.
      ValueError: for a non-positive `batch_size`.
    """
    if batch_size <= 0:
      raise ValueError("`batch_size` must be positive, got {}".format(
          batch_size))
    self.model = model
    self.factor_args = factor_args
    self.score_args = score_args
    self.model_id = model_id
    self.factors_dir = factors_dir
    self.overwrite = overwrite
    self.batch_size = batch_size
    self.progress = progress
    self.tracked = tracked_modules.find_tracked_modules(model)
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
              self.progress), self.overwrite, "covariances")
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
                                        eigen, self.batch_size, self.progress),
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

  def precondition_queries(self, queries: examples_lib.Examples):
    """Stage 4: the preconditioned measurement gradients of `queries`."""
    self._check_fitted()
    sa = self.score_args
    args = self._stage_args(
        "preconditioned_queries", queries=queries.description(),
        damping=sa.damping, measurement=sa.measurement,
        query_rank=sa.query_rank, **self._fit_args)
    return artefacts.load_or_compute(
        self._path(preconditioned_queries_name(self.factor_args.strategy)),
        args, lambda: precondition_lib.precondition_queries(
            self.model, self.tracked, queries, self.preconditioner,
            sa.measurement, sa.query_rank, self.factor_args.dtype,
            self.batch_size, self.progress),
        self.overwrite, "preconditioned queries")

  def pairwise_scores(self, queries: examples_lib.Examples,
                      train: examples_lib.Examples,
                      top_k: Optional[int] = None,
                      per_module: bool = False
                      ) -> compute_scores.PairwiseScores:
    """Stages 4-5: scores [queries, train] (dense, or the top k per query)."""
    preconditioned = self.precondition_queries(queries)
    return compute_scores.compute_pairwise_scores(
        self.model, self.tracked, train, preconditioned, queries.index,
        self.factor_args.dtype, top_k=top_k, per_module=per_module,
        batch_size=self.batch_size, progress=self.progress)

  def self_scores(self, examples: examples_lib.Examples
                  ) -> compute_scores.SelfScores:
    """Stage 5: self-influence of every example of `examples`."""
    self._check_fitted()
    return compute_scores.compute_self_scores(
        self.model, self.tracked, examples, self.preconditioner,
        self.score_args.measurement, self.score_args.self_measurement,
        self.factor_args.dtype, self.batch_size, self.progress)

  def arguments(self) -> dict:
    """Every argument behind the scores, for the output's `args_json`."""
    self._check_fitted()
    out = dict(self._fit_args, model=self.model_id)
    out.update(self.score_args.to_dict())
    return out
