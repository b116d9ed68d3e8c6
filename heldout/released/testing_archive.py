"""Builds small archives in the released layout, for tests.

`<experiment>/<ratio>/<run>/aux_arrays.npz` written with
`heldout.readers.aux_arrays.write_aux_arrays`, and
`<experiment>/<ratio>/<run>/checkpoints/ckpt-<epoch>.{index,data-00000-of-00001}`
written by `tf.train.Checkpoint(model=..., epoch=..., global_step=...)` of a
module with two small variables, then packed as a `.tar.gz` the way `tar czf`
would (folders first, sorted).
"""

import io
import os
import tarfile

import numpy as np

from heldout.readers import aux_arrays
from heldout.readers import layout


def write_run(run_directory, *, num_train, num_test, ratio, seed, epoch=3,
              with_checkpoint=True):
  """Writes one run folder; returns the `(w, b)` variable values checkpointed.

  Args:
    run_directory: `<experiment>/<ratio>/<run>`.
    num_train: size of the training set.
    num_test: size of the test set.
    ratio: fraction of the training set in the run's subset.
    seed: seeds the subset, the evaluation orders, correctness and weights.
    epoch: the checkpoint's epoch (its file name and `epoch` variable).
    with_checkpoint: write `checkpoints/` too.
  """
  rng = np.random.default_rng(seed)
  n_subset = int(round(ratio * num_train))
  perm = rng.permutation(num_train)
  subsample = np.sort(perm[:n_subset])
  removed = perm[n_subset:]
  index_train = rng.permutation(subsample)
  index_removed = rng.permutation(removed)
  index_test = rng.permutation(num_test)
  aux_arrays.write_aux_arrays(
      layout.aux_arrays_path(run_directory),
      subsample_idx=subsample,
      correctness_train=rng.random(len(index_train)) < 0.9,
      correctness_removed=rng.random(len(index_removed)) < 0.6,
      correctness_test=rng.random(num_test) < 0.6,
      index_train=index_train,
      index_removed=index_removed,
      index_test=index_test)
  w = rng.normal(size=(2, 3)).astype(np.float32)
  b = rng.normal(size=(3,)).astype(np.float32)
  if with_checkpoint:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    model = tf.Module()
    model.w = tf.Variable(w, name="w")
    model.b = tf.Variable(b, name="b")
    ckpt = tf.train.Checkpoint(
        model=model,
        epoch=tf.Variable(epoch, dtype=tf.int64),
        global_step=tf.Variable(epoch * 10, dtype=tf.int64))
    os.makedirs(layout.checkpoints_dir(run_directory), exist_ok=True)
    ckpt.write(layout.checkpoint_prefix(run_directory, epoch))
  return w, b


def build_experiment_tree(root, experiment, runs, *, num_train=20, num_test=8,
                          with_checkpoints=True):
  """Writes `<root>/<experiment>/<ratio>/<run>/...` for `runs` {ratio: [run ids]}.

  Returns:
    {(ratio, run_id): (w, b)} the checkpointed variable values.
  """
  values = {}
  for ratio, run_ids in sorted(runs.items()):
    for run_id in run_ids:
      seed = int(round(ratio * 1000)) * 1000 + run_id
      values[(ratio, run_id)] = write_run(
          layout.run_dir(os.path.join(root, experiment), ratio, run_id),
          num_train=num_train, num_test=num_test, ratio=ratio, seed=seed,
          with_checkpoint=with_checkpoints)
  return values


def add_member(tar, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
  """Adds a raw member (any name, type or link target) to an open tar."""
  info = tarfile.TarInfo(name)
  info.type = kind
  info.linkname = linkname
  info.mode = 0o644
  if kind == tarfile.REGTYPE:
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
  else:
    tar.addfile(info)


def pack_tar_gz(root, experiment, extra_members=(), prepend_members=()):
  """The bytes of a `.tar.gz` of `<root>/<experiment>`.

  Args:
    root: folder holding `<experiment>/`.
    experiment: top-level folder to pack.
    extra_members: `(name, data, kind, linkname)` raw members appended after
      the tree (e.g. unsafe ones, for tests).
    prepend_members: the same, added before the tree.
  """
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
    for member in prepend_members:
      add_member(tar, *member)
    tar.add(os.path.join(root, experiment), arcname=experiment, recursive=True)
    for member in extra_members:
      add_member(tar, *member)
  return buf.getvalue()


def list_files(folder):
  """Sorted relative paths of the regular files under `folder` (posix separators)."""
  out = []
  for dirpath, _, filenames in os.walk(folder):
    for name in filenames:
      rel = os.path.relpath(os.path.join(dirpath, name), folder)
      out.append(rel.replace(os.sep, "/"))
  return sorted(out)
