"""All estimates of an experiment directory, and saving them.

`compute_estimates` reads an experiment in the released layout one subset
ratio at a time (only one ratio's bool arrays are in memory at once) and
computes

- consistency at every ratio and its average over the ratios (the C-score);
- memorization and influence (dense, top-k or none) from the runs of one
  ratio, `EstimateArgs.subset_ratio`, required when several ratios exist.

Every estimate comes with the counts of in-subset and held-out runs behind it
and an Agresti-Caffo standard error; undefined values (no run on one side)
are NaN, never 0.

`save_estimates` writes them atomically as an .npz (with the arguments, as
`args_json`) and a per-example CSV beside it; `check_output` refuses to
replace estimates made with different arguments unless told to overwrite.
"""

import dataclasses
import io
import json
import os
from typing import Dict, Optional, Tuple, Union
import uuid

from absl import logging
import numpy as np

from heldout import atomic
from heldout import errors
from heldout import npz_io
from heldout.estimators import assemble
from heldout.estimators import consistency_estimator as consistency_lib
from heldout.estimators import influence_estimator as influence_lib
from heldout.estimators import memorization_estimator as memorization_lib
from heldout.readers import experiment as experiment_lib
from heldout.readers import layout

INFLUENCE_MODES = ("dense", "topk", "none")
CSV_COLUMNS = ("index", "memorization", "se", "n_in", "n_out", "consistency",
               "consistency_se")

# Arguments that do not change the estimates, so re-running with other values
# into the same output is allowed.
_NON_RESULT_ARGS = ("memory_budget_bytes",)


@dataclasses.dataclass(frozen=True)
class EstimateArgs:
  """What `compute_estimates` computes.

  Attributes:
    experiment_dir: the experiment folder `<ratio>/<run>/aux_arrays.npz`.
    subset_ratio: the ratio whose runs give memorization and influence, and
      at which `consistency` is reported; None when the experiment has a
      single ratio (then `consistency` is that ratio's) or for the C-score:
      with several ratios it is required for memorization and influence.
    influence: "dense" ([n_test, n_train]), "topk" or "none".
    top_k: training examples kept per test example with "topk".
    memory_budget_bytes: bound on the influence working set per block.
  """
  experiment_dir: str
  subset_ratio: Optional[float] = None
  influence: str = "topk"
  top_k: int = 10
  memory_budget_bytes: int = influence_lib.DEFAULT_MEMORY_BUDGET_BYTES

  def __post_init__(self):
    if not self.experiment_dir:
      raise ValueError("`experiment_dir` must be given, got {!r}".format(
          self.experiment_dir))
    if self.subset_ratio is not None and not 0.0 < self.subset_ratio <= 1.0:
      raise ValueError("`subset_ratio` must be in (0, 1], got {}".format(
          self.subset_ratio))
    if self.influence not in INFLUENCE_MODES:
      raise ValueError("`influence` must be one of {}, got {!r}".format(
          ", ".join(INFLUENCE_MODES), self.influence))
    if self.top_k <= 0:
      raise ValueError("`top_k` must be positive, got {}".format(self.top_k))
    if self.memory_budget_bytes <= 0:
      raise ValueError("`memory_budget_bytes` must be positive, got {}".format(
          self.memory_budget_bytes))

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Estimates:
  """Estimates of one experiment.

  Attributes:
    index: [n_train] int64, the training example id of each entry.
    test_index: [n_test] int64, the test example id of each influence row.
    subset_ratio: the ratio whose runs gave memorization and influence.
    run_ids: [R] int64, those runs.
    ratios: [n_ratios] float64, every ratio of the experiment.
    runs_per_ratio: [n_ratios] int64, runs used at each ratio.
    skipped: (run path, reason) of every run left out (no aux arrays).
    memorization: `Memorization` at `subset_ratio`.
    consistency_by_ratio: ratio -> `Consistency`.
    cscore: `CScore`, consistency averaged over the ratios.
    consistency: [n_train] float64, consistency at the requested
      `subset_ratio`, else (no ratio requested) `cscore.values`.
    consistency_se: [n_train] float64, the standard error of `consistency`
      (`consistency_by_ratio[subset_ratio].se` or `cscore.se`).
    influence: `Influence`, `InfluenceTopK` or None.
  """
  index: np.ndarray
  test_index: np.ndarray
  subset_ratio: float
  run_ids: np.ndarray
  ratios: np.ndarray
  runs_per_ratio: np.ndarray
  skipped: Tuple[Tuple[str, str], ...]
  memorization: memorization_lib.Memorization
  consistency_by_ratio: Dict[float, consistency_lib.Consistency]
  cscore: consistency_lib.CScore
  consistency: np.ndarray
  consistency_se: np.ndarray
  influence: Union[influence_lib.Influence, influence_lib.InfluenceTopK, None]

  def arrays(self):
    """The arrays saved in the .npz, by key.

    Per training example ([n_train]): `index`, `memorization`,
    `memorization_se`, `memorization_n_in`, `memorization_n_out`,
    `consistency`, `consistency_se`, `cscore`, `cscore_se`,
    `cscore_n_ratios`; per ratio and training example ([n_ratios, n_train]):
    `consistency_by_ratio`, `consistency_se_by_ratio`,
    `consistency_n_in_by_ratio`, `consistency_n_out_by_ratio`. With influence:
    `influence` and `influence_se` ([n_test, n_train], dense) or
    `influence_topk_values`, `influence_topk_se`, `influence_topk_indices`
    ([n_test, k], top-k), and `influence_n_in`, `influence_n_out`
    ([n_train]), `test_total_correct` ([n_test]). Also `test_index`,
    `subset_ratio`, `run_ids`, `ratios`, `runs_per_ratio`.
    """
    ratios = [float(r) for r in self.ratios]
    by_ratio = [self.consistency_by_ratio[r] for r in ratios]
    out = dict(
        index=self.index,
        test_index=self.test_index,
        subset_ratio=np.float64(self.subset_ratio),
        run_ids=self.run_ids,
        ratios=self.ratios,
        runs_per_ratio=self.runs_per_ratio,
        memorization=self.memorization.values,
        memorization_se=self.memorization.se,
        memorization_n_in=self.memorization.n_in,
        memorization_n_out=self.memorization.n_out,
        consistency=self.consistency,
        consistency_se=self.consistency_se,
        consistency_by_ratio=np.stack([c.values for c in by_ratio]),
        consistency_se_by_ratio=np.stack([c.se for c in by_ratio]),
        consistency_n_in_by_ratio=np.stack([c.n_in for c in by_ratio]),
        consistency_n_out_by_ratio=np.stack([c.n_out for c in by_ratio]),
        cscore=self.cscore.values,
        cscore_se=self.cscore.se,
        cscore_n_ratios=self.cscore.n_ratios,
    )
    if isinstance(self.influence, influence_lib.Influence):
      out["influence"] = self.influence.values
      out["influence_se"] = self.influence.se
    elif isinstance(self.influence, influence_lib.InfluenceTopK):
      out["influence_topk_values"] = self.influence.values
      out["influence_topk_se"] = self.influence.se
      out["influence_topk_indices"] = self.influence.indices
    if self.influence is not None:
      out["influence_n_in"] = self.influence.n_in
      out["influence_n_out"] = self.influence.n_out
      out["test_total_correct"] = self.influence.total_correct
    return out

  def csv_text(self):
    """Per-example CSV: `CSV_COLUMNS` (se is memorization's)."""
    table = np.column_stack([
        self.index, self.memorization.values, self.memorization.se,
        self.memorization.n_in, self.memorization.n_out, self.consistency,
        self.consistency_se
    ]).astype(np.float64)
    buf = io.StringIO()
    np.savetxt(buf, table, delimiter=",", header=",".join(CSV_COLUMNS),
               comments="",
               fmt=["%d", "%.10g", "%.10g", "%d", "%d", "%.10g", "%.10g"])
    return buf.getvalue()

  def summary(self):
    """Human-readable lines: runs per ratio and the runs skipped."""
    lines = []
    for ratio, count in zip(self.ratios, self.runs_per_ratio):
      used = " (memorization, influence)" if ratio == self.subset_ratio else ""
      lines.append("ratio {}: {} runs{}".format(layout.ratio_dirname(ratio),
                                                count, used))
    if self.skipped:
      lines.append("skipped {} incomplete run(s) without aux_arrays.npz:".format(
          len(self.skipped)))
      lines.extend("  {} ({})".format(path, why) for path, why in self.skipped)
    else:
      lines.append("no incomplete runs")
    return "\n".join(lines)


def _choose_ratio(experiment, subset_ratio):
  ratios = experiment.ratios
  names = ", ".join(layout.ratio_dirname(r) for r in ratios)
  if subset_ratio is None:
    if len(ratios) > 1:
      raise errors.ExperimentError(
          "{}: holds runs of several subset ratios ({}); choose the one for "
          "memorization and influence with subset_ratio (--subset_ratio)".format(
              experiment.path, names))
    return ratios[0]
  if float(subset_ratio) not in ratios:
    raise errors.ExperimentError(
        "{}: no runs for subset ratio {}; ratios present: {}".format(
            experiment.path, layout.ratio_dirname(subset_ratio), names))
  return float(subset_ratio)


def compute_estimates(args, progress=True):
  """Computes every estimate of an experiment directory.

  Args:
    args: `EstimateArgs`.
    progress: show progress bars.

  Returns:
    `Estimates`.

  Raises:
    ExperimentError: if the directory is not an experiment, `subset_ratio` is
      missing (several ratios) or absent, the chosen ratio has no usable run,
      or runs disagree on the dataset sizes.
    AuxArraysError: if an aux_arrays.npz is unreadable or inconsistent.
  """
  experiment = experiment_lib.scan_experiment(args.experiment_dir)
  chosen = _choose_ratio(experiment, args.subset_ratio)
  # The chosen ratio first: its runs fix the dataset sizes the others must have.
  order = [chosen] + [r for r in experiment.ratios if r != chosen]
  num_train = num_test = None
  by_ratio = {}
  runs_per_ratio = {}
  skipped = []
  for ratio in order:
    usable, ratio_skipped = assemble.usable_runs(experiment, ratio)
    skipped.extend(ratio_skipped)
    if not usable and ratio != chosen:
      logging.warning("ratio %s: no run with aux_arrays.npz; its consistency "
                      "is undefined (NaN)", layout.ratio_dirname(ratio))
      runs_per_ratio[ratio] = 0
      by_ratio[ratio] = None
      continue
    runs = assemble.load_ratio(experiment, ratio, num_train=num_train,
                               num_test=num_test, progress=progress)
    num_train, num_test = runs.num_train, runs.num_test
    runs_per_ratio[ratio] = runs.num_runs
    by_ratio[ratio] = consistency_lib.consistency(runs.mask, runs.correct_train)
    if ratio == chosen:
      run_ids = runs.run_ids
      memorization = memorization_lib.memorization(runs.mask,
                                                   runs.correct_train)
      influence = None
      if args.influence == "dense":
        influence = influence_lib.influence_dense(
            runs.mask, runs.correct_test,
            memory_budget_bytes=args.memory_budget_bytes, progress=progress)
      elif args.influence == "topk":
        influence = influence_lib.influence_topk(
            runs.mask, runs.correct_test, min(args.top_k, runs.num_train),
            memory_budget_bytes=args.memory_budget_bytes, progress=progress)
    del runs
  for ratio, value in by_ratio.items():
    if value is None:
      by_ratio[ratio] = consistency_lib.undefined_consistency(num_train)
  cscore = consistency_lib.cscore(by_ratio)
  reported = by_ratio[chosen] if args.subset_ratio is not None else cscore
  ratios = experiment.ratios
  return Estimates(
      index=np.arange(num_train, dtype=np.int64),
      test_index=np.arange(num_test, dtype=np.int64),
      subset_ratio=chosen,
      run_ids=run_ids,
      ratios=np.asarray(ratios, np.float64),
      runs_per_ratio=np.asarray([runs_per_ratio[r] for r in ratios], np.int64),
      skipped=tuple(sorted(skipped)),
      memorization=memorization,
      consistency_by_ratio={r: by_ratio[r] for r in ratios},
      cscore=cscore,
      consistency=reported.values,
      consistency_se=reported.se,
      influence=influence)


def csv_path_for(npz_path):
  """`EST.npz` -> `EST.csv` (any other name gets `.csv` appended)."""
  root, ext = os.path.splitext(str(npz_path))
  return root + ".csv" if ext == ".npz" else str(npz_path) + ".csv"


def check_output(npz_path, args, overwrite=False):
  """Refuses to replace estimates that were made with different arguments.

  Args:
    npz_path: the output .npz.
    args: `EstimateArgs` about to be run.
    overwrite: allow replacing them anyway.

  Raises:
    ArgumentsMismatchError: unless `overwrite`: if `npz_path` exists and was
      made with other arguments (or is not a file of estimates), or if the
      CSV that goes beside it exists and is not one of ours (no estimates
      beside it, or another header): a file of the user's.
  """
  if not overwrite:
    csv_path = csv_path_for(npz_path)
    if os.path.exists(csv_path):
      header = None
      try:
        with open(csv_path) as f:
          header = f.readline().strip()
      except (OSError, UnicodeDecodeError):
        pass
      if not os.path.exists(npz_path) or header != ",".join(CSV_COLUMNS):
        raise errors.ArgumentsMismatchError(
            "{}: exists and is not the per-example CSV of the estimates {} "
            "(expected that file beside it and the header {}); the CSV goes "
            "there, so choose another output or overwrite it (--overwrite)"
            .format(csv_path, npz_path, ",".join(CSV_COLUMNS)))
  check_stored_arguments(npz_path, dataclasses.asdict(args), overwrite=overwrite,
                         ignore=_NON_RESULT_ARGS, what="estimates")


def check_stored_arguments(npz_path, wanted, overwrite=False, ignore=(),
                           what="results"):
  """Refuses to replace an .npz whose `args_json` differs from `wanted`.

  Shared by every stage that stores its arguments beside its results
  (estimates, per-example score files).

  Args:
    npz_path: the output .npz.
    wanted: dict, the JSON-able arguments about to be run.
    overwrite: allow replacing it anyway.
    ignore: argument names that do not change the results.
    what: what the file holds, for the message.

  Raises:
    ArgumentsMismatchError: if `npz_path` exists, `overwrite` is False, and it
      was made with other arguments (or has no stored arguments).
  """
  if overwrite or not os.path.exists(npz_path):
    return
  try:
    with npz_io.load_npz(npz_path) as npz:
      previous = json.loads(str(npz["args_json"]))
  except (OSError, ValueError, KeyError) as e:
    raise errors.ArgumentsMismatchError(
        "{}: exists and is not a file of {} with stored arguments ({}); "
        "choose another output or overwrite it (--overwrite)".format(
            npz_path, what, e)) from None
  # Through JSON, so tuples compare equal to the lists they are stored as.
  wanted = json.loads(json.dumps(wanted))
  previous = {k: v for k, v in previous.items() if k not in ignore}
  wanted = {k: v for k, v in wanted.items() if k not in ignore}
  if previous != wanted:
    raise errors.ArgumentsMismatchError(
        "{}: exists and was made with other arguments ({}); choose another "
        "output or overwrite it (--overwrite)".format(
            npz_path, describe_changed_arguments(previous, wanted)))


def check_folder_arguments(folder, wanted, overwrite, clear, holds):
  """Keeps a work folder's results made with `wanted`; else refuses or clears.

  Args:
    folder: the work folder; its arguments are `<folder>/args.json`.
    wanted: the JSON-able arguments its results must have been made with.
    overwrite: with other stored arguments, call `clear()` (which removes
      the results) instead of refusing.
    clear: removes the folder's results.
    holds: what the folder holds, for the message ("seeds", "runs").

  Raises:
    ArgumentsMismatchError: naming the changed arguments, when the folder
      holds results of other arguments and `overwrite` is False.
  """
  path = os.path.join(folder, "args.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous == wanted:
      return  # Kept as it is (not rewritten).
    if not overwrite:
      raise errors.ArgumentsMismatchError(
          "{}: holds {} made with other arguments ({}); choose another "
          "output or overwrite (--overwrite)".format(
              folder, holds, describe_changed_arguments(previous, wanted)))
    clear()
  os.makedirs(folder, exist_ok=True)
  atomic.write_json(path, wanted)


def describe_changed_arguments(previous, wanted):
  """"name: <then> then, <now> now" for each argument that differs.

  Args:
    previous: dict of the stored arguments.
    wanted: dict of the arguments about to be run.

  Returns:
    The differing arguments, by name, joined by ", ".
  """
  diff = sorted(k for k in set(previous) | set(wanted)
                if previous.get(k) != wanted.get(k))
  return ", ".join("{}: {!r} then, {!r} now".format(
      k, previous.get(k), wanted.get(k)) for k in diff)


def _staging_name(path):
  head, tail = os.path.split(str(path))
  return os.path.join(head, ".{}.staged-{}".format(tail, uuid.uuid4().hex[:12]))


def _rename(source, destination):
  if "://" in str(destination):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.io.gfile.rename(source, destination, overwrite=True)
  else:
    os.replace(source, destination)


def _remove_if_present(path):
  try:
    if "://" in str(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)
    elif os.path.lexists(path):
      os.remove(path)
  except OSError as e:
    logging.warning("could not remove %s: %s", path, e)


def save_estimates(estimates, npz_path, args):
  """Writes the .npz (with `args_json`) and the CSV beside it, atomically.

  Both files are first written in full under temporary names beside their
  destinations, then renamed over them, CSV first. A failure while writing
  leaves both destinations untouched; should the second rename fail, the CSV
  just put in place is removed too, so no new file is left without the other
  (an older CSV of that name is then gone as well).

  Args:
    estimates: `Estimates`.
    npz_path: the .npz destination.
    args: the `EstimateArgs` they were computed with.

  Returns:
    The CSV's path.

  Raises:
    OSError: if a file cannot be written or renamed.
  """
  arrays = estimates.arrays()
  arrays["args_json"] = np.array(args.to_json())
  return write_npz_and_csv(npz_path, arrays, estimates.csv_text())


def write_npz_and_csv(npz_path, arrays, csv_text):
  """Writes `arrays` as `npz_path` and `csv_text` beside it, both or neither.

  Both files are first written in full under temporary names beside their
  destinations, then renamed over them, CSV first; see `save_estimates`.

  Args:
    npz_path: the .npz destination; the CSV's is `csv_path_for(npz_path)`.
    arrays: name -> array.
    csv_text: the CSV's content.

  Returns:
    The CSV's path.

  Raises:
    OSError: if a file cannot be written or renamed.
  """
  npz_path = str(npz_path)
  csv_path = csv_path_for(npz_path)
  staged_npz = _staging_name(npz_path)
  staged_csv = _staging_name(csv_path)
  csv_in_place = False
  try:
    atomic.write_npz(staged_npz, **arrays)
    atomic.write_text(staged_csv, csv_text)
    _rename(staged_csv, csv_path)
    csv_in_place = True
    _rename(staged_npz, npz_path)
  except BaseException as e:
    _remove_if_present(staged_npz)
    _remove_if_present(staged_csv)
    if csv_in_place:
      _remove_if_present(csv_path)
    if isinstance(e, OSError) and e.errno is not None:
      # Named after the files the user asked for, not the staged names.
      raise type(e)(e.errno, "{} and {}: cannot write them ({}){}".format(
          npz_path, os.path.basename(csv_path), os.strerror(e.errno),
          "" if csv_in_place else "; the files there are unchanged")) from None
    raise
  return csv_path
