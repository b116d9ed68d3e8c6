r"""Influence functions against heldout ground truth on digits.

  bazel run -c opt //benchmarks:influence_functions_agreement [-- \
      --work_dir=/tmp/if-agreement --runs=1024 --models=3]

1. Trains (or reuses, in --work_dir) a digits heldout experiment: --runs
   MLPs (the digits config: hidden 256, 20 epochs) on random 70% subsets,
   K at a time (`train.batched`), and computes memorization and the dense
   heldout influence (`heldout.estimators.pipeline`);
2. trains --models MLPs of the same recipe on the whole training set
   (ratio 1.0, runs 0..models-1) and computes, for each and each strategy
   (true Fisher, damping "heuristic", measurement CE), the pairwise scores
   of every test example against every training example and the
   self-influence of every training example, averaged over the models;
3. prints, per strategy, the agreement with the ground truth:
   - pairwise: for each test example, Spearman between its row of scores and
     its row of heldout influence across the 1,257 training examples, and
     the overlap of their top-10 training examples, averaged over all 540
     test examples and over the 50 test examples whose heldout influence is
     the strongest (largest max_i influence; most test examples are right
     in every run, so their heldout influence is noise);
   - self-influence vs memorization: Spearman over the training examples,
     and the overlap of the 5% most memorized with the 5% highest
     self-influence;
4. mislabeled detection (`--mislabeled_fraction`, Kronfluence's protocol:
   the first 10% of training ids get a random different class, seed 0):
   --models MLPs trained on the corrupted training set, self-influence of
   every training example per strategy (averaged over the models), and the
   fraction of the corrupted examples among the 10% and 20% highest, with
   the AUROC.
"""

import os
import time

from absl import app
from absl import flags
import numpy as np
from scipy import stats
from sklearn import metrics
import tensorflow as tf

from heldout.data import dataset as dataset_lib
from heldout.data import digits
from heldout.data import label_noise
from heldout.estimators import pipeline
from heldout.influence_functions import arguments
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import influence
from heldout.readers import checkpoints
from heldout.readers import layout
from train import batched
from train import configs

_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/influence-functions-"
                                "agreement", "Experiments (reused).")
_RUNS = flags.DEFINE_integer("runs", 1024, "Heldout runs at ratio 0.7.")
_MODELS = flags.DEFINE_integer("models", 3, "Models trained on all of "
                               "train whose influence functions are averaged.")
_K = flags.DEFINE_integer("k", 64, "Models trained at a time.")
_STRONGEST = flags.DEFINE_integer("strongest", 50, "Test examples with the "
                                  "strongest heldout influence.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Top-k overlap per test example.")
_MISLABELED = flags.DEFINE_float("mislabeled_fraction", 0.1, "Fraction of "
                                 "corrupted training labels (0: skip).")

SUBSET_RATIO = 0.7


def row_agreement(scores, truth, k):
  """Mean over rows of Spearman and of the top-k overlap."""
  rhos, overlaps = [], []
  for row, ref in zip(scores, truth):
    keep = np.isfinite(ref)
    rhos.append(stats.spearmanr(row[keep], ref[keep])[0])
    ids = np.flatnonzero(keep)
    top = set(ids[np.argsort(-row[keep], kind="stable")[:k]])
    top_ref = set(ids[np.argsort(-ref[keep], kind="stable")[:k]])
    overlaps.append(len(top & top_ref) / k)
  return float(np.nanmean(rhos)), float(np.mean(overlaps))


def top_fraction_overlap(a, b, fraction):
  keep = np.isfinite(a) & np.isfinite(b)
  ids = np.flatnonzero(keep)
  k = max(1, int(round(fraction * len(ids))))
  top_a = set(ids[np.argsort(-a[keep], kind="stable")[:k]])
  top_b = set(ids[np.argsort(-b[keep], kind="stable")[:k]])
  return len(top_a & top_b) / k


def main(argv):
  del argv
  tf.get_logger().setLevel("ERROR")
  dataset = digits.load_digits()
  config = configs.get_config("digits")
  heldout_dir = os.path.join(_WORK_DIR.value, "heldout")
  full_dir = os.path.join(_WORK_DIR.value, "full")
  started = time.time()
  batched.train_heldout_batched(dataset, config.arch, SUBSET_RATIO,
                                range(_RUNS.value), heldout_dir, config,
                                k=_K.value)
  batched.train_heldout_batched(dataset, config.arch, 1.0,
                                range(_MODELS.value), full_dir, config,
                                k=_K.value)
  print("training: {:.1f} s".format(time.time() - started))
  estimates = pipeline.compute_estimates(pipeline.EstimateArgs(
      experiment_dir=heldout_dir, subset_ratio=SUBSET_RATIO,
      influence="dense"), progress=False)
  truth = estimates.influence.values.astype(np.float64)  # [test, train]
  memorization = estimates.memorization.values

  train = examples_lib.Examples.from_split(dataset.train, name="digits/train")
  test = examples_lib.Examples.from_split(dataset.test, name="digits/test")
  strongest = np.argsort(-np.nan_to_num(truth, nan=-np.inf).max(axis=1),
                         kind="stable")[:_STRONGEST.value]
  print("ground truth: {} runs at ratio {}, {} test x {} train; {} models on "
        "all of train".format(_RUNS.value, SUBSET_RATIO, truth.shape[0],
                              truth.shape[1], _MODELS.value))
  header = "{:<10}{:>12}{:>12}{:>12}{:>12}{:>12}{:>12}{:>9}".format(
      "strategy", "rho all", "top-{} all".format(_TOP_K.value),
      "rho strong", "top-{} str".format(_TOP_K.value), "self rho",
      "self top5%", "s")
  lines = [header]
  for strategy in arguments.STRATEGIES:
    started = time.time()
    pairwise = np.zeros(truth.shape)
    self_scores = np.zeros(len(train))
    for run_id in range(_MODELS.value):
      run = checkpoints.restore_run(layout.run_dir(full_dir, 1.0, run_id))
      functions = influence.InfluenceFunctions(
          run.model, arguments.FactorArgs(strategy=strategy),
          arguments.ScoreArgs(damping="heuristic"), batch_size=512,
          progress=False)
      functions.fit_factors(train)
      pairwise += functions.pairwise_scores(test, train).values
      self_scores += functions.self_scores(train).values
    seconds = time.time() - started
    rho_all, top_all = row_agreement(pairwise, truth, _TOP_K.value)
    rho_strong, top_strong = row_agreement(pairwise[strongest],
                                           truth[strongest], _TOP_K.value)
    keep = np.isfinite(memorization)
    self_rho = stats.spearmanr(self_scores[keep], memorization[keep])[0]
    self_top = top_fraction_overlap(self_scores, memorization, 0.05)
    lines.append("{:<10}{:>12.3f}{:>12.3f}{:>12.3f}{:>12.3f}{:>12.3f}{:>12.3f}"
                 "{:>9.1f}".format(strategy, rho_all, top_all, rho_strong,
                                   top_strong, self_rho, self_top, seconds))
    print(lines[-1], flush=True)
  print("\n".join(lines))
  if _MISLABELED.value > 0:
    print(mislabeled_detection(dataset, config, _MISLABELED.value))


def self_influence(model, strategy, train):
  functions = influence.InfluenceFunctions(
      model, arguments.FactorArgs(strategy=strategy),
      arguments.ScoreArgs(damping="heuristic"), batch_size=512,
      progress=False)
  functions.fit_factors(train)
  return functions.self_scores(train).values


def mislabeled_detection(dataset, config, fraction):
  """Kronfluence's mislabeled-detection check on digits; a table."""
  noisy_train, corrupted = label_noise.corrupt_labels(
      dataset.train, fraction, dataset.num_classes, seed=0)
  noisy = dataset_lib.Dataset(
      "{}+mislabeled{:g}".format(dataset.name, fraction),
      dataset.num_classes, {"train": noisy_train, "test": dataset.test})
  run_dir = os.path.join(_WORK_DIR.value, "mislabeled")
  batched.train_heldout_batched(noisy, config.arch, 1.0, range(_MODELS.value),
                                run_dir, config, k=_K.value)
  train = examples_lib.Examples.from_split(noisy_train, name=noisy.name)
  is_corrupted = np.isin(train.index, corrupted)
  lines = ["mislabeled detection: {} of {} training labels corrupted, {} "
           "models".format(len(corrupted), len(train), _MODELS.value),
           "{:<10}{:>12}{:>12}{:>10}".format("strategy", "top 10%",
                                             "top 20%", "AUROC")]
  for strategy in arguments.STRATEGIES:
    scores = np.zeros(len(train))
    for run_id in range(_MODELS.value):
      run = checkpoints.restore_run(layout.run_dir(run_dir, 1.0, run_id))
      scores += self_influence(run.model, strategy, train)
    order = np.argsort(-scores, kind="stable")
    found = [is_corrupted[order[:int(round(f * len(train)))]].sum() /
             is_corrupted.sum() for f in (0.1, 0.2)]
    lines.append("{:<10}{:>12.3f}{:>12.3f}{:>10.3f}".format(
        strategy, found[0], found[1],
        metrics.roc_auc_score(is_corrupted, scores)))
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
