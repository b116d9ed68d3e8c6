"""Checks a run against its own exported results (upstream's demo check).

Restores a run's checkpoint (architecture inferred unless given), evaluates
it on a split of its dataset in batches of 200 without augmentation, and
compares the correctness with what the run exported in `aux_arrays.npz`,
scattering both through their example ids. A released run evaluated on the
dataset it was trained with gives `n_match == n` (a few mismatches point at a
differently built dataset, as upstream's demo notes for ImageNet).
"""

import dataclasses
from typing import Optional

import numpy as np

from heldout.inference import predict_logits
from heldout.readers import aux_arrays as aux_lib
from heldout.readers import checkpoints
from heldout.readers import layout

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class RunCheck:
  """What `verify_run` found.

  Attributes:
    run: the `checkpoints.RestoredRun`.
    split: "train" (subset + removed examples) or "test".
    n_match: examples whose correctness agrees with the exported one.
    n: examples compared.
    accuracy: accuracy of the restored model on the split.
    subset_fraction: fraction of the training set the run was trained on.
    mismatched: example ids whose correctness disagrees.
  """
  run: checkpoints.RestoredRun
  split: str
  n_match: int
  n: int
  accuracy: float
  subset_fraction: float
  mismatched: np.ndarray

  def message(self):
    return "{} out of {} predictions match".format(self.n_match, self.n)


def exported_correctness(aux, split):
  """[n] bool correctness by example id, as the run exported it."""
  if split == "train":
    return aux.correctness_on_train_set()
  return aux.correctness_on_test_set()


def verify_run(run_dir, dataset, split="test", arch: Optional[str] = None,
               batch_size=200):
  """Evaluates a run's checkpoint and compares with its aux_arrays.npz.

  Args:
    run_dir: a run folder `<experiment>/<ratio>/<run>`.
    dataset: the `heldout.data.Dataset` it was trained on.
    split: "test" or "train".
    arch: architecture name; inferred from the checkpoint when None.
    batch_size: evaluation batch size (upstream: 200).

  Returns:
    `RunCheck`.

  Raises:
    ValueError: for an unknown split.
    RunNotFoundError, AuxArraysError, CheckpointMismatchError: from the
      readers, when the run is incomplete or does not fit.
  """
  if split not in SPLITS:
    raise ValueError("`split` must be one of {}, got {!r}".format(SPLITS, split))
  data = dataset.splits[split]
  aux = aux_lib.read_aux_arrays(
      layout.aux_arrays_path(run_dir), num_train=len(dataset.splits["train"]),
      num_test=len(dataset.splits["test"]))
  run = checkpoints.restore_run(run_dir, arch=arch,
                                num_classes=dataset.num_classes)
  logits = predict_logits(run.model, data.images, batch_size)
  correct = np.argmax(logits, axis=1) == data.labels
  ours = np.zeros(len(data), dtype=bool)
  ours[data.index] = correct
  theirs = exported_correctness(aux, split)
  agree = ours == theirs
  return RunCheck(run=run, split=split, n_match=int(agree.sum()), n=len(agree),
                  accuracy=float(correct.mean()),
                  subset_fraction=len(aux.subsample_idx) / aux.num_train,
                  mismatched=np.flatnonzero(~agree))
