"""Scanning an experiment directory in the released layout.

`<experiment>/<ratio>/<run>/{aux_arrays.npz, checkpoints/ckpt-<epoch>.*}`:
lists the subset ratios and runs present, and reports (rather than crashes
on) incomplete runs, such as a run whose download or training was cut short.
Local paths and anything `tf.io.gfile` opens (`gs://...`) are accepted.
"""

import dataclasses
import os
from typing import Dict, List, Optional

import tensorflow as tf

from heldout import errors
from heldout.readers import layout


@dataclasses.dataclass(frozen=True)
class Run:
  """One run folder.

  Attributes:
    ratio: the subset ratio of its parent folder.
    run_id: the run's number (its folder name).
    path: the run folder.
    aux_path: its `aux_arrays.npz` (which may not exist; see `problems`).
    checkpoint_prefix: its single `checkpoints/ckpt-<epoch>` prefix, or None.
    problems: why the run is incomplete; empty for a complete run.
  """
  ratio: float
  run_id: int
  path: str
  aux_path: str
  checkpoint_prefix: Optional[str]
  problems: tuple = ()

  @property
  def complete(self):
    return not self.problems

  @property
  def has_aux_arrays(self):
    return not any(p.startswith("no aux_arrays") for p in self.problems)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """The runs of an experiment directory, by subset ratio."""
  path: str
  runs: Dict[float, List[Run]]
  ignored: tuple = ()

  @property
  def ratios(self):
    return sorted(self.runs)

  def complete_runs(self, ratio):
    """Runs of `ratio` with both aux_arrays.npz and a checkpoint."""
    return [r for r in self._runs_of(ratio) if r.complete]

  def runs_with_aux_arrays(self, ratio):
    """Runs of `ratio` with an aux_arrays.npz (enough for every estimate)."""
    return [r for r in self._runs_of(ratio) if r.has_aux_arrays]

  @property
  def incomplete(self):
    return [r for ratio in self.ratios for r in self.runs[ratio] if r.problems]

  def _runs_of(self, ratio):
    ratio = float(ratio)
    if ratio not in self.runs:
      raise errors.ExperimentError(
          "{}: no runs for subset ratio {}; ratios present: {}".format(
              self.path, ratio, [layout.ratio_dirname(r) for r in self.ratios]))
    return self.runs[ratio]

  def summary(self):
    """One line per ratio: `0.7: 128 runs (2 incomplete)`."""
    lines = []
    for ratio in self.ratios:
      runs = self.runs[ratio]
      bad = sum(1 for r in runs if r.problems)
      lines.append("{}: {} runs{}".format(
          layout.ratio_dirname(ratio), len(runs),
          " ({} incomplete)".format(bad) if bad else ""))
    return "\n".join(lines)


def _checkpoint_and_problems(path):
  problems = []
  if not tf.io.gfile.exists(layout.aux_arrays_path(path)):
    problems.append("no aux_arrays.npz")
  prefix = None
  try:
    prefix = layout.find_checkpoint_prefix(path)
    if not tf.io.gfile.glob(prefix + ".data-*"):
      problems.append("checkpoint {} has an .index but no .data-* shard".format(
          os.path.basename(prefix)))
      prefix = None
  except errors.RunNotFoundError as e:
    problems.append(str(e))
  return prefix, tuple(problems)


def run_problems(path):
  """Why the run folder `path` is incomplete; empty for a complete run.

  A run is complete with an `aux_arrays.npz` and exactly one checkpoint
  (`checkpoints/ckpt-<epoch>.index` with its `.data-*` shard). The same rule
  decides which runs the scanner reports and which runs training skips.

  Args:
    path: a run folder `<experiment>/<ratio>/<run>`.

  Returns:
    A tuple of one-line reasons.
  """
  return _checkpoint_and_problems(path)[1]


def _inspect_run(ratio, run_id, path):
  prefix, problems = _checkpoint_and_problems(path)
  return Run(ratio=ratio, run_id=run_id, path=path,
             aux_path=layout.aux_arrays_path(path), checkpoint_prefix=prefix,
             problems=problems)


def scan_experiment(path):
  """Lists the subset ratios and runs of an experiment directory.

  Args:
    path: the experiment folder (local or `tf.io.gfile` URL).

  Returns:
    `Experiment`; runs are sorted by id, and incomplete ones carry `problems`.
    Entries that are neither ratio folders nor numbered run folders (hidden
    temporary folders of unfinished training runs, notes) are listed in
    `ignored`.

  Raises:
    ExperimentError: if `path` is not a directory, holds no ratio folder, or
      two folders name the same ratio (`0.7`, `0.70`) or the same run (`7`,
      `07`): counting them as two would weigh or split runs silently.
  """
  path = str(path).rstrip("/") or "/"
  if not tf.io.gfile.isdir(path):
    raise errors.ExperimentError(
        "{}: expected an experiment directory (<ratio>/<run>/aux_arrays.npz), "
        "found no such directory".format(path))
  runs = {}
  ratio_names = {}
  ignored = []
  for name in sorted(tf.io.gfile.listdir(path)):
    name = name.rstrip("/")
    ratio_path = layout.join(path, name)
    ratio = layout.parse_ratio_dirname(name)
    if ratio is None or not tf.io.gfile.isdir(ratio_path):
      ignored.append(name)
      continue
    if ratio in ratio_names:
      raise errors.ExperimentError(
          "{}: folders {} and {} are both subset ratio {}; expected one folder "
          "per ratio (named {}): merge their runs into one and remove the "
          "other".format(path, ratio_names[ratio], name,
                         layout.ratio_dirname(ratio),
                         layout.ratio_dirname(ratio)))
    ratio_names[ratio] = name
    found = {}
    for run_name in sorted(tf.io.gfile.listdir(ratio_path)):
      run_name = run_name.rstrip("/")
      run_path = layout.join(ratio_path, run_name)
      if not run_name.isdigit() or not tf.io.gfile.isdir(run_path):
        ignored.append(layout.join(name, run_name))
        continue
      run_id = int(run_name)
      if run_id in found:
        raise errors.ExperimentError(
            "{}: folders {} and {} are both run {}; expected one folder per "
            "run id (named {}): remove or rename the other".format(
                ratio_path, os.path.basename(found[run_id].path), run_name,
                run_id, run_id))
      found[run_id] = _inspect_run(ratio, run_id, run_path)
    runs[ratio] = [found[run_id] for run_id in sorted(found)]
  if not runs:
    raise errors.ExperimentError(
        "{}: expected subset-ratio folders such as 0.7/ holding run folders, "
        "found {}".format(path, sorted(ignored)[:10] or "an empty directory"))
  return Experiment(path=path, runs=runs, ignored=tuple(ignored))
