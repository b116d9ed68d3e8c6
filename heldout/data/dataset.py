"""In-memory image classification datasets with explicit example ids.

A `Dataset` holds, per split, float32 images, int64 labels and the int64
example id (`index`) of every example. Training subsets, evaluation results and
`aux_arrays.npz` all refer to examples by id, never by position, so an id
is carried next to every array. In every loader here the id of an example is
its position in the loader's documented order, and each split's ids are a
permutation of `range(num_examples)` (what `aux_arrays.npz` expects).
"""

import dataclasses
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from heldout import errors


DatasetError = errors.DatasetError


@dataclasses.dataclass(frozen=True)
class SplitData:
  """The examples of one split.

  Attributes:
    images: [n, height, width, channels] float32, scaled to [0, 1] by the
      loader (no mean subtraction).
    labels: [n] int64 class ids.
    index: [n] int64 example ids, a permutation of range(n).
  """
  images: np.ndarray
  labels: np.ndarray
  index: np.ndarray

  def __post_init__(self):
    images = np.asarray(self.images)
    labels = np.asarray(self.labels)
    index = np.asarray(self.index)
    if images.ndim != 4:
      raise DatasetError(
          "`images` must be [n, height, width, channels], got shape {}".format(
              images.shape))
    if images.dtype != np.float32:
      raise DatasetError("`images` must be float32, got {}".format(images.dtype))
    n = images.shape[0]
    for name, value in (("labels", labels), ("index", index)):
      if value.shape != (n,):
        raise DatasetError("`{}` must have shape [{}] (one per image), got {}"
                           .format(name, n, value.shape))
      if not np.issubdtype(value.dtype, np.integer):
        raise DatasetError("`{}` must be integers, got {}".format(
            name, value.dtype))
    labels = labels.astype(np.int64)
    index = index.astype(np.int64)
    if n and (index.min() < 0 or index.max() >= n or
              (np.bincount(index, minlength=n) != 1).any()):
      raise DatasetError(
          "`index` must be a permutation of range({}) (each example id once), "
          "got ids in [{}, {}] with {} distinct".format(
              n, index.min(), index.max(), len(np.unique(index))))
    object.__setattr__(self, "images", images)
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "index", index)

  def __len__(self):
    return self.images.shape[0]

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    """(height, width, channels)."""
    return tuple(int(d) for d in self.images.shape[1:])

  def positions_of(self, ids) -> np.ndarray:
    """Positions (rows) of the examples with ids `ids`.

    Args:
      ids: [m] int example ids.

    Returns:
      [m] int64 positions p with `self.index[p] == ids`.

    Raises:
      DatasetError: if an id is out of range.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(self)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
      raise DatasetError("example ids must be in [0, {}), got [{}, {}]".format(
          n, ids.min(), ids.max()))
    inverse = np.empty(n, dtype=np.int64)
    inverse[self.index] = np.arange(n, dtype=np.int64)
    return inverse[ids]

  def labels_by_id(self) -> np.ndarray:
    """[n] int64: the label of example id i at position i."""
    out = np.empty(len(self), dtype=np.int64)
    out[self.index] = self.labels
    return out

  def take(self, positions) -> "SplitData":
    """The examples at `positions`, keeping their ids."""
    positions = np.asarray(positions, dtype=np.int64)
    # Ids are no longer a permutation of range(len) for a proper subset, so
    # validation is bypassed on purpose.
    out = object.__new__(SplitData)
    object.__setattr__(out, "images", self.images[positions])
    object.__setattr__(out, "labels", self.labels[positions])
    object.__setattr__(out, "index", self.index[positions])
    return out


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A named dataset: its splits and its number of classes.

  Attributes:
    name: the name it was loaded by (e.g. "digits", "cifar10:3.0.2").
    num_classes: labels are in [0, num_classes).
    splits: split name -> `SplitData`; heldout training needs "train" and
      "test".
  """
  name: str
  num_classes: int
  splits: Mapping[str, SplitData]

  def __post_init__(self):
    if int(self.num_classes) < 1:
      raise DatasetError("`num_classes` must be positive, got {}".format(
          self.num_classes))
    if not self.splits:
      raise DatasetError("`splits` must not be empty")
    shapes = {name: s.image_shape for name, s in self.splits.items()}
    if len(set(shapes.values())) > 1:
      raise DatasetError("all splits must have one image shape, got {}".format(
          shapes))
    for name, split in self.splits.items():
      if len(split) and (split.labels.min() < 0 or
                         split.labels.max() >= self.num_classes):
        raise DatasetError(
            "split `{}`: labels must be in [0, {}) (num_classes), got [{}, {}]"
            .format(name, self.num_classes, split.labels.min(),
                    split.labels.max()))
    object.__setattr__(self, "num_classes", int(self.num_classes))
    object.__setattr__(self, "splits", dict(self.splits))

  def split(self, name: str) -> SplitData:
    """The split `name`.

    Raises:
      DatasetError: naming the splits present if there is no such split.
    """
    if name not in self.splits:
      raise DatasetError("dataset {}: no split `{}`; splits present: {}".format(
          self.name, name, sorted(self.splits)))
    return self.splits[name]

  @property
  def train(self) -> SplitData:
    return self.split("train")

  @property
  def test(self) -> SplitData:
    return self.split("test")

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    """(height, width, channels)."""
    return next(iter(self.splits.values())).image_shape

  def num_examples(self, split: str) -> int:
    return len(self.split(split))

  def summary(self) -> str:
    """One line: name, classes, image shape and examples per split."""
    sizes = ", ".join("{} {}".format(name, len(s))
                      for name, s in sorted(self.splits.items()))
    return "{}: {} classes, images {}, {}".format(
        self.name, self.num_classes, "x".join(map(str, self.image_shape)), sizes)


def split_from_arrays(images, labels, index: Optional[Sequence[int]] = None,
                      scale: float = 1.0) -> SplitData:
  """Builds a `SplitData` from raw arrays.

  Args:
    images: [n, h, w, c] (or [n, h, w], given one channel) numbers.
    labels: [n] integer class ids.
    index: [n] example ids; `range(n)` (position) if None.
    scale: images are divided by this (255 for byte pixels).

  Returns:
    `SplitData` with float32 images `images / scale`.
  """
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if index is None:
    index = np.arange(images.shape[0], dtype=np.int64)
  images = (images.astype(np.float32) / np.float32(scale)).astype(np.float32)
  return SplitData(images=images, labels=np.asarray(labels), index=np.asarray(index))
