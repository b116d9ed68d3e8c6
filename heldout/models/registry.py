"""Architectures by name, and telling them apart from a checkpoint's variables.

A released run stores no architecture name: only variable paths and shapes
(`model/stage1/_body/0/conv1x1/conv/w/.ATTRIBUTES/VARIABLE_VALUE`: [1, 1, 96,
32]). `infer_architecture` reads the name, number of classes and constructor
arguments back from those, and `key_manifest` lists the same keys for a built
module, so the two can be compared before anything is restored.
"""

import collections
import math
import re
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from heldout.errors import CheckpointMismatchError
from heldout.models import inception
from heldout.models import mlp
from heldout.models import resnet
from heldout.models import resnet_sonnet

ARCHITECTURES: Dict[str, Callable[..., tf.Module]] = {
    "small_inception": inception.SmallInception,
    "resnet50": resnet_sonnet.ResNet50,
    "cifar_resnet18": resnet.CifarResNet18,
    "cifar_resnet50": resnet.CifarResNet50,
    "mlp": mlp.MLP,
    "small_cnn": mlp.SmallCNN,
}

MODEL_PREFIX = "model/"
VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# Optimizer slots (TF1 / Keras 2 optimizers) are stored under the path of the
# variable they belong to: `model/<path>/.OPTIMIZER_SLOT/optimizer/...`.
_SLOT_MARKER = "/.OPTIMIZER_SLOT/"

Shape = Tuple[int, ...]


def build_model(arch: str, num_classes: int, **kwargs) -> tf.Module:
  """Constructs architecture `arch` (a key of `ARCHITECTURES`).

  Args:
    arch: architecture name.
    num_classes: number of logits.
    **kwargs: further constructor arguments (e.g. `large_inputs=True`).

  Returns:
    The module, without variables until its first call.

  Raises:
    ValueError: if `arch` is unknown.
  """
  if arch not in ARCHITECTURES:
    raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}, "
                     f"got {arch!r}")
  return ARCHITECTURES[arch](num_classes=num_classes, **kwargs)


def model_variable_shapes(
    checkpoint_shapes: Mapping[str, Sequence[int]]) -> Dict[str, Shape]:
  """Keeps the model's own variables of a checkpoint's key -> shape listing.

  Args:
    checkpoint_shapes: full checkpoint keys (as `tf.train.list_variables`
      gives them) -> shape.

  Returns:
    `model/...` variable keys -> shape tuple, without counters, optimizer
    objects, optimizer slots or the object graph.
  """
  return {key: tuple(int(d) for d in shape)
          for key, shape in checkpoint_shapes.items()
          if key.startswith(MODEL_PREFIX) and key.endswith(VARIABLE_SUFFIX)
          and _SLOT_MARKER not in key}


def _escape(name):
  # As tf.train.Checkpoint escapes attribute names inside a key.
  return name.replace(".", "..").replace("/", ".S")


def key_manifest(model: tf.Module,
                 input_shape: Optional[Sequence[int]] = None,
                 prefix: str = "model") -> Dict[str, Shape]:
  """The variable keys and shapes a checkpoint of `model` holds.

  Walks the object graph breadth first, as `tf.train.Checkpoint` does, so a
  variable reachable by two paths is listed under the one a checkpoint uses.

  Args:
    model: a module, called as `model(images, is_training)`.
    input_shape: (height, width, channels) of one image; when given, the model
      is first called on one zero image with `is_training=False` to create its
      variables (this updates nothing).
    prefix: name of the model in the checkpoint (`tf.train.Checkpoint(model=
      ...)`).

  Returns:
    `"<prefix>/<path>/.ATTRIBUTES/VARIABLE_VALUE"` -> shape tuple, for every
    variable of `model`.
  """
  if input_shape is not None:
    model(tf.zeros([1] + list(input_shape), tf.float32), is_training=False)
  manifest = {}
  seen = {id(model)}
  queue = collections.deque([(model, prefix)])
  while queue:
    obj, path = queue.popleft()
    if isinstance(obj, tf.Variable):
      manifest[path + VARIABLE_SUFFIX] = tuple(obj.shape.as_list())
      continue
    for name, child in tf.train.TrackableView.children(obj).items():
      if id(child) not in seen:
        seen.add(id(child))
        queue.append((child, path + "/" + _escape(name)))
  return manifest


def _relative_paths(variable_shapes):
  """`model/<path>/.ATTRIBUTES/VARIABLE_VALUE` -> `<path>`, model keys only."""
  return {key[len(MODEL_PREFIX):-len(VARIABLE_SUFFIX)]: shape
          for key, shape in model_variable_shapes(variable_shapes).items()}


def _indices(paths, pattern):
  """Sorted distinct integers captured by `pattern` (one group) in `paths`."""
  found = set()
  for path in paths:
    match = re.match(pattern, path)
    if match:
      found.add(int(match.group(1)))
  return sorted(found)


def _blocks_per_group(paths):
  """Number of `_blocks` in each `_block_groups` entry (both ResNet kinds)."""
  return tuple(len(_indices(paths, rf"_block_groups/{g}/_blocks/(\d+)/"))
               for g in _indices(paths, r"_block_groups/(\d+)/"))


def _infer_small_inception(shapes):
  kernel = shapes["conv1/conv/w"][0]
  if kernel not in (3, 7):
    raise CheckpointMismatchError(
        "SmallInception-like checkpoint with a conv1 kernel of "
        f"{shapes['conv1/conv/w']}; expected 3x3 (large_inputs=False) or 7x7")
  return "small_inception", shapes["_pred/b"][0], {"large_inputs": kernel == 7}


def _infer_snt_resnet(shapes):
  counts = _blocks_per_group(shapes)
  bottleneck = "_block_groups/0/_blocks/0/_layers/2/0/w" in shapes
  if counts != (3, 4, 6, 3) or not bottleneck:
    raise CheckpointMismatchError(
        "checkpoint looks like snt.nets.ResNet with blocks per group "
        f"{list(counts)} ({'bottleneck' if bottleneck else 'basic'} blocks), "
        "not ResNet50 ([3, 4, 6, 3] bottleneck)")
  return "resnet50", shapes["_logits/b"][0], {}


def _infer_cifar_resnet(shapes):
  counts = _blocks_per_group(shapes)
  bottleneck = "_block_groups/0/_blocks/0/_conv_2/w" in shapes
  kernel = shapes["_initial_conv/w"][:2]
  known = {((2, 2, 2, 2), False): "cifar_resnet18",
           ((3, 4, 6, 3), True): "cifar_resnet50"}
  arch = known.get((counts, bottleneck))
  if arch is None or kernel != (3, 3):
    block = "bottleneck" if bottleneck else "basic"
    raise CheckpointMismatchError(
        "checkpoint looks like a pre-activation ResNetV2 with blocks per group "
        f"{list(counts)} ({block} blocks) and "
        f"a {kernel[0]}x{kernel[1]} initial conv; known: cifar_resnet18 "
        "([2, 2, 2, 2] basic, 3x3) and cifar_resnet50 ([3, 4, 6, 3] "
        "bottleneck, 3x3)")
  return arch, shapes["_logits/b"][0], {}


def _infer_mlp(shapes):
  layers = _indices(shapes, r"_layers/(\d+)/")
  if layers != list(range(len(layers))) or len(shapes) != 2 * len(layers):
    raise CheckpointMismatchError(
        f"MLP-like checkpoint with layers {layers} and {len(shapes)} "
        "variables; expected _layers/0.._layers/L-1, each with w and b")
  sizes = [shapes[f"_layers/{i}/b"][0] for i in layers]
  return "mlp", sizes[-1], {"hidden_sizes": tuple(sizes[:-1])}


def _infer_small_cnn(shapes):
  convs = _indices(shapes, r"_convs/(\d+)/")
  channels = tuple(shapes[f"_convs/{i}/b"][0] for i in convs)
  return "small_cnn", shapes["_logits/b"][0], {
      "channels": channels, "hidden": shapes["_hidden/b"][0]}


# (variable paths that identify a family, how to read its arguments).
_SIGNATURES = (
    (("conv1/conv/w", "stage1/_body/0/conv1x1/conv/w", "_pred/b"),
     _infer_small_inception),
    (("_initial_conv/w", "_initial_batchnorm/scale",
      "_block_groups/0/_blocks/0/_layers/0/0/w", "_logits/b"),
     _infer_snt_resnet),
    (("_initial_conv/w", "_final_batchnorm/scale",
      "_block_groups/0/_blocks/0/_conv_0/w", "_logits/b"),
     _infer_cifar_resnet),
    (("_convs/0/w", "_hidden/w", "_logits/b"), _infer_small_cnn),
    (("_layers/0/w", "_layers/0/b"), _infer_mlp),
)


def infer_architecture(
    variable_shapes: Mapping[str, Sequence[int]]
) -> Tuple[str, int, Dict[str, Any]]:
  """Reads the architecture back from a checkpoint's variables.

  Only what the variables determine is returned: SmallInception's
  `with_residual` adds no variable and is left at its default (off, as in the
  released runs).

  Args:
    variable_shapes: checkpoint key -> shape, e.g. from
      `tf.train.list_variables`; keys other than `model/...` variables are
      ignored.

  Returns:
    (arch, num_classes, kwargs) such that `build_model(arch, num_classes,
    **kwargs)` rebuilds the module.

  Raises:
    CheckpointMismatchError: if the variables match no known architecture.
  """
  shapes = _relative_paths(variable_shapes)
  if not shapes:
    raise CheckpointMismatchError(
        "checkpoint holds no `model/...` variables; was it written with "
        "tf.train.Checkpoint(model=...)?")
  for required, infer in _SIGNATURES:
    if all(path in shapes for path in required):
      try:
        return infer(shapes)
      except KeyError as e:
        raise CheckpointMismatchError(
            f"checkpoint has the variables {list(required)} of a known "
            f"architecture but lacks {MODEL_PREFIX}{e.args[0]}"
            f"{VARIABLE_SUFFIX}") from None
  sample = ", ".join(MODEL_PREFIX + path for path in sorted(shapes)[:3])
  raise CheckpointMismatchError(
      f"checkpoint variables match no known architecture "
      f"({sorted(ARCHITECTURES)}); {len(shapes)} model variables, first: "
      f"{sample}")


# Image shapes that build each architecture when a checkpoint tells nothing
# better (e.g. its keys belong to another architecture).
_DEFAULT_INPUT_SHAPES = {
    "small_inception": (32, 32, 3),
    "cifar_resnet18": (32, 32, 3),
    "cifar_resnet50": (32, 32, 3),
    "resnet50": (224, 224, 3),
    "mlp": (8, 8, 1),
    "small_cnn": (8, 8, 1),
}


def infer_input_shape(arch: str,
                      variable_shapes: Mapping[str, Sequence[int]]
                      ) -> Tuple[int, int, int]:
  """An image shape that builds `arch` with the checkpoint's variable shapes.

  CIFAR architectures get 32x32, ResNet50 224x224, with the channels of the
  checkpoint's first conv. MLP and SmallCNN store no image size, so one is
  derived from the first (MLP) or hidden (SmallCNN) layer, assuming square
  images; for the MLP only height * width * channels matters, so (1, 1, D) is
  returned. Where the checkpoint lacks the variables needed (it holds another
  architecture), the architecture's default shape is returned, so the module
  can still be built and compared with the checkpoint key by key.

  Args:
    arch: architecture name, e.g. from `infer_architecture`.
    variable_shapes: checkpoint key -> shape.

  Returns:
    (height, width, channels).

  Raises:
    ValueError: if `arch` is unknown.
  """
  if arch not in _DEFAULT_INPUT_SHAPES:
    raise ValueError(f"`arch` must be one of {sorted(ARCHITECTURES)}, "
                     f"got {arch!r}")
  shapes = _relative_paths(variable_shapes)
  height, width, channels = _DEFAULT_INPUT_SHAPES[arch]
  first_conv = {"small_inception": "conv1/conv/w",
                "cifar_resnet18": "_initial_conv/w",
                "cifar_resnet50": "_initial_conv/w",
                "resnet50": "_initial_conv/w",
                "small_cnn": "_convs/0/w"}.get(arch)
  if first_conv in shapes and len(shapes[first_conv]) == 4:
    channels = shapes[first_conv][2]
  if arch == "mlp" and len(shapes.get("_layers/0/w", ())) == 2:
    return (1, 1, shapes["_layers/0/w"][0])
  if arch == "small_cnn":
    num_convs = len(_indices(shapes, r"_convs/(\d+)/"))
    last_bias = shapes.get(f"_convs/{num_convs - 1}/b", ())
    hidden_w = shapes.get("_hidden/w", ())
    if len(last_bias) == 1 and len(hidden_w) == 2:
      side = math.isqrt(hidden_w[0] // last_bias[0])
      if side and side * side * last_bias[0] == hidden_w[0]:
        height = width = side * 2**num_convs
  return (height, width, channels)
