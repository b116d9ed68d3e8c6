r"""Heldout training: `bazel run //train:heldout -- --dataset=... --runs=a:b`.

    bazel run //train:heldout -- --dataset=digits --subset_ratio=0.7 \
        --runs=0:256 --output_dir=EXP [--num_workers=W --worker_index=I] \
        [--config=NAME] [--arch=NAME] [--epochs=N] [--batched_k=64]

Trains one model per run id on a random `subset_ratio` subset of the training
set and writes `EXP/<ratio>/<run>/{checkpoints/ckpt-<epoch>, aux_arrays.npz}`
in the released layout. Kill it at any time and start it again with the same
arguments: finished runs are skipped and unfinished ones continue. See
`train/heldout_training.py` and the configs in `train/configs/`.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from heldout import errors
from heldout.data import dataset as dataset_lib
from heldout.data import registry as data_registry
from train import batched
from train import configs
from train import heldout_training as heldout
from train import subsets

_DATASET = flags.DEFINE_string(
    "dataset", "digits", "digits, mnist, cifar10:3.0.2, cifar100:3.0.2 or "
    "npz:/path/file.npz.")
_CONFIG = flags.DEFINE_string(
    "config", None, "Training recipe (train/configs); the dataset's default "
    "if unset.")
_ARCH = flags.DEFINE_string(
    "arch", None, "Architecture (heldout.models.registry); the config's if "
    "unset. A different arch uses its default constructor arguments.")
_SUBSET_RATIO = flags.DEFINE_float("subset_ratio", 0.7,
                                   "Fraction of the training set per run.")
_RUNS = flags.DEFINE_string("runs", "0:1", "Run ids: a:b (a <= id < b), "
                            "single ids, comma separated.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Experiment folder.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1,
                                    "Machines sharing the runs.")
_WORKER_INDEX = flags.DEFINE_integer(
    "worker_index", 0, "This machine's index: it trains run r if "
    "r % num_workers == worker_index.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Override the config's epochs.")
_BATCHED_K = flags.DEFINE_integer(
    "batched_k", 0, "If > 0, train K models at once in one batched "
    "computation (mlp and small_cnn only; train/batched.py).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def _resolve(path):
  base = os.environ.get("BUILD_WORKING_DIRECTORY")
  if base and not os.path.isabs(path):
    return os.path.join(base, path)
  return path


def _fail(message):
  print("error: {}".format(message), file=sys.stderr)
  sys.exit(1)


def main(argv):
  # TF logs every checkpoint write at INFO; keep the job's own progress visible.
  tf.get_logger().setLevel("WARNING")
  if len(argv) > 1:
    _fail("unexpected arguments: {}".format(" ".join(argv[1:])))
  if not _OUTPUT_DIR.value:
    _fail("--output_dir is required")
  try:
    config = configs.get_config(
        _CONFIG.value or configs.default_config_name(_DATASET.value))
    if _ARCH.value and _ARCH.value != config.arch:
      config = config.replace(arch=_ARCH.value, arch_kwargs={})
    if _EPOCHS.value is not None:
      config = config.replace(epochs=_EPOCHS.value,
                              warmup_epochs=min(config.warmup_epochs,
                                                _EPOCHS.value / 2))
    run_ids = subsets.select_runs(subsets.parse_runs(_RUNS.value),
                                  _NUM_WORKERS.value, _WORKER_INDEX.value)
    subsets.subset_size(1, _SUBSET_RATIO.value)
    if _BATCHED_K.value < 0:
      raise ValueError("`batched_k` must be >= 0, got {}".format(
          _BATCHED_K.value))
    if _BATCHED_K.value and config.arch not in batched.SUPPORTED_ARCHS:
      raise ValueError("`batched_k` needs arch in {}, got {!r}".format(
          list(batched.SUPPORTED_ARCHS), config.arch))
    dataset_name = _DATASET.value
    if dataset_name.startswith(data_registry.NPZ_PREFIX):
      dataset_name = data_registry.NPZ_PREFIX + _resolve(
          dataset_name[len(data_registry.NPZ_PREFIX):])
    dataset = data_registry.load_dataset(dataset_name, data_dir=_DATA_DIR.value)
    output_dir = _resolve(_OUTPUT_DIR.value)
    logging.info("%s; config %s; %d runs for this worker", dataset.summary(),
                 config, len(run_ids))
    if _BATCHED_K.value:
      results = batched.train_heldout_batched(
          dataset, config.arch, _SUBSET_RATIO.value, run_ids, output_dir,
          config, k=_BATCHED_K.value, progress=_PROGRESS.value)
    else:
      results = heldout.train_heldout(dataset, config, _SUBSET_RATIO.value,
                                      run_ids, output_dir,
                                      progress=_PROGRESS.value)
  except (ValueError, IOError, errors.HeldoutError,
          dataset_lib.DatasetError) as e:
    _fail(e)
  counts = {}
  for r in results:
    counts[r.status] = counts.get(r.status, 0) + 1
  print("{} runs: {}".format(len(results), ", ".join(
      "{} {}".format(v, k) for k, v in sorted(counts.items()))))


if __name__ == "__main__":
  app.run(main)
