"""Out-of-sample predicted probabilities from heldout runs, and cleanlab on them.

Every heldout run leaves some training examples out, so its model's
predictions on them are out of sample, like cross-validation's. Averaging the
softmax of the runs that held an example out gives the out-of-sample
predicted probabilities that confident learning asks for; cleanlab (Northcutt
et al., the named peer of the mislabeled-detection table) then ranks label
issues from them: `cleanlab.rank.get_label_quality_scores` (self-confidence)
and `cleanlab.filter.find_label_issues` (the examples it flags).
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tqdm

from heldout.readers import aux_arrays
from heldout.readers import checkpoints
from heldout.readers import layout

CLEANLAB = "cleanlab"


def out_of_sample_probabilities(experiment_dir, ratio, run_ids: Sequence[int],
                                split, batch_size: int = 1024,
                                progress: bool = True):
  """Mean softmax over the runs that held each training example out.

  Args:
    experiment_dir: a released-layout experiment.
    ratio: its subset ratio.
    run_ids: the runs to use.
    split: the training `SplitData` the runs were trained on (ids =
      positions, as aux_arrays' `subsample_idx`).
    batch_size: prediction batch size.
    progress: a progress bar over runs.

  Returns:
    (probabilities [n, classes] float64, NaN rows where no run held the
     example out; held_out_runs [n] int64).
  """
  n = len(split)
  total = None
  count = np.zeros(n, np.int64)
  for run_id in tqdm.tqdm(list(run_ids), desc="out-of-sample predictions",
                          unit="run", disable=not progress):
    run = layout.run_dir(experiment_dir, ratio, run_id)
    aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run),
                                     num_train=n)
    held_out = ~aux.subset_mask()
    positions = split.positions_of(np.flatnonzero(held_out))
    restored = checkpoints.restore_run(run)
    probs = []
    for start in range(0, len(positions), batch_size):
      x = tf.constant(split.images[positions[start:start + batch_size]])
      probs.append(tf.nn.softmax(restored.model(x, is_training=False)).numpy())
    if total is None:
      total = np.zeros((n, restored.num_classes), np.float64)
    if probs:
      total[positions] += np.concatenate(probs).astype(np.float64)
    count[positions] += 1
  if total is None:
    raise ValueError("no run given")
  with np.errstate(invalid="ignore", divide="ignore"):
    return total / count[:, None], count


def cleanlab_scores(labels, probabilities):
  """cleanlab's label-issue score and flags from out-of-sample probabilities.

  Args:
    labels: [n] the (possibly corrupted) labels.
    probabilities: [n, classes] out-of-sample probabilities (NaN rows: the
      example gets NaN and is not flagged).

  Returns:
    (issue score [n] float64 = 1 - cleanlab's label quality (self-confidence;
     high = likely mislabeled), flagged [n] bool by `find_label_issues`).
  """
  from cleanlab import filter as cl_filter  # pylint: disable=g-import-not-at-top
  from cleanlab import rank as cl_rank  # pylint: disable=g-import-not-at-top
  labels = np.asarray(labels, np.int64)
  probabilities = np.asarray(probabilities, np.float64)
  defined = ~np.isnan(probabilities).any(axis=1)
  score = np.full(len(labels), np.nan)
  flagged = np.zeros(len(labels), bool)
  p = probabilities[defined]
  p = p / p.sum(axis=1, keepdims=True)
  score[defined] = 1.0 - cl_rank.get_label_quality_scores(
      labels[defined], p, method="self_confidence")
  flagged[defined] = cl_filter.find_label_issues(labels[defined], p)
  return score, flagged


def flagged_precision_recall(flagged, is_corrupted) -> Optional[tuple]:
  """(precision, recall) of a flagged set against the corrupted examples."""
  flagged = np.asarray(flagged, bool)
  is_corrupted = np.asarray(is_corrupted, bool)
  hits = float(np.sum(flagged & is_corrupted))
  precision = hits / flagged.sum() if flagged.any() else float("nan")
  recall = hits / is_corrupted.sum() if is_corrupted.any() else float("nan")
  return precision, recall
