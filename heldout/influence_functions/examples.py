"""The examples a stage runs on: images, labels and example ids, in batches."""

import dataclasses
import hashlib
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Examples:
  """Examples in a fixed order.

  Attributes:
    images: [n, ...] float model inputs.
    labels: [n] int64 class ids.
    index: [n] int64 example ids (distinct).
    name: what they are, for stored arguments and messages ("digits/train").
  """
  images: np.ndarray
  labels: np.ndarray
  index: np.ndarray
  name: str = ""

  def __post_init__(self):
    images = np.asarray(self.images)
    labels = np.asarray(self.labels)
    index = np.asarray(self.index)
    n = images.shape[0] if images.ndim else -1
    if images.ndim < 2 or not np.issubdtype(images.dtype, np.floating):
      raise ValueError("`images` must be float [n, ...], got {} {}".format(
          images.dtype, images.shape))
    for key, value in (("labels", labels), ("index", index)):
      if value.shape != (n,) or not np.issubdtype(value.dtype, np.integer):
        raise ValueError("`{}` must be int [{}] (one per image), got {} {}"
                         .format(key, n, value.dtype, value.shape))
    if len(np.unique(index)) != n:
      raise ValueError("`index` must hold distinct example ids")
    object.__setattr__(self, "images", images)
    object.__setattr__(self, "labels", labels.astype(np.int64))
    object.__setattr__(self, "index", index.astype(np.int64))

  @classmethod
  def from_split(cls, split, ids: Optional[Sequence[int]] = None,
                 name: str = ""):
    """The examples `ids` (default: all, ascending) of a `SplitData`."""
    ids = (np.sort(np.asarray(split.index, np.int64)) if ids is None
           else np.asarray(ids, np.int64))
    positions = split.positions_of(ids)
    return cls(split.images[positions], split.labels[positions], ids, name)

  def __len__(self):
    return int(self.images.shape[0])

  def digest(self) -> str:
    """SHA-1 of the ids, labels and images: what the examples are."""
    h = hashlib.sha1()
    for array in (self.index, self.labels, self.images):
      h.update(str((array.dtype.str, array.shape)).encode())
      h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()

  def description(self) -> dict:
    """JSON-able identity for stored arguments."""
    return {"name": self.name, "num_examples": len(self),
            "sha1": self.digest()}

  def take(self, start: int, stop: int) -> "Examples":
    """The examples at positions [start, stop), in order."""
    return Examples(self.images[start:stop], self.labels[start:stop],
                    self.index[start:stop],
                    "{}[{}:{}]".format(self.name, start, stop))

  def batches(self, batch_size: int
              ) -> Iterator[Tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(start, images, labels, ids) of consecutive batches."""
    if batch_size <= 0:
      raise ValueError("`batch_size` must be positive, got {}".format(
          batch_size))
    for start in range(0, len(self), batch_size):
      stop = start + batch_size
      yield (start, self.images[start:stop], self.labels[start:stop],
             self.index[start:stop])

  def num_batches(self, batch_size: int) -> int:
    return -(-len(self) // batch_size)
