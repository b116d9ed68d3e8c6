"""Assembling the per-run arrays of one subset ratio for the estimators.

Each run's `aux_arrays.npz` holds its subset and its correctness on each split
in an evaluation order of its own; here they are scattered by example id
(always through `index_<split>`, never by position) into

  mask:          [R, n_train] bool, run r trained on training example i
  correct_train: [R, n_train] bool, run r correct on training example i
  correct_test:  [R, n_test] bool, run r correct on test example j

preallocated once and filled run by run, so memory stays at the bool arrays.
"""

import dataclasses
from typing import Optional, Tuple

from absl import logging
import numpy as np
from tqdm import auto as tqdm

from heldout import errors
from heldout.readers import aux_arrays as aux_arrays_lib
from heldout.readers import experiment as experiment_lib
from heldout.readers import layout


@dataclasses.dataclass(frozen=True)
class HeldoutRuns:
  """The stacked arrays of the runs of one subset ratio.

  Attributes:
    mask: [R, n_train] bool, True where run r trained on example i.
    correct_train: [R, n_train] bool, run r correct on training example i.
    correct_test: [R, n_test] bool, run r correct on test example j.
    run_ids: [R] int64, the run of each row.
    ratio: the subset ratio, or None when unknown (in-memory arrays).
    sources: the aux_arrays path of each row.
    skipped: (run path, reason) of each run of the ratio left out because it
      has no aux_arrays.npz.
  """
  mask: np.ndarray
  correct_train: np.ndarray
  correct_test: np.ndarray
  run_ids: np.ndarray
  ratio: Optional[float] = None
  sources: Tuple[str, ...] = ()
  skipped: Tuple[Tuple[str, str], ...] = ()

  @property
  def num_runs(self):
    return self.mask.shape[0]

  @property
  def num_train(self):
    return self.mask.shape[1]

  @property
  def num_test(self):
    return self.correct_test.shape[1]


def _check_sizes(aux, num_train, num_test, reference):
  if aux.num_train != num_train or aux.num_test != num_test:
    raise errors.ExperimentError(
        "{}: expected {} training and {} test examples (as in {}), found {} "
        "and {}; runs of one experiment must share their datasets".format(
            aux.path, num_train, num_test, reference, aux.num_train,
            aux.num_test))


class _Stacker:
  """Fills preallocated [R, n] bool arrays one run at a time."""

  def __init__(self, num_runs, num_train, num_test, reference):
    self.num_train = num_train
    self.num_test = num_test
    self.reference = reference
    self.mask = np.zeros((num_runs, num_train), bool)
    self.correct_train = np.zeros((num_runs, num_train), bool)
    self.correct_test = np.zeros((num_runs, num_test), bool)

  def put(self, row, aux):
    _check_sizes(aux, self.num_train, self.num_test, self.reference)
    self.mask[row, aux.subsample_idx] = True
    self.correct_train[row, aux.index_train] = aux.correctness_train
    self.correct_train[row, aux.index_removed] = aux.correctness_removed
    self.correct_test[row, aux.index_test] = aux.correctness_test


def stack_runs(runs, run_ids=None, ratio=None, num_train=None, num_test=None):
  """Stacks in-memory runs into the estimators' arrays.

  Args:
    runs: sequence of `AuxArrays` or of dicts with the `aux_arrays.npz` keys
      (validated).
    run_ids: [R] ints naming the runs; default 0..R-1.
    ratio: their subset ratio, recorded in the result.
    num_train: expected training set size; default that of the first run.
    num_test: expected test set size; default that of the first run.

  Returns:
    `HeldoutRuns`.

  Raises:
    ValueError: if `runs` is empty or `run_ids` has the wrong length.
    AuxArraysError: if a run's arrays are inconsistent.
    ExperimentError: if runs disagree on the sizes of the datasets, naming the
      run.
  """
  runs = list(runs)
  if not runs:
    raise ValueError("`runs` must hold at least one run, got none")
  if run_ids is None:
    run_ids = np.arange(len(runs))
  run_ids = np.asarray(run_ids, np.int64)
  if run_ids.shape != (len(runs),):
    raise ValueError("`run_ids` must have one id per run ({}), got shape {}".format(
        len(runs), run_ids.shape))
  checked = []
  for i, run in enumerate(runs):
    if not isinstance(run, aux_arrays_lib.AuxArrays):
      run = aux_arrays_lib.validate_aux_arrays(run, "<run {}>".format(run_ids[i]))
    checked.append(run)
  first = checked[0]
  stacker = _Stacker(
      len(checked), first.num_train if num_train is None else num_train,
      first.num_test if num_test is None else num_test,
      first.path if num_train is None and num_test is None else "the arguments")
  for row, aux in enumerate(checked):
    stacker.put(row, aux)
  return HeldoutRuns(mask=stacker.mask, correct_train=stacker.correct_train,
                     correct_test=stacker.correct_test, run_ids=run_ids,
                     ratio=ratio, sources=tuple(a.path for a in checked))


@dataclasses.dataclass(frozen=True)
class _Sizes:
  num_train: Optional[int]
  num_test: Optional[int]
  reference: str


def _check_stored_sizes(path, arrays, known):
  num_train, num_test = aux_arrays_lib.stored_sizes(arrays)
  if ((known.num_train is not None and num_train is not None and
       num_train != known.num_train) or
      (known.num_test is not None and num_test is not None and
       num_test != known.num_test)):
    raise errors.ExperimentError(
        "{}: expected {} training and {} test examples (as in {}), found {} "
        "and {}; runs of one experiment must share their datasets".format(
            path, known.num_train, known.num_test, known.reference, num_train,
            num_test))


def _read_and_stack(aux_paths, num_train, num_test, progress, desc):
  stacker = None
  for row, path in enumerate(tqdm.tqdm(aux_paths, desc=desc, unit="run",
                                       disable=not progress, leave=False)):
    # Sizes already known (from another ratio's runs, or this ratio's first
    # run) are checked before the ids, so a run of another dataset size is
    # reported as such, not as ids out of its own range.
    arrays = aux_arrays_lib.load_arrays(path)
    if stacker is not None or num_train is not None or num_test is not None:
      known = stacker or _Sizes(num_train, num_test, "the other runs")
      _check_stored_sizes(path, arrays, known)
    aux = aux_arrays_lib.validate_aux_arrays(arrays, path)
    if stacker is None:
      stacker = _Stacker(
          len(aux_paths), aux.num_train if num_train is None else num_train,
          aux.num_test if num_test is None else num_test,
          aux.path if num_train is None and num_test is None else
          "the other runs")
    stacker.put(row, aux)
  return stacker


def usable_runs(experiment, ratio):
  """Splits the runs of a ratio into those with aux arrays and the others.

  A run without a checkpoint but with its `aux_arrays.npz` is usable: the
  estimators need only the aux arrays.

  Args:
    experiment: an `Experiment` from `scan_experiment`.
    ratio: one of `experiment.ratios`.

  Returns:
    (usable: list of `Run`, skipped: tuple of (run path, reason)).

  Raises:
    ExperimentError: if the experiment has no runs of `ratio`.
  """
  usable = experiment.runs_with_aux_arrays(ratio)
  usable_paths = {r.path for r in usable}
  skipped = tuple((r.path, "; ".join(r.problems))
                  for r in experiment.runs[float(ratio)]
                  if r.path not in usable_paths)
  return usable, skipped


def load_ratio(experiment, ratio, num_train=None, num_test=None, progress=True):
  """Reads and stacks the runs of one subset ratio of an experiment directory.

  Runs without an `aux_arrays.npz` (cut-short downloads or training) are
  skipped, with a warning listing them, and recorded in `skipped`.

  Args:
    experiment: an `Experiment` or the experiment directory's path.
    ratio: the subset ratio, one of `experiment.ratios`.
    num_train: expected training set size; default that of the first run.
    num_test: expected test set size; default that of the first run.
    progress: show a progress bar while reading runs.

  Returns:
    `HeldoutRuns`.

  Raises:
    ExperimentError: if the ratio is absent, no run of it has aux arrays, or
      runs disagree on the sizes of the datasets (naming the file).
    AuxArraysError: if an aux_arrays.npz is unreadable or inconsistent.
  """
  if not isinstance(experiment, experiment_lib.Experiment):
    experiment = experiment_lib.scan_experiment(experiment)
  ratio = float(ratio)
  usable, skipped = usable_runs(experiment, ratio)
  if skipped:
    logging.warning("ratio %s: skipping %d incomplete run(s) without "
                    "aux_arrays.npz: %s", layout.ratio_dirname(ratio),
                    len(skipped), ", ".join(p for p, _ in skipped))
  if not usable:
    raise errors.ExperimentError(
        "{}: expected at least one run of ratio {} with an aux_arrays.npz, "
        "found none among {} run folder(s)".format(
            experiment.path, layout.ratio_dirname(ratio), len(skipped)))
  stacker = _read_and_stack(
      [r.aux_path for r in usable], num_train, num_test, progress,
      "reading ratio {}".format(layout.ratio_dirname(ratio)))
  return HeldoutRuns(mask=stacker.mask, correct_train=stacker.correct_train,
                     correct_test=stacker.correct_test,
                     run_ids=np.array([r.run_id for r in usable], np.int64),
                     ratio=ratio, sources=tuple(r.aux_path for r in usable),
                     skipped=skipped)
