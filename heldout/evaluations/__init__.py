"""Evaluations that compare per-example scores side by side.

Mislabeled detection (`mislabeled`), data pruning (`pruning`), rare
subgroups (`subgroups`), Spearman agreement (`agreement_matrix`), cleanlab
on out-of-sample heldout predictions (`out_of_sample`), and every method's
scores on one dataset (`method_runs`); `//heldout:evaluate` runs them all.
"""

from heldout.evaluations.agreement_matrix import spearman_matrix
from heldout.evaluations.method_runs import score_methods
from heldout.evaluations.method_runs import Setting
from heldout.evaluations.mislabeled import auroc
from heldout.evaluations.mislabeled import detect
from heldout.evaluations.mislabeled import fraction_found
from heldout.evaluations.mislabeled import SUSPICIOUS_END
from heldout.evaluations.pruning import accuracy_after_pruning
from heldout.evaluations.pruning import keep_ids
from heldout.evaluations.subgroups import long_tail_dataset
from heldout.evaluations.subgroups import long_tail_split
