"""Rare subgroups: a long-tailed superclass problem, and where scores put it.

SSFT's simulation (Maini et al. 2022, `cifar100_superclass.py`): CIFAR-100's
20 superclasses, each built from its 5 subclasses with exponentially
decaying frequencies, as a 20-class problem; rare subclasses are the
examples a score should single out (slowly learned, memorized). Here the same
construction for any labelled split (`long_tail_split`): superclasses made of
given classes, the subclasses of each given frequency ranks by a seeded
permutation and subsampled to `decay ** rank` of their examples. The bundled
digits analogue (`DIGITS_SUPERCLASSES`): two superclasses, digits 0-4 and
5-9, each from 5 subclasses kept at 1, 1/2, 1/4, 1/8, 1/16
(`decay=0.5`), runs offline; CIFAR-100's own 20 superclasses of 5 fine
classes (`CIFAR100_SUPERCLASSES`) give SSFT's simulation.

The kept examples are renumbered 0..m-1 (what heldout training and the
scores need); `LongTail.original_id` maps back.
"""

import dataclasses
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from heldout.data import dataset as dataset_lib
from heldout.evaluations import mislabeled

DIGITS_SUPERCLASSES = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))

# CIFAR-100's superclass of each fine label (TFDS's `label`, the original
# order): the dataset's own 20 x 5 hierarchy (its `coarse_label`).
CIFAR100_COARSE_OF_FINE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13)
CIFAR100_SUPERCLASSES = tuple(
    tuple(f for f, c in enumerate(CIFAR100_COARSE_OF_FINE) if c == coarse)
    for coarse in range(20))

# Superclasses of the datasets the simulation runs on.
SUPERCLASSES = {"digits": DIGITS_SUPERCLASSES,
                "cifar100:3.0.2": CIFAR100_SUPERCLASSES}


@dataclasses.dataclass(frozen=True)
class LongTail:
  """A long-tailed superclass split.

  Attributes:
    split: `SplitData` with superclass labels and ids 0..m-1.
    original_id: [m] int64, the source split's id of each example.
    subclass: [m] int64, its original class.
    rank: [m] int64, its subclass's frequency rank in its superclass (0 the
      most frequent, kept whole; rank r kept at decay ** r).
  """
  split: dataset_lib.SplitData
  original_id: np.ndarray
  subclass: np.ndarray
  rank: np.ndarray


def subclass_ranks(superclasses: Sequence[Sequence[int]], seed: int
                   ) -> Dict[int, Tuple[int, int]]:
  """{original class: (superclass, frequency rank)}, ranks from `seed`."""
  out = {}
  rng = np.random.default_rng([seed, 0x7A11])
  for s, members in enumerate(superclasses):
    for rank, c in enumerate(rng.permutation(np.asarray(members))):
      if int(c) in out:
        raise ValueError("class {} is in two superclasses".format(int(c)))
      out[int(c)] = (s, rank)
  return out


def long_tail_split(split, superclasses: Sequence[Sequence[int]],
                    decay: float = 0.5, seed: int = 0,
                    subsample: bool = True) -> LongTail:
  """The superclass problem of `split`, subclasses subsampled by rank.

  Args:
    split: a `SplitData` whose labels are the subclasses.
    superclasses: the classes making up each superclass.
    decay: in (0, 1]; rank r keeps round(decay ** r * count) examples (at
      least 1).
    seed: the seed of the ranks and of which examples are kept.
    subsample: False keeps every example (for a test split), relabelled.

  Returns:
    `LongTail`.
  """
  if not 0.0 < decay <= 1.0:
    raise ValueError("`decay` must be in (0, 1], got {}".format(decay))
  ranks = subclass_ranks(superclasses, seed)
  rng = np.random.default_rng([seed, 0x10F7])
  keep = []
  for c, (_, rank) in sorted(ranks.items()):
    positions = np.flatnonzero(split.labels == c)
    if subsample:
      m = max(1, int(round(decay ** rank * len(positions))))
      positions = np.sort(rng.choice(positions, m, replace=False))
    keep.append(positions)
  positions = np.sort(np.concatenate(keep))
  subclass = split.labels[positions].astype(np.int64)
  superclass = np.array([ranks[int(c)][0] for c in subclass], np.int64)
  rank = np.array([ranks[int(c)][1] for c in subclass], np.int64)
  new_split = dataset_lib.SplitData(
      images=split.images[positions], labels=superclass,
      index=np.arange(len(positions), dtype=np.int64))
  return LongTail(new_split, np.asarray(split.index)[positions].astype(
      np.int64), subclass, rank)


def long_tail_dataset(dataset, superclasses=DIGITS_SUPERCLASSES,
                      decay: float = 0.5, seed: int = 0
                      ) -> Tuple[dataset_lib.Dataset, LongTail]:
  """The long-tailed training split and the relabelled (whole) test split."""
  train = long_tail_split(dataset.train, superclasses, decay, seed)
  test = long_tail_split(dataset.test, superclasses, decay, seed,
                         subsample=False)
  name = "{}/long_tail:{}:decay={}:seed={}".format(
      dataset.name, len(superclasses), decay, seed)
  return (dataset_lib.Dataset(name=name, num_classes=len(superclasses),
                              splits={"train": train.split,
                                      "test": test.split}), train)


def percentile_from_suspicious_end(values, end: str) -> np.ndarray:
  """[n] in [0, 100]: 100 = ranked first from `end` (ties averaged)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  keys = mislabeled.suspicion_keys(values, end)
  if len(keys) < 2:
    return np.full(len(keys), 50.0)
  return (stats.rankdata(keys, method="average") - 1) / (len(keys) - 1) * 100


def rank_table(scores: Mapping[str, Tuple[np.ndarray, np.ndarray, str]],
               tail: LongTail, rare_from: int = 2
               ) -> Dict[str, Dict[str, float]]:
  """Where each score puts each frequency rank.

  Args:
    scores: {method: (index, values, suspicious end)} over `tail.split`'s ids.
    tail: the `LongTail` the scores were computed on.
    rare_from: ranks >= this count as rare for the AUROC column.

  Returns:
    {method: {"rank r (n)": mean percentile from the suspicious end of the
     examples of rank r, ..., "AUROC rare": the score's AUROC as a detector
     of rare examples (0.5: none; below: rare at the other end)}}.
  """
  out = {}
  ranks = sorted(set(tail.rank.tolist()))
  for method, (index, values, end) in scores.items():
    index = np.asarray(index, np.int64)
    pct = percentile_from_suspicious_end(values, end)
    rank_of = tail.rank[index]
    row = {}
    for r in ranks:
      sel = rank_of == r
      row["rank {} (n={})".format(r, int(sel.sum()))] = (
          float(pct[sel].mean()) if sel.any() else float("nan"))
    row["AUROC rare"] = mislabeled.auroc(
        mislabeled.suspicion_keys(values, end), rank_of >= rare_from)
    out[method] = row
  return out


def rank_table_text(table: Mapping[str, Mapping[str, float]]) -> str:
  if not table:
    return "(no method)"
  columns = list(next(iter(table.values())))
  width = max([len(m) for m in table] + [6])
  lines = ["{:<{w}}  ".format("method", w=width) +
           "  ".join("{:>12}".format(c) for c in columns)]
  for method, row in table.items():
    lines.append("{:<{w}}  ".format(method, w=width) + "  ".join(
        "{:>12.3f}".format(row[c]) for c in columns))
  return "\n".join(lines)
