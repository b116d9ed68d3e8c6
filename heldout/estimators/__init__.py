"""Memorization, influence and consistency estimators from heldout training."""

from heldout.estimators.assemble import HeldoutRuns
from heldout.estimators.assemble import load_ratio
from heldout.estimators.assemble import stack_runs
from heldout.estimators.consistency_estimator import Consistency
from heldout.estimators.consistency_estimator import consistency
from heldout.estimators.consistency_estimator import CScore
from heldout.estimators.consistency_estimator import cscore
from heldout.estimators.consistency_estimator import undefined_consistency
from heldout.estimators.influence_estimator import block_size_for_budget
from heldout.estimators.influence_estimator import DEFAULT_MEMORY_BUDGET_BYTES
from heldout.estimators.influence_estimator import Influence
from heldout.estimators.influence_estimator import influence_dense
from heldout.estimators.influence_estimator import influence_se
from heldout.estimators.influence_estimator import influence_topk
from heldout.estimators.influence_estimator import InfluenceTopK
from heldout.estimators.influence_estimator import k_in_from_values
from heldout.estimators.influence_estimator import MATMUL_DTYPES
from heldout.estimators.influence_estimator import resolve_matmul_dtype
from heldout.estimators.influence_estimator import topk_from_dense
from heldout.estimators.memorization_estimator import Memorization
from heldout.estimators.memorization_estimator import memorization
from heldout.estimators.pipeline import check_output
from heldout.estimators.pipeline import compute_estimates
from heldout.estimators.pipeline import EstimateArgs
from heldout.estimators.pipeline import Estimates
from heldout.estimators.pipeline import save_estimates
