"""Restoring a run's model from its checkpoint, checked key by key.

A TF2 object-based checkpoint restores silently into whatever matches: a
module with a misspelt attribute simply keeps its random initialization. So
`restore_run` compares the module's variable keys and shapes with the
checkpoint's before restoring, and refuses, saying what differs, unless every
model variable has its counterpart.
"""

import dataclasses
import os
import re
from typing import Dict, Mapping, Optional, Tuple

import tensorflow as tf

from heldout.errors import CheckpointMismatchError
from heldout.errors import RunNotFoundError
from heldout.models import registry
from heldout.readers import layout

EPOCH_KEY = "epoch" + registry.VARIABLE_SUFFIX
GLOBAL_STEP_KEY = "global_step" + registry.VARIABLE_SUFFIX
_SHOWN = 3  # keys named per kind of difference in error messages


@dataclasses.dataclass(frozen=True)
class RestoredRun:
  """A run's model with its checkpoint restored.

  Attributes:
    model: the module, called as `model(images, is_training)`.
    arch: its name in `heldout.models.ARCHITECTURES`.
    num_classes: number of logits.
    epoch: the checkpoint's `epoch` counter (the number in `ckpt-<epoch>` when
      the checkpoint has no counter).
    global_step: the checkpoint's `global_step` counter, None when absent.
    checkpoint_prefix: path of the checkpoint, without `.index`.
  """
  model: tf.Module
  arch: str
  num_classes: int
  epoch: int
  global_step: Optional[int]
  checkpoint_prefix: str


def read_variable_shapes(checkpoint_prefix: str) -> Dict[str, Tuple[int, ...]]:
  """Every key of a checkpoint with its shape.

  Args:
    checkpoint_prefix: path without `.index` (local or `tf.io.gfile` URL).

  Returns:
    key -> shape tuple, as `tf.train.list_variables` lists them.

  Raises:
    RunNotFoundError: if the checkpoint cannot be read.
  """
  try:
    listed = tf.train.list_variables(checkpoint_prefix)
  except (tf.errors.OpError, ValueError) as e:
    detail = (str(e).strip() or type(e).__name__).splitlines()[0]
    raise RunNotFoundError(
        f"{checkpoint_prefix}: cannot read checkpoint: {detail}") from None
  return {key: tuple(int(d) for d in shape) for key, shape in listed}


def _short(key):
  return key[:-len(registry.VARIABLE_SUFFIX)]


def _first(keys):
  shown = ", ".join(_short(k) for k in keys[:_SHOWN])
  return shown + (", ..." if len(keys) > _SHOWN else "")


def _describe_checkpoint(checkpoint_shapes):
  try:
    arch, num_classes, kwargs = registry.infer_architecture(checkpoint_shapes)
  except CheckpointMismatchError as e:
    return f"it matches no known architecture ({e})"
  args = "".join(f", {k}={v}" for k, v in sorted(kwargs.items()))
  return f"it looks like {arch} (num_classes={num_classes}{args})"


def check_variables_match(module_shapes: Mapping[str, Tuple[int, ...]],
                          checkpoint_shapes: Mapping[str, Tuple[int, ...]],
                          checkpoint_prefix: str, arch: str,
                          num_classes: int) -> None:
  """Raises unless the module's and the checkpoint's model variables agree.

  Args:
    module_shapes: the module's keys -> shapes (`registry.key_manifest`).
    checkpoint_shapes: every key of the checkpoint -> shape (other objects
      than `model/...` variables are ignored).
    checkpoint_prefix: named in the message.
    arch: architecture name of the module, named in the message.
    num_classes: the module's number of logits, named in the message.

  Raises:
    CheckpointMismatchError: naming the first few missing, unexpected and
      shape-mismatched keys with their counts, and the architecture the
      checkpoint looks like.
  """
  stored = registry.model_variable_shapes(checkpoint_shapes)
  missing = sorted(set(module_shapes) - set(stored))
  unexpected = sorted(set(stored) - set(module_shapes))
  reshaped = sorted(k for k in set(module_shapes) & set(stored)
                    if tuple(module_shapes[k]) != tuple(stored[k]))
  if not (missing or unexpected or reshaped):
    return
  parts = []
  if missing:
    parts.append(f"{len(missing)} module variables missing from the "
                 f"checkpoint ({_first(missing)})")
  if unexpected:
    parts.append(f"{len(unexpected)} checkpoint variables the module lacks "
                 f"({_first(unexpected)})")
  if reshaped:
    shown = ", ".join(
        f"{_short(k)}: module {list(module_shapes[k])} vs checkpoint "
        f"{list(stored[k])}" for k in reshaped[:_SHOWN])
    parts.append(f"{len(reshaped)} with different shapes ({shown}"
                 f"{', ...' if len(reshaped) > _SHOWN else ''})")
  raise CheckpointMismatchError(
      f"{checkpoint_prefix} does not fit {arch} (num_classes={num_classes}): "
      f"{'; '.join(parts)}; {_describe_checkpoint(checkpoint_shapes)}")


def _resolve_architecture(checkpoint_shapes, arch, num_classes, arch_kwargs):
  """(arch, num_classes, kwargs): the given ones, the rest inferred."""
  if arch is not None and num_classes is not None:
    return arch, num_classes, dict(arch_kwargs)
  try:
    found_arch, found_classes, found_kwargs = registry.infer_architecture(
        checkpoint_shapes)
  except CheckpointMismatchError as e:
    raise CheckpointMismatchError(
        f"cannot infer {'the architecture' if arch is None else 'num_classes'}"
        f" of the checkpoint: {e}") from None
  if arch is None or arch == found_arch:
    kwargs = dict(found_kwargs, **arch_kwargs)
  else:
    # Another architecture was asked for: its classifier width is still the
    # checkpoint's, and building it lets the key comparison say what differs.
    kwargs = dict(arch_kwargs)
  return (arch or found_arch,
          found_classes if num_classes is None else num_classes, kwargs)


def _epoch_from_prefix(checkpoint_prefix):
  match = re.search(r"-(\d+)$", os.path.basename(checkpoint_prefix))
  return int(match.group(1)) if match else -1


def restore_run(run_dir: str, arch: Optional[str] = None,
                num_classes: Optional[int] = None,
                **arch_kwargs) -> RestoredRun:
  """Builds a run's model and restores its checkpoint into it.

  Finds the single `checkpoints/ckpt-*.index` (no `checkpoint` state file
  needed), infers what is not given from the checkpoint's variables, builds
  the module with a dummy forward pass, compares its keys and shapes with the
  checkpoint's model variables, then restores. Objects other than the model
  and the `epoch` / `global_step` counters (optimizer state) are ignored.

  Args:
    run_dir: a run folder holding `checkpoints/` (local or `tf.io.gfile` URL).
    arch: architecture name (`heldout.models.ARCHITECTURES`); inferred when
      None.
    num_classes: number of logits; inferred when None.
    **arch_kwargs: further constructor arguments; those inferable (e.g.
      `large_inputs`) are inferred when `arch` is None or matches.

  Returns:
    The restored run.

  Raises:
    RunNotFoundError: if the run has no checkpoint, several, or an unreadable
      one (a damaged or truncated index or data shard).
    CheckpointMismatchError: if the module and the checkpoint differ in any
      model variable, or no architecture can be inferred.
    ValueError: if `arch` is unknown.
  """
  prefix = layout.find_checkpoint_prefix(run_dir)
  checkpoint_shapes = read_variable_shapes(prefix)
  arch, num_classes, kwargs = _resolve_architecture(
      checkpoint_shapes, arch, num_classes, arch_kwargs)
  model = registry.build_model(arch, num_classes, **kwargs)
  module_shapes = registry.key_manifest(
      model, registry.infer_input_shape(arch, checkpoint_shapes))
  check_variables_match(module_shapes, checkpoint_shapes, prefix, arch,
                        num_classes)

  counters = {}
  if EPOCH_KEY in checkpoint_shapes:
    counters["epoch"] = tf.Variable(0, dtype=tf.int64, trainable=False)
  if GLOBAL_STEP_KEY in checkpoint_shapes:
    counters["global_step"] = tf.Variable(0, dtype=tf.int64, trainable=False)
  try:
    status = tf.train.Checkpoint(model=model, **counters).read(prefix)
  except (tf.errors.OpError, ValueError, IndexError) as e:
    # A .data-* shard cut short or corrupted: its .index still lists every
    # variable, so this shows only when the values are read.
    detail = (str(e).strip() or type(e).__name__).splitlines()[0]
    detail = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]", "",
                    detail)
    raise RunNotFoundError(
        f"{prefix}: cannot read the checkpoint's values ({detail}); expected "
        f"complete {os.path.basename(prefix)}.data-* shards: the run's files "
        f"are damaged or cut short, download or train it again") from None
  status.expect_partial()
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise CheckpointMismatchError(
        f"{prefix}: not every variable of {arch} was restored: {e}") from None

  epoch = (int(counters["epoch"].numpy()) if "epoch" in counters
           else _epoch_from_prefix(prefix))
  global_step = (int(counters["global_step"].numpy())
                 if "global_step" in counters else None)
  return RestoredRun(model=model, arch=arch, num_classes=num_classes,
                     epoch=epoch, global_step=global_step,
                     checkpoint_prefix=prefix)
