"""Every binary on malformed input, as a new user would give it.

Each case builds its inputs in its own folder (small runs written with the
project's own writers, then damaged), runs one built binary there as a
subprocess and checks what the user sees: exit status 1, exactly one line
`error: ...` that names the file (or flag) and what was expected, no
traceback, nothing written and no existing file changed (every file and folder
under the case's folder is compared, content and mode, before and after).
The cases run a few at a time in setUpClass (each binary start imports
TensorFlow); each test method then checks one case. The README's "Bad input"
table lists them.

Full and read-only disks. Under `bazel test` the test runs as root in
linux-sandbox, where a chmod 0555 folder does not stop a write, but `mount -t
tmpfs` works (the sandbox has its own mount namespace): a 64 KiB tmpfs filled
to the last byte is a full disk (ENOSPC), and one remounted read-only refuses
root too (EROFS). Where mounting is refused, a full disk is simulated with
RLIMIT_FSIZE in the child (SIGXFSZ ignored, so the write fails with EFBIG on
the real write path), and a read-only disk with a chmod 0555 folder when not
root; as root without mount privileges the read-only cases are skipped, with
that reason.
"""

import concurrent.futures
import hashlib
import io
import os
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import tarfile
import zipfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout import manifest
from heldout.estimators import pipeline
from heldout.estimators import testing as estimator_testing
from heldout.models import registry
from heldout.models import testing as model_testing
from heldout.readers import layout
from heldout.released import testing_archive
from tests import binaries

N_TRAIN = 20
N_TEST = 6
EXPERIMENT = "cifar10-inception"  # A released name, for //heldout:download.
_TMPFS_BYTES = 64 * 1024
_WORKERS = 3

_BINARIES = {
    "estimate": ("heldout/estimate", "heldout/estimate.py"),
    "predict": ("heldout/predict", "heldout/predict.py"),
    "compare": ("heldout/compare", "heldout/compare.py"),
    "download": ("heldout/download", "heldout/download.py"),
    "verify": ("heldout/verify", "heldout/verify.py"),
    "train": ("train/heldout", "train/heldout_main.py"),
    "demo": ("heldout/demo", "demo.py"),
    "influence": ("heldout/influence_functions/influence_functions",
                  "heldout/influence_functions/influence_functions_main.py"),
}


# -- writing inputs -----------------------------------------------------------


def _write_experiment(folder, ratios=(0.7,), num_runs=3, n_train=N_TRAIN,
                      seed=0):
  for i, ratio in enumerate(ratios):
    mask, correct_train, correct_test = estimator_testing.random_runs(
        seed + i, num_runs=num_runs, n_train=n_train, n_test=N_TEST,
        ratio=ratio)
    estimator_testing.write_runs(folder, ratio, mask, correct_train,
                                 correct_test, seed=seed + i)
  return folder


def _write_model_run(folder, epoch=3):
  """A run of digits (1,257 train, 540 test): aux arrays, an MLP checkpoint."""
  arrays = estimator_testing.random_runs(1, num_runs=1, n_train=1257,
                                         n_test=540, ratio=0.7)
  run_dir, = estimator_testing.write_runs(folder, 0.7, *arrays)
  model = registry.build_model("mlp", 10, hidden_sizes=(8,))
  model(np.zeros((1, 8, 8, 1), np.float32), is_training=False)
  model_testing.write_checkpoint(layout.checkpoint_prefix(run_dir, epoch),
                                 model, epoch=epoch)
  return run_dir


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def _truncate(path, size=None):
  """Cuts a file to `size` bytes, or to half when None (an interrupted copy)."""
  data = _read(path)
  _write(path, data[:len(data) // 2 if size is None else size])


def _flip_byte_in_member(path, member):
  """Corrupts the last stored byte of one npz member: its CRC fails."""
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo(member + ".npy")
  data = bytearray(_read(path))
  name_length, extra_length = struct.unpack(
      "<HH", bytes(data[info.header_offset + 26:info.header_offset + 30]))
  start = info.header_offset + 30 + name_length + extra_length
  data[start + info.compress_size - 1] ^= 0xFF
  _write(path, bytes(data))


def _rewrite_aux(path, **changes):
  """Rewrites an aux_arrays.npz with keys changed (None: removed)."""
  with np.load(path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  for key, value in changes.items():
    if value is None:
      del arrays[key]
    elif callable(value):
      arrays[key] = value(arrays[key])
    else:
      arrays[key] = value
  os.remove(path)
  np.savez(path, **arrays)


def _aux(folder, ratio=0.7, run=0):
  return layout.aux_arrays_path(layout.run_dir(folder, ratio, run))


def _images(path, shape=(5, 8, 8, 1), dtype=np.uint8, key="images_uint8"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, **{key: np.zeros(shape, dtype)})
  return path


def _tar_gz(members):
  """A .tar.gz of `(name, data, kind, linkname)` members, in order."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for member in members:
      testing_archive.add_member(tar, *member)
  return buf.getvalue()


# -- full and read-only disks -------------------------------------------------


def _mount_tmpfs(folder):
  """Mounts a small tmpfs on `folder`; returns False where that is refused."""
  os.makedirs(folder, exist_ok=True)
  try:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size={}".format(_TMPFS_BYTES),
         "tmpfs", folder], capture_output=True, check=False, timeout=30)
  except OSError:  # No mount program.
    return False
  return done.returncode == 0


def _fill(folder):
  """Fills the file system of `folder` to its last byte."""
  with open(os.path.join(folder, "filler.bin"), "wb", buffering=0) as f:
    while True:
      try:
        f.write(b"\0" * 4096)
      except OSError:
        break
    while True:
      try:
        f.write(b"\0")
      except OSError:
        break


def _remount_read_only(folder):
  subprocess.run(["mount", "-o", "remount,ro", folder], check=True,
                 capture_output=True, timeout=30)


def _limit_file_size():
  # The child writes no file past 1 KiB: the write fails with EFBIG.
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


# -- what a folder holds ----------------------------------------------------


def _snapshot(folder):
  """relative path -> (kind, mode, content hash) of everything under folder."""
  out = {}
  for root, dirs, files in os.walk(folder):
    for name in dirs + files:
      path = os.path.join(root, name)
      info = os.lstat(path)
      if stat.S_ISLNK(info.st_mode):
        content = os.readlink(path)
      elif stat.S_ISREG(info.st_mode):
        content = hashlib.sha256(_read(path)).hexdigest()
      else:
        content = ""
      out[os.path.relpath(path, folder)] = (stat.S_IFMT(info.st_mode),
                                            stat.S_IMODE(info.st_mode), content)
  return out


# -- the cases ------------------------------------------------------------------
# Each case: binary, a setup(folder, fixtures) that writes its inputs and
# returns the flags, and regular expressions the error line must match (the
# file it names, and what was expected).


class _Case:

  def __init__(self, binary, setup, *patterns, disk=None, may_leave=None):
    self.binary = binary
    self.setup = setup
    self.patterns = patterns
    # A regular expression of the new paths the case may leave (a training
    # job's arguments and its run's temporary folder, kept for resuming).
    self.may_leave = may_leave
    # None, "full", "nearly_full" (8 KiB free) or "read_only": the disk
    # mounted on the case's `disk/` folder.
    self.disk = disk


def _estimate_with(damage, output="est.npz", extra=()):
  def setup(folder, fixtures):
    shutil.copytree(fixtures["experiment"], os.path.join(folder, "exp"))
    damage(os.path.join(folder, "exp"))
    return ["--experiment_dir=exp", "--output=" + output, "--noprogress"] + list(
        extra)
  return setup


def _copy_run_as(run, new, ratio="0.7"):
  def damage(exp):
    shutil.copytree(os.path.join(exp, ratio, run), os.path.join(exp, ratio, new))
  return damage


def _ratio_beside(exp):
  os.makedirs(os.path.join(exp, "0.70"))
  os.rename(os.path.join(exp, "0.7", "2"), os.path.join(exp, "0.70", "2"))


def _mixed_counts(exp):
  # A second ratio with a run of 19 training examples of the 20 (one id
  # missing, most likely not the largest): the bound is the experiment's, 20.
  _write_experiment(exp, ratios=(0.3,), num_runs=2, n_train=N_TRAIN, seed=5)
  _rewrite_aux(_aux(exp, 0.3, 1), index_removed=lambda ids: ids[1:],
               correctness_removed=lambda c: c[1:])


def _user_csv(folder, fixtures):
  flags = _estimate_with(lambda exp: None)(folder, fixtures)
  _write(os.path.join(folder, "est.csv"), b"name,grade\nada,1\n")
  return flags


def _finished_estimates(folder, fixtures, output):
  """Estimates of `folder/exp` saved earlier with the binary's defaults."""
  args = pipeline.EstimateArgs(experiment_dir=os.path.join(folder, "exp"))
  pipeline.save_estimates(fixtures["estimates_of_experiment"],
                          os.path.join(folder, output), args)


def _other_estimates(folder, fixtures):
  flags = _estimate_with(lambda exp: None)(folder, fixtures)
  _finished_estimates(folder, fixtures, "est.npz")
  return flags + ["--influence=dense"]


def _estimate_on_disk(folder, fixtures):
  """The finished estimates (same arguments) on the disk; re-running them."""
  flags = _estimate_with(lambda exp: None, output="disk/est.npz")(
      folder, fixtures)
  _finished_estimates(folder, fixtures, "disk/est.npz")
  return flags


def _predict_with(damage_run=None, images=None, output="out.npz"):
  def setup(folder, fixtures):
    run = os.path.join(folder, "run")
    shutil.copytree(fixtures["model_run"], run)
    if damage_run:
      damage_run(run)
    path = os.path.join(folder, "in.npz")
    (images or (lambda p: _images(p)))(path)
    return ["--model_dir=run", "--images=in.npz", "--output=" + output]
  return setup


def _influence_with(damage_run=None, extra=()):
  def setup(folder, fixtures):
    run = os.path.join(folder, "run")
    shutil.copytree(fixtures["model_run"], run)
    if damage_run:
      damage_run(run)
    return (["--model_dir=run", "--dataset=digits", "--output=s.npz",
             "--self", "--noprogress"] + list(extra))
  return setup


def _second_checkpoint(run):
  prefix = layout.checkpoint_prefix(run, 3)
  for suffix in (".index", ".data-00000-of-00001"):
    shutil.copy(prefix + suffix, layout.checkpoint_prefix(run, 7) + suffix)


def _damage_shard(how):
  def damage(run):
    shard = layout.checkpoint_prefix(run, 3) + ".data-00000-of-00001"
    if how == "truncate":
      _truncate(shard, 100)
    else:
      data = bytearray(_read(shard))
      data[len(data) // 2] ^= 0xFF
      _write(shard, bytes(data))
  return damage


def _compare_with(ours=None, published=None, extra=()):
  def setup(folder, fixtures):
    ours_path = os.path.join(folder, "est.npz")
    shutil.copy(os.path.join(fixtures["estimates"], "est.npz"), ours_path)
    published_path = os.path.join(folder, "cifar10-cscores-orig-order.npz")
    np.savez(published_path, labels=np.arange(N_TRAIN) % 10,
             scores=np.linspace(0, 1, N_TRAIN))
    if ours:
      ours(ours_path)
    if published:
      published(published_path)
    return ["--ours=est.npz", "--published=cifar10-cscores-orig-order.npz",
            "--assume_same_order", "--output_prefix=out/c10"] + list(extra)
  return setup


def _compare_older_report(folder, fixtures):
  flags = _compare_with(extra=["--output_prefix=disk/c10"])(folder, fixtures)
  for name in ("c10_summary.csv", "c10_disagreements.csv", "c10_scatter.png"):
    _write(os.path.join(folder, "disk", name), b"an older report\n")
  return flags


def _download_with(members=None, data=None, extra=()):
  def setup(folder, fixtures):
    del fixtures
    mirror = os.path.join(folder, "mirror")
    archive = data if data is not None else _tar_gz(members)
    _write(os.path.join(mirror, EXPERIMENT + ".tar.gz"), archive)
    # The user's data folder, holding an earlier download.
    _write(os.path.join(folder, "data", "notes.txt"), b"earlier download\n")
    os.makedirs(os.path.join(folder, "data-evil"))
    return ["--experiment=" + EXPERIMENT, "--dest=data", "--base_url=mirror",
            "--md5=skip", "--noprogress", "--max_retries=0"] + list(extra)
  return setup


def _flip_last_trailer_crc(data):
  data = bytearray(data)
  data[-8] ^= 0x01
  return bytes(data)


def _verify_with(damage, extra=()):
  """An experiment whose runs have manifests, then `damage(experiment_dir)`."""
  def setup(folder, fixtures):
    exp = os.path.join(folder, "exp")
    shutil.copytree(fixtures["experiment"], exp)
    for name in os.listdir(os.path.join(exp, "0.7")):
      manifest.record_run(os.path.join(exp, "0.7", name), source="test")
    damage(exp)
    return ["--experiment_dir=exp", "--noprogress"] + list(extra)
  return setup


def _npz_dataset(path, image_shape=(8, 8, 1), image_dtype=np.uint8):
  rng = np.random.default_rng(0)
  arrays = {"__num_classes": np.int64(10), "__data_scale": np.float64(255)}
  for split, n in (("train", 30), ("test", 10)):
    arrays[split + "__image"] = rng.integers(
        0, 255, (n,) + image_shape).astype(image_dtype)
    arrays[split + "__label"] = np.arange(n) % 10
  np.savez(path, **arrays)
  return path


def _train_with(dataset, extra=(), output="exp"):
  def setup(folder, fixtures):
    del fixtures
    flags = ["--output_dir=" + output, "--runs=0:1", "--epochs=1",
             "--config=digits_small", "--noprogress"]
    if dataset == "digits":
      flags.append("--dataset=digits")
    else:
      dataset(os.path.join(folder, "data.npz"))
      flags.append("--dataset=npz:data.npz")
    return flags + list(extra)
  return setup


def _demo_with(damage_run=None, extra=("--dataset=digits",)):
  def setup(folder, fixtures):
    run = os.path.join(folder, "run")
    shutil.copytree(fixtures["model_run"], run)
    if damage_run:
      damage_run(run)
    return ["--model_dir=run"] + list(extra)
  return setup


_CASES = {
    # //heldout:estimate
    "aux_cut_to_half": _Case(
        "estimate", _estimate_with(lambda exp: _truncate(_aux(exp, run=1))),
        r"exp/0.7/1/aux_arrays.npz", "damaged .npz archive"),
    "aux_cut_to_100_bytes": _Case(
        "estimate", _estimate_with(lambda exp: _truncate(_aux(exp, run=2), 100)),
        r"exp/0.7/2/aux_arrays.npz", "damaged .npz archive"),
    "aux_bad_crc": _Case(
        "estimate", _estimate_with(
            lambda exp: _flip_byte_in_member(_aux(exp), "correctness_test")),
        r"exp/0.7/0/aux_arrays.npz", "damaged .npz.*CRC"),
    "aux_not_an_npz": _Case(
        "estimate", _estimate_with(
            lambda exp: _write(_aux(exp), b"run 0 crashed, see log\n")),
        r"exp/0.7/0/aux_arrays.npz", "expected an .npz file with keys",
        "not an .npz archive: it starts with b'run 0 '"),
    "aux_missing_key": _Case(
        "estimate", _estimate_with(
            lambda exp: _rewrite_aux(_aux(exp), index_test=None)),
        r"exp/0.7/0/aux_arrays.npz", r"missing key\(s\) `index_test`"),
    "aux_wrong_length": _Case(
        "estimate", _estimate_with(
            lambda exp: _rewrite_aux(_aux(exp), correctness_test=lambda c: c[1:])),
        r"exp/0.7/0/aux_arrays.npz",
        r"`correctness_test`: expected length 6 \(len\(index_test\)\)"),
    "aux_id_out_of_range": _Case(
        "estimate", _estimate_with(lambda exp: _rewrite_aux(
            _aux(exp), index_test=lambda ids: np.where(ids == 0, N_TEST, ids))),
        r"exp/0.7/0/aux_arrays.npz", r"expected example ids in \[0, 6\)"),
    "aux_duplicate_ids": _Case(
        "estimate", _estimate_with(lambda exp: _rewrite_aux(
            _aux(exp), index_test=lambda ids: np.where(ids == 0, 1, ids))),
        r"exp/0.7/0/aux_arrays.npz", "each example id exactly once"),
    "mixed_example_counts": _Case(
        "estimate", _estimate_with(_mixed_counts, extra=["--subset_ratio=0.7"]),
        r"exp/0.3/1/aux_arrays.npz",
        r"expected 20 training and 6 test examples .*found 19 and 6"),
    "run_folder_07_beside_7": _Case(
        "estimate", _estimate_with(_copy_run_as("2", "02")),
        r"exp/0.7: folders 02 and 2 are both run 2"),
    "ratio_folders_0.7_and_0.70": _Case(
        "estimate", _estimate_with(_ratio_beside),
        r"exp: folders 0.7 and 0.70 are both subset ratio 0.7"),
    "users_csv_where_the_csv_goes": _Case(
        "estimate", _user_csv,
        r"est.csv: exists and is not the per-example CSV.*--overwrite"),
    "estimates_of_other_arguments": _Case(
        "estimate", _other_estimates,
        r"est.npz: exists and was made with other arguments \(influence: "
        r"'topk' then, 'dense' now\).*--overwrite"),
    "estimate_full_disk": _Case(
        "estimate", _estimate_on_disk,
        r"disk/est.npz and est.csv: cannot write them \((No space left on "
        r"device|File too large)\); the files there are unchanged",
        disk="full"),
    "estimate_read_only_disk": _Case(
        "estimate", _estimate_on_disk,
        r"disk/est.npz and est.csv: cannot write them \((Read-only file "
        r"system|Permission denied)\); the files there are unchanged",
        disk="read_only"),
    "estimate_bogus_influence": _Case(
        "estimate", _estimate_with(lambda exp: None, extra=["--influence=bogus"]),
        r"--influence=bogus: value should be one of <dense\|topk\|none>"),
    "estimate_misspelled_flag": _Case(
        "estimate", lambda folder, fixtures: ["--experment_dir=exp",
                                              "--output=est.npz"],
        r"unknown flag --experment_dir \(did you mean --experiment_dir\?\)"),
    # //heldout:predict
    "two_checkpoints_in_one_run": _Case(
        "predict", _predict_with(_second_checkpoint),
        r"run/checkpoints: expected exactly one ckpt-<epoch>.index, found 2: "
        r"ckpt-3.index, ckpt-7.index"),
    "checkpoint_shard_cut_short": _Case(
        "predict", _predict_with(_damage_shard("truncate")),
        r"run/checkpoints/ckpt-3: cannot read the checkpoint's values.*"
        r"expected complete ckpt-3.data-\* shards"),
    "checkpoint_shard_corrupted": _Case(
        "predict", _predict_with(_damage_shard("flip")),
        r"run/checkpoints/ckpt-3: cannot read the checkpoint's values.*"
        r"Checksum does not match"),
    "images_float_as_uint8": _Case(
        "predict", _predict_with(images=lambda p: _images(p, dtype=np.float32)),
        r"in.npz: expected images_uint8 of dtype uint8, found float32"),
    "images_of_another_shape": _Case(
        "predict", _predict_with(images=lambda p: _images(p, (5, 8, 8, 3))),
        r"in.npz: images of shape \[8, 8, 3\] do not fit the model.*192 and 64"),
    "images_cut_short": _Case(
        "predict", _predict_with(
            images=lambda p: _truncate(_images(p, (50, 8, 8, 1)))),
        r"in.npz: not an .npz file \(damaged .npz archive"),
    "predict_full_disk": _Case(
        "predict", _predict_with(output="disk/out.npz"),
        r"disk/out.npz: cannot write it \((No space left on device|File too "
        r"large)\)", disk="full"),
    # //heldout:compare
    "compare_ours_cut_short": _Case(
        "compare", _compare_with(ours=lambda p: _truncate(p, 100)),
        r"est.npz: not a readable .npz file \(damaged .npz archive"),
    "compare_published_missing_key": _Case(
        "compare", _compare_with(published=lambda p: np.savez(
            p, labels=np.arange(N_TRAIN))),
        r"cifar10-cscores-orig-order.npz: expected the keys of a C-score file "
        r"\['labels', 'scores'\].*found \['labels'\]"),
    "compare_bad_top_k": _Case(
        "compare", _compare_with(extra=["--top_k=10,ten"]),
        r"--top_k: 'ten' is not an integer"),
    "compare_nearly_full_disk_with_an_older_report": _Case(
        "compare", _compare_older_report,
        # With 8 KiB free the two CSVs fit and the figure does not.
        r"disk/c10_(scatter.png|\w+.csv): cannot write it \((No space left "
        r"on device|File too large)\)", disk="nearly_full"),
    "compare_read_only_disk": _Case(
        "compare", _compare_with(extra=["--output_prefix=disk/c10"]),
        r"disk/c10_\w+.\w+: cannot write it \((Read-only file system|"
        r"Permission denied)\)", disk="read_only"),
    # //heldout:download
    "archive_link_to_sibling_folder": _Case(
        "download", _download_with(members=[
            (EXPERIMENT + "/esc", b"", tarfile.SYMTYPE, "../../data-evil"),
            (EXPERIMENT + "/esc/pwned", b"evil")]),
        r"mirror/{0}.tar.gz: unsafe archive member '{0}/esc': symbolic link "
        r"to '../../data-evil' leaves the destination .*data".format(
            EXPERIMENT)),
    "archive_absolute_member": _Case(
        "download", _download_with(members=[("/tmp/heldout_bad_input_abs",
                                               b"evil")]),
        r"mirror/{}.tar.gz: unsafe archive member "
        r"'/tmp/heldout_bad_input_abs': absolute path".format(EXPERIMENT)),
    "archive_not_gzip": _Case(
        "download", _download_with(data=b"<html>404 Not Found</html>" * 40),
        r"mirror/{0}.tar.gz: {0} archive, compressed byte 0: not a gzip "
        r"file".format(EXPERIMENT)),
    "archive_cut_to_100_bytes": _Case(
        "download", _download_with(data=_tar_gz([
            (EXPERIMENT + "/0.7/0/aux_arrays.npz", os.urandom(5000))])[:100]),
        r"mirror/{0}.tar.gz: {0} archive, compressed byte 100: the stream "
        r"ends inside gzip member 1 .*truncated".format(EXPERIMENT)),
    # Selections that write nothing, so that the error comes before any file:
    # the stream is still read to its end and verified.
    "archive_trailing_garbage": _Case(
        "download", _download_with(data=_tar_gz([
            (EXPERIMENT + "/0.7/0/aux_arrays.npz", b"x" * 5000)]) + b"garbage",
                                   extra=["--runs=5:6"]),
        r"mirror/{0}.tar.gz: {0} archive, compressed byte \d+: data after gzip "
        r"member 1 is neither a gzip member nor zero padding".format(EXPERIMENT)),
    "archive_crc_mismatch": _Case(
        "download", _download_with(data=_flip_last_trailer_crc(_tar_gz([
            (EXPERIMENT + "/0.7/0/aux_arrays.npz", b"x" * 5000)])),
                                   extra=["--runs=5:6"]),
        r"mirror/{0}.tar.gz: {0} archive, compressed byte \d+: gzip member 1 "
        r"\(from byte 0\): CRC32 of the decompressed data is".format(EXPERIMENT)),
    "archive_repeated_member": _Case(
        "download", _download_with(members=[
            (EXPERIMENT + "/0.7/0/aux_arrays.npz", b"x" * 5000),
            (EXPERIMENT + "/0.7/0/aux_arrays.npz", b"0123456789")],
                                   extra=["--runs=5:6"]),
        r"mirror/{0}.tar.gz: {0} archive: member '{0}/0.7/0/aux_arrays.npz' "
        r"appears twice".format(EXPERIMENT)),
    "download_empty_run_range": _Case(
        "download", _download_with(members=[], extra=["--runs=5:2"]),
        r"`runs`: '5:2' is an empty or negative range"),
    # //heldout:verify
    "verify_no_experiment": _Case(
        "verify", lambda folder, fixtures: ["--experiment_dir=nowhere"],
        r"nowhere: expected an experiment directory"),
    "verify_flipped_byte": _Case(
        "verify", _verify_with(lambda exp: _flip_byte_in_member(_aux(exp, run=1),
                                                                "correctness_test")),
        r"exp: 1 of \d+ runs differ from their manifests"),
    "verify_malformed_manifest": _Case(
        "verify", _verify_with(lambda exp: _write(
            manifest.manifest_path(layout.run_dir(exp, 0.7, 0)), b"{")),
        r"exp/0.7/0/.heldout_manifest.json: not a JSON manifest"),
    # //train:heldout
    "train_dataset_cut_short": _Case(
        "train", _train_with(lambda p: _truncate(_npz_dataset(p))),
        r"data.npz.*damaged .npz archive"),
    "train_images_of_wrong_rank": _Case(
        "train", _train_with(lambda p: _npz_dataset(p, image_shape=(64,))),
        r"data.npz: `(train|test)__image`: expected \[n, height, width\(, "
        r"channels\)\], found shape \(\d+, 64\)"),
    "train_nearly_full_disk": _Case(
        # Room for the job's heldout_training.json, not for the run's
        # checkpoint (written by TensorFlow's SaveV2): the error names the
        # run's folder, not a graph node.
        "train", _train_with("digits", output="disk/exp"),
        r"disk/exp/(0.7/\.0\.tmp: cannot write run 0|heldout_training.json: "
        r"cannot "
        r"write it) \((No space left on device|File too large)",
        disk="nearly_full",
        may_leave=r"disk/exp(/heldout_training\.json|/0\.7(/\.0\.tmp(/.*)?)?)?"),
    "train_read_only_disk": _Case(
        "train", _train_with("digits", output="disk/exp"),
        "disk/exp", "Read-only file system|Permission denied",
        disk="read_only"),
    # //heldout:influence_functions
    "influence_two_checkpoints": _Case(
        "influence", _influence_with(_second_checkpoint),
        r"run/checkpoints: expected exactly one ckpt-<epoch>.index, found 2"),
    "influence_negative_damping": _Case(
        "influence", _influence_with(extra=["--damping=-1"]),
        r"`damping` must be a number >= 0 or 'heuristic', got -1.0"),
    # //heldout:demo --model_dir
    "demo_two_checkpoints": _Case(
        "demo", _demo_with(_second_checkpoint),
        r"run/checkpoints: expected exactly one ckpt-<epoch>.index, found 2"),
}


def _selected(name):
  """Whether `--test_filter` (TESTBRIDGE_TEST_ONLY) asks for the case."""
  wanted = os.environ.get("TESTBRIDGE_TEST_ONLY", "")
  parts = [p.strip("*").rpartition(".")[2] for p in wanted.split()]
  return not wanted or any(p in "test_case_" + name for p in parts)


class BadInputEndToEndTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(absltest.get_default_test_tmpdir(), "bad_input")
    shutil.rmtree(cls.root, ignore_errors=True)
    fixtures_dir = os.path.join(cls.root, "fixtures")
    experiment = _write_experiment(os.path.join(fixtures_dir, "experiment"))
    # The estimates a user finished earlier (the project's writer).
    args = pipeline.EstimateArgs(experiment_dir=experiment)
    estimates = pipeline.compute_estimates(args, progress=False)
    estimates_dir = os.path.join(fixtures_dir, "estimates")
    pipeline.save_estimates(estimates, os.path.join(estimates_dir, "est.npz"),
                            args)
    fixtures = {
        "experiment": experiment,
        "estimates": estimates_dir,
        "estimates_of_experiment": estimates,
        "model_run": _write_model_run(os.path.join(fixtures_dir, "digits")),
    }
    cls.results = {}
    cls.skipped = {}
    prepared = []
    for name, case in _CASES.items():
      if not _selected(name):
        continue
      folder = os.path.join(cls.root, name)
      os.makedirs(folder)
      flags = case.setup(folder, fixtures)
      preexec = None
      if case.disk:
        disk = os.path.join(folder, "disk")
        os.makedirs(disk, exist_ok=True)
        preexec, why_not = cls._prepare_disk(disk, case.disk)
        if why_not:
          cls.skipped[name] = why_not
          continue
      prepared.append((name, case, folder, flags, preexec,
                       _snapshot(folder)))
    with concurrent.futures.ThreadPoolExecutor(_WORKERS) as pool:
      futures = {name: pool.submit(cls._run, case, folder, flags, preexec)
                 for name, case, folder, flags, preexec, _ in prepared}
    for name, case, folder, flags, _, before in prepared:
      cls.results[name] = (flags, futures[name].result(), before,
                           _snapshot(folder))
      # What the user saw, in the test log (the README's table quotes it).
      lines = [l.replace(folder + os.sep, "") for l in
               cls.results[name][1].stderr.splitlines()
               if l.startswith("error:")]
      print("{} ({}): {}".format(name, case.binary, " | ".join(lines)))

  @classmethod
  def _prepare_disk(cls, disk, kind):
    """(preexec_fn, None), or (None, why the case cannot run here)."""
    copies = {}
    for name in os.listdir(disk):  # What the case put there: kept on the disk.
      copies[name] = _read(os.path.join(disk, name))
    if _mount_tmpfs(disk):
      # Unmounted even when setUpClass fails later.
      cls.addClassCleanup(subprocess.run, ["umount", disk], check=False,
                          capture_output=True, timeout=30)
      for name, data in copies.items():
        _write(os.path.join(disk, name), data)
      if kind == "read_only":
        _remount_read_only(disk)
      elif kind == "nearly_full":
        # Room for the small files of a set but not for all of them.
        spare = os.path.join(disk, "spare.bin")
        _write(spare, b"\0" * 8192)
        _fill(disk)
        os.remove(spare)
      else:
        _fill(disk)
      return None, None
    if kind in ("full", "nearly_full"):
      return _limit_file_size, None
    if os.geteuid() != 0:
      os.chmod(disk, 0o555)
      return None, None
    return None, ("running as root where mount is refused: nothing makes a "
                  "folder read-only for root")

  @classmethod
  def _run(cls, case, folder, flags, preexec):
    target, source = _BINARIES[case.binary]
    return subprocess.run(
        binaries.command(target, source) + flags, cwd=folder,
        env=binaries.environment(folder), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, check=False, timeout=300,
        preexec_fn=preexec)

  @parameterized.named_parameters(*((name, name) for name in _CASES))
  def test_case(self, name):
    if name in self.skipped:
      self.skipTest(self.skipped[name])
    if name not in self.results:
      self.skipTest("not selected by --test_filter")
    case = _CASES[name]
    flags, result, before, after = self.results[name]
    context = "{} {}\n{}".format(case.binary, " ".join(flags),
                                 result.stderr[-3000:])
    self.assertEqual(result.returncode, 1, msg=context)
    self.assertNotIn("Traceback", result.stderr, msg=context)
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    self.assertLen(lines, 1, msg=context)
    for pattern in case.patterns:
      self.assertRegex(lines[0], pattern, msg=context)
    # Nothing written (but what the case may leave), nothing changed, nothing
    # removed.
    new = sorted(set(after) - set(before))
    if case.may_leave:
      new = [p for p in new if not re.fullmatch(case.may_leave, p)]
    self.assertEqual(new, [], msg=context)
    self.assertEqual(sorted(set(before) - set(after)), [], msg=context)
    changed = sorted(k for k in before if before[k] != after[k])
    self.assertEqual(changed, [], msg=context)

  def test_covers_every_binary_and_enough_cases(self):
    self.assertGreaterEqual(len(_CASES), 30)
    self.assertEqual({c.binary for c in _CASES.values()}, set(_BINARIES))


if __name__ == "__main__":
  absltest.main()
