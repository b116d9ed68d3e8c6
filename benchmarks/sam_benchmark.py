r"""Cost of a SAM step against an SGD step: same model, same batch.

    bazel run -c opt //benchmarks:sam_benchmark [-- --repeats=3]

For each model (the digits MLP of the `digits` config at batch 128, and
SmallInception on CIFAR-size inputs at --inception_batch_size), builds a
`train.loop.Trainer` (SGD momentum) and a `train.sam.SAMTrainer` (rho 0.05)
with the same initial weights, and times `--steps` training steps on one
fixed random batch, each trainer's step compiled once and called in a
`tf.range` loop inside one `tf.function` (so per-call Python overhead is not
measured), best of --repeats after a warm-up call, the two trainers timed
alternately (on a shared machine both see the same load). The ratio is of
wall times; the CPU ratio, of this process's CPU time (all its threads),
which other jobs on a shared machine disturb less. SAM does two forward and
backward passes per step, so 2x is the floor; the target is at most 2.2x.
"""

import dataclasses
import time
from typing import List

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from heldout.models import registry as model_registry
from train import sam
from train.configs import base
from train.configs import digits as digits_configs

TARGET_RATIO = 2.2

_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions (best kept).")
_MLP_BATCH = flags.DEFINE_integer("mlp_batch_size", 128, "MLP batch size.")
_MLP_STEPS = flags.DEFINE_integer("mlp_steps", 200, "MLP steps per timing.")
_INCEPTION_BATCH = flags.DEFINE_integer(
    "inception_batch_size", 32, "SmallInception batch size.")
_INCEPTION_STEPS = flags.DEFINE_integer(
    "inception_steps", 3, "SmallInception steps per timing.")


@dataclasses.dataclass(frozen=True)
class StepResult:
  """Seconds per step of both trainers on one model and batch."""
  name: str
  batch_size: int
  num_parameters: int
  sgd_seconds: float
  sam_seconds: float
  sgd_cpu_seconds: float
  sam_cpu_seconds: float

  @property
  def ratio(self) -> float:
    """SAM's wall time per step over SGD's."""
    return self.sam_seconds / self.sgd_seconds

  @property
  def cpu_ratio(self) -> float:
    """The same in CPU time of this process (all its threads)."""
    return self.sam_cpu_seconds / self.sgd_cpu_seconds


def _compiled_steps(trainer, batch):
  """A `tf.function` running `steps` of the trainer's step on `batch`."""
  lr = tf.constant(0.01)

  @tf.function
  def run(steps):
    for _ in tf.range(steps):
      # The trainer's own compiled step, as `Trainer.fit` calls it.
      trainer.strategy.run(trainer._replica_step, args=(batch, lr))  # pylint: disable=protected-access

  run(tf.constant(1))  # trace and warm up
  return run


def _seconds_per_step(trainer, run, steps):
  """(wall seconds, process CPU seconds) per step."""
  started, cpu_started = time.perf_counter(), time.process_time()
  run(tf.constant(steps))
  # Reading a weight waits for the steps to finish.
  trainer.model.trainable_variables[0].numpy()
  return ((time.perf_counter() - started) / steps,
          (time.process_time() - cpu_started) / steps)


def measure(name, arch, arch_kwargs, image_shape, batch_size, steps,
            repeats=3, num_classes=10, config=None) -> StepResult:
  """Times SGD and SAM steps of `arch` on one random batch."""
  config = config or base.TrainConfig(
      name="benchmark", dataset="none", arch=arch, arch_kwargs=arch_kwargs,
      epochs=1, batch_size=batch_size, learning_rate=0.01, weight_decay=5e-4)
  rng = np.random.RandomState(0)
  batch = {
      "index": tf.constant(np.arange(batch_size, dtype=np.int64)),
      "image": tf.constant(rng.rand(batch_size, *image_shape).astype(
          np.float32)),
      "label": tf.constant(rng.randint(0, num_classes, batch_size).astype(
          np.int64)),
  }
  model_fn = lambda: model_registry.build_model(arch, num_classes,  # pylint: disable=g-long-lambda
                                                **arch_kwargs)
  strategy = tf.distribute.get_strategy()
  trainers, runs = {}, {}
  for optimizer in ("sgd", "sam"):
    trainers[optimizer] = sam.make_trainer(optimizer, model_fn, image_shape,
                                           config, strategy=strategy)
    trainers[optimizer].reset(0)
    runs[optimizer] = _compiled_steps(trainers[optimizer], batch)
  num_parameters = sum(int(np.prod(v.shape))
                       for v in trainers["sgd"].model.trainable_variables)
  # Alternated, so that both see the same load on a shared machine.
  seconds = {"sgd": float("inf"), "sam": float("inf")}
  cpu = dict(seconds)
  for _ in range(repeats):
    for optimizer in ("sgd", "sam"):
      wall, used = _seconds_per_step(trainers[optimizer], runs[optimizer],
                                     steps)
      seconds[optimizer] = min(seconds[optimizer], wall)
      cpu[optimizer] = min(cpu[optimizer], used)
  return StepResult(name, batch_size, num_parameters, seconds["sgd"],
                    seconds["sam"], cpu["sgd"], cpu["sam"])


def format_table(results: List[StepResult]) -> str:
  lines = ["{:<16} {:>6} {:>11} {:>12} {:>12} {:>7} {:>10}".format(
      "model", "batch", "params", "SGD s/step", "SAM s/step", "ratio",
      "CPU ratio")]
  for r in results:
    lines.append(
        "{:<16} {:>6d} {:>11,d} {:>12.5f} {:>12.5f} {:>6.2f}x {:>9.2f}x".format(
            r.name, r.batch_size, r.num_parameters, r.sgd_seconds,
            r.sam_seconds, r.ratio, r.cpu_ratio))
  for r in results:
    lines.append("{}: SAM step {:.2f}x the SGD step (floor 2x: two passes; "
                 "target <= {}x): {}".format(
                     r.name, r.ratio, TARGET_RATIO,
                     "met" if r.ratio <= TARGET_RATIO else "NOT met"))
  return "\n".join(lines)


def main(argv):
  del argv
  digits = digits_configs.CONFIG
  results = [
      measure("digits MLP", digits.arch, dict(digits.arch_kwargs), (8, 8, 1),
              _MLP_BATCH.value, _MLP_STEPS.value, _REPEATS.value,
              config=digits.replace(batch_size=_MLP_BATCH.value)),
      measure("SmallInception", "small_inception", {}, (32, 32, 3),
              _INCEPTION_BATCH.value, _INCEPTION_STEPS.value,
              _REPEATS.value),
  ]
  print(format_table(results))


if __name__ == "__main__":
  app.run(main)
