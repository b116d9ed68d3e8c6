"""Running a restored model over images: the library behind //heldout:predict.

`read_images` reads an .npz of images: `images_uint8` (pixels) or `images`
(float, already model inputs). `model_inputs` turns pixels into what an
architecture was trained on (`UINT8_PREPROCESSING`: /255 for the CIFAR and
small models, /255 then ImageNet mean/std normalisation for ResNet50) and
passes float images as they are. `predict_logits` runs a module in inference
mode in batches, and `predict_run` restores a run and writes its logits and
predictions atomically.
"""

import time
from typing import Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from heldout import atomic
from heldout import npz_io
from heldout.readers import checkpoints

IMAGE_KEYS = ("images_uint8", "images")
PIXEL_SCALE = 255.0
# The ImageNet input normalisation of the released ResNet50 runs, applied to
# pixels / 255, per RGB channel (released-format.md, "Data and example
# indices").
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# How each architecture's runs were fed uint8 pixels: pixels / 255, then,
# where (mean, std) is given, (x - mean) / std per channel. Covers every key
# of `heldout.models.registry.ARCHITECTURES`.
UINT8_PREPROCESSING = {
    "small_inception": None,
    "cifar_resnet18": None,
    "cifar_resnet50": None,
    "mlp": None,
    "small_cnn": None,
    "resnet50": (IMAGENET_MEAN, IMAGENET_STD),
}


def read_images(path: str) -> Tuple[str, np.ndarray]:
  """Reads the images of an input file, unchanged.

  Args:
    path: an .npz file (local or `tf.io.gfile` URL) with `images_uint8`
      [N, H, W, C] uint8 or `images` [N, H, W, C] float (exactly one of them).

  Returns:
    (key, images): which of `IMAGE_KEYS` the file holds, and its array
    ([N, H, W, C] uint8, or float as stored).

  Raises:
    IOError: if the file does not exist.
    ValueError: if it is not an .npz file, lacks both keys or has both, holds
      no image, or the wrong dtype or rank.
  """
  try:
    npz = npz_io.load_npz(path)
  except FileNotFoundError:
    raise IOError(f"{path}: no such file") from None
  except (ValueError, OSError, EOFError) as e:
    raise ValueError(f"{path}: not an .npz file ({e})") from None
  with npz:
    present = [k for k in IMAGE_KEYS if k in npz.files]
    if len(present) != 1:
      raise ValueError(f"{path}: expected exactly one of {list(IMAGE_KEYS)}, "
                       f"found keys {sorted(npz.files)}")
    key = present[0]
    images = npz[key]
  if images.ndim != 4 or not images.shape[0]:
    raise ValueError(f"{path}: expected {key} of shape [N, H, W, C] with "
                     f"N > 0, found shape {list(images.shape)}")
  if key == "images_uint8" and images.dtype != np.uint8:
    raise ValueError(f"{path}: expected images_uint8 of dtype uint8, found "
                     f"{images.dtype}")
  if key == "images" and not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"{path}: expected images of a float dtype, found "
                     f"{images.dtype}; store uint8 pixels as images_uint8")
  return key, images


def preprocess_uint8(pixels: np.ndarray, arch: str) -> np.ndarray:
  """Uint8 pixels as architecture `arch` was trained on them.

  Args:
    pixels: [N, H, W, C] uint8.
    arch: architecture name (a key of `UINT8_PREPROCESSING`).

  Returns:
    [N, H, W, C] float32: pixels / 255, normalised per channel with
    `UINT8_PREPROCESSING[arch]` when that is set.

  Raises:
    ValueError: if `arch` is unknown, or normalised images do not have as
      many channels as the mean and std.
  """
  if arch not in UINT8_PREPROCESSING:
    raise ValueError(f"`arch` must be one of {sorted(UINT8_PREPROCESSING)}, "
                     f"got {arch!r}")
  images = pixels.astype(np.float32) / np.float32(PIXEL_SCALE)
  normalisation = UINT8_PREPROCESSING[arch]
  if normalisation is None:
    return images
  mean, std = (np.asarray(v, dtype=np.float32) for v in normalisation)
  if images.shape[-1] != len(mean):
    raise ValueError(f"{arch} normalises {len(mean)} channels (RGB), found "
                     f"images_uint8 with {images.shape[-1]} channels")
  return (images - mean) / std


def model_inputs(key: str, images: np.ndarray, arch: str) -> np.ndarray:
  """The model inputs of images read by `read_images`.

  Args:
    key: "images_uint8" or "images".
    images: [N, H, W, C] uint8 pixels for "images_uint8", float otherwise.
    arch: the architecture that will run on them.

  Returns:
    [N, H, W, C] float32: `preprocess_uint8(images, arch)` for pixels; float
    images as they are (the caller has preprocessed them), cast to float32.

  Raises:
    ValueError: see `preprocess_uint8`; for an unknown `key`.
  """
  if key == "images_uint8":
    return preprocess_uint8(images, arch)
  if key == "images":
    return images.astype(np.float32)
  raise ValueError(f"`key` must be one of {list(IMAGE_KEYS)}, got {key!r}")


def load_images(path: str, arch: str) -> np.ndarray:
  """`read_images` then `model_inputs`: a file's images as `arch` takes them.

  Args:
    path: see `read_images`.
    arch: the architecture that will run on them.

  Returns:
    [N, H, W, C] float32 model inputs.

  Raises:
    IOError, ValueError: see `read_images` and `preprocess_uint8`.
  """
  key, images = read_images(path)
  return model_inputs(key, images, arch)


def predict_logits(model, images, batch_size=200):
  """Runs `model` in inference mode over `images` in batches.

  Args:
    model: a module called as `model(images, is_training)`.
    images: [N, H, W, C] float32, N > 0.
    batch_size: images per forward pass.

  Returns:
    logits: [N, num_classes] float32.

  Raises:
    ValueError: if `batch_size` is not positive or the images do not fit the
      model.
  """
  if batch_size < 1:
    raise ValueError(f"`batch_size` must be positive, got {batch_size}")
  num = images.shape[0]
  # autograph=False: a plain forward pass needs no conversion, and AutoGraph
  # cannot parse a lambda's source (it would warn on every call site).
  forward = tf.function(
      lambda x: model(x, is_training=False), autograph=False,
      input_signature=[tf.TensorSpec((None,) + images.shape[1:], tf.float32)])
  num_batches = -(-num // batch_size)
  report_every = max(1, num_batches // 10)
  outputs = []
  start = time.time()
  for i, first in enumerate(range(0, num, batch_size)):
    try:
      outputs.append(forward(images[first:first + batch_size]).numpy())
    except (tf.errors.InvalidArgumentError, ValueError) as e:
      detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
      detail = detail.split(" for '{{node")[0]  # TF's graph node, noise here.
      raise ValueError(f"images of shape {list(images.shape[1:])} do not fit "
                       f"the model: {detail}") from None
    done = min(first + batch_size, num)
    if num_batches > 1 and ((i + 1) % report_every == 0 or done == num):
      elapsed = time.time() - start
      logging.info("predicted %d/%d images (%.0f images/s, ETA %.0f s)", done,
                   num, done / elapsed, elapsed / done * (num - done))
  return np.concatenate(outputs).astype(np.float32)


def predict_run(model_dir: str, images_path: str, output_path: str,
                arch: Optional[str] = None, num_classes: Optional[int] = None,
                batch_size: int = 200) -> checkpoints.RestoredRun:
  """Restores a run, predicts on a file of images, writes the result.

  Args:
    model_dir: run folder with `checkpoints/ckpt-<epoch>.index`.
    images_path: input .npz (see `read_images`): `images_uint8` are
      preprocessed for the run's architecture (`preprocess_uint8`), float
      `images` are used as they are.
    output_path: output .npz, written atomically: `logits` [N, num_classes]
      float32, `predictions` [N] int64.
    arch: architecture name; inferred from the checkpoint when None.
    num_classes: number of logits; inferred when None.
    batch_size: images per forward pass.

  Returns:
    The `checkpoints.RestoredRun` used.

  Raises:
    errors.HeldoutError, ValueError, IOError: on bad input, with a one-line
      message; nothing is written then.
  """
  if batch_size < 1:
    raise ValueError(f"`batch_size` must be positive, got {batch_size}")
  # The file is checked before the (slower) restore; its pixels can only be
  # preprocessed once the architecture is known.
  key, stored = read_images(images_path)
  run = checkpoints.restore_run(model_dir, arch=arch, num_classes=num_classes)
  images = model_inputs(key, stored, run.arch)
  logging.info("restored %s (%s, num_classes=%d), epoch %d, from %s",
               run.arch, "given" if arch else "inferred", run.num_classes,
               run.epoch, run.checkpoint_prefix)
  logging.info("predicting %d images of shape %s (%s)", images.shape[0],
               list(images.shape[1:]), _describe_inputs(key, run.arch))
  try:
    logits = predict_logits(run.model, images, batch_size)
  except ValueError as e:
    raise ValueError(f"{images_path}: {e} (the {run.arch} of "
                     f"{run.checkpoint_prefix})") from None
  atomic.write_npz(output_path, logits=logits,
                   predictions=np.argmax(logits, axis=1).astype(np.int64))
  logging.info("wrote %s", output_path)
  return run


def _describe_inputs(key, arch):
  if key == "images":
    return "float images used as they are"
  if UINT8_PREPROCESSING.get(arch) is None:
    return "images_uint8 / 255"
  return "images_uint8 / 255, normalised with the ImageNet mean and std"
