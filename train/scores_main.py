r"""Per-example scores from training runs: `bazel run //train:scores -- ...`.

    bazel run //train:scores -- --method=forgetting --dataset=digits \
        --seeds=0:10 --output=forgetting.npz
    bazel run //train:scores -- --method=grand --dataset=digits --seeds=0:10 \
        --score_epochs=0,20 --output=grand.npz   # grand_epoch0.npz, grand_epoch20.npz
    bazel run //train:scores -- --method=ssft --dataset=digits \
        --config=digits_ssft --seeds=0:5 --output=ssft.npz

Methods: forgetting (minibatch, Toneva / Data Diet), forgetting_per_epoch
(SSFT's code), el2n, grand (at --score_epochs; each scored model is saved as a
run in the released layout under `<output>.runs/epoch_<e>/<seed>/`), ssft
(second-split forgetting time, with first-split learning time as the extra
`fslt`; --second_epochs, --patience). Trains
one model per seed on the whole training split with the config's recipe
(train/configs, `--config`, `--arch`, `--epochs`); for the small models
(mlp, small_cnn without augmentation) and every method but ssft, up to
`--batched_k` (default 16) seeds at once in one batched computation
(train/batched.py: the same models as one at a time, up to float summation
order; `--batched_k=0` trains one at a time). Kill it and start it again
with the same arguments: finished seeds are kept (`<output>.runs/seed_<s>.npz`).
Several machines share the seeds of one output with no coordinator (a
Kubernetes Indexed Job, a Slurm array): the same flags plus
`--num_workers=W --worker_index=I` (seed s goes to worker s % W, as
`//train:heldout` splits runs); each trains its seeds into the shared
`<output>.runs/`, and whichever finds all of `--seeds` finished when it ends
writes the score files; the others print how many seeds are missing and exit
0. Running any worker again once all are finished writes them.
The outputs are score files (`heldout.scores`) with a CSV beside each; compare
them with `//heldout:compare`. See `train/scoring.py`.
"""

import dataclasses

from absl import flags
from absl import logging
import tensorflow as tf

from heldout import cli
from heldout.data import registry as data_registry
from heldout.models import registry as model_registry
from train import batched
from train import configs
from train import loop
from train import scoring
from train import subsets
from train import workers

_DATASET, _CONFIG, _ARCH, _EPOCHS, _DATA_DIR = configs.define_flags()
_METHOD = flags.DEFINE_enum("method", None, list(scoring.METHODS),
                            "What to score.")
_SEEDS = flags.DEFINE_string("seeds", "0:10", "Seeds: a:b (a <= s < b), "
                             "comma-separated ids and ranges.")
_NUM_WORKERS, _WORKER_INDEX = workers.define_flags("seeds")
_SCORE_EPOCHS = flags.DEFINE_string(
    "score_epochs", None, "el2n/grand: epochs to score at, e.g. 0,20 (0: at "
    "initialisation).")
_SECOND_EPOCHS = flags.DEFINE_integer(
    "second_epochs", None, "ssft: the second phase's epoch limit (default: "
    "the config's epochs, the first phase's limit, as SSFT's code).")
_PATIENCE = flags.DEFINE_integer(
    "patience", 5, "ssft: each phase stops after this many epochs at 100% "
    "training accuracy.")
_BATCHED_K = flags.DEFINE_integer(
    "batched_k", None, "Train up to K seeds at once in one batched "
    "computation (mlp and small_cnn without augmentation; not ssft; "
    "train/batched.py); 0: one model at a time. Default: 16 where the "
    "method, architecture and config allow it, else 0.")
_OUTPUT = flags.DEFINE_string("output", None, "The score file (.npz).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace outputs made with other arguments.")
_DEFAULT_BATCHED_K = 16
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  tf.get_logger().setLevel("WARNING")
  cli.check_no_arguments(argv)
  cli.require_flags(method=_METHOD.value, output=_OUTPUT.value)
  config = configs.resolve_config(_DATASET.value, _CONFIG.value, _ARCH.value,
                                  _EPOCHS.value)
  batched_k = _BATCHED_K.value
  if batched_k is None:
    batched_k = (_DEFAULT_BATCHED_K if _METHOD.value != "ssft" and
                 batched.supports(config) else 0)
  batched.check_batched_k(batched_k, config)
  if batched_k and _METHOD.value == "ssft":
    raise ValueError("`batched_k`: ssft stops each model at its own epoch; "
                     "drop --batched_k")
  logging.info("training %s", "up to {} seeds at once (batched)".format(
      batched_k) if batched_k else "one model at a time")
  seeds = subsets.parse_runs(_SEEDS.value)
  # The heldout binary's split: seed s goes to worker s % num_workers.
  worker = workers.resolve_worker(_NUM_WORKERS.value, _WORKER_INDEX.value,
                                  tf_config_shards=True)
  my_seeds = subsets.select_runs(seeds, worker.count, worker.index)
  logging.info("%s: %d seeds", worker.describe(), len(my_seeds))
  args = scoring.ScoringArgs(
      method=_METHOD.value, dataset=_DATASET.value,
      config=dataclasses.asdict(config),
      seeds=tuple(seeds),
      score_epochs=tuple(scoring.parse_epochs(_SCORE_EPOCHS.value)),
      second_epochs=((_SECOND_EPOCHS.value or config.epochs)
                     if _METHOD.value == "ssft" else 0),
      patience=_PATIENCE.value)
  dataset = data_registry.load_dataset(
      cli.resolve_dataset_name(_DATASET.value),
      data_dir=cli.resolve_path(_DATA_DIR.value))
  num_classes = int(dataset.num_classes)

  def trainer_fn():
    return loop.Trainer(
        lambda: model_registry.build_model(config.arch, num_classes,
                                           **config.arch_kwargs),
        dataset.image_shape, config)

  def batched_fn(k):
    return batched.BatchedTrainer(config.arch, num_classes,
                                  dataset.image_shape, config, k)

  output = cli.resolve_path(_OUTPUT.value)
  paths = scoring.train_and_score(
      dataset, trainer_fn, args, output,
      overwrite=_OVERWRITE.value, progress=_PROGRESS.value,
      train_seeds=my_seeds, batched_fn=batched_fn,
      batched_k=batched_k)
  if not paths:
    missing = scoring.missing_seeds(output, args)
    print("worker {} of {}: its {} seeds are done; {} of {} seeds still "
          "missing (other workers); the last to finish writes {}".format(
              worker.index, worker.count, len(my_seeds),
              len(missing), len(seeds), output))
    return
  for epoch, path in sorted(paths.items()):
    print("wrote {}{} ({} seeds)".format(
        path, "" if epoch < 0 else " (epoch {})".format(epoch),
        len(args.seeds)))


if __name__ == "__main__":
  cli.run(main)
