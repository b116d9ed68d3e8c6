r"""Heldout training throughput: upstream's way vs ours, on the same runs.

    bazel run -c opt //benchmarks:training_benchmark [-- --num_runs=128 --k=64]
    bazel run -c opt //benchmarks:training_benchmark -- --device=/GPU:0

Trains the same runs (scikit-learn digits, MLP, the `digits` config: same
subsets, initial weights, data orders and hyperparameters) three ways, one
after the other in one process, each writing complete runs (checkpoint +
aux_arrays.npz) into its own folder:
  (a) upstream: one model at a time with a freshly compiled step per run, as
      upstream's JAX MNIST example (`mnist-example/mnist_infl_mem.py`:
      `jit` inside `subset_train`, numpy batches fed step by step, whole-set
      evaluation);
  (b) one at a time reusing one compiled step: `train.heldout_training`
      (what `//train:heldout` does);
  (c) K at a time in one batched computation: `train.batched`
      (`//train:heldout --batched_k=K`).
Prints runs per hour, seconds per run, mean test accuracy, the speed ratios
(c)/(a) and (c)/(b), and the achieved GFLOP/s of the training computation
(2 m n k per matmul, backward ~ 2x forward, so training ~ 3x forward; plus
the forward passes of evaluation) against the float32 matmul rate of this
machine measured with a large `tf.matmul`.
"""

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time
from typing import Dict, Optional, Sequence

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from heldout.data import digits
from heldout.models import registry as model_registry
from train import batched
from train import heldout_training
from train import optim
from train import subsets
from train.configs import digits as digits_configs

VARIANTS = ("a", "b", "c")
_NAMES = {"a": "(a) upstream: compile per run",
          "b": "(b) one at a time, one step",
          "c": "(c) K at a time, batched"}


@dataclasses.dataclass
class VariantResult:
  variant: str
  num_runs: int
  seconds: float
  mean_test_accuracy: float
  flops: float
  output_dir: str

  @property
  def seconds_per_run(self):
    return self.seconds / self.num_runs

  @property
  def runs_per_hour(self):
    return 3600.0 / self.seconds_per_run

  @property
  def gflops_per_second(self):
    return self.flops / self.seconds / 1e9


def measure_matmul_peak(device: Optional[str] = None, n: int = 2048,
                        repeats: int = 10) -> float:
  """float32 GFLOP/s of a large square `tf.matmul` (best of a few tries)."""
  with _device_scope(device):
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function
    def chain(a, b):
      out = a
      for _ in range(repeats):
        out = tf.matmul(out, b) * 1e-3
      return tf.reduce_sum(out)

    chain(a, b).numpy()
    best = math.inf
    for _ in range(3):
      start = time.perf_counter()
      chain(a, b).numpy()
      best = min(best, time.perf_counter() - start)
  return 2.0 * n ** 3 * repeats / best / 1e9


@contextlib.contextmanager
def _device_scope(device):
  if device:
    with tf.device(device):
      yield
  else:
    yield


def flops_per_run(config, dataset, subset_ratio) -> float:
  """Training (3x forward per example seen) + evaluation (forward) FLOPs."""
  module = model_registry.build_model(config.arch, dataset.num_classes,
                                      **config.arch_kwargs)
  module(tf.zeros((1,) + dataset.image_shape), is_training=False)
  forward = batched.train_flops_per_example(config.arch, module,
                                            dataset.image_shape)
  n_subset = subsets.subset_size(len(dataset.train), subset_ratio)
  seen = config.epochs * n_subset
  evaluated = len(dataset.train) + len(dataset.test)
  return 3.0 * forward * seen + forward * evaluated


def train_upstream_style(dataset, config, subset_ratio, run_ids, output_dir):
  """Variant (a): upstream's loop, ported; writes runs like the others.

  Per run, as `subset_train` in upstream's MNIST example: a fresh model and a
  freshly compiled update step (retraced again for the short last batch),
  numpy batches gathered step by step, evaluation of the whole train and
  test sets in one forward pass each. Subsets, initial weights, orders and
  hyperparameters are ours, so the results are comparable.

  Returns:
    Test accuracy per run.
  """
  split = dataset.train
  n_train, n_test = len(split), len(dataset.test)
  accuracies = []
  for run_id in run_ids:
    seed = subsets.run_seed(subset_ratio, run_id)
    subset = subsets.draw_subset(n_train, subset_ratio, run_id)
    positions = split.positions_of(subset)
    n = len(positions)
    steps_per_epoch = math.ceil(n / config.batch_size)
    tf.random.set_seed(subsets.init_seed(seed))
    model = model_registry.build_model(config.arch, dataset.num_classes,
                                       **config.arch_kwargs)
    model(tf.zeros((1,) + dataset.image_shape), is_training=False)
    params = list(model.trainable_variables)
    accumulators = [tf.Variable(tf.zeros_like(p)) for p in params]
    decay = [optim.is_decayed(p) for p in params]
    global_step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def update(images, labels):
      lr = optim.learning_rate(global_step, steps_per_epoch, config)
      with tf.GradientTape() as tape:
        logits = model(images, is_training=True)  # pylint: disable=cell-var-from-loop
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
      grads = tape.gradient(loss, params)  # pylint: disable=cell-var-from-loop
      optim.apply_updates(params, accumulators, grads, lr, config, decay)  # pylint: disable=cell-var-from-loop
      global_step.assign_add(1)  # pylint: disable=cell-var-from-loop

    for epoch in range(config.epochs):
      order = positions[subsets.epoch_order(seed, epoch, n)]
      for i in range(steps_per_epoch):
        idx = order[i * config.batch_size:(i + 1) * config.batch_size]
        update(split.images[idx], split.labels[idx])
    pred_train = np.argmax(model(split.images, is_training=False), -1)
    pred_test = np.argmax(model(dataset.test.images, is_training=False), -1)
    correct_train = pred_train == split.labels
    correct_test = pred_test == dataset.test.labels
    arrays = heldout_training.run_aux_arrays(
        n_train, subset, split.index, correct_train, dataset.test.index,
        correct_test)
    tmp = heldout_training.tmp_run_dir(output_dir, subset_ratio, run_id)
    os.makedirs(tmp, exist_ok=True)
    epoch_var = tf.Variable(config.epochs, dtype=tf.int64)
    heldout_training.publish_run(
        tmp, heldout_training.layout.run_dir(output_dir, subset_ratio, run_id),
        tf.train.Checkpoint(model=model, epoch=epoch_var,
                            global_step=global_step),
        config.epochs, arrays, n_train, n_test)
    accuracies.append(float(correct_test.mean()))
  return accuracies


def run_benchmark(num_runs: int = 128, k: int = 64, subset_ratio: float = 0.7,
                  config=None, variants: Sequence[str] = VARIANTS,
                  device: Optional[str] = None,
                  output_root: Optional[str] = None) -> Dict[str, VariantResult]:
  """Trains runs 0..num_runs-1 with each variant; returns their results.

  Args:
    num_runs: runs per variant (the same ids for all).
    k: models at once for (c).
    subset_ratio: subset ratio of every run.
    config: `TrainConfig` (digits' if None); an MLP or SmallCNN.
    variants: which of "a", "b", "c".
    device: e.g. "/GPU:0" to place the computation there.
    output_root: where each variant writes its runs (a temporary folder,
      removed afterwards, if None).

  Returns:
    variant -> `VariantResult`.
  """
  config = config or digits_configs.CONFIG
  dataset = digits.load_digits()
  run_ids = list(range(num_runs))
  per_run = flops_per_run(config, dataset, subset_ratio)
  root = output_root or tempfile.mkdtemp(prefix="training_benchmark_")
  results = {}
  try:
    for variant in variants:
      out = os.path.join(root, variant)
      if os.path.exists(out):
        shutil.rmtree(out)
      with _device_scope(device):
        start = time.perf_counter()
        if variant == "a":
          heldout_training.check_or_write_arguments(
              out, heldout_training.job_arguments(dataset, config))
          accuracies = train_upstream_style(dataset, config, subset_ratio,
                                            run_ids, out)
        elif variant == "b":
          rs = heldout_training.train_heldout(dataset, config, subset_ratio,
                                              run_ids, out, progress=False)
          accuracies = [r.accuracy["test"] for r in rs]
        elif variant == "c":
          rs = batched.train_heldout_batched(dataset, config.arch,
                                             subset_ratio, run_ids, out,
                                             config, k=k, progress=False)
          accuracies = [r.accuracy["test"] for r in rs]
        else:
          raise ValueError("`variants` must be among {}, got {!r}".format(
              VARIANTS, variant))
        seconds = time.perf_counter() - start
      results[variant] = VariantResult(variant, num_runs, seconds,
                                       float(np.mean(accuracies)),
                                       per_run * num_runs, out)
  finally:
    if output_root is None:
      shutil.rmtree(root, ignore_errors=True)
  return results


def format_table(results: Dict[str, VariantResult], peak_gflops: float,
                 k: int, config) -> str:
  """The printed report."""
  lines = ["heldout training, digits {} ({} epochs, batch {}), {} runs each"
           .format(config.arch, config.epochs, config.batch_size,
                   next(iter(results.values())).num_runs),
           "{:<32} {:>9} {:>10} {:>9} {:>9} {:>7}".format(
               "variant", "s/run", "runs/hour", "test acc", "GFLOP/s",
               "% peak")]
  for variant, r in results.items():
    name = _NAMES[variant] + (" (K={})".format(k) if variant == "c" else "")
    lines.append("{:<32} {:>9.4f} {:>10,.0f} {:>9.4f} {:>9.2f} {:>6.2f}%".format(
        name, r.seconds_per_run, r.runs_per_hour, r.mean_test_accuracy,
        r.gflops_per_second, 100.0 * r.gflops_per_second / peak_gflops))
  if "c" in results:
    for other in ("a", "b"):
      if other in results:
        lines.append("({}) vs ({}): {:.2f}x faster, test accuracy {:+.2f} "
                     "points".format(
                         "c", other, results[other].seconds_per_run /
                         results["c"].seconds_per_run,
                         100 * (results["c"].mean_test_accuracy -
                                results[other].mean_test_accuracy)))
  lines.append("float32 matmul peak (2048x2048 tf.matmul): {:.1f} GFLOP/s"
               .format(peak_gflops))
  return "\n".join(lines)


_NUM_RUNS = flags.DEFINE_integer("num_runs", 128, "Runs per variant.")
_K = flags.DEFINE_integer("k", 64, "Models at once in variant (c).")
_RATIO = flags.DEFINE_float("subset_ratio", 0.7, "Subset ratio.")
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "Variants to run.")
_DEVICE = flags.DEFINE_string("device", None, "e.g. /GPU:0 (default: TF's "
                              "placement, the CPU here).")
_CONFIG = flags.DEFINE_enum("config", "digits", ["digits", "digits_cnn"],
                            "Training recipe.")


def main(argv):
  del argv
  tf.get_logger().setLevel("WARNING")
  config = {"digits": digits_configs.CONFIG,
            "digits_cnn": digits_configs.CNN}[_CONFIG.value]
  peak = measure_matmul_peak(_DEVICE.value)
  results = run_benchmark(_NUM_RUNS.value, _K.value, _RATIO.value, config,
                          _VARIANTS.value, _DEVICE.value)
  print(format_table(results, peak, _K.value, config))


if __name__ == "__main__":
  app.run(main)
