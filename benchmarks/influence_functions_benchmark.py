r"""Influence functions: time of each stage, and agreement with the exact inverse.

  bazel run -c opt //benchmarks:influence_functions_benchmark [-- \
      --queries=100 --train=500 --inception_train=256 --inception_queries=8]

1. Digits MLP 64-32-10 (`mlp`, hidden (32,), 8x8x1 inputs; a few full-batch
   steps on the digits training set so that it predicts something): each
   strategy's stages, timed from a fresh `InfluenceFunctions` (tracing
   included, TensorFlow already imported): covariances, eigendecomposition
   and lambda fitted on all 1,257 training examples, then the preconditioned
   gradients of `--queries` test examples and their pairwise scores against
   the first `--train` training examples. The target is EKFAC factors plus
   the 100x500 pairwise scores in under 1.5 s (Kronfluence 1.0.1 on this
   CPU: 0.91 s + 0.58 s).
2. The exact reference on the same model: the true Fisher of all training
   examples, F = mean_n sum_c p(c|x_n) vec(g_nc) vec(g_nc)^T over the
   2,410 parameters of the tracked layers (expectation over the model's
   labels taken exactly, not sampled), damped by 0.1 x its mean eigenvalue
   (the heuristic's rule, on the whole matrix), and the scores
   vec(g_q)^T (F + damping I)^-1 vec(g_n) by a Cholesky solve. Each
   strategy's scores (damping "heuristic") are compared with it: Spearman
   and Pearson over all query x train pairs, and the mean over queries of
   the overlap of their top-10 training examples.
3. SmallInception (1.9M parameters in 20 tracked layers) on CIFAR-shaped
   random images (32x32x3): each stage's time for EKFAC, factors on
   `--inception_train` examples, `--inception_queries` queries against them.
4. Memory of pairwise scores with the queries whole or in chunks: EKFAC
   factors of SmallInception on `--memory_train` random images, then the
   dense scores of `--memory_queries` queries against them with
   `query_batch_size` = all queries (one chunk: every preconditioned
   gradient held at once, 7.6 MB a query), `--memory_query_batch_size` and
   the default (`--query_memory_mb` worth), each in a fresh process
   (`multiprocessing` spawn): the peak resident memory of the process
   (`resource.getrusage` ru_maxrss, which the factors' stages also count),
   its resident memory before the pairwise stage and the time of it; and
   the largest difference of each chunking's scores from the whole's.
"""

import dataclasses
import multiprocessing
import os
import resource
import time
from typing import Dict, List, Optional

from absl import app
from absl import flags
import numpy as np
from scipy import stats
import tensorflow as tf

from heldout.data import digits
from heldout.influence_functions import arguments
from heldout.influence_functions import compute_scores
from heldout.influence_functions import eigendecompose as eigen_lib
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import fit_covariances as covariances_lib
from heldout.influence_functions import fit_lambda as lambda_lib
from heldout.influence_functions import influence
from heldout.influence_functions import precondition as precondition_lib
from heldout.influence_functions import tracked_modules
from heldout.models import registry

_QUERIES = flags.DEFINE_integer("queries", 100, "Digits query examples.")
_TRAIN = flags.DEFINE_integer("train", 500, "Digits training examples scored.")
_INCEPTION_TRAIN = flags.DEFINE_integer(
    "inception_train", 256, "SmallInception examples (0: skip it).")
_INCEPTION_QUERIES = flags.DEFINE_integer("inception_queries", 8,
                                          "SmallInception queries.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 512, "Examples per batch "
                                   "(digits).")
_MEMORY_QUERIES = flags.DEFINE_integer(
    "memory_queries", 200, "SmallInception queries of the memory comparison "
    "(0: skip it).")
_MEMORY_TRAIN = flags.DEFINE_integer(
    "memory_train", 64, "SmallInception training examples of the memory "
    "comparison.")
_MEMORY_QUERY_BATCH_SIZE = flags.DEFINE_integer(
    "memory_query_batch_size", 25, "The chunked run's query_batch_size.")

STAGES = ("covariances", "eigendecomposition", "lambda",
          "precondition queries", "pairwise scores")
TOP_K = 10


@dataclasses.dataclass
class StageTimes:
  """Seconds per stage of one strategy on one model."""
  model: str
  strategy: str
  seconds: Dict[str, float]
  cpu_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def factors(self) -> float:
    return sum(self.seconds.get(s, 0.0) for s in STAGES[:3])

  @property
  def pairwise(self) -> float:
    return sum(self.seconds.get(s, 0.0) for s in STAGES[3:])


@dataclasses.dataclass
class Agreement:
  """One strategy's scores against the exact damped Fisher inverse."""
  strategy: str
  spearman: float
  pearson: float
  top_k_overlap: float


def _timed_stages(functions: influence.InfluenceFunctions, fit, queries, train,
                  batch_size):
  """Runs every stage of `functions` once, timing each; returns times, scores."""
  times = {}
  cpu_times = {}
  original = {}

  def timing(module, name, stage):
    fn = getattr(module, name)
    original[(module, name)] = fn

    def wrapped(*args, **kwargs):
      start = time.perf_counter()
      cpu_start = time.process_time()
      out = fn(*args, **kwargs)
      times[stage] = times.get(stage, 0.0) + time.perf_counter() - start
      cpu_times[stage] = (cpu_times.get(stage, 0.0) + time.process_time() -
                          cpu_start)
      return out
    setattr(module, name, wrapped)

  timing(covariances_lib, "fit_covariances", "covariances")
  timing(eigen_lib, "eigendecompose", "eigendecomposition")
  timing(lambda_lib, "fit_lambda", "lambda")
  timing(lambda_lib, "kfac_lambda", "lambda")
  timing(precondition_lib, "precondition_queries", "precondition queries")
  timing(compute_scores, "compute_pairwise_scores", "pairwise scores")
  try:
    functions.fit_factors(fit)
    scores = functions.pairwise_scores(queries, train)
  finally:
    for (module, name), fn in original.items():
      setattr(module, name, fn)
  # The queries are preconditioned chunk by chunk inside the pairwise stage.
  for seconds in (times, cpu_times):
    seconds["pairwise scores"] -= seconds["precondition queries"]
  del batch_size
  return times, cpu_times, scores


def digits_model(hidden=(32,), steps=50, learning_rate=0.5, seed=0):
  """The digits MLP after `steps` full-batch SGD steps, and the dataset."""
  tf.random.set_seed(seed)
  dataset = digits.load_digits()
  model = registry.build_model("mlp", dataset.num_classes,
                               hidden_sizes=tuple(hidden))
  images = tf.constant(dataset.train.images)
  labels = tf.constant(dataset.train.labels)
  model(images[:1], is_training=False)

  @tf.function(autograph=False)
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=model(images, is_training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    for v, g in zip(model.trainable_variables, grads):
      v.assign_sub(learning_rate * g)
  for _ in range(steps):
    step()
  return model, dataset


def _flat_gradients(model, tracked, examples, labels=None):
  """[n, P] float64 per-example gradients of the CE, blocks flattened."""
  labels = examples.labels if labels is None else labels
  a, s, _ = tracked_modules.layer_rows(
      model, tracked, tf.constant(examples.images), tf.constant(labels),
      dtype=tf.float64)
  return np.concatenate([
      tracked_modules.per_example_gradients(x, d).numpy().reshape(
          len(labels), -1) for x, d in zip(a, s[0])], axis=1)


def exact_scores(model, tracked, fit, queries, train):
  """Scores with the exact true Fisher of `fit`, damped (0.1 x mean eigenvalue)."""
  logits = model(tf.constant(fit.images), is_training=False)
  probs = tf.nn.softmax(tf.cast(logits, tf.float64)).numpy()
  num_params = sum(t.d_out * t.d_in for t in tracked)
  fisher = np.zeros((num_params, num_params))
  for c in range(probs.shape[1]):
    g = _flat_gradients(model, tracked, fit,
                        np.full(len(fit), c, np.int64))
    fisher += (g * probs[:, c:c + 1]).T @ g
  fisher /= len(fit)
  damping = 0.1 * np.trace(fisher) / num_params
  factor = np.linalg.cholesky(fisher + damping * np.eye(num_params))
  q = _flat_gradients(model, tracked, queries)
  t = _flat_gradients(model, tracked, train)
  solved = np.linalg.solve(factor.T, np.linalg.solve(factor, q.T))
  return solved.T @ t.T, num_params


def agreement(strategy, values, exact, k=TOP_K) -> Agreement:
  """Spearman and Pearson over all pairs; mean top-k overlap per query."""
  overlaps = []
  for row, ref in zip(values, exact):
    top = set(np.argsort(-row, kind="stable")[:k])
    top_ref = set(np.argsort(-ref, kind="stable")[:k])
    overlaps.append(len(top & top_ref) / k)
  return Agreement(strategy,
                   float(stats.spearmanr(values.ravel(), exact.ravel())[0]),
                   float(stats.pearsonr(values.ravel(), exact.ravel())[0]),
                   float(np.mean(overlaps)))


def run_digits(num_queries, num_train, batch_size, hidden=(32,)):
  """Stage times of every strategy and their agreement with the exact inverse."""
  model, dataset = digits_model(hidden)
  fit = examples_lib.Examples.from_split(dataset.train, name="digits/train")
  queries = examples_lib.Examples.from_split(
      dataset.test, np.arange(num_queries), name="digits/test")
  train = examples_lib.Examples.from_split(
      dataset.train, np.arange(num_train), name="digits/train[:n]")
  times: List[StageTimes] = []
  scores = {}
  for strategy in arguments.STRATEGIES:
    functions = influence.InfluenceFunctions(
        model, arguments.FactorArgs(strategy=strategy),
        arguments.ScoreArgs(damping="heuristic"), batch_size=batch_size,
        progress=False)
    seconds, cpu, pairwise = _timed_stages(functions, fit, queries, train,
                                           batch_size)
    times.append(StageTimes("digits MLP", strategy, seconds, cpu))
    scores[strategy] = pairwise.values.astype(np.float64)
  start = time.perf_counter()
  exact, num_params = exact_scores(model, functions.tracked, fit, queries,
                                   train)
  exact_seconds = time.perf_counter() - start
  agreements = [agreement(s, scores[s], exact) for s in arguments.STRATEGIES]
  return times, agreements, exact_seconds, num_params


def run_inception(num_train, num_queries, batch_size=32, seed=0):
  """EKFAC stage times of SmallInception on random CIFAR-shaped images."""
  tf.random.set_seed(seed)
  rng = np.random.default_rng(seed)
  model = registry.build_model("small_inception", 10)
  # Built on images, not zeros: Sonnet's batch norm takes its first moving
  # statistics from the first call, and a variance of 0 would blow up.
  model(tf.constant(rng.uniform(size=(64, 32, 32, 3)), tf.float32),
        is_training=True)
  fit = examples_lib.Examples(
      rng.uniform(size=(num_train, 32, 32, 3)).astype(np.float32),
      rng.integers(0, 10, num_train), np.arange(num_train), "random")
  queries = examples_lib.Examples(
      rng.uniform(size=(num_queries, 32, 32, 3)).astype(np.float32),
      rng.integers(0, 10, num_queries), np.arange(num_queries), "random q")
  functions = influence.InfluenceFunctions(
      model, arguments.FactorArgs(strategy="ekfac"),
      arguments.ScoreArgs(damping="heuristic"), batch_size=batch_size,
      progress=False)
  seconds, cpu, scores = _timed_stages(functions, fit, queries, fit,
                                       batch_size)
  if not np.isfinite(scores.values).all():
    raise ValueError("SmallInception: non-finite pairwise scores")
  return StageTimes("SmallInception", "ekfac", seconds, cpu)


def _resident_mb() -> float:
  """The process's resident memory now, MB (Linux /proc)."""
  with open("/proc/self/statm") as f:
    pages = int(f.read().split()[1])
  return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def pairwise_memory(arch: str, num_train: int, num_queries: int,
                    query_batch_size: Optional[int], batch_size: int = 32,
                    seed: int = 0) -> dict:
  """EKFAC pairwise scores of random images; memory and time of the process.

  Meant to run in a fresh process (`pairwise_memory_in_subprocess`): the
  peak is the process's.

  Args:
    arch: "small_inception" (32x32x3 images) or "mlp" (8x8x1, hidden 4,
      for tests).
    num_train: examples the factors are fitted on and scored.
    num_queries: queries.
    query_batch_size: the chunk size, None for the default.
    batch_size: examples per batch.
    seed: of the model and the images.

  Returns:
    dict: query_batch_size (resolved), chunks, seconds (pairwise stage),
    rss_before_mb, peak_mb, values ([Q, N] float32 scores).
  """
  tf.get_logger().setLevel("ERROR")
  tf.random.set_seed(seed)
  rng = np.random.default_rng(seed)
  if arch == "mlp":
    model = registry.build_model("mlp", 10, hidden_sizes=(4,))
    shape = (8, 8, 1)
  else:
    model = registry.build_model(arch, 10)
    shape = (32, 32, 3)
  model(tf.constant(rng.uniform(size=(64,) + shape), tf.float32),
        is_training=True)

  def examples(n, name):
    return examples_lib.Examples(
        rng.uniform(size=(n,) + shape).astype(np.float32),
        rng.integers(0, 10, n), np.arange(n), name)
  train = examples(num_train, "random")
  queries = examples(num_queries, "random q")
  functions = influence.InfluenceFunctions(
      model, arguments.FactorArgs(strategy="ekfac"),
      arguments.ScoreArgs(damping="heuristic"), batch_size=batch_size,
      progress=False, query_batch_size=query_batch_size)
  functions.fit_factors(train)
  rss_before = _resident_mb()
  start = time.perf_counter()
  scores = functions.pairwise_scores(queries, train)
  seconds = time.perf_counter() - start
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  return dict(query_batch_size=functions.query_batch_size,
              chunks=len(influence.query_chunks(
                  num_queries, functions.query_batch_size)),
              seconds=seconds, rss_before_mb=rss_before, peak_mb=peak,
              values=scores.values)


def pairwise_memory_in_subprocess(*args, **kwargs) -> dict:
  """`pairwise_memory` in a fresh (spawned) process."""
  with multiprocessing.get_context("spawn").Pool(1) as pool:
    return pool.apply(pairwise_memory, args, kwargs)


def format_memory_table(runs: List[dict], num_queries: int,
                        num_train: int) -> str:
  """Peak memory and time of each chunking, ratios to the whole (first)."""
  whole = runs[0]
  lines = ["SmallInception EKFAC dense pairwise scores, {} queries x {} "
           "train:".format(num_queries, num_train),
           "{:>17}{:>8}{:>12}{:>15}{:>13}{:>12}{:>12}{:>15}".format(
               "query_batch_size", "chunks", "peak MB", "before MB",
               "peak ratio", "pairwise s", "time ratio", "max |diff|")]
  scale = float(np.abs(whole["values"]).max())
  for run in runs:
    diff = float(np.abs(run["values"].astype(np.float64) -
                        whole["values"]).max())
    lines.append(
        "{:>17}{:>8}{:>12.0f}{:>15.0f}{:>13.2f}{:>12.2f}{:>12.2f}{:>15}"
        .format(run["query_batch_size"], run["chunks"], run["peak_mb"],
                run["rss_before_mb"], run["peak_mb"] / whole["peak_mb"],
                run["seconds"], run["seconds"] / whole["seconds"],
                "{:.1e} x max".format(diff / scale)))
  return "\n".join(lines)


def format_table(times: List[StageTimes], agreements: List[Agreement],
                 exact_seconds: Optional[float] = None,
                 num_params: Optional[int] = None,
                 num_queries: int = 0, num_train: int = 0) -> str:
  """The stage-time table, the EKFAC target line and the agreement table."""
  lines = ["{:<15} {:<9}".format("model", "strategy") + "".join(
      "{:>13}".format(s.split()[0][:12]) for s in STAGES) +
           "{:>10}{:>10}{:>10}{:>10}".format("factors", "pairwise", "total",
                                             "total CPU")]
  for t in times:
    lines.append("{:<15} {:<9}".format(t.model, t.strategy) + "".join(
        "{:>13}".format("{:.3f}".format(t.seconds[s]) if s in t.seconds
                        else "-") for s in STAGES) +
                 "{:>10.3f}{:>10.3f}{:>10.3f}{:>10.3f}".format(
                     t.factors, t.pairwise, t.factors + t.pairwise,
                     sum(t.cpu_seconds.values())))
  for t in times:
    if t.model == "digits MLP" and t.strategy == "ekfac":
      lines.append("digits MLP EKFAC factors + {}x{} pairwise: {:.3f} s wall, "
                   "{:.3f} s CPU (target < 1.5 s; Kronfluence 1.0.1 here: "
                   "0.91 + 0.58 s)".format(
                       num_queries, num_train, t.factors + t.pairwise,
                       sum(t.cpu_seconds.values())))
  lines.append("load average (1 min) at the end: {:.2f} on {} CPUs".format(
      os.getloadavg()[0], os.cpu_count()))
  if agreements:
    lines.append("")
    lines.append("against the exact damped true-Fisher inverse ({} parameters"
                 "{}):".format(num_params, "" if exact_seconds is None else
                               ", built and solved in {:.2f} s".format(
                                   exact_seconds)))
    lines.append("{:<10}{:>10}{:>10}{:>16}".format(
        "strategy", "Spearman", "Pearson", "top-{} overlap".format(TOP_K)))
    for a in agreements:
      lines.append("{:<10}{:>10.3f}{:>10.3f}{:>16.3f}".format(
          a.strategy, a.spearman, a.pearson, a.top_k_overlap))
  return "\n".join(lines)


def main(argv):
  del argv
  tf.get_logger().setLevel("ERROR")
  times, agreements, exact_seconds, num_params = run_digits(
      _QUERIES.value, _TRAIN.value, _BATCH_SIZE.value)
  if _INCEPTION_TRAIN.value:
    times.append(run_inception(_INCEPTION_TRAIN.value,
                               _INCEPTION_QUERIES.value))
  print(format_table(times, agreements, exact_seconds, num_params,
                     _QUERIES.value, _TRAIN.value))
  if _MEMORY_QUERIES.value:
    runs = [pairwise_memory_in_subprocess(
        "small_inception", _MEMORY_TRAIN.value, _MEMORY_QUERIES.value, size)
            for size in (_MEMORY_QUERIES.value,
                         _MEMORY_QUERY_BATCH_SIZE.value, None)]
    print()
    print(format_memory_table(runs, _MEMORY_QUERIES.value,
                              _MEMORY_TRAIN.value))


if __name__ == "__main__":
  app.run(main)
