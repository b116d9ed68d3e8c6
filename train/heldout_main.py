r"""Heldout training: `bazel run //train:heldout -- --dataset=... --runs=a:b`.

    bazel run //train:heldout -- --dataset=digits --subset_ratio=0.7 \
        --runs=0:256 --output_dir=EXP [--num_workers=W --worker_index=I] \
        [--config=NAME] [--arch=NAME] [--epochs=N] [--batched_k=64]

Trains one model per run id on a random `subset_ratio` subset of the training
set and writes `EXP/<ratio>/<run>/{checkpoints/ckpt-<epoch>, aux_arrays.npz}`
in the released layout. Kill it at any time and start it again with the same
arguments: finished runs are skipped and unfinished ones continue. See
`train/heldout_training.py` and the configs in `train/configs/`. Relative
paths (`--output_dir`, `npz:<path>`, `--data_dir`) are taken from the
directory `bazel run` was started in; URLs are used as they are. A user error
prints one line `error: ...` and exits 1; runs finished before it are kept.

One model across several processes: start one process per worker, each with
the same flags and a `TF_CONFIG` naming every worker and its own task:

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
      "task": {"type": "worker", "index": 0}}' bazel run //train:heldout -- ...

(index 1 in the second shell). When `TF_CONFIG` names more than one worker
the job trains under `train.multi_worker.MultiWorkerReplicator`; only the
chief (worker 0) writes `--output_dir`. With `--tf_config=shard` the tasks
share the runs instead, each training its own (as a job array does).

Many machines, each training its own runs: a Kubernetes Indexed Job or a
Slurm array (`deploy/`), the worker's share from the scheduler
(`train/workers.py`). `--output_dir` may be a shared folder or a bucket
(`gs://bucket/exp`); runs are claimed before they are trained, so
overlapping, restarted and spare workers train each run once. Progress of a
job, from anywhere:

    bazel run //train:heldout -- --status --output_dir=EXP
"""

from absl import flags
from absl import logging
import tensorflow as tf

from heldout import cli
from heldout import storage
from heldout.data import registry as data_registry
from train import batched
from train import claims
from train import configs
from train import heldout_training as heldout
from train import loop
from train import multi_worker
from train import subsets
from train import workers

_DATASET, _CONFIG, _ARCH, _EPOCHS, _DATA_DIR = configs.define_flags()
_SUBSET_RATIO = flags.DEFINE_float("subset_ratio", 0.7,
                                   "Fraction of the training set per run.")
_RUNS = flags.DEFINE_string("runs", "0:1", "Run ids: a:b (a <= id < b), "
                            "single ids, comma separated.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Experiment folder.")
_NUM_WORKERS, _WORKER_INDEX = workers.define_flags("runs")
_BATCHED_K = flags.DEFINE_integer(
    "batched_k", 0, "If > 0, train K models at once in one batched "
    "computation (mlp and small_cnn only; train/batched.py).")
_STATUS = flags.DEFINE_bool(
    "status", False, "Print, per ratio of --output_dir, the runs done, "
    "claimed (by whom, since when), stale and missing (of --runs), and exit.")
_CLAIM_STALE_AFTER = flags.DEFINE_float(
    "claim_stale_after", claims.DEFAULT_STALE_AFTER_S,
    "Seconds after which a run claim not refreshed is taken over (its worker "
    "was killed or preempted); live workers refresh theirs every "
    "min(30 s, a quarter of it).")
_CLAIMS = flags.DEFINE_bool(
    "claims", True, "Claim each run before training it, so that workers "
    "with overlapping ranges train it once (train/claims.py; needs a local "
    "or shared file system or gs://). --noclaims: give each worker disjoint "
    "runs.")
_TF_CONFIG = flags.DEFINE_enum(
    "tf_config", "train", ["train", "shard"],
    "What a TF_CONFIG naming several tasks means: `train` each model on all "
    "of them in sync (train/multi_worker.py), or `shard` the runs among "
    "them (each task trains its own runs, as a job array would).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  # TF logs every checkpoint write at INFO; keep the job's own progress visible.
  tf.get_logger().setLevel("WARNING")
  cli.check_no_arguments(argv)
  cli.require_flags(output_dir=_OUTPUT_DIR.value)
  if _STATUS.value:
    output_dir = cli.resolve_path(_OUTPUT_DIR.value)
    if not storage.for_path(output_dir).isdir(output_dir):
      raise ValueError("--output_dir={}: no such folder (no job has written "
                       "there yet, or it cannot be reached)".format(
                           output_dir))
    print(claims.status_text(claims.experiment_status(
        output_dir,
        subsets.parse_runs(_RUNS.value) if _RUNS.present else None,
        stale_after_s=_CLAIM_STALE_AFTER.value)))
    return
  claim_options = {"stale_after_s": _CLAIM_STALE_AFTER.value,
                   "refresh_every_s": min(claims.DEFAULT_REFRESH_EVERY_S,
                                          _CLAIM_STALE_AFTER.value / 4)}
  config = configs.resolve_config(_DATASET.value, _CONFIG.value, _ARCH.value,
                                  _EPOCHS.value)
  shard = _TF_CONFIG.value == "shard"
  worker = workers.resolve_worker(_NUM_WORKERS.value, _WORKER_INDEX.value,
                                  tf_config_shards=shard)
  run_ids = subsets.select_runs(subsets.parse_runs(_RUNS.value),
                                worker.count, worker.index)
  logging.info("%s: %d runs", worker.describe(), len(run_ids))
  subsets.subset_size(1, _SUBSET_RATIO.value)
  batched.check_batched_k(_BATCHED_K.value, config)
  tf_config = multi_worker.parse_tf_config()
  strategy = None
  if not shard and multi_worker.is_multi_worker_environment(tf_config):
    if _BATCHED_K.value:
      raise ValueError("`batched_k` trains in one process; unset TF_CONFIG "
                       "(it names {} workers) or drop --batched_k".format(
                           multi_worker.num_training_tasks(tf_config)))
    # Before any other TensorFlow op: it starts this worker's server.
    strategy = loop.make_strategy()
    logging.info(
        "multi-worker training (TF_CONFIG): task %s:%s of %d, %d replicas in "
        "sync; %s", tf_config["task"].get("type"),
        tf_config["task"].get("index"),
        multi_worker.num_training_tasks(tf_config),
        strategy.num_replicas_in_sync,
        "the chief, writes the runs" if multi_worker.is_chief(strategy)
        else "not the chief, writes nothing")
  dataset = data_registry.load_dataset(
      cli.resolve_dataset_name(_DATASET.value),
      data_dir=cli.resolve_path(_DATA_DIR.value))
  output_dir = cli.resolve_path(_OUTPUT_DIR.value)
  logging.info("%s; config %s; %d runs for this worker", dataset.summary(),
               config, len(run_ids))
  if _BATCHED_K.value:
    results = batched.train_heldout_batched(
        dataset, config.arch, _SUBSET_RATIO.value, run_ids, output_dir,
        config, k=_BATCHED_K.value, progress=_PROGRESS.value,
        claim_options=claim_options, use_claims=_CLAIMS.value)
  else:
    results = heldout.train_heldout(dataset, config, _SUBSET_RATIO.value,
                                    run_ids, output_dir, strategy=strategy,
                                    progress=_PROGRESS.value,
                                    claim_options=claim_options,
                                    use_claims=_CLAIMS.value)
  counts = {}
  for r in results:
    counts[r.status] = counts.get(r.status, 0) + 1
  print("{} runs: {}".format(len(results), ", ".join(
      "{} {}".format(v, k) for k, v in sorted(counts.items()))))


if __name__ == "__main__":
  cli.run(main)
