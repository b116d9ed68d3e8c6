r"""Compares per-example estimates and scores: ours, published, any two.

  bazel run //heldout:compare -- --ours=est/cifar100.npz \
      --published=cifar100_infl_matrix.npz --output_prefix=est/cifar100_vs_published
  bazel run //heldout:compare -- --ours=forgetting.npz --published=el2n.npz
  bazel run //heldout:compare -- --ours=el2n.npz --published=est/digits.npz \
      --published_key=memorization

`--ours` is what `//heldout:estimate` writes (`memorization`, `consistency`,
`index`, ...; `--ours_key` picks one) or a per-example score file
(`heldout.scores`: its `values`, or an extra array named by `--ours_key`).
`--published` may also be a score file or an estimates file (then
`--published_key` picks its key, as `--ours_key`): the two are lined up by
their `index` (ids in both are compared; how many only one side has is
reported), with no question of order. Otherwise `--published` is a C-score file (`<dataset>-cscores-orig-order.npz`,
or `imagenet-cscores-with-filename.npz` with `--imagenet_index=imagenet_index.npz`),
`cifar100_infl_matrix.npz`, a high-influence pairs file, or one of the SAMIS
authors' pickles (`.pkl`: {original sample index: score}, read only with
`--allow_pickle`, `heldout.released.samis_scores`); `--kind=auto` tells which
from its keys (or the `.pkl` name) and compares `cscore` (else `consistency`)
with C-scores, `memorization` with memorization, and a score file's `values`
with SAMIS. Prints Spearman and Pearson correlations,
top-k / bottom-k overlaps, counts (NaN excluded) and the largest
disagreements, and writes `<prefix>_summary.csv`, `<prefix>_disagreements.csv`
and `<prefix>_scatter.png`.

Example ids: our `index` is the TFDS position; the published CIFAR C-scores
(`cifar10/100-cscores-orig-order.npz`) are in the original CIFAR order, which
is not TFDS's. Comparing such a file therefore needs one of
- `--index_map=tfds:cifar10:3.0.2` (or `tfds:cifar100:3.0.2`): the map is
  built from the `id` feature ("train_01234": original position 1234) of
  TFDS's train split read in TFDS order, from `--data_dir`;
- `--index_map=MAP.npz`: key `original_index` [n_train], the original
  position of each TFDS position (see
  `heldout.released.published.original_index_from_tfds_ids`);
- `--assume_same_order`: our ids already are original positions (e.g.
  estimates of runs trained on data in the original order).
Without one, comparing a CIFAR C-score file (or a SAMIS pickle, also in the
original order) is refused.
"""

import os

from absl import flags
import numpy as np

from heldout import cli
from heldout import npz_io
from heldout.data import tfds_data
from heldout.released import agreement
from heldout.released import published
from heldout.released import samis_scores
from heldout.scores import score_file

_OURS = flags.DEFINE_string("ours", None, "Our estimates (.npz from //heldout:estimate).")
_PUBLISHED = flags.DEFINE_string("published", None, "The published file (.npz).")
_KIND = flags.DEFINE_enum(
    "kind", "auto", ["auto", "cscore", "memorization", "samis"],
    "What to compare; auto: from the published file's keys (samis: a .pkl).")
_OUTPUT_PREFIX = flags.DEFINE_string(
    "output_prefix", None, "Prefix of the output files (default: --ours without "
    ".npz, plus _vs_<published name>).")
_OURS_KEY = flags.DEFINE_string(
    "ours_key", None, "Key of --ours to compare (default: cscore, else consistency, "
    "for C-scores; memorization for memorization).")
_PUBLISHED_KEY = flags.DEFINE_string(
    "published_key", None, "When --published is an estimates file (from "
    "//heldout:estimate), the key to compare (e.g. memorization); when it is "
    "a score file, `values` (default) or the name of one of its extra arrays.")
_INDEX_MAP = flags.DEFINE_string(
    "index_map", None, "Maps our example ids (TFDS positions) to the published "
    "file's ids: an .npz with `original_index`, or tfds:<name> (e.g. "
    "tfds:cifar10:3.0.2) to build it from TFDS's `id` feature.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data directory, for --index_map=tfds:<name>.")
_ASSUME_SAME_ORDER = flags.DEFINE_bool(
    "assume_same_order", False, "Compare a file in the original CIFAR order "
    "without --index_map: our ids already are original positions.")
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
_DEFAULT_KEYS = {"cscore": ("cscore", "consistency"), "memorization": ("memorization",),
                 "samis": ("values",)}
# Published files that are pickles: the SAMIS authors' scores.
PICKLE_SUFFIXES = (".pkl", ".pickle")
# --index_map=tfds:<name>: the map is built from TFDS's `id` feature.
TFDS_PREFIX = "tfds:"


def _strip_npz(path):
  return path[:-len(".npz")] if path.endswith(".npz") else path


def _read_ours(path, keys):
  """(key, values, index) of the first of `keys` in an estimates or score file.

  For a score file the key is its method (`keys` may name `values` or one of
  its extra arrays instead; the key is then `<method>.<name>`).
  """
  if score_file.is_score_file(path):
    return _read_score_file(path, keys)
  try:
    with npz_io.load_npz(path) as npz:
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


def _read_score_file(path, keys):
  """(label, values, index) of a score file, validated (`read_scores`)."""
  scores = score_file.read_scores(path)
  key = keys[0] if keys else "values"
  if key == "values":
    return scores.method, scores.values, scores.index
  if key not in scores.extras:
    raise ValueError("{}: key `{}` not found: a score file compares `values` "
                     "or one of its extra arrays ({})".format(
                         path, key, ", ".join(sorted(scores.extras)) or "none"))
  return ("{}.{}".format(scores.method, key),
          scores.extras[key].astype(np.float64), scores.index)


def _is_estimates_file(path):
  """Whether `path` is our own estimates (`//heldout:estimate`) file."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      return "args_json" in npz.files and "index" in npz.files
  except (OSError, ValueError, EOFError):
    return False


def _read_index_map(path):
  try:
    with npz_io.load_npz(path) as npz:
      if "original_index" not in npz.files:
        raise ValueError("{}: key `original_index` not found; keys are {}".format(
            path, sorted(npz.files)))
      mapping = np.asarray(npz["original_index"])
  except FileNotFoundError:
    raise ValueError("{}: no such file".format(path)) from None
  except OSError as e:
    raise ValueError("{}: not a readable .npz file ({})".format(path, e)) from e
  if mapping.ndim != 1 or not np.issubdtype(mapping.dtype, np.integer):
    raise ValueError("{}: key `original_index`: expected 1-D integers, found {} {}".format(
        path, mapping.dtype, mapping.shape))
  return mapping.astype(np.int64)


def _tfds_index_map(name, data_dir):
  """The `original_index` of TFDS dataset `name`'s train split, from its ids."""
  if not name:
    raise ValueError("--index_map=tfds:<name> needs a dataset name, e.g. "
                     "tfds:cifar10:3.0.2")
  ids = tfds_data.load_tfds_ids(name, "train", data_dir=data_dir)
  try:
    return published.original_index_from_tfds_ids(ids)
  except ValueError as e:
    raise ValueError("--index_map={}{}: {}".format(TFDS_PREFIX, name, e)) from None


def _index_map(value, data_dir):
  """(original_index [n] int64, description) for an --index_map value."""
  if value.startswith(TFDS_PREFIX):
    name = value[len(TFDS_PREFIX):]
    return (_tfds_index_map(name, data_dir),
            "the `id` feature of TFDS {} (train)".format(name))
  path = cli.resolve_path(value)
  return _read_index_map(path), path


def _refuse_original_order(published_path):
  raise ValueError(
      "{}: the published scores are in the original CIFAR order, and our "
      "example ids are TFDS positions, a different order; pass "
      "--index_map=tfds:cifar10:3.0.2 (or tfds:cifar100:3.0.2, with "
      "--data_dir) to map ours through TFDS's `id` feature, "
      "--index_map=MAP.npz (key `original_index`), or --assume_same_order if "
      "our ids already are original positions".format(published_path))


@cli.exit_status
def main(argv):
  cli.check_no_arguments(argv)
  cli.require_flags(ours=_OURS.value, published=_PUBLISHED.value)
  if _INDEX_MAP.value and _ASSUME_SAME_ORDER.value:
    raise ValueError("--index_map and --assume_same_order contradict each "
                     "other; pass one")
  ours_path = cli.resolve_path(_OURS.value)
  published_path = cli.resolve_path(_PUBLISHED.value)
  top_ks = []
  for k in _TOP_K.value:
    try:
      top_ks.append(int(k))
    except ValueError:
      raise ValueError("--top_k: {!r} is not an integer".format(k)) from None
  if score_file.is_score_file(published_path) or _is_estimates_file(
      published_path):
    return _compare_by_index(ours_path, published_path, top_ks)
  if _PUBLISHED_KEY.value:
    raise ValueError("--published_key is for a score or estimates file as "
                     "--published; {} is neither".format(published_path))
  imagenet_index = None
  if _IMAGENET_INDEX.value:
    imagenet_index = published.read_imagenet_index(
        cli.resolve_path(_IMAGENET_INDEX.value),
        allow_pickle=_ALLOW_PICKLE.value)
  if published_path.endswith(PICKLE_SUFFIXES) or _KIND.value == "samis":
    if _KIND.value not in ("auto", "samis"):
      raise ValueError("--kind={}: {} is a SAMIS pickle; use --kind=samis or "
                       "auto".format(_KIND.value, published_path))
    theirs = samis_scores.read_samis_pickle(published_path,
                                            allow_pickle=_ALLOW_PICKLE.value)
  else:
    theirs = published.read_published(published_path, kind=_KIND.value,
                                      allow_pickle=_ALLOW_PICKLE.value,
                                      imagenet_index=imagenet_index,
                                      check_thresholds=_CHECK_THRESHOLDS.value)
  if _OURS_KEY.value:
    keys = (_OURS_KEY.value,)
  elif score_file.is_score_file(ours_path):
    keys = ("values",)
  else:
    keys = _DEFAULT_KEYS[theirs.kind]
  key, values, index = _read_ours(ours_path, keys)
  notes = []
  if _INDEX_MAP.value:
    mapping, source = _index_map(_INDEX_MAP.value,
                                 cli.resolve_path(_DATA_DIR.value))
    if theirs.order == "original" and len(mapping) != len(theirs.values):
      raise ValueError(
          "--index_map={}: maps {} examples, but {} holds {}; is it the map "
          "of another dataset?".format(_INDEX_MAP.value, len(mapping),
                                       published_path, len(theirs.values)))
    if len(index) and (index.min() < 0 or index.max() >= len(mapping)):
      raise ValueError("--index_map has {} entries; our ids go from {} to "
                       "{}".format(len(mapping), index.min(), index.max()))
    index = mapping[index]
    notes.append("our ids mapped through {}".format(source))
    if theirs.order != "original":
      notes.append("note: {} is not a file in the original CIFAR order; "
                   "--index_map was applied as asked".format(published_path))
  elif theirs.order == "original":
    if not _ASSUME_SAME_ORDER.value:
      _refuse_original_order(published_path)
    notes.append("note: --assume_same_order: our ids are taken as positions "
                 "in the original CIFAR order, as the published file's are")
  report = agreement.agreement_report(
      values, theirs.values, ours_index=index, published_index=theirs.index,
      top_ks=top_ks, num_disagreements=_NUM_DISAGREEMENTS.value)
  prefix = cli.resolve_path(_OUTPUT_PREFIX.value)
  if not prefix:
    prefix = "{}_vs_{}".format(_strip_npz(ours_path),
                               os.path.basename(_strip_npz(published_path)))
  names = ("ours:" + key, "published:" + theirs.kind)
  paths = agreement.write_report(report, prefix, names=names)
  print("{} ({}) vs {} ({})".format(ours_path, key, published_path, theirs.kind))
  for note in notes:
    print(note)
  print(report.format_text(names=("ours", "published")))
  for name, path in sorted(paths.items()):
    print("wrote {}: {}".format(name, path))
  return 0


def _compare_by_index(ours_path, other_path, top_ks):
  """Two score/estimates files, lined up by their `index`."""
  if _INDEX_MAP.value or _ASSUME_SAME_ORDER.value or _IMAGENET_INDEX.value:
    raise ValueError("--index_map, --assume_same_order and --imagenet_index "
                     "are for published files; {} is lined up with --ours by "
                     "its `index`".format(other_path))
  if score_file.is_score_file(other_path):
    other_keys = (_PUBLISHED_KEY.value,) if _PUBLISHED_KEY.value else ()
  else:
    if not _PUBLISHED_KEY.value:
      raise ValueError("{}: an estimates file; say which of its keys to "
                       "compare with --published_key (e.g. memorization)"
                       .format(other_path))
    other_keys = (_PUBLISHED_KEY.value,)
  if score_file.is_score_file(ours_path):
    our_keys = (_OURS_KEY.value,) if _OURS_KEY.value else ()
  elif _OURS_KEY.value:
    our_keys = (_OURS_KEY.value,)
  else:
    raise ValueError("{}: an estimates file; say which of its keys to compare "
                     "with --ours_key (e.g. memorization)".format(ours_path))
  key, values, index = _read_ours(ours_path, our_keys)
  other_key, other_values, other_index = _read_ours(other_path, other_keys)
  report = agreement.agreement_report(
      values, other_values, ours_index=index, published_index=other_index,
      top_ks=top_ks, num_disagreements=_NUM_DISAGREEMENTS.value)
  prefix = cli.resolve_path(_OUTPUT_PREFIX.value)
  if not prefix:
    prefix = "{}_vs_{}".format(_strip_npz(ours_path),
                               os.path.basename(_strip_npz(other_path)))
  paths = agreement.write_report(report, prefix,
                                 names=("ours:" + key, "other:" + other_key))
  print("{} ({}) vs {} ({}), lined up by index".format(
      ours_path, key, other_path, other_key))
  print(report.format_text(names=("ours", "other")))
  for name, path in sorted(paths.items()):
    print("wrote {}: {}".format(name, path))
  return 0


if __name__ == "__main__":
  cli.run(main)
