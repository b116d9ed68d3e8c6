"""Heldout training: one model per run id on a random subset of the training set.

For each run id r at subset ratio q: draw the run's subset (`subsets`), train
a fresh model on it, then record correctness on `train` (the subset),
`removed` (the rest of the training set) and `test`, with evaluation batches
of 200 and no augmentation. Each finished run is written in the released
layout:

    <output_dir>/<q>/<r>/checkpoints/ckpt-<epochs>.{index,data-00000-of-00001}
    <output_dir>/<q>/<r>/aux_arrays.npz

Safe to kill and restart at any moment:
  * a run trains in `<output_dir>/<q>/.<r>.tmp/`, saving its progress
    (model, optimizer, epoch, global_step) there at the end of an epoch every
    `checkpoint_every_seconds`; a restarted job continues from it, on the
    same data order;
  * the finished run is published without renaming a folder (object
    stores and gcsfuse cannot do that atomically): checkpoint files and the
    manifest first, `aux_arrays.npz` last as one file that appears whole.
    A run folder without `aux_arrays.npz` is not a run to the readers and is
    published again by the next job (`publish_run`);
  * finished runs are skipped; runs are claimed before they are trained, so
    workers with overlapping ranges train each once (`train/claims.py`).
`output_dir` is a local path or a URL that `tf.io.gfile` opens
(`gs://bucket/exp`); every write goes through `heldout.storage`.
The arguments of the job are stored in `<output_dir>/heldout_training.json`;
a later job with other arguments into the same folder is refused.

Several machines share the work without a coordinator: give each a disjoint
`run_ids` range, or the same range with `num_workers`/`worker_index` (run r
goes to worker r % num_workers; `subsets.select_runs`).

Several processes can also train each model together (a multi-worker
strategy, `train.multi_worker`): then only the chief reads and writes
`output_dir` (arguments, progress, finished runs); it decides which runs are
pending and what to resume from, and the other workers take its decisions
and its restored state by broadcast, so they never touch `output_dir` and
need no shared filesystem (only the chief's folder counts).
"""

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from typing import Callable, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from heldout import atomic
from heldout import errors
from heldout import manifest
from heldout import storage
from heldout.models import registry as model_registry
from heldout.readers import aux_arrays as aux_lib
from heldout.readers import experiment as experiment_lib
from heldout.readers import layout
from train import claims as claims_lib
from train import loop
from train import multi_worker
from train import subsets

ARGS_FILENAME = "heldout_training.json"
PROGRESS_DIRNAME = "progress"
STAGING_DIRNAME = "staging"
MANIFEST_SOURCE = "//train:heldout"


# A run another worker holds (or published while this job ran).
ELSEWHERE = "other worker"


@dataclasses.dataclass(frozen=True)
class RunResult:
  """What one run did: "trained", "resumed", "skipped" or `ELSEWHERE`."""
  run_id: int
  status: str
  path: str
  seconds: float = 0.0
  accuracy: Optional[dict] = None


def tmp_run_dir(output_dir, subset_ratio, run_id):
  """`<output_dir>/<ratio>/.<run_id>.tmp`, where an unfinished run lives."""
  return os.path.join(output_dir, layout.ratio_dirname(subset_ratio),
                      ".{}.tmp".format(int(run_id)))


def is_complete_run(path) -> bool:
  """A run folder with aux_arrays.npz and exactly one checkpoint.

  The readers' rule (`heldout.readers.experiment.run_problems`), so a run
  training skips is one the scanner reports complete.
  """
  return not experiment_lib.run_problems(path)


def job_arguments(dataset, config) -> dict:
  """What must agree between jobs writing into one experiment folder."""
  return {"dataset": dataset.name, "num_train": len(dataset.train),
          "num_test": len(dataset.test), "num_classes": dataset.num_classes,
          "config": config.to_json()}


def check_or_write_arguments(output_dir, arguments: dict):
  """Stores `arguments`, or checks them against the stored ones.

  Raises:
    ArgumentsMismatchError: naming the fields that differ and what to do.
  """
  path = os.path.join(output_dir, ARGS_FILENAME)
  fs = storage.for_path(path)
  if fs.exists(path):
    try:
      stored = json.loads(fs.read_bytes(path))
    except ValueError as e:
      raise errors.ArgumentsMismatchError(
          "{}: not the JSON of a job's arguments ({}); delete it only if the "
          "folder holds no runs of another job".format(path, e)) from None
    if stored != arguments:
      def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
          if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
          else:
            out[prefix + k] = v
        return out
      a, b = flat(stored), flat(arguments)
      diffs = ["{}: stored {!r}, now {!r}".format(k, a.get(k), b.get(k))
               for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
      raise errors.ArgumentsMismatchError(
          "{} holds runs made with other arguments ({}); use another output "
          "directory, or delete {} and its runs to start over".format(
              output_dir, "; ".join(diffs), path))
    return
  fs.makedirs(output_dir)
  fs.put_bytes(path, (json.dumps(arguments, indent=2, sort_keys=True) +
                      "\n").encode())


def evaluate_run(evaluate_fn, dataset, subset):
  """Correctness on train (the subset), removed and test, by example id.

  Args:
    evaluate_fn: `(split, ids) -> (ids, correct)`; `ids=None` means every
      example in id order.
    dataset: the `Dataset`.
    subset: [n_subset] int64 training ids of the run.

  Returns:
    dict of the `aux_arrays.npz` arrays.
  """
  # One pass over the whole training set, then split by id.
  train_ids, train_correct = evaluate_fn(dataset.train, None)
  test_ids, test_correct = evaluate_fn(dataset.test, None)
  return run_aux_arrays(len(dataset.train), subset, train_ids, train_correct,
                        test_ids, test_correct)


def run_aux_arrays(num_train, subset, train_ids, train_correct, test_ids,
                   test_correct):
  """The `aux_arrays.npz` arrays of a run from its correctness everywhere.

  Args:
    num_train: size of the training set.
    subset: [n_subset] int64 training ids the run was trained on.
    train_ids: [num_train] int64 ids of `train_correct`'s entries.
    train_correct: [num_train] bool, correct on every training example.
    test_ids: [n_test] int64 ids of `test_correct`'s entries.
    test_correct: [n_test] bool, correct on every test example.

  Returns:
    dict of the released keys: the training set split by id into the subset
    (`index_train` = `subsample_idx`) and the removed examples; the test
    split in the order it was evaluated.
  """
  removed = subsets.removed_ids(num_train, subset)
  by_id = np.zeros(num_train, dtype=bool)
  by_id[np.asarray(train_ids)] = train_correct
  return dict(subsample_idx=subset, correctness_train=by_id[subset],
              correctness_removed=by_id[removed],
              correctness_test=np.asarray(test_correct, dtype=bool),
              index_train=subset, index_removed=removed,
              index_test=np.asarray(test_ids, dtype=np.int64))


def run_accuracy(arrays) -> dict:
  """{split: accuracy} of a run's aux arrays; NaN for an empty split (the
  removed split of a run on the whole training set)."""
  return {split: (float(np.mean(arrays["correctness_" + split]))
                  if len(arrays["correctness_" + split]) else float("nan"))
          for split in aux_lib.SPLITS}


def publish_run(tmp_dir, final_dir, checkpoint: tf.train.Checkpoint, epoch,
                arrays: dict, num_train, num_test, write_fn=None) -> bool:
  """Publishes a finished run under `final_dir`, its `aux_arrays.npz` last.

  No folder is renamed (object stores and gcsfuse cannot do it atomically):
    1. the final checkpoint is written into a staging folder (the run's
       temporary folder for a local output, a local temporary folder for a
       URL) and copied file by file into `final_dir/checkpoints/`;
    2. the manifest (size and SHA-256 of every file, aux_arrays.npz
       included) is put in `final_dir`;
    3. `aux_arrays.npz` is put last, as one file that appears whole
       (`heldout.storage`): the run's commit marker. Until it exists the
       folder is no run to the readers (`heldout.readers.experiment`), and
       training publishes it again over what is there (`pending_runs`);
    4. the temporary folder (progress, staging) is removed.
  A kill at any step leaves either a complete run or a folder without
  `aux_arrays.npz`; the same run published again gives the same bytes.

  Args:
    tmp_dir: the run's temporary folder (removed at the end).
    final_dir: `<output_dir>/<ratio>/<run_id>`.
    checkpoint: `tf.train.Checkpoint(model=..., epoch=..., global_step=...)`.
    epoch: the final epoch, for the `ckpt-<epoch>` name.
    arrays: the `aux_arrays.npz` arrays.
    num_train: training set size, checked.
    num_test: test set size, checked.
    write_fn: `prefix -> None` writing `checkpoint` (e.g. a compiled
      `checkpoint.write`); `checkpoint.write` if None.

  Returns:
    True if published, False if another worker had published it meanwhile
    (same run id, same result: theirs is kept).
  """
  fs = storage.for_path(final_dir)
  tmp_fs = storage.for_path(tmp_dir)
  if is_complete_run(final_dir):
    # Another worker published this run meanwhile (it took over a claim it
    # thought stale): same run id, same result; keep theirs.
    logging.warning("%s: published by another worker meanwhile; ours "
                    "discarded", final_dir)
    tmp_fs.rmtree(tmp_dir)
    return False
  aux_bytes = aux_lib.encode_aux_arrays(layout.aux_arrays_path(final_dir),
                                        num_train=num_train,
                                        num_test=num_test, **arrays)
  with contextlib.ExitStack() as stack:
    if storage.is_local(tmp_dir):
      staging = os.path.join(tmp_dir, STAGING_DIRNAME)
      tmp_fs.rmtree(staging)
    else:
      staging = stack.enter_context(tempfile.TemporaryDirectory(
          prefix="heldout-publish-"))
    os.makedirs(layout.checkpoints_dir(staging))
    (write_fn or checkpoint.write)(layout.checkpoint_prefix(staging, epoch))
    staged = layout.checkpoints_dir(staging)
    records = {}
    for name in sorted(os.listdir(staged)):
      rel = "{}/{}".format(layout.CHECKPOINTS_DIRNAME, name)
      records[rel] = manifest.hash_file(os.path.join(staged, name))
      fs.copy(os.path.join(staged, name), layout.join(final_dir, rel))
  records[layout.AUX_ARRAYS_FILENAME] = manifest.bytes_record(aux_bytes)
  fs.put_bytes(manifest.manifest_path(final_dir), manifest.encode_manifest(
      manifest.manifest_data(records, MANIFEST_SOURCE)))
  fs.put_bytes(layout.aux_arrays_path(final_dir), aux_bytes)  # the commit
  tmp_fs.rmtree(tmp_dir)
  return True


def pending_runs(output_dir, subset_ratio, run_ids) -> List[int]:
  """The runs of `run_ids` without a complete folder.

  A folder without `aux_arrays.npz` is a publication that was interrupted
  (`publish_run`): pending, published again over it.

  Raises:
    ExperimentError: if a run folder has `aux_arrays.npz` but is incomplete
      (this module never leaves one; something else wrote it).
  """
  pending = []
  for run_id in run_ids:
    final = layout.run_dir(output_dir, subset_ratio, run_id)
    problems = experiment_lib.run_problems(final)
    if not problems:
      continue
    fs = storage.for_path(final)
    if fs.exists(layout.aux_arrays_path(final)):
      raise errors.ExperimentError(
          "{}: run folder has aux_arrays.npz but is incomplete ({}); heldout "
          "training writes aux_arrays.npz last, so something else wrote it: "
          "inspect and delete it".format(final, "; ".join(problems)))
    if fs.exists(final):
      logging.info("%s: an interrupted publication (no aux_arrays.npz); "
                   "the run is published again", final)
    pending.append(run_id)
  return pending


def remove_leftovers(output_dir, subset_ratio, run_ids, run_claims):
  """Removes the temporary folders of published runs of `run_ids`.

  What a job killed after a run's commit (its `aux_arrays.npz`) and before
  the end of `publish_run` leaves. Only a folder whose run this worker can
  claim is removed (none that a live worker still uses).
  """
  ratio_dir = os.path.join(output_dir, layout.ratio_dirname(subset_ratio))
  fs = storage.for_path(ratio_dir)
  if not fs.isdir(ratio_dir):
    return
  # One listing of the ratio folder, not a check per run.
  present = set(fs.listdir(ratio_dir))
  for run_id in run_ids:
    tmp = tmp_run_dir(output_dir, subset_ratio, run_id)
    if os.path.basename(tmp) in present and run_claims.try_claim(run_id):
      try:
        logging.info("%s: left by a job killed after publishing run %d; "
                     "removed", tmp, run_id)
        fs.rmtree(tmp)
      finally:
        run_claims.release(run_id)


def train_run(trainer: loop.Trainer, dataset, subset_ratio, run_id,
              output_dir, callbacks: Sequence[loop.Callback] = ()) -> RunResult:
  """Trains (or continues) and publishes one run with `trainer`.

  Across several workers every worker calls it; only the chief reads and
  writes `output_dir`, the others start from the chief's state.
  """
  config = trainer.config
  started = time.time()
  chief = multi_worker.is_chief(trainer.strategy)
  final = layout.run_dir(output_dir, subset_ratio, run_id)
  tmp = tmp_run_dir(output_dir, subset_ratio, run_id)
  seed = subsets.run_seed(subset_ratio, run_id)
  subset = subsets.draw_subset(len(dataset.train), subset_ratio, run_id)
  trainer.reset(seed)
  manager = None
  if chief:
    progress = trainer.progress_checkpoint()
    manager = tf.train.CheckpointManager(
        progress, os.path.join(tmp, PROGRESS_DIRNAME), max_to_keep=1)
    if manager.latest_checkpoint:
      progress.restore(
          manager.latest_checkpoint).assert_existing_objects_matched()
      logging.info("run %d: resuming at epoch %d from %s", run_id,
                   int(trainer.epoch.numpy()), manager.latest_checkpoint)
    else:
      with atomic.named_write_errors(tmp, "run {}".format(run_id)):
        storage.for_path(tmp).makedirs(tmp)
  trainer.sync_from_chief()
  status = "resumed" if int(trainer.epoch.numpy()) > 0 else "trained"

  last_save = [time.time()]

  def save_progress(epochs_done):
    if (manager is not None and epochs_done < config.epochs and
        time.time() - last_save[0] >= config.checkpoint_every_seconds):
      with atomic.named_write_errors(tmp, "run {}'s progress".format(run_id)):
        manager.save(checkpoint_number=epochs_done)
      last_save[0] = time.time()

  trainer.fit(dataset.train, subset, seed, callbacks=callbacks,
              epoch_end_fn=save_progress)
  arrays = evaluate_run(trainer.evaluate, dataset, subset)
  if chief:
    with atomic.named_write_errors(tmp, "run {}".format(run_id)):
      publish_run(tmp, final, trainer.final_checkpoint(), config.epochs,
                  arrays, len(dataset.train), len(dataset.test))
  return RunResult(run_id=run_id, status=status, path=final,
                   seconds=time.time() - started,
                   accuracy=run_accuracy(arrays))


def _progress_bar(total, desc, enabled):
  if not enabled:
    return None
  try:
    from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return tqdm.tqdm(total=total, desc=desc, unit="run")


def train_heldout(dataset, config, subset_ratio, run_ids: Sequence[int],
                  output_dir, *, strategy=None, progress: bool = True,
                  callbacks: Sequence[loop.Callback] = (),
                  model_fn: Optional[Callable] = None,
                  claim_options: Optional[dict] = None,
                  use_claims: bool = True) -> List[RunResult]:
  """Trains the runs `run_ids` at `subset_ratio`, one model at a time.

  Args:
    dataset: a `heldout.data.Dataset` with "train" and "test".
    config: `TrainConfig`.
    subset_ratio: fraction of the training set each run trains on.
    run_ids: the run ids this job is responsible for.
    output_dir: experiment folder: a local path or a URL `tf.io.gfile`
      opens (`gs://bucket/exp`).
    strategy: `tf.distribute` strategy (`loop.make_strategy()` if None).
      Across several workers every worker calls this with the same
      arguments; only the chief reads and writes `output_dir`.
    progress: show a tqdm bar (runs done, ETA); absl logging either way.
    callbacks: `loop.Callback`s passed to every run's training.
    model_fn: builds the model (from `config.arch` if None).
    claim_options: arguments of `train.claims.RunClaims` (e.g.
      `stale_after_s`). Each run is claimed before it is trained, so workers
      with overlapping ranges share the runs (`train/claims.py`).
    use_claims: False to train every pending run without claiming it (an
      output folder on a store without an exclusive create; give each
      worker disjoint runs then).

  Returns:
    A `RunResult` per run id, in order: "trained", "resumed", "skipped"
    (complete when the job started) or `ELSEWHERE` (claimed by, or published
    by, another worker).

  Raises:
    ArgumentsMismatchError: if `output_dir` holds runs of other arguments.
    ExperimentError: if a run folder exists but is incomplete.
  """
  layout.ratio_dirname(subset_ratio)
  strategy = strategy or loop.make_strategy()
  run_ids = [int(r) for r in run_ids]
  if multi_worker.is_chief(strategy):
    check_or_write_arguments(output_dir, job_arguments(dataset, config))
    pending = set(pending_runs(output_dir, subset_ratio, run_ids))
  else:
    pending = set()
  if multi_worker.is_multi_worker(strategy):
    # The chief's decision, so that every worker trains the same runs.
    is_pending, = multi_worker.broadcast_from_chief(
        strategy, [np.array([r in pending for r in run_ids], np.int32)])
    pending = {r for r, p in zip(run_ids, is_pending) if p}
  results = []
  logging.info("heldout training %s/%s ratio %s: %d runs asked, %d to train",
               dataset.name, config.arch, layout.ratio_dirname(subset_ratio),
               len(run_ids), len(pending))
  chief = multi_worker.is_chief(strategy)
  run_claims = (claims_lib.for_job(output_dir, subset_ratio, use_claims,
                                   claim_options) if chief else None)
  if run_claims is not None:
    remove_leftovers(output_dir, subset_ratio,
                     [r for r in run_ids if r not in pending], run_claims)
  trainer = None
  if pending:
    if model_fn is None:
      model_fn = lambda: model_registry.build_model(  # pylint: disable=g-long-lambda
          config.arch, dataset.num_classes, **config.arch_kwargs)
    trainer = loop.Trainer(model_fn, dataset.image_shape, config,
                           strategy=strategy)
  bar = _progress_bar(len(pending), "ratio {}".format(
      layout.ratio_dirname(subset_ratio)), progress)
  done = 0
  started = time.time()
  try:
    for run_id in run_ids:
      final = layout.run_dir(output_dir, subset_ratio, run_id)
      if run_id not in pending:
        results.append(RunResult(run_id, "skipped", final))
        continue
      # Claimed by this worker, or left to the one training it (or that
      # published it since this job started).
      ours = chief and (not is_complete_run(final) and
                        run_claims.try_claim(run_id))
      if multi_worker.is_multi_worker(strategy):
        ours, = multi_worker.broadcast_from_chief(
            strategy, [np.array([int(bool(ours))], np.int32)])
        ours = bool(ours[0])
      if not ours:
        results.append(RunResult(run_id, ELSEWHERE, final))
        if bar is not None:
          bar.update(1)
        continue
      result = train_run(trainer, dataset, subset_ratio, run_id, output_dir,
                         callbacks=callbacks)
      if run_claims is not None:
        run_claims.release(run_id)
      results.append(result)
      done += 1
      elapsed = time.time() - started
      logging.info(
          "run %d %s in %.1fs: accuracy train %.4f removed %.4f test %.4f "
          "[%d/%d, ETA %.0fs]", run_id, result.status, result.seconds,
          result.accuracy["train"], result.accuracy["removed"],
          result.accuracy["test"], done, len(pending),
          elapsed / done * (len(pending) - done))
      if bar is not None:
        bar.update(1)
        bar.set_postfix(test_acc="{:.4f}".format(result.accuracy["test"]))
  finally:
    if bar is not None:
      bar.close()
    if run_claims is not None:
      run_claims.release_all()
  return results
