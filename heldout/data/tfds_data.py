"""TFDS image datasets loaded whole, in file order, as upstream loaded them.

Upstream (google-research/heldout-influence-estimation, `libdata/tfds.py`)
loads e.g. `cifar10:3.0.2` with `tfds.load(name, batch_size=-1)` and
unshuffled files, and an example's id is its position in that order (50,000
train and 10,000 test for CIFAR). The released `aux_arrays.npz` ids refer to
exactly that order, so nothing here reorders anything. Images are uint8 and
are scaled to float32 / 255, as upstream does.

Note (upstream's own remark): for `mnist` this order is TFDS's, not the order
of the original MNIST files. The same holds for CIFAR; `load_tfds_ids` reads
the `id` feature that records each example's original position.
"""

from typing import Optional, Sequence

import numpy as np

from heldout.data import dataset as dataset_lib

# Names the released experiments used, and MNIST for small CNNs.
KNOWN_DATASETS = ("cifar10:3.0.2", "cifar100:3.0.2", "mnist")
DATA_SCALE = 255.0
_ID_BATCH = 10000  # ids read per step by `load_tfds_ids`


def _tfds_load(name, data_dir, download, **kwargs):
  """`tfds.load` whose missing-data failures are one clear `DatasetError`.

  TFDS reports a dataset that is not prepared (download=False) with an
  AssertionError and a failed download with a network error (an OSError);
  both become a `DatasetError` that says where the data was looked for and
  how to provide it.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.load(name, data_dir=data_dir, download=download, **kwargs)
  except (AssertionError, OSError) as e:
    where = data_dir or "TFDS's default data directory (~/tensorflow_datasets)"
    why = ("downloading it failed ({})".format(" ".join(str(e).split()))
           if download else "downloading is off")
    raise dataset_lib.DatasetError(
        "{}: no prepared copy in {} and {}; prepare it where the internet is "
        "reachable (`tfds build {}`), copy the data folder here and pass its "
        "parent as --data_dir".format(name, where, why, name)) from None


def load_tfds(name: str, splits: Sequence[str] = ("train", "test"),
              data_dir: Optional[str] = None,
              download: bool = True) -> dataset_lib.Dataset:
  """Loads a TFDS image classification dataset whole into memory.

  Args:
    name: TFDS name with optional version, e.g. "cifar10:3.0.2".
    splits: the splits to load.
    data_dir: TFDS data directory (TFDS's default if None).
    download: let TFDS download and prepare the dataset if it is missing.

  Returns:
    `Dataset` with float32 images / 255 and ids = positions in TFDS's
    unshuffled order.

  Raises:
    DatasetError: if the dataset is not prepared in `data_dir` and cannot be
      downloaded, or a split lacks an `image` or `label` feature.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  loaded, info = _tfds_load(name, data_dir, download, split=list(splits),
                            batch_size=-1, shuffle_files=False, with_info=True)
  out = {}
  for split, tensors in zip(splits, loaded):
    arrays = tfds.as_numpy(tensors)
    for key in ("image", "label"):
      if key not in arrays:
        raise dataset_lib.DatasetError(
            "{} split `{}`: expected features `image` and `label`, found {}"
            .format(name, split, sorted(arrays)))
    out[split] = dataset_lib.split_from_arrays(
        arrays["image"], np.asarray(arrays["label"]), scale=DATA_SCALE)
  num_classes = info.features["label"].num_classes
  return dataset_lib.Dataset(name=name, num_classes=num_classes, splits=out)


def load_tfds_ids(name: str, split: str = "train",
                  data_dir: Optional[str] = None,
                  download: bool = True) -> np.ndarray:
  """The `id` feature of every example of a split, in TFDS's read order.

  Read as `load_tfds` reads (unshuffled files, TFDS's default read config), so
  element i belongs to the example whose id in this toolkit is i. For CIFAR
  the `id` ("train_01234") keeps the example's position in the original
  CIFAR files, which TFDS's order does not (see
  `heldout.released.published.original_index_from_tfds_ids`). Images are left
  encoded: only the order and the ids are needed.

  Args:
    name: TFDS name with optional version, e.g. "cifar10:3.0.2".
    split: the split, e.g. "train".
    data_dir: TFDS data directory (TFDS's default if None).
    download: let TFDS download and prepare the dataset if it is missing.

  Returns:
    ids: [n] str, one per example of the split, in TFDS order.

  Raises:
    DatasetError: if the dataset has no `id` feature (e.g. mnist), or is not
      prepared in `data_dir` and cannot be downloaded.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = tfds.builder(name, data_dir=data_dir).info.features
  if "id" not in features:
    raise dataset_lib.DatasetError(
        "{}: expected an `id` feature, found features {}".format(
            name, sorted(features.keys())))
  decoders = {key: tfds.decode.SkipDecoding()
              for key, feature in features.items()
              if isinstance(feature, tfds.features.Image)}
  ds = _tfds_load(name, data_dir, download, split=split, shuffle_files=False,
                  decoders=decoders or None)
  ids = []
  for batch in tfds.as_numpy(ds.map(lambda example: example["id"])
                             .batch(_ID_BATCH)):
    ids.extend(value.decode("utf-8") for value in batch)
  return np.array(ids, dtype=str)
