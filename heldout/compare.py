r"""Compares our estimates with the published ones.

  bazel run //heldout:compare -- --ours=est/cifar100.npz \
      --published=cifar100_infl_matrix.npz --output_prefix=est/cifar100_vs_published

`--ours` is what `//heldout:estimate` writes (`memorization`, `consistency`,
`index`, ...). `--published` is a C-score file (`<dataset>-cscores-orig-order.npz`,
or `imagenet-cscores-with-filename.npz` with `--imagenet_index=imagenet_index.npz`),
`cifar100_infl_matrix.npz`, or a high-influence pairs file; `--kind=auto`
tells which from its keys and compares `cscore` (else `consistency`) with
C-scores and `memorization` with memorization. Prints Spearman and Pearson correlations,
top-k / bottom-k overlaps, counts (NaN excluded) and the largest
disagreements, and writes `<prefix>_summary.csv`, `<prefix>_disagreements.csv`
and `<prefix>_scatter.png`.

Example ids: our `index` is the TFDS position; the published CIFAR C-scores
are in the original CIFAR order. `--index_map=MAP.npz` (key `original_index`,
[n_train]: original position of each TFDS position, see
`heldout.released.published.original_index_from_tfds_ids`) translates ours
first; without it, ids are matched as they are.
"""

import os
import sys

from absl import app
from absl import flags
import numpy as np

from heldout import errors
from heldout.released import agreement
from heldout.released import published

_OURS = flags.DEFINE_string("ours", None, "Our estimates (.npz from //heldout:estimate).")
_PUBLISHED = flags.DEFINE_string("published", None, "The published file (.npz).")
_KIND = flags.DEFINE_enum("kind", "auto", ["auto", "cscore", "memorization"],
                          "What to compare; auto: from the published file's keys.")
_OUTPUT_PREFIX = flags.DEFINE_string(
    "output_prefix", None, "Prefix of the output files (default: --ours without "
    ".npz, plus _vs_<published name>).")
_OURS_KEY = flags.DEFINE_string(
    "ours_key", None, "Key of --ours to compare (default: cscore, else consistency, "
    "for C-scores; memorization for memorization).")
_INDEX_MAP = flags.DEFINE_string(
    "index_map", None, ".npz with `original_index`: maps our example ids to the "
    "published file's ids.")
_IMAGENET_INDEX = flags.DEFINE_string(
    "imagenet_index", None, "imagenet_index.npz, to align ImageNet C-scores by filename.")
_ALLOW_PICKLE = flags.DEFINE_bool(
    "allow_pickle", False, "Allow object arrays in published files (trusted files only).")
_CHECK_THRESHOLDS = flags.DEFINE_bool(
    "check_thresholds", True, "For a high-influence pairs file, check that the "
    "infl<a>_mem<b> thresholds in its name hold.")
_TOP_K = flags.DEFINE_list("top_k", ["10", "100", "1000"], "k of the top-k overlaps.")
_NUM_DISAGREEMENTS = flags.DEFINE_integer(
    "num_disagreements", 20, "How many of the largest disagreements to list.")

# Our key compared with each published kind, the first present being used:
# the C-score averaged over ratios, else consistency at one ratio.
_DEFAULT_KEYS = {"cscore": ("cscore", "consistency"), "memorization": ("memorization",)}


def _resolve(path):
  if path is None or "://" in path or os.path.isabs(path):
    return path
  return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()), path)


def _strip_npz(path):
  return path[:-len(".npz")] if path.endswith(".npz") else path


def _read_ours(path, keys):
  """(key, values, index) of the first of `keys` in our estimates file."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except FileNotFoundError:
    raise ValueError("{}: no such file".format(path)) from None
  except (OSError, ValueError) as e:
    raise ValueError("{}: not a readable .npz file ({})".format(path, e)) from e
  present = [k for k in keys if k in arrays]
  if not present:
    raise ValueError("{}: key {} not found; keys are {}".format(
        path, " or ".join("`{}`".format(k) for k in keys), sorted(arrays)))
  key = present[0]
  values = np.asarray(arrays[key])
  if values.ndim != 1:
    raise ValueError("{}: key `{}`: expected a 1-D array, found shape {}".format(
        path, key, values.shape))
  index = arrays.get("index")
  if index is None:
    index = np.arange(len(values), dtype=np.int64)
  elif np.shape(index) != values.shape:
    raise ValueError("{}: key `index`: expected shape {} (that of `{}`), found {}".format(
        path, values.shape, key, np.shape(index)))
  return key, values.astype(np.float64), np.asarray(index)


def _read_index_map(path):
  try:
    with np.load(path, allow_pickle=False) as npz:
      if "original_index" not in npz.files:
        raise ValueError("{}: key `original_index` not found; keys are {}".format(
            path, sorted(npz.files)))
      mapping = np.asarray(npz["original_index"])
  except FileNotFoundError:
    raise ValueError("{}: no such file".format(path)) from None
  if mapping.ndim != 1 or not np.issubdtype(mapping.dtype, np.integer):
    raise ValueError("{}: key `original_index`: expected 1-D integers, found {} {}".format(
        path, mapping.dtype, mapping.shape))
  return mapping.astype(np.int64)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: {}".format(" ".join(argv[1:])))
  try:
    if not _OURS.value or not _PUBLISHED.value:
      raise ValueError("--ours and --published are required")
    ours_path, published_path = _resolve(_OURS.value), _resolve(_PUBLISHED.value)
    top_ks = []
    for k in _TOP_K.value:
      try:
        top_ks.append(int(k))
      except ValueError:
        raise ValueError("--top_k: {!r} is not an integer".format(k)) from None
    imagenet_index = None
    if _IMAGENET_INDEX.value:
      imagenet_index = published.read_imagenet_index(
          _resolve(_IMAGENET_INDEX.value), allow_pickle=_ALLOW_PICKLE.value)
    theirs = published.read_published(published_path, kind=_KIND.value,
                                      allow_pickle=_ALLOW_PICKLE.value,
                                      imagenet_index=imagenet_index,
                                      check_thresholds=_CHECK_THRESHOLDS.value)
    keys = (_OURS_KEY.value,) if _OURS_KEY.value else _DEFAULT_KEYS[theirs.kind]
    key, values, index = _read_ours(ours_path, keys)
    notes = []
    if _INDEX_MAP.value:
      mapping = _read_index_map(_resolve(_INDEX_MAP.value))
      if index.min() < 0 or index.max() >= len(mapping):
        raise ValueError("--index_map has {} entries; our ids go up to {}".format(
            len(mapping), index.max()))
      index = mapping[index]
      notes.append("our ids mapped through {}".format(_INDEX_MAP.value))
    elif theirs.order == "original":
      notes.append("note: the published file is in the original CIFAR order and ids "
                   "are matched as they are; pass --index_map if ours are TFDS positions")
    report = agreement.agreement_report(
        values, theirs.values, ours_index=index, published_index=theirs.index,
        top_ks=top_ks, num_disagreements=_NUM_DISAGREEMENTS.value)
    prefix = _OUTPUT_PREFIX.value
    if prefix:
      prefix = _resolve(prefix)
    else:
      prefix = "{}_vs_{}".format(_strip_npz(ours_path),
                                 os.path.basename(_strip_npz(published_path)))
    names = ("ours:" + key, "published:" + theirs.kind)
    paths = agreement.write_report(report, prefix, names=names)
  except (errors.HeldoutError, ValueError, OSError) as e:
    print("error: {}".format(e).replace("\n", " "), file=sys.stderr)
    return 1
  print("{} ({}) vs {} ({})".format(ours_path, key, published_path, theirs.kind))
  for note in notes:
    print(note)
  print(report.format_text(names=("ours", "published")))
  for name, path in sorted(paths.items()):
    print("wrote {}: {}".format(name, path))
  return 0


if __name__ == "__main__":
  app.run(main)
