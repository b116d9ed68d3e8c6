r"""SAMIS memorization proxies from paired SGD/SAM runs: `bazel run //train:samis`.

    bazel run //train:samis -- --dataset=digits --folds=10 --seeds=0:10 \
        --output=/tmp/digits-samis.npz
    bazel run //train:samis -- --dataset=digits --seeds=0:10 --premature \
        --output=/tmp/digits-samis-premature.npz
    bazel run //train:samis -- --dataset=digits --folds=10 --seeds=0:10 \
        --output=/tmp/digits-samis.npz --memorization=/tmp/digits-est.npz

For each fold k of --folds and seed s, trains an SGD model and a SAM model
(--rho) with the same initial weights, data order and schedule on the other
folds (the config's recipe: train/configs/samis.py by default, `--config`,
`--arch`, `--epochs`), saves both as runs in the released layout under
`<output>.runs/{sgd,sam}/`, and scores the held-out fold with each pair:
SAMIS-L (`<output>_l.npz`) and SAMIS-P (`<output>_p.npz`), score files
(`heldout.scores`) of the mean over seeds with standard errors. `--premature`:
the whole training set, 20 epochs (or --epochs), constant learning rate.
Kill it and start it again with the same flags: finished runs are kept
(`train/samis_training.py`). Several machines: the same flags plus `--num_workers=W
--worker_index=I` (pair `seed * folds + fold` goes to worker pair % W); the
last to finish writes the score files, the others print what is missing.
`--memorization=EST.npz` (what `//heldout:estimate` writes) prints the
Spearman correlation of SAMIS-L and SAMIS-P with memorization on the
examples both have, and writes `<output>_{l,p}_vs_memorization_*`
(summary, disagreements, scatter plot).
"""


from absl import flags
from absl import logging
import tensorflow as tf

from heldout import cli
from heldout.data import registry as data_registry
from heldout.models import registry as model_registry
from heldout.released import agreement
from heldout.scores import score_file
from train import configs
from train import sam
from train import samis_training as samis
from train import subsets
from train import workers
from train.configs import samis as samis_configs

_DATASET, _CONFIG, _ARCH, _EPOCHS, _DATA_DIR = configs.define_flags(
    config_help="Training recipe of both runs of a pair (train/configs); for "
    "digits and CIFAR the SAMIS recipe (train/configs/samis.py), else the "
    "dataset's default.",
    epochs_help="Override the config's epochs (premature: default 20).")
_FOLDS = flags.DEFINE_integer(
    "folds", 10, "Folds of the training set; each pair holds one out "
    "(ignored with --premature).")
_SEEDS = flags.DEFINE_string("seeds", "0:10", "Seeds: a:b (a <= s < b), "
                             "comma-separated ids and ranges.")
_RHO = flags.DEFINE_float("rho", sam.DEFAULT_RHO, "SAM's radius.")
_PREMATURE = flags.DEFINE_bool(
    "premature", False, "The premature variant: whole training set, "
    "constant learning rate, 20 epochs unless --epochs.")
_NUM_WORKERS, _WORKER_INDEX = workers.define_flags("pairs")
_OUTPUT = flags.DEFINE_string(
    "output", None, "The outputs' stem: S.npz gives S_l.npz, S_p.npz and the "
    "runs in S.runs/.")
_MEMORIZATION = flags.DEFINE_string(
    "memorization", None, "Memorization estimates (//heldout:estimate's "
    ".npz) to correlate SAMIS with.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace outputs and runs made with other arguments.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  tf.get_logger().setLevel("WARNING")
  cli.check_no_arguments(argv)
  cli.require_flags(output=_OUTPUT.value)
  # -- arguments -----------------------------------------------------------
  name = _CONFIG.value or samis_configs.DEFAULT_CONFIGS.get(_DATASET.value)
  if _PREMATURE.value:
    config = samis.premature_config(
        configs.resolve_config(_DATASET.value, name, _ARCH.value),
        _EPOCHS.value)
  else:
    config = configs.resolve_config(_DATASET.value, name, _ARCH.value,
                                    _EPOCHS.value)
  args = samis.SamisArgs(
      dataset=_DATASET.value, config=config.to_json(),
      seeds=tuple(subsets.parse_runs(_SEEDS.value)),
      folds=1 if _PREMATURE.value else _FOLDS.value, rho=_RHO.value,
      premature=_PREMATURE.value)
  # A TF_CONFIG shares the pairs among its tasks (each model trains in one
  # process, on the GPUs of its machine).
  worker = workers.resolve_worker(_NUM_WORKERS.value, _WORKER_INDEX.value,
                                  tf_config_shards=True)
  my_runs = subsets.select_runs(args.run_ids, worker.count, worker.index)
  logging.info("%s: %d pairs", worker.describe(), len(my_runs))
  # -- data and models -----------------------------------------------------
  dataset = data_registry.load_dataset(
      cli.resolve_dataset_name(_DATASET.value),
      data_dir=cli.resolve_path(_DATA_DIR.value))
  num_classes = int(dataset.num_classes)

  def trainer_fn(optimizer):
    return sam.make_trainer(
        optimizer,
        lambda: model_registry.build_model(config.arch, num_classes,
                                           **config.arch_kwargs),
        dataset.image_shape, config, rho=args.rho)

  # -- training and scores -------------------------------------------------
  output = cli.resolve_path(_OUTPUT.value)
  paths = samis.train_and_score(dataset, trainer_fn, args, output,
                                overwrite=_OVERWRITE.value,
                                progress=_PROGRESS.value, train_runs=my_runs)
  if not paths:
    missing = samis.missing_runs(output, args)
    print("worker {} of {}: its {} pairs are done; {} of {} runs still "
          "missing (other workers); the last to finish writes {}".format(
              worker.index, worker.count, len(my_runs),
              len(missing), 2 * len(args.run_ids),
              " and ".join(samis.output_paths(output).values())))
    return
  for method, path in sorted(paths.items()):
    print("wrote {} ({}, {} seeds x {} folds)".format(
        path, method, len(args.seeds), args.folds))
  # -- agreement with memorization -----------------------------------------
  if _MEMORIZATION.value:
    estimates = cli.resolve_path(_MEMORIZATION.value)
    for method, path in sorted(paths.items()):
      report = samis.memorization_agreement(score_file.read_scores(path),
                                            estimates)
      prefix = path[:-4] + "_vs_memorization"
      agreement.write_report(report, prefix, names=(method, "memorization"),
                             title="{} vs memorization ({} examples)".format(
                                 method, report.n_compared))
      print("{} vs memorization: Spearman {:.4f} (p={:.3g}) on {} examples; "
            "wrote {}_*".format(method, report.spearman, report.spearman_p,
                                report.n_compared, prefix))


if __name__ == "__main__":
  cli.run(main)
