"""Datasets by name: `load_dataset("digits")`, `"cifar10:3.0.2"`, `"npz:/f.npz"`."""

from typing import Optional

from heldout.data import dataset as dataset_lib
from heldout.data import digits
from heldout.data import npz_format
from heldout.data import tfds_data

NPZ_PREFIX = "npz:"
DATASET_NAMES = ("digits",) + tfds_data.KNOWN_DATASETS


def load_dataset(name: str, data_dir: Optional[str] = None,
                 download: bool = True) -> dataset_lib.Dataset:
  """Loads a dataset by name.

  Args:
    name: "digits" (scikit-learn's bundled digits, no download), "mnist",
      "cifar10:3.0.2", "cifar100:3.0.2" (TFDS, loaded as upstream did), or
      "npz:<path>" for a file in upstream's npz format.
    data_dir: TFDS data directory for the TFDS datasets.
    download: whether TFDS may download a missing dataset.

  Returns:
    The `Dataset`.

  Raises:
    ValueError: if the name is unknown (naming the known ones).
    DatasetError: if an npz file is malformed.
  """
  if name == "digits":
    return digits.load_digits()
  if name.startswith(NPZ_PREFIX):
    path = name[len(NPZ_PREFIX):]
    if not path:
      raise ValueError("`name` npz: needs a path, e.g. npz:/data/mine.npz")
    return npz_format.read_npz_dataset(path, name=name)
  if name in tfds_data.KNOWN_DATASETS:
    return tfds_data.load_tfds(name, data_dir=data_dir, download=download)
  raise ValueError("`name` must be one of {} or npz:<path>, got {!r}".format(
      list(DATASET_NAMES), name))
