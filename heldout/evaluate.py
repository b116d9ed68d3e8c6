r"""Every method on the same data, the same corruption and the same budget.

    bazel run //heldout:evaluate        # bundled digits, 10% of labels corrupted

Sections, each resumable (kill it and run it again: finished runs, seeds,
score files and pruning models are kept under --output_dir):
1. **Mislabeled detection.** For each corruption seed (`--corruption_seeds`),
   the first `--noise` of the training ids get a random different class
   (Kronfluence's protocol; `--noise_variant=random`: a uniformly random
   set of ids), every method scores the corrupted training set
   (`heldout.evaluations.method_runs`), and each score's share of the
   corrupted examples in its top 5/10/20/30% and its AUROC are reported as
   mean ± SE over the corruption seeds; cleanlab's flagged set (precision,
   recall) beside it as the named peer.
2. **Agreement.** Spearman between every pair of scores (first corruption
   seed): a table, `agreement.csv` and `agreement.png`.
3. **Data pruning.** Keep a fraction (`--pruning_fractions`) of the
   corrupted training set by each score (or at random), retrain from scratch
   (`--pruning_seeds`), test accuracy against the fraction kept:
   `pruning.csv`, `pruning.png`.
4. **Rare subgroups.** SSFT's long-tail superclass simulation: CIFAR-100's
   20 superclasses of 5 fine classes, and on digits two superclasses of five
   digits each; subclasses kept at 1, 1/2, ..., 1/16; where each score ranks
   each frequency rank (`subgroups.csv`).
Methods not built are named as not available. Tables are also written to
`report.txt`.

    bazel run //heldout:evaluate -- --dataset=cifar10:3.0.2 \
        --output_dir=/data/eval-cifar10      # the methods' recipes; a GPU job
"""

import json
import os
import time

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from heldout import atomic
from heldout import cli
from heldout.data import dataset as dataset_lib
from heldout.data import label_noise
from heldout.data import registry as data_registry
from heldout.evaluations import agreement_matrix
from heldout.evaluations import method_runs
from heldout.evaluations import mislabeled
from heldout.evaluations import out_of_sample
from heldout.evaluations import pruning
from heldout.evaluations import subgroups

_DATASET = flags.DEFINE_string("dataset", "digits", "digits, mnist, "
                               "cifar10:3.0.2, cifar100:3.0.2.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "heldout-evaluation",
                                  "Where everything goes.")
_NOISE = flags.DEFINE_float("noise", 0.1, "Fraction of labels corrupted.")
_NOISE_VARIANT = flags.DEFINE_enum(
    "noise_variant", "first", ["first", "random"],
    "first: the first ids (Kronfluence's protocol); random: random ids.")
_CORRUPTION_SEEDS = flags.DEFINE_string("corruption_seeds", "0:3",
                                        "Seeds of the corruption, a:b.")
_METHODS = flags.DEFINE_list("methods", list(method_runs.METHODS),
                             "Methods to run.")
_HELDOUT_RUNS = flags.DEFINE_integer("heldout_runs", None,
                                     "Heldout runs (default: the recipe's).")
_SEEDS = flags.DEFINE_integer("seeds", None, "Seeds of the training-dynamics "
                              "scores (default: the recipe's).")
_PRUNING_FRACTIONS = flags.DEFINE_list("pruning_fractions",
                                       ["0.3", "0.5", "0.7", "0.9"],
                                       "Fractions kept.")
_PRUNING_SEEDS = flags.DEFINE_string("pruning_seeds", "0:3",
                                     "Training seeds of the pruned models.")
_SUBGROUPS = flags.DEFINE_bool("subgroups", True,
                               "Run the rare-subgroup simulation.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")

# Budgets and recipes per dataset: (config names for heldout / scores / ssft,
# heldout runs, seeds, ssft seeds, EL2N epoch).
_RECIPES = {
    "digits": (("digits", "digits", "digits_ssft", "digits_samis"), 512, 5, 3,
               2),
    "mnist": (("mnist", "mnist", "mnist_ssft", None), 2000, 10, 5, 2),
    "cifar10:3.0.2": (("cifar10", "cifar10_data_diet", "cifar10_ssft",
                       "cifar10_samis"), 4000, 10, 5, 20),
    "cifar100:3.0.2": (("cifar100", "cifar100_data_diet", "cifar100_ssft",
                        "cifar100_samis"), 4000, 10, 5, 20),
}


def _section(title):
  print("\n== {} ==".format(title), flush=True)


def _settings_for(dataset, name, work_dir, recipe):
  from train import configs  # pylint: disable=g-import-not-at-top
  names, runs, seeds, ssft_seeds, el2n_epoch = recipe
  kinds = dict(zip(("heldout", "scores", "ssft", "samis"), names))
  return method_runs.Setting(
      name=name, dataset=dataset, work_dir=work_dir,
      configs={kind: configs.get_config(c) for kind, c in kinds.items() if c},
      heldout_runs=_HELDOUT_RUNS.value or runs,
      seeds=tuple(range(_SEEDS.value or seeds)),
      ssft_seeds=tuple(range(min(_SEEDS.value or ssft_seeds, ssft_seeds))),
      el2n_epoch=el2n_epoch)


def corrupted_dataset(dataset, noise, variant, seed):
  """(dataset with corrupted training labels, corrupted ids)."""
  train = dataset.train
  if variant == "first":
    noisy, corrupted = label_noise.corrupt_labels(train, noise,
                                                  dataset.num_classes, seed)
  else:
    noisy, corrupted = label_noise.corrupt_random_labels(
        train, noise, dataset.num_classes, seed)
  name = "{}/labels:{}{:g}%:seed{}".format(dataset.name, variant, 100 * noise,
                                           seed)
  return (dataset_lib.Dataset(name=name, num_classes=dataset.num_classes,
                              splits={"train": noisy, "test": dataset.test}),
          corrupted)


def _write(path, text):
  atomic.write_bytes(path, text.encode() if isinstance(text, str) else text)
  return path


def _detection_csv(rows):
  lines = ["method,metric,mean,se,seeds"]
  for method, cells in rows.items():
    for metric, s in cells.items():
      lines.append("{},{},{!r},{!r},{}".format(method, metric, s.mean, s.se,
                                               s.num_seeds))
  return "\n".join(lines) + "\n"


def run(output_dir, dataset_name, data_dir=None, progress=True):
  """The whole evaluation; returns the report text."""
  started = time.time()
  os.makedirs(output_dir, exist_ok=True)
  if dataset_name not in _RECIPES:
    raise ValueError("--dataset must be one of {}, got {!r}".format(
        sorted(_RECIPES), dataset_name))
  recipe = _RECIPES[dataset_name]
  dataset = data_registry.load_dataset(dataset_name, data_dir=data_dir)
  corruption_seeds = [int(s) for s in _parse_range(_CORRUPTION_SEEDS.value)]
  report = []

  def emit(title, text):
    _section(title)
    print(text, flush=True)
    report.append("== {} ==\n{}\n".format(title, text))

  # -- 1. mislabeled detection ----------------------------------------------
  per_seed = {}
  first = None
  flagged_pr = []
  missing = {}
  for seed in corruption_seeds:
    _section("Corruption seed {}: {} of the labels ({})".format(
        seed, _NOISE.value, _NOISE_VARIANT.value))
    noisy, corrupted = corrupted_dataset(dataset, _NOISE.value,
                                         _NOISE_VARIANT.value, seed)
    setting = _settings_for(noisy, "{}_seed{}".format(_NOISE_VARIANT.value,
                                                      seed),
                            os.path.join(output_dir, "{}{:g}_seed{}".format(
                                _NOISE_VARIANT.value, 100 * _NOISE.value,
                                seed)), recipe)
    produced = method_runs.score_methods(setting, _METHODS.value,
                                         progress=progress)
    missing.update(produced.missing)
    if first is None:
      first = (setting, noisy, corrupted, produced)
    for method, scores in produced.scores.items():
      per_seed.setdefault(method, []).append(mislabeled.detect(
          scores.index, scores.values, corrupted,
          mislabeled.SUSPICIOUS_END[method]))
    if out_of_sample.CLEANLAB in produced.scores:
      s = produced.scores[out_of_sample.CLEANLAB]
      flagged_pr.append(out_of_sample.flagged_precision_recall(
          s.extras["flagged"], np.isin(s.index, corrupted)))
  rows = {m: mislabeled.summarize_detections(d) for m, d in per_seed.items()}
  fractions = mislabeled.DEFAULT_FRACTIONS
  rows["random (expected)"] = dict(
      {"top {:g}%".format(100 * f): mislabeled.Summary(f, 0.0, 0)
       for f in fractions},
      AUROC=mislabeled.Summary(0.5, 0.0, 0))
  text = mislabeled.table_text(rows, missing)
  text += ("\n(fraction of the corrupted examples found in the top k% of each "
           "score, and AUROC; mean±SE over {} corruption seeds)".format(
               len(corruption_seeds)))
  if flagged_pr:
    text += ("\ncleanlab find_label_issues: precision {}, recall {} "
             "(flagged set)".format(
                 mislabeled.summarize([p for p, _ in flagged_pr]),
                 mislabeled.summarize([r for _, r in flagged_pr])))
  emit("Mislabeled detection", text)
  _write(os.path.join(output_dir, "mislabeled_detection.csv"),
         _detection_csv(rows))

  setting, noisy, corrupted, produced = first
  # -- 2. agreement -----------------------------------------------------------
  names, rho, compared = agreement_matrix.spearman_matrix(
      {m: (s.index, s.values) for m, s in produced.scores.items()})
  emit("Agreement (Spearman, corruption seed {})".format(corruption_seeds[0]),
       agreement_matrix.matrix_text(names, rho))
  _write(os.path.join(output_dir, "agreement.csv"),
         agreement_matrix.matrix_csv(names, rho, compared))
  _write(os.path.join(output_dir, "agreement.png"),
         agreement_matrix.heatmap_png(names, rho, title="{}: Spearman".format(
             noisy.name)))

  # -- 3. pruning -------------------------------------------------------------
  fractions = sorted(float(f) for f in _PRUNING_FRACTIONS.value)
  seeds = [int(s) for s in _parse_range(_PRUNING_SEEDS.value)]
  kept = {}
  for method, scores in produced.scores.items():
    if method in pruning.KEEP_END:
      kept[method] = {f: [pruning.keep_ids(scores.index, scores.values, f,
                                           pruning.KEEP_END[method], s)
                          for s in seeds] for f in fractions}
  index = np.asarray(noisy.train.index, np.int64)
  kept[pruning.RANDOM] = {f: [pruning.keep_ids(index, None, f, pruning.RANDOM,
                                               s) for s in seeds]
                          for f in fractions}
  cache_path = os.path.join(setting.work_dir, "pruning_accuracies.json")
  config = setting.configs["scores"]
  cache_key = json.dumps({"config": config.to_json(),
                          "seeds": seeds}, sort_keys=True)
  done = {}
  if os.path.exists(cache_path):
    with open(cache_path) as f:
      stored = json.load(f)
    if stored.get("key") == cache_key:
      done = stored["accuracies"]
  if method_runs.batched_trainable(config):
    train_subsets = pruning.batched_subset_trainer(noisy, config)
  else:
    from heldout.models import registry  # pylint: disable=g-import-not-at-top
    from train import loop  # pylint: disable=g-import-not-at-top
    train_subsets = pruning.loop_subset_trainer(noisy, lambda: loop.Trainer(
        lambda: registry.build_model(config.arch, noisy.num_classes,
                                     **config.arch_kwargs),
        noisy.image_shape, config))
  curves = pruning.accuracy_after_pruning(
      train_subsets, kept, seeds, done,
      lambda: atomic.write_json(cache_path, {"key": cache_key,
                                             "accuracies": done}))
  emit("Data pruning (test accuracy, mean±SE over {} seeds)".format(
      len(seeds)), pruning.curve_text(curves))
  _write(os.path.join(output_dir, "pruning.csv"), pruning.curve_csv(curves))
  _write(os.path.join(output_dir, "pruning.png"), pruning.curve_png(
      curves, title="{}: keep a fraction, retrain".format(noisy.name)))

  # -- 4. rare subgroups ------------------------------------------------------
  if _SUBGROUPS.value:
    if dataset_name not in subgroups.SUPERCLASSES:
      emit("Rare subgroups", "the simulation needs a class hierarchy: it runs "
           "on {}".format(", ".join(sorted(subgroups.SUPERCLASSES))))
    else:
      tail_dataset, tail = subgroups.long_tail_dataset(
          dataset, subgroups.SUPERCLASSES[dataset_name])
      tail_setting = _settings_for(
          tail_dataset, "long_tail", os.path.join(output_dir, "long_tail"),
          recipe)
      tail_scores = method_runs.score_methods(
          tail_setting, [m for m in _METHODS.value
                         if m != out_of_sample.CLEANLAB], progress=progress)
      table = subgroups.rank_table(
          {m: (s.index, s.values, mislabeled.SUSPICIOUS_END[m])
           for m, s in tail_scores.scores.items()}, tail)
      text = subgroups.rank_table_text(table)
      text += ("\n(mean percentile from each score's suspicious end of the "
               "examples of each frequency rank: rank 0 kept whole, rank r at "
               "1/2^r; AUROC of ranks >= 2 vs the rest)")
      emit("Rare subgroups ({})".format(tail_dataset.name), text)
      _write(os.path.join(output_dir, "subgroups.csv"),
             "method,column,value\n" + "".join(
                 "{},{},{!r}\n".format(m, c, v) for m, row in table.items()
                 for c, v in row.items()))

  elapsed = time.time() - started
  report.append("done in {:.0f}s".format(elapsed))
  _write(os.path.join(output_dir, "report.txt"), "\n".join(report))
  _section("Done in {:.0f}s; outputs in {}".format(
      elapsed, os.path.abspath(output_dir)))
  for name in ("report.txt", "mislabeled_detection.csv", "agreement.csv",
               "agreement.png", "pruning.csv", "pruning.png",
               "subgroups.csv"):
    path = os.path.join(output_dir, name)
    if os.path.exists(path):
      print("  " + os.path.abspath(path))
  return "\n".join(report)


def _parse_range(text):
  from train import subsets  # pylint: disable=g-import-not-at-top
  return subsets.parse_runs(text)


def main(argv):
  # TF's retracing notes (K models of several sizes) are noise here.
  tf.get_logger().setLevel("ERROR")
  logging.set_verbosity(logging.ERROR)
  cli.check_no_arguments(argv)
  run(cli.resolve_path(_OUTPUT_DIR.value),
      cli.resolve_dataset_name(_DATASET.value),
      data_dir=cli.resolve_path(_DATA_DIR.value), progress=_PROGRESS.value)


if __name__ == "__main__":
  cli.run(main)
