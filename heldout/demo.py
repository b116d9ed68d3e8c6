r"""The heldout pipeline end to end, on real data bundled with the project.

    bazel run //heldout:demo

With no arguments: trains a heldout experiment on scikit-learn's bundled
digits (1,797 real 8x8 handwritten digits; 1,024 MLPs on random 70% subsets,
plus 256 runs at each of 0.3, 0.5 and 0.9 for the C-score, K models at a time),
writes it in the released layout, reloads one run through the released-
checkpoint path and prints `K out of N predictions match` as upstream's demo
does, computes memorization, influence and consistency with their standard
errors and counts, prints the most memorized examples and the strongest
influence pairs, and saves figures (upstream's MNIST influence figure, a
memorization histogram, the most memorized examples). Under 5 minutes on 2 CPU
cores; re-running skips finished runs. Where everything went is printed at
the end.

    bazel run //heldout:demo -- --model_dir=/data/cifar10-inception/0.7/12 \
        --dataset=cifar10:3.0.2

runs upstream's released-checkpoint demo instead: restores the run
(architecture inferred), evaluates it on the test split and compares with the
correctness it exported in aux_arrays.npz.

`python demo.py` at the top of the repository is the same program.
"""

import os
import time

# Quiet TensorFlow's C++ start-up chatter; progress bars say what is going on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top,g-bad-import-order
from absl import logging
import numpy as np

from heldout import cli
from heldout import figures
from heldout import verify_run
from heldout.data import registry as data_registry
from heldout.estimators import pipeline
from heldout.readers import layout

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "heldout-demo",
                    "Where the experiment, estimates and figures go (relative "
                    "paths: to the directory bazel was run from).")
flags.DEFINE_string("dataset", None,
                    "Dataset: digits (bundled; the default of the pipeline), "
                    "mnist or npz:<path> for the pipeline; with --model_dir the "
                    "run's dataset (e.g. cifar10:3.0.2), required.")
flags.DEFINE_enum("arch", "mlp", ["mlp", "small_cnn"],
                  "Model trained K at a time by the demo.")
flags.DEFINE_float("subset_ratio", 0.7,
                   "Subset ratio of the runs behind memorization and influence.")
flags.DEFINE_integer("runs", 1024, "Runs at --subset_ratio.")
flags.DEFINE_list("cscore_ratios", ["0.3", "0.5", "0.9"],
                  "Further subset ratios trained for the C-score (consistency "
                  "averaged over all ratios); empty to skip.")
flags.DEFINE_integer("cscore_runs", 256, "Runs at each of --cscore_ratios.")
flags.DEFINE_integer("k", 64, "Models trained at once.")
flags.DEFINE_integer("show", 10, "Examples and pairs printed.")
flags.DEFINE_string("model_dir", None,
                    "A released (or any) run folder: run upstream's released-"
                    "checkpoint demo on it instead of the pipeline.")
flags.DEFINE_string("arch_of_model_dir", None,
                    "Architecture of --model_dir; inferred when unset.")
flags.DEFINE_enum("split", "test", ["test", "train"],
                  "Split evaluated by the --model_dir demo.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")


def _section(title):
  print("\n== {} ==".format(title), flush=True)


def released_run_demo(model_dir, dataset, split="test", arch=None):
  """Upstream's demo: restore a run and check it against its exported results.

  Returns:
    The `verify_run.RunCheck`.
  """
  check = verify_run.verify_run(model_dir, dataset, split=split, arch=arch)
  run = check.run
  print("Loaded {} (num_classes={}) from checkpoint (epoch={}, global_step={}) "
        "trained on a random {:.0f}% subset of the training examples.".format(
            run.arch, run.num_classes, run.epoch, run.global_step,
            100 * check.subset_fraction))
  print("Eval accuracy on {} = {:.4f}".format(split, check.accuracy))
  print(check.message())
  return check


def _demo_config(dataset_name, arch):
  """The training recipe of the demo: the dataset's, with `arch`."""
  from train import configs  # pylint: disable=g-import-not-at-top
  if dataset_name.startswith("cifar"):
    raise ValueError(
        "the demo trains small models (mlp, small_cnn) K at a time on digits, "
        "mnist or an npz dataset, got --dataset={}; train CIFAR runs with "
        "//train:heldout, or check a released CIFAR run with --model_dir"
        .format(dataset_name))
  config = configs.get_config(configs.DEFAULT_CONFIGS.get(dataset_name,
                                                          "digits"))
  if arch == "small_cnn" and config.name == "digits":
    config = configs.get_config("digits_cnn")
  return config


def train_experiment(dataset, experiment_dir, arch, plan, k):
  """Trains every (ratio, runs) of `plan` K models at a time; resumable."""
  from train import batched  # pylint: disable=g-import-not-at-top
  config = _demo_config(dataset.name, arch)
  for ratio, num_runs in plan:
    started = time.time()
    results = batched.train_heldout_batched(
        dataset, arch, ratio, list(range(num_runs)), experiment_dir, config,
        k=k, progress=True)
    trained = [r for r in results if r.status == "trained"]
    accuracy = [r.accuracy["test"] for r in trained if r.accuracy]
    print("ratio {}: {} runs ({} trained now, {} already finished) in {:.1f}s{}"
          .format(layout.ratio_dirname(ratio), num_runs, len(trained),
                  num_runs - len(trained), time.time() - started,
                  ", mean test accuracy {:.4f}".format(np.mean(accuracy))
                  if accuracy else ""), flush=True)


def print_memorized(estimates, train, show):
  """Prints the most memorized training examples with their counts."""
  mem = estimates.memorization
  keyed = np.where(np.isnan(mem.values), -np.inf, mem.values)
  labels = train.labels_by_id()
  print("{:>6} {:>5} {:>13} {:>5} {:>5}".format("id", "label",
                                                "memorization", "n_in", "n_out"))
  for i in np.lexsort((np.arange(len(keyed)), -keyed))[:show]:
    print("{:>6} {:>5} {:>7.3f}±{:.3f} {:>5} {:>5}".format(
        i, labels[i], mem.values[i], mem.se[i], mem.n_in[i], mem.n_out[i]))


def print_influence_pairs(estimates, train, test, show):
  """Prints the (test, train) pairs with the largest influence."""
  infl = estimates.influence.values
  keyed = np.where(np.isnan(infl), -np.inf, infl).ravel()
  top = np.argsort(-keyed, kind="stable")[:show]
  train_labels = train.labels_by_id()
  test_labels = test.labels_by_id()
  mem = estimates.memorization.values
  print("{:>7} {:>5} {:>8} {:>5} {:>9} {:>12}".format(
      "test id", "label", "train id", "label", "influence", "memorization"))
  for flat in top:
    j, i = np.unravel_index(flat, infl.shape)
    print("{:>7} {:>5} {:>8} {:>5} {:>9.3f} {:>12.3f}".format(
        j, test_labels[j], i, train_labels[i], infl[j, i], mem[i]))


def run_pipeline(output_dir, dataset_name, arch, subset_ratio, runs,
                 cscore_ratios, cscore_runs, k, show, data_dir=None):
  """The demo's default job; returns the paths it wrote, by name."""
  started = time.time()
  experiment_dir = os.path.join(output_dir, "experiment")
  estimates_path = os.path.join(output_dir, "estimates.npz")
  outputs = {}

  _section("Data")
  dataset = data_registry.load_dataset(dataset_name, data_dir=data_dir)
  train, test = dataset.splits["train"], dataset.splits["test"]
  print("{}: {} training and {} test examples, {} classes, images {}".format(
      dataset.name, len(train), len(test), dataset.num_classes,
      "x".join(str(d) for d in train.image_shape)))

  _section("Heldout training ({} at a time)".format(k))
  plan = [(subset_ratio, runs)] + [(r, cscore_runs) for r in cscore_ratios
                                   if r != subset_ratio]
  train_experiment(dataset, experiment_dir, arch, plan, k)
  outputs["experiment (released layout)"] = experiment_dir

  _section("Reloading one run through the released-checkpoint path")
  run_dir = layout.run_dir(experiment_dir, subset_ratio, 0)
  released_run_demo(run_dir, dataset, split="test")

  _section("Estimates")
  args = pipeline.EstimateArgs(experiment_dir=experiment_dir,
                               subset_ratio=subset_ratio, influence="dense")
  estimates = pipeline.compute_estimates(args, progress=True)
  csv_path = pipeline.save_estimates(estimates, estimates_path, args)
  print(estimates.summary())
  outputs["estimates"] = estimates_path
  outputs["per-example scores (CSV)"] = csv_path
  mem = estimates.memorization
  print("memorization: mean {:.4f}, {} examples above 0.5, median standard "
        "error {:.4f}, {} undefined".format(
            np.nanmean(mem.values), int(np.sum(mem.values > 0.5)),
            np.nanmedian(mem.se), int(np.isnan(mem.values).sum())))
  cs = estimates.cscore
  print("C-score over {} ratios: mean {:.4f}, {} examples below 0.5".format(
      len(estimates.ratios), np.nanmean(cs.values),
      int(np.sum(cs.values < 0.5))))

  _section("Most memorized training examples")
  print_memorized(estimates, train, show)
  _section("Strongest influence pairs")
  print_influence_pairs(estimates, train, test, show)

  _section("Figures")
  outputs["influence figure"] = figures.influence_examples_figure(
      os.path.join(output_dir, "influence_examples.png"), train, test,
      influence=estimates.influence.values)
  outputs["memorization histogram"] = figures.memorization_histogram(
      os.path.join(output_dir, "memorization_histogram.png"), mem.values,
      se=mem.se, title="{}, {} runs at ratio {}".format(
          dataset.name, len(estimates.run_ids),
          layout.ratio_dirname(subset_ratio)))
  outputs["most memorized examples"] = figures.most_memorized_figure(
      os.path.join(output_dir, "most_memorized.png"), train, mem.values,
      se=mem.se)

  _section("Done in {:.0f}s; outputs".format(time.time() - started))
  for name, path in outputs.items():
    print("{:>30}: {}".format(name, os.path.abspath(path)))
  print("\nNext: every method (memorization, forgetting, EL2N, GraNd, SSFT, "
        "SAMIS, self-influence, cleanlab) on the same data with 10% of its "
        "labels corrupted: mislabeled detection, pruning, rare subgroups and "
        "agreement side by side:\n  bazel run //heldout:evaluate")
  return outputs


@cli.exit_status
def main(argv):
  cli.check_no_arguments(argv)
  logging.set_verbosity(logging.WARNING)
  if FLAGS.model_dir:
    if not FLAGS.dataset:
      raise ValueError(
          "--model_dir needs the dataset the run was trained on, e.g. "
          "--dataset=cifar10:3.0.2 for the released CIFAR-10 runs")
    dataset = data_registry.load_dataset(
        cli.resolve_dataset_name(FLAGS.dataset),
        data_dir=cli.resolve_path(FLAGS.data_dir))
    released_run_demo(cli.resolve_path(FLAGS.model_dir), dataset,
                      split=FLAGS.split, arch=FLAGS.arch_of_model_dir)
    return 0
  run_pipeline(cli.resolve_path(FLAGS.output_dir),
               cli.resolve_dataset_name(FLAGS.dataset or "digits"), FLAGS.arch,
               FLAGS.subset_ratio, FLAGS.runs,
               [float(r) for r in FLAGS.cscore_ratios], FLAGS.cscore_runs,
               FLAGS.k, FLAGS.show, data_dir=cli.resolve_path(FLAGS.data_dir))
  return 0


if __name__ == "__main__":
  cli.run(main)
