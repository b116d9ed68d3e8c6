"""The devices the per-example-gradient passes run on: a tf.distribute strategy.

`make_strategy("auto")` is a `MirroredStrategy` over every GPU when there
are several, else None (TensorFlow's default device: the GPU if there is
one, else the CPU); "cpu" pins the passes to the CPU; "N" takes N replicas:
the first N GPUs if there are that many, else the first N logical CPUs
(tests split the CPU with `tf.config.set_logical_device_configuration`).
Under a strategy each batch is split across the replicas and their results
combined (`passes.compile_step`): sums for the covariance and eigenvalue
statistics, rows concatenated in order for gradients and scores. The
model's variables stay where they were created (restored) and every replica
reads them from there.
"""

from typing import List, Optional

import tensorflow as tf

AUTO = "auto"
CPU = "cpu"


def _names(devices) -> List[str]:
  return [d.name for d in devices]


def make_strategy(devices: str = AUTO) -> Optional[tf.distribute.Strategy]:
  """The strategy for `devices`, chosen from the devices that exist.

  Args:
    devices: "auto", "cpu", or a number of replicas N >= 1 (as a string or
      an int).

  Returns:
    None (the default device, one replica) or a `tf.distribute.Strategy`.

  Raises:
    ValueError: for another value, or N above the devices there are.
  """
  text = str(devices).strip().lower()
  gpus = _names(tf.config.list_logical_devices("GPU"))
  if text == AUTO:
    return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else None
  if text == CPU:
    return tf.distribute.OneDeviceStrategy("/cpu:0")
  try:
    replicas = int(text)
  except ValueError:
    raise ValueError("`devices` must be auto, cpu or a number of replicas, "
                     "got {!r}".format(devices)) from None
  if replicas < 1:
    raise ValueError("`devices` must be auto, cpu or a number of replicas "
                     ">= 1, got {!r}".format(devices))
  if replicas == 1:
    return None
  cpus = _names(tf.config.list_logical_devices("CPU"))
  for names in (gpus, cpus):
    if len(names) >= replicas:
      return tf.distribute.MirroredStrategy(names[:replicas])
  raise ValueError("`devices`={} replicas, but this machine has {} GPU(s) "
                   "and {} logical CPU(s); use auto or at most {}".format(
                       replicas, len(gpus), len(cpus),
                       max(len(gpus), len(cpus))))


def num_replicas(strategy: Optional[tf.distribute.Strategy]) -> int:
  return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def describe(strategy: Optional[tf.distribute.Strategy]) -> str:
  """"1 replica (default device)" or "2 replicas (MirroredStrategy: ...)"."""
  if strategy is None:
    return "1 replica (default device)"
  devices = getattr(strategy.extended, "worker_devices", ())
  return "{} replica{} ({}: {})".format(
      num_replicas(strategy), "" if num_replicas(strategy) == 1 else "s",
      type(strategy).__name__, ", ".join(devices))
