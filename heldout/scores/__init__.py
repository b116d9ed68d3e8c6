"""Per-example scores from training dynamics and their one file format.

`Scores` / `save_scores` / `read_scores`: the score artefact every method
writes (index, values, se, num_runs, method, args_json, extras).
Forgetting events (minibatch and per-epoch variants), EL2N / GraNd, and
first-split learning / second-split forgetting times.
"""

from heldout.scores.el2n_grand import el2n_and_gradient_norms
from heldout.scores.el2n_grand import el2n_from_logits
from heldout.scores.el2n_grand import el2n_grand_scores
from heldout.scores.el2n_grand import gradient_norms
from heldout.scores.el2n_grand import gradient_norms_loop
from heldout.scores.el2n_grand import score_run
from heldout.scores.el2n_grand import score_split
from heldout.scores.el2n_grand import SplitScores
from heldout.scores.forgetting import count_forgetting_events
from heldout.scores.forgetting import count_per_epoch_forgetting
from heldout.scores.forgetting import EpochCorrectnessCallback
from heldout.scores.forgetting import ForgettingCallback
from heldout.scores.forgetting import ForgettingCounts
from heldout.scores.forgetting import forgetting_scores
from heldout.scores.forgetting import most_forgettable_first
from heldout.scores.score_file import average_over_runs
from heldout.scores.score_file import is_score_file
from heldout.scores.score_file import read_scores
from heldout.scores.score_file import save_scores
from heldout.scores.score_file import Scores
from heldout.scores.second_split import first_split_learning_time
from heldout.scores.second_split import run_two_phases
from heldout.scores.second_split import second_split_forgetting_time
from heldout.scores.second_split import two_phase_scores
from heldout.scores.second_split import TwoPhaseResult
