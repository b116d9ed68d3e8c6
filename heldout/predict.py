r"""Logits of a trained run on a file of images.

  bazel run //heldout:predict -- --model_dir=RUN_DIR --images=IN.npz \
      --output=OUT.npz [--arch=small_inception] [--num_classes=10] \
      [--batch_size=200]

RUN_DIR is a run folder (`<experiment>/<ratio>/<run>`, holding
`checkpoints/ckpt-<epoch>.index`). IN.npz holds either

- `images_uint8` [N, H, W, C] uint8 pixels, preprocessed as the run's
  architecture was trained: / 255 for SmallInception, the CIFAR ResNets, the
  MLP and the small CNN; / 255 then normalised with the ImageNet mean
  (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) for ResNet50. Cropping
  and resizing are the caller's: for the released ImageNet ResNet50 runs,
  store 224x224 RGB center crops (crop side 224/256 of the short side,
  resized to 224, as their evaluation did); for CIFAR, the 32x32 images; or
- `images` [N, H, W, C] float: model inputs, used as they are (already
  scaled and normalised by the caller).

OUT.npz gets `logits` [N, num_classes] float32 and `predictions` [N] int64.
The architecture and the number of classes are read from the checkpoint
unless given. Relative paths are taken from the directory `bazel run` was
started in; an error prints one line `error: ...` and writes nothing. A
SmallInception run on 10,000 32x32 images took 84 s (wall, start-up
included) on two shared CPU cores (load average ~6).
"""

from absl import flags

from heldout import cli
from heldout.inference import predict_run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Run folder holding checkpoints/.")
flags.DEFINE_string(
    "images", None, "Input .npz with images_uint8 (uint8 pixels, "
    "preprocessed for the architecture) or images (float, used as is).")
flags.DEFINE_string("output", None, "Output .npz: logits and predictions.")
flags.DEFINE_string("arch", None,
                    "Architecture name; inferred from the checkpoint if unset.")
flags.DEFINE_integer(
    "num_classes", None,
    "Number of classes; inferred from the checkpoint if unset.")
flags.DEFINE_integer("batch_size", 200, "Images per forward pass.")


def main(argv):
  cli.check_no_arguments(argv)
  cli.require_flags(model_dir=FLAGS.model_dir, images=FLAGS.images,
                    output=FLAGS.output)
  predict_run(cli.resolve_path(FLAGS.model_dir),
              cli.resolve_path(FLAGS.images), cli.resolve_path(FLAGS.output),
              arch=FLAGS.arch, num_classes=FLAGS.num_classes,
              batch_size=FLAGS.batch_size)


if __name__ == "__main__":
  cli.run(main)
