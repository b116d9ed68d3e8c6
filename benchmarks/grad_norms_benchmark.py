r"""Per-example gradient norms of a batch: vectorized (pfor) vs a per-example loop.

  bazel run -c opt //benchmarks:grad_norms_benchmark [-- --mlp_batch_size=128 \
      --inception_batch_size=32 --repeats=3]

For the digits MLP (`train/configs/digits.py`: hidden 256, 8x8x1 inputs) and
SmallInception (CIFAR-10 shape, 32x32x3, 1.6M parameters), both in inference
mode, times (best of `--repeats`, after a compiling warm-up)

  loop:       one compiled GradientTape per example, called batch-size times
              (`heldout.scores.el2n_grand.gradient_norms_loop`);
  vectorized: one call of `heldout.scores.el2n_grand.gradient_norms` (which
              also returns EL2N), per-layer closed forms from one batched
              backward pass (method "layers");
  pfor:       `tf.vectorized_map` of the single-example tape (method "pfor"),
              for reference;
  batch grad: the plain gradient of the batch's summed loss (no per-example
              anything), a floor for any per-example method: where it is
              not much faster than the loop, the loop is compute-bound and
              no vectorization can reach 10x on this CPU;

prints a table with the speed-ups (target >= 10x) and the largest
differences from the loop relative to the largest norm. Random inputs and labels: the
cost does not depend on the values. On the 2-core CPU of this project the
default sizes take about a minute.
"""

import dataclasses
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from heldout.models import registry
from heldout.scores import el2n_grand

_MLP_BATCH_SIZE = flags.DEFINE_integer("mlp_batch_size", 128,
                                       "Batch size for the digits MLP.")
_INCEPTION_BATCH_SIZE = flags.DEFINE_integer(
    "inception_batch_size", 32, "Batch size for SmallInception.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions (best kept).")

# (name, arch, constructor arguments, input shape)
MODELS = (
    ("digits MLP", "mlp", {"hidden_sizes": (256,)}, (8, 8, 1)),
    ("SmallInception", "small_inception", {}, (32, 32, 3)),
)


@dataclasses.dataclass(frozen=True)
class Result:
  """Timings of one model.

  Attributes:
    name: the model's name.
    batch_size: examples per batch.
    num_parameters: trainable parameters.
    loop_seconds: best time of the per-example loop over the batch.
    vectorized_seconds: best time of the vectorized computation.
    pfor_seconds: best time of the pfor computation.
    batch_gradient_seconds: best time of the batch's summed-loss gradient.
    max_relative_difference: max |loop - vectorized| / max |loop|.
    pfor_max_relative_difference: max |loop - pfor| / max |loop|.
  """
  name: str
  batch_size: int
  num_parameters: int
  loop_seconds: float
  vectorized_seconds: float
  pfor_seconds: float
  batch_gradient_seconds: float
  max_relative_difference: float
  pfor_max_relative_difference: float

  @property
  def speedup(self):
    return self.loop_seconds / self.vectorized_seconds


def _best_time(fn, repeats):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def measure(name, arch, arch_kwargs, input_shape, batch_size, repeats=3,
            seed=0) -> Result:
  """Times both ways on one random batch of a freshly built model."""
  tf.random.set_seed(seed)
  model = registry.build_model(arch, 10, **arch_kwargs)
  rng = np.random.default_rng(seed)
  images = rng.random((batch_size,) + tuple(input_shape)).astype(np.float32)
  labels = rng.integers(0, 10, batch_size)
  # One training-mode forward gives batch norm moving statistics (Sonnet's
  # start from the statistics of the building call, here of a zero input).
  model(images, is_training=True)
  # Warm-up: traces and compiles both.
  looped = el2n_grand.gradient_norms_loop(model, images, labels)
  vectorized = el2n_grand.gradient_norms(model, images, labels, "layers")
  pfor = el2n_grand.gradient_norms(model, images, labels, "pfor")
  loop_s = _best_time(
      lambda: el2n_grand.gradient_norms_loop(model, images, labels), repeats)
  vec_s = _best_time(
      lambda: el2n_grand.gradient_norms(model, images, labels, "layers"),
      repeats)
  pfor_s = _best_time(
      lambda: el2n_grand.gradient_norms(model, images, labels, "pfor"), repeats)
  variables = model.trainable_variables

  @tf.function
  def batch_gradient(x, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=y, logits=model(x, is_training=False)))
    return tape.gradient(loss, variables)

  x, y = tf.constant(images), tf.constant(labels, tf.int64)
  batch_gradient(x, y)
  batch_s = _best_time(lambda: [g.numpy() for g in batch_gradient(x, y)],
                       repeats)
  scale = np.max(np.abs(looped))
  diff = float(np.max(np.abs(looped - vectorized)) / scale)
  pfor_diff = float(np.max(np.abs(looped - pfor)) / scale)
  params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
  return Result(name, batch_size, params, loop_s, vec_s, pfor_s, batch_s,
                diff, pfor_diff)


def format_table(results):
  lines = ["{:<16} {:>6} {:>10} {:>9} {:>12} {:>7} {:>8} {:>7} {:>12} {:>7} "
            "{:>9} {:>9}".format("model", "batch", "params", "loop s",
                                 "vectorized s", "ratio", "pfor s", "ratio",
                                 "batch grad s", "ratio", "rel diff",
                                 "pfor diff")]
  for r in results:
    lines.append("{:<16} {:>6d} {:>10,d} {:>9.4f} {:>12.4f} {:>6.1f}x {:>8.4f} "
                 "{:>6.1f}x {:>12.4f} {:>6.1f}x {:>9.1e} {:>9.1e}".format(
                     r.name, r.batch_size, r.num_parameters, r.loop_seconds,
                     r.vectorized_seconds, r.speedup, r.pfor_seconds,
                     r.loop_seconds / r.pfor_seconds, r.batch_gradient_seconds,
                     r.loop_seconds / r.batch_gradient_seconds,
                     r.max_relative_difference,
                     r.pfor_max_relative_difference))
  for r in results:
    lines.append("{}: vectorized is {:.1f}x faster than the per-example loop "
                 "(target >= 10x){}".format(
                     r.name, r.speedup, "" if r.speedup >= 10 else
                     "  BELOW TARGET; the batch's plain gradient, a floor, "
                     "is {:.1f}x".format(
                         r.loop_seconds / r.batch_gradient_seconds)))
  return "\n".join(lines)


def main(argv):
  del argv
  sizes = {"mlp": _MLP_BATCH_SIZE.value,
           "small_inception": _INCEPTION_BATCH_SIZE.value}
  results = []
  for name, arch, kwargs, shape in MODELS:
    results.append(measure(name, arch, kwargs, shape, sizes[arch],
                           repeats=_REPEATS.value))
    print("measured {}".format(name), flush=True)
  print(format_table(results))


if __name__ == "__main__":
  app.run(main)
