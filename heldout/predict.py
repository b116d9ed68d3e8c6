r"""Logits of a trained run on a file of images.

  bazel run //heldout:predict -- --model_dir=RUN_DIR --images=IN.npz \
      --output=OUT.npz [--arch=small_inception] [--num_classes=10] \
      [--batch_size=200]

RUN_DIR is a run folder (`<experiment>/<ratio>/<run>`, holding
`checkpoints/ckpt-<epoch>.index`). IN.npz holds `images_uint8`
[N, H, W, C] uint8 (scaled by 1/255, as the released models expect) or
`images` [N, H, W, C] float (used as is). OUT.npz gets `logits`
[N, num_classes] float32 and `predictions` [N] int64. The architecture and the
number of classes are read from the checkpoint unless given. A SmallInception
run on 10,000 32x32 images took 84 s (wall, start-up included) on two
shared CPU cores (load average ~6).
"""

import os
import sys

from absl import app
from absl import flags
import tensorflow as tf

from heldout import errors
from heldout.inference import predict_run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Run folder holding checkpoints/.")
flags.DEFINE_string("images", None,
                    "Input .npz with images_uint8 (uint8) or images (float).")
flags.DEFINE_string("output", None, "Output .npz: logits and predictions.")
flags.DEFINE_string("arch", None,
                    "Architecture name; inferred from the checkpoint if unset.")
flags.DEFINE_integer(
    "num_classes", None,
    "Number of classes; inferred from the checkpoint if unset.")
flags.DEFINE_integer("batch_size", 200, "Images per forward pass.")


def _resolve(path):
  """Relative paths are relative to where `bazel run` was invoked."""
  base = os.environ.get("BUILD_WORKING_DIRECTORY")
  if base and "://" not in path and not os.path.isabs(path):
    return os.path.join(base, path)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    predict_run(_resolve(FLAGS.model_dir), _resolve(FLAGS.images),
                _resolve(FLAGS.output), arch=FLAGS.arch,
                num_classes=FLAGS.num_classes, batch_size=FLAGS.batch_size)
  except (errors.HeldoutError, ValueError, IOError, tf.errors.OpError) as e:
    message = " ".join(str(e).split())
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir", "images", "output"])
  app.run(main)
