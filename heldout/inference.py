"""Running a restored model over images: the library behind //heldout:predict.

`load_images` reads an .npz of images (`images_uint8` scaled by 1/255 as the
released models expect, or float `images`), `predict_logits` runs a module in
inference mode in batches, and `predict_run` restores a run and writes its
logits and predictions atomically.
"""

import io
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from heldout import atomic
from heldout import errors
from heldout.readers import checkpoints

IMAGE_KEYS = ("images_uint8", "images")


def load_images(path):
  """Reads the images of an input file, as the model takes them.

  Args:
    path: an .npz file (local or `tf.io.gfile` URL) with `images_uint8`
      [N, H, W, C] uint8 or `images` [N, H, W, C] float (exactly one of them).

  Returns:
    images: [N, H, W, C] float32; uint8 pixels divided by 255.

  Raises:
    IOError: if the file does not exist.
    ValueError: if it is not an .npz file, lacks both keys or has both, holds
      no image, or the wrong dtype or rank.
  """
  if not tf.io.gfile.exists(path):
    raise IOError(f"{path}: no such file")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  try:
    npz = np.load(io.BytesIO(data))
  except (ValueError, OSError, EOFError) as e:
    raise ValueError(f"{path}: not an .npz file ({e})") from None
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise ValueError(f"{path}: not an .npz file (a single .npy array)")
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
  if key == "images_uint8":
    if images.dtype != np.uint8:
      raise ValueError(f"{path}: expected images_uint8 of dtype uint8, found "
                       f"{images.dtype}")
    return images.astype(np.float32) / np.float32(255.0)
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"{path}: expected images of a float dtype, found "
                     f"{images.dtype}; store uint8 pixels as images_uint8")
  return images.astype(np.float32)


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
  forward = tf.function(
      lambda x: model(x, is_training=False),
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
      raise ValueError(f"images of shape {list(images.shape[1:])} do not fit "
                       f"the model: {detail}") from None
    done = min(first + batch_size, num)
    if num_batches > 1 and ((i + 1) % report_every == 0 or done == num):
      elapsed = time.time() - start
      logging.info("predicted %d/%d images (%.0f images/s, ETA %.0f s)", done,
                   num, done / elapsed, elapsed / done * (num - done))
  return np.concatenate(outputs).astype(np.float32)


def predict_run(model_dir, images_path, output_path, arch=None,
                num_classes=None, batch_size=200):
  """Restores a run, predicts on a file of images, writes the result.

  Args:
    model_dir: run folder with `checkpoints/ckpt-<epoch>.index`.
    images_path: input .npz (see `load_images`).
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
  images = load_images(images_path)
  run = checkpoints.restore_run(model_dir, arch=arch, num_classes=num_classes)
  logging.info("restored %s (%s, num_classes=%d), epoch %d, from %s",
               run.arch, "given" if arch else "inferred", run.num_classes,
               run.epoch, run.checkpoint_prefix)
  logging.info("predicting %d images of shape %s", images.shape[0],
               list(images.shape[1:]))
  logits = predict_logits(run.model, images, batch_size)
  atomic.write_npz(output_path, logits=logits,
                   predictions=np.argmax(logits, axis=1).astype(np.int64))
  logging.info("wrote %s", output_path)
  return run
