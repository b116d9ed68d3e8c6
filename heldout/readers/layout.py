"""Paths of the released layout: `<experiment>/<ratio>/<run>/{aux_arrays.npz,checkpoints/}`.

One place that knows how a run directory is laid out, used by the readers,
the training jobs that write runs and the download tool that extracts them.
Paths may be local or anything `tf.io.gfile` opens (`gs://...`).
"""

import os
import posixpath
import re

from heldout import errors

AUX_ARRAYS_FILENAME = "aux_arrays.npz"
CHECKPOINTS_DIRNAME = "checkpoints"
CHECKPOINT_BASENAME = "ckpt"

_CKPT_INDEX_RE = re.compile(r"^ckpt-(\d+)\.index$")


def join(*parts):
  """`os.path.join` for local paths, `posixpath.join` for URLs (`gs://...`)."""
  parts = [str(p) for p in parts]
  if "://" in parts[0]:
    return posixpath.join(*parts)
  return os.path.join(*parts)


def ratio_dirname(ratio):
  """Name of the folder of a subset ratio: 0.7 -> "0.7", 0.25 -> "0.25".

  Args:
    ratio: the subset ratio, a float in (0, 1].

  Returns:
    The folder name (shortest decimal form, as in the released archives).

  Raises:
    ValueError: if `ratio` is not in (0, 1].
  """
  ratio = float(ratio)
  if not 0.0 < ratio <= 1.0:
    raise ValueError("`ratio` must be in (0, 1], got {}".format(ratio))
  return "{:g}".format(ratio)


def parse_ratio_dirname(name):
  """Inverse of `ratio_dirname`; returns None for names that are not ratios."""
  try:
    ratio = float(name)
  except ValueError:
    return None
  if not 0.0 < ratio <= 1.0:
    return None
  return ratio


OPEN_END = -1  # the stop of a run range with no upper bound ("50:")


def parse_run_ranges(text):
  """Parses `--runs`: run ids as sorted half-open ranges.

  "0:100" -> ((0, 100),); "7:9, 3" -> ((3, 4), (7, 9)); ":5" -> ((0, 5),);
  an open end "50:" -> ((50, OPEN_END),). "" or None -> None (every run).

  Args:
    text: comma-separated run ids and `start:stop` ranges.

  Returns:
    A tuple of (start, stop) pairs, or None.

  Raises:
    ValueError: naming a malformed item or an empty range.
  """
  if text is None:
    return None
  items = [t.strip() for t in str(text).split(",") if t.strip()]
  if not items:
    return None
  ranges = []
  for item in items:
    try:
      if ":" in item:
        lo, hi = item.split(":", 1)
        lo = int(lo) if lo.strip() else 0
        hi = int(hi) if hi.strip() else OPEN_END
      else:
        lo = int(item)
        hi = lo + 1
    except ValueError:
      raise ValueError("`runs`: {!r} is not a run id or a range start:stop"
                       .format(item)) from None
    if lo < 0 or (hi != OPEN_END and hi <= lo):
      raise ValueError("`runs`: {!r} is an empty or negative range".format(item))
    ranges.append((lo, hi))
  return tuple(sorted(ranges))


def run_dir(experiment_dir, ratio, run_id):
  """`<experiment_dir>/<ratio>/<run_id>`."""
  if int(run_id) < 0:
    raise ValueError("`run_id` must be non-negative, got {}".format(run_id))
  return join(experiment_dir, ratio_dirname(ratio), str(int(run_id)))


def aux_arrays_path(run_directory):
  """`<run_dir>/aux_arrays.npz`."""
  return join(run_directory, AUX_ARRAYS_FILENAME)


def checkpoints_dir(run_directory):
  """`<run_dir>/checkpoints`."""
  return join(run_directory, CHECKPOINTS_DIRNAME)


def checkpoint_prefix(run_directory, epoch):
  """`<run_dir>/checkpoints/ckpt-<epoch>`, the prefix `tf.train.Checkpoint.write` takes."""
  return join(checkpoints_dir(run_directory), "{}-{}".format(CHECKPOINT_BASENAME, int(epoch)))


def list_checkpoint_prefixes(run_directory):
  """All `checkpoints/ckpt-*` prefixes of a run with an `.index` file, sorted by epoch."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  folder = checkpoints_dir(run_directory)
  if not tf.io.gfile.isdir(folder):
    return []
  found = []
  for name in tf.io.gfile.listdir(folder):
    match = _CKPT_INDEX_RE.match(name.rstrip("/"))
    if match:
      found.append((int(match.group(1)), join(folder, name[:-len(".index")])))
  return [prefix for _, prefix in sorted(found)]


def find_checkpoint_prefix(run_directory):
  """The one `checkpoints/ckpt-*` prefix of a released run.

  Globs `ckpt-*.index` instead of reading a `checkpoint` state file, which the
  released archives do not always carry.

  Args:
    run_directory: a run folder `<experiment>/<ratio>/<run>`.

  Returns:
    The checkpoint prefix (path without `.index`).

  Raises:
    RunNotFoundError: if there is no `ckpt-*.index`, or more than one.
  """
  prefixes = list_checkpoint_prefixes(run_directory)
  folder = checkpoints_dir(run_directory)
  if not prefixes:
    raise errors.RunNotFoundError(
        "{}: expected exactly one ckpt-<epoch>.index, found none".format(folder))
  if len(prefixes) > 1:
    names = ", ".join(os.path.basename(p) + ".index" for p in prefixes)
    raise errors.RunNotFoundError(
        "{}: expected exactly one ckpt-<epoch>.index, found {}: {}".format(
            folder, len(prefixes), names))
  return prefixes[0]
