"""Influence functions of Sonnet models: identity, diagonal, KFAC, EKFAC.

Kronfluence 1.0.1's conventions (`shared/spec/methods.md`), stage by stage:
`fit_covariances` -> `eigendecompose` -> `fit_lambda` -> `precondition` ->
`compute_scores`, orchestrated with saved artefacts by `InfluenceFunctions`;
the module `score_run` (`score_run.score_run`) scores a trained run (the
binary `//heldout/influence_functions`). It is not re-exported as a function:
that name would hide the module.
"""

from heldout.influence_functions.arguments import FactorArgs
from heldout.influence_functions.arguments import ScoreArgs
from heldout.influence_functions.arguments import STRATEGIES
from heldout.influence_functions.compute_scores import PairwiseScores
from heldout.influence_functions.compute_scores import SelfScores
from heldout.influence_functions.devices import make_strategy
from heldout.influence_functions.examples import Examples
from heldout.influence_functions.influence import InfluenceFunctions
from heldout.influence_functions import score_run
from heldout.influence_functions.tracked_modules import find_tracked_modules
from heldout.influence_functions.tracked_modules import TrackedModule
from heldout.influence_functions.tracked_modules import UnsupportedModelError
