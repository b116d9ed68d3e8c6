"""Upstream's npz dataset format, so users can bring their own data.

The format of `libdata/numpy.py` in google-research/heldout-influence-
estimation: one `.npz` file whose arrays are named `<split>__<key>` (double
underscore), e.g. `train__image`, `train__label`, `test__image`,
`test__label`, optionally `<split>__index` (example ids; position if absent),
plus meta entries that start with a double underscore:
  * `__num_classes`: number of classes (scalar);
  * `__data_scale`: images are divided by it (255 for byte pixels, 1 for
    float images already in [0, 1]).
Images are [n, height, width, channels] (or [n, height, width], read as one
channel).
"""

from typing import Mapping, Optional

import numpy as np

from heldout import atomic
from heldout import npz_io
from heldout.data import dataset as dataset_lib

META_NUM_CLASSES = "__num_classes"
META_DATA_SCALE = "__data_scale"
SEPARATOR = "__"
REQUIRED_KEYS = ("image", "label")
OPTIONAL_KEYS = ("index",)


def _fail(path, message):
  raise dataset_lib.DatasetError("{}: {}".format(path, message))


def read_npz_dataset(path: str, name: Optional[str] = None
                     ) -> dataset_lib.Dataset:
  """Reads a dataset in upstream's npz format.

  Args:
    path: the `.npz` file (local or a `tf.io.gfile` URL).
    name: the dataset's name; "npz:<path>" if None.

  Returns:
    `Dataset` with every split of the file.

  Raises:
    DatasetError: naming the file and what is wrong: missing file, not an npz,
      a missing meta entry or split key, an array name not of the form
      `<split>__<key>`, arrays of disagreeing lengths, labels out of range,
      ids that are not a permutation.
  """
  path = str(path)
  name = name or "npz:" + path
  try:
    with npz_io.load_npz(path) as npz:
      arrays = {k: np.asarray(npz[k]) for k in npz.files}
  except FileNotFoundError:
    _fail(path, "no such file")
  except dataset_lib.DatasetError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    _fail(path, "expected an .npz file of `<split>__<key>` arrays, could not "
          "read it: {}".format(e))

  meta = {}
  splits = {}
  for key, value in arrays.items():
    if key.startswith(SEPARATOR):
      meta[key] = value
      continue
    parts = key.split(SEPARATOR)
    if len(parts) != 2 or not all(parts):
      _fail(path, "array `{}`: expected a name `<split>__<key>` (e.g. "
            "`train__image`) or a meta entry `__<name>`".format(key))
    split, field = parts
    if field not in REQUIRED_KEYS + OPTIONAL_KEYS:
      _fail(path, "array `{}`: expected a key in {}, found `{}`".format(
          key, list(REQUIRED_KEYS + OPTIONAL_KEYS), field))
    splits.setdefault(split, {})[field] = value
  for meta_key in (META_NUM_CLASSES, META_DATA_SCALE):
    if meta_key not in meta:
      _fail(path, "missing meta entry `{}`; found meta entries {}".format(
          meta_key, sorted(meta)))
  if not splits:
    _fail(path, "no `<split>__image` arrays found; keys: {}".format(
        sorted(arrays)))
  try:
    num_classes = int(np.asarray(meta[META_NUM_CLASSES]).reshape(()))
    data_scale = float(np.asarray(meta[META_DATA_SCALE]).reshape(()))
  except (TypeError, ValueError):
    _fail(path, "`{}` and `{}` must be scalars, found shapes {} and {}".format(
        META_NUM_CLASSES, META_DATA_SCALE,
        np.shape(meta[META_NUM_CLASSES]), np.shape(meta[META_DATA_SCALE])))
  if data_scale <= 0:
    _fail(path, "`{}` must be positive, found {}".format(META_DATA_SCALE,
                                                         data_scale))
  out = {}
  for split, fields in sorted(splits.items()):
    for field in REQUIRED_KEYS:
      if field not in fields:
        _fail(path, "split `{}`: missing `{}__{}`; found {}".format(
            split, split, field, sorted(split + SEPARATOR + f for f in fields)))
    images = fields["image"]
    if images.ndim not in (3, 4):
      _fail(path, "`{}__image`: expected [n, height, width(, channels)], found "
            "shape {}".format(split, images.shape))
    n = images.shape[0]
    for field in ("label", "index"):
      if field in fields and fields[field].shape != (n,):
        _fail(path, "`{}__{}`: expected shape [{}] (len({}__image)), found {}"
              .format(split, field, n, split, fields[field].shape))
    try:
      out[split] = dataset_lib.split_from_arrays(
          images, fields["label"], fields.get("index"), scale=data_scale)
    except dataset_lib.DatasetError as e:
      _fail(path, "split `{}`: {}".format(split, e))
  try:
    return dataset_lib.Dataset(name=name, num_classes=num_classes, splits=out)
  except dataset_lib.DatasetError as e:
    _fail(path, str(e))


def write_npz_dataset(path: str, splits: Mapping[str, Mapping[str, np.ndarray]],
                      num_classes: int, data_scale: float = 255.0,
                      compressed: bool = False) -> None:
  """Atomically writes a dataset in upstream's npz format.

  Args:
    path: destination `.npz` file.
    splits: split name -> {"image": [n, h, w(, c)], "label": [n], optionally
      "index": [n]}, raw (unscaled) arrays, e.g. uint8 pixels.
    num_classes: stored as `__num_classes`.
    data_scale: stored as `__data_scale`; readers divide images by it.
    compressed: use `np.savez_compressed`.

  Raises:
    DatasetError: if a split lacks `image`/`label`, has an unknown key, or
      the arrays do not read back as a valid dataset (nothing is written).
  """
  arrays = {META_NUM_CLASSES: np.asarray(num_classes, dtype=np.int64),
            META_DATA_SCALE: np.asarray(data_scale, dtype=np.float64)}
  for split, fields in splits.items():
    if SEPARATOR in split or not split:
      raise dataset_lib.DatasetError(
          "split name must be non-empty without `__`, got {!r}".format(split))
    for field in REQUIRED_KEYS:
      if field not in fields:
        raise dataset_lib.DatasetError("split `{}`: missing `{}`".format(
            split, field))
    for field, value in fields.items():
      if field not in REQUIRED_KEYS + OPTIONAL_KEYS:
        raise dataset_lib.DatasetError(
            "split `{}`: unknown key `{}`; expected keys in {}".format(
                split, field, list(REQUIRED_KEYS + OPTIONAL_KEYS)))
      arrays[split + SEPARATOR + field] = np.asarray(value)
  # Validate by building the dataset before anything touches the disk.
  dataset_lib.Dataset(
      name=str(path), num_classes=num_classes,
      splits={split: dataset_lib.split_from_arrays(
          fields["image"], fields["label"], fields.get("index"),
          scale=data_scale) for split, fields in splits.items()})
  atomic.write_npz(path, compressed=compressed, **arrays)
