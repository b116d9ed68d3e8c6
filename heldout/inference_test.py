"""Tests for heldout.inference (the library side of //heldout:predict)."""

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout import errors
from heldout import inference as predict
from heldout import tolerance
from heldout.models import registry
from heldout.models import testing
from heldout.readers import layout


class LoadImagesTest(tf.test.TestCase, parameterized.TestCase):

  def _write(self, **arrays):
    path = os.path.join(self.create_tempdir().full_path, "in.npz")
    np.savez(path, **arrays)
    return path

  def test_reads_stored_arrays_unchanged(self):
    pixels = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    key, read = predict.read_images(self._write(images_uint8=pixels,
                                                labels=[1]))
    self.assertEqual(key, "images_uint8")
    self.assertEqual(read.dtype, np.uint8)
    self.assertAllEqual(read, pixels)
    floats = np.random.default_rng(0).normal(size=(3, 4, 4, 1))
    key, read = predict.read_images(self._write(images=floats))
    self.assertEqual(key, "images")
    self.assertAllEqual(read, floats)

  def test_load_images_scales_uint8_floats_as_is(self):
    pixels = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    loaded = predict.load_images(self._write(images_uint8=pixels), "mlp")
    self.assertEqual(loaded.dtype, np.float32)
    self.assertAllEqual(loaded, pixels.astype(np.float32) / 255)
    floats = np.random.default_rng(0).normal(size=(3, 4, 4, 3))
    for arch in ("mlp", "resnet50"):
      loaded = predict.load_images(self._write(images=floats), arch)
      self.assertEqual(loaded.dtype, np.float32)
      self.assertAllEqual(loaded, floats.astype(np.float32))

  @parameterized.named_parameters(
      ("no_key", dict(pixels=np.zeros((1, 2, 2, 1), np.uint8)),
       r"exactly one of \['images_uint8', 'images'\], found keys \['pixels'\]"),
      ("both", dict(images=np.zeros((1, 2, 2, 1), np.float32),
                    images_uint8=np.zeros((1, 2, 2, 1), np.uint8)),
       "exactly one of"),
      ("rank", dict(images=np.zeros((2, 4), np.float32)),
       r"found shape \[2, 4\]"),
      ("empty", dict(images=np.zeros((0, 2, 2, 1), np.float32)), "N > 0"),
      ("uint8_dtype", dict(images_uint8=np.zeros((1, 2, 2, 1), np.int32)),
       "dtype uint8, found int32"),
      ("float_dtype", dict(images=np.zeros((1, 2, 2, 1), np.uint8)),
       "float dtype, found uint8"),
  )
  def test_bad_contents(self, arrays, message):
    with self.assertRaisesRegex(ValueError, message):
      predict.read_images(self._write(**arrays))

  def test_bad_files(self):
    folder = self.create_tempdir().full_path
    with self.assertRaisesRegex(IOError, "no such file"):
      predict.read_images(os.path.join(folder, "missing.npz"))
    junk = os.path.join(folder, "junk.npz")
    with open(junk, "wb") as f:
      f.write(b"junk")
    with self.assertRaisesRegex(ValueError, "not an .npz file"):
      predict.read_images(junk)
    single = os.path.join(folder, "single.npy")
    np.save(single, np.zeros(3))
    with self.assertRaisesRegex(ValueError, "single .npy array"):
      predict.read_images(single)


class PreprocessTest(tf.test.TestCase, parameterized.TestCase):

  def test_every_architecture_has_an_entry(self):
    self.assertCountEqual(predict.UINT8_PREPROCESSING, registry.ARCHITECTURES)

  @parameterized.named_parameters(
      ("small_inception", "small_inception"), ("cifar_resnet18",
                                               "cifar_resnet18"),
      ("cifar_resnet50", "cifar_resnet50"), ("mlp", "mlp"),
      ("small_cnn", "small_cnn"))
  def test_scaled_only(self, arch):
    pixels = np.array([0, 51, 255], np.uint8).reshape(1, 1, 1, 3)
    tolerance.assert_close(predict.preprocess_uint8(pixels, arch),
                           [[[[0.0, 0.2, 1.0]]]], tolerance.ELEMENTWISE)

  def test_resnet50_normalised_hand_computed(self):
    # R 0 -> (0 - .485) / .229; G 255 -> (1 - .456) / .224;
    # B 51 -> (.2 - .406) / .225.
    pixels = np.array([0, 255, 51], np.uint8).reshape(1, 1, 1, 3)
    out = predict.preprocess_uint8(pixels, "resnet50")
    self.assertEqual(out.dtype, np.float32)
    # The literals are rounded to 8 significant digits, below ELEMENTWISE.
    tolerance.assert_close(out, [[[[-2.1179039, 2.4285714, -0.9155556]]]],
                           tolerance.ELEMENTWISE)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, "`arch` must be one of"):
      predict.preprocess_uint8(np.zeros((1, 2, 2, 3), np.uint8), "vgg")
    with self.assertRaisesRegex(ValueError, "3 channels .* found images_uint8 "
                                "with 1 channels"):
      predict.preprocess_uint8(np.zeros((1, 2, 2, 1), np.uint8), "resnet50")
    with self.assertRaisesRegex(ValueError, "`key` must be one of"):
      predict.model_inputs("pixels", np.zeros((1, 2, 2, 1), np.uint8), "mlp")


class PredictLogitsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("uneven", 3), ("one_batch", 50),
                                  ("single", 1))
  def test_matches_one_image_at_a_time(self, batch_size):
    tf.random.set_seed(9)
    model = registry.build_model("small_cnn", 4, channels=(3,), hidden=5)
    images = np.random.default_rng(1).uniform(size=(7, 8, 8, 1)).astype(
        np.float32)
    logits = predict.predict_logits(model, images, batch_size)
    self.assertEqual(logits.shape, (7, 4))
    self.assertEqual(logits.dtype, np.float32)
    # Batches of other sizes may take other kernels (GEMV for one image).
    for i in range(7):
      tolerance.assert_close(logits[i],
                             model(images[i:i + 1], is_training=False)[0],
                             tolerance.FORWARD)

  def test_does_not_update_batch_norm(self):
    model = registry.build_model("small_inception", 3)
    images = np.random.default_rng(2).uniform(size=(4, 32, 32, 3)).astype(
        np.float32)
    predict.predict_logits(model, images, 2)
    before = [v.numpy() for v in model.variables]
    predict.predict_logits(model, images, 2)
    for want, got in zip(before, model.variables):
      self.assertAllEqual(want, got)

  def test_errors(self):
    model = registry.build_model("mlp", 2, hidden_sizes=())
    model(tf.zeros([1, 2, 2, 1]), is_training=False)
    with self.assertRaisesRegex(ValueError, "`batch_size` must be positive"):
      predict.predict_logits(model, np.zeros((1, 2, 2, 1), np.float32), 0)
    with self.assertRaisesRegex(ValueError,
                                r"images of shape \[3, 3, 1\] do not fit"):
      predict.predict_logits(model, np.zeros((2, 3, 3, 1), np.float32), 1)


class PredictRunTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    tf.random.set_seed(10)
    self.root = self.create_tempdir().full_path
    self.run_dir = os.path.join(self.root, "0.5", "3")
    self.model = registry.build_model("mlp", 3, hidden_sizes=(6,))
    self.model(tf.zeros([1, 4, 4, 1]), is_training=False)
    testing.write_checkpoint(layout.checkpoint_prefix(self.run_dir, 9),
                             self.model, epoch=9, global_step=90)
    self.pixels = np.random.default_rng(3).integers(
        0, 256, size=(5, 4, 4, 1), dtype=np.uint8)
    self.images_path = os.path.join(self.root, "in.npz")
    np.savez(self.images_path, images_uint8=self.pixels)

  def test_writes_logits_and_predictions(self):
    output = os.path.join(self.root, "out", "pred.npz")
    run = predict.predict_run(self.run_dir, self.images_path, output,
                              batch_size=2)
    self.assertEqual((run.arch, run.epoch), ("mlp", 9))
    expected = self.model(self.pixels.astype(np.float32) / 255,
                          is_training=False).numpy()
    with np.load(output) as out:
      self.assertEqual(sorted(out.files), ["logits", "predictions"])
      self.assertEqual(out["logits"].dtype, np.float32)
      self.assertEqual(out["predictions"].dtype, np.int64)
      # Batches of 2 against one of all: kernels may differ by batch size.
      tolerance.assert_close(out["logits"], expected, tolerance.FORWARD)
      self.assertAllEqual(out["predictions"], expected.argmax(axis=1))

  def test_no_output_on_error(self):
    output = os.path.join(self.root, "pred.npz")
    with self.assertRaises(errors.CheckpointMismatchError):
      predict.predict_run(self.run_dir, self.images_path, output,
                          arch="small_cnn")
    with self.assertRaises(errors.RunNotFoundError):
      predict.predict_run(self.root, self.images_path, output)
    with self.assertRaisesRegex(ValueError, "do not fit"):
      bad = os.path.join(self.root, "bad.npz")
      np.savez(bad, images=np.zeros((2, 5, 5, 1), np.float32))
      predict.predict_run(self.run_dir, bad, output)
    self.assertEqual(sorted(os.listdir(self.root)),
                     ["0.5", "bad.npz", "in.npz"])


class PredictRunResNet50Test(tf.test.TestCase):

  def test_uint8_normalised_as_imagenet(self):
    tf.random.set_seed(11)
    root = self.create_tempdir().full_path
    run_dir = os.path.join(root, "0.7", "0")
    model = registry.build_model("resnet50", 3)
    model(tf.zeros([1, 16, 16, 3]), is_training=False)
    # Sonnet zero-initializes the logits layer: give it weights, so that the
    # logits depend on the input.
    rng = np.random.default_rng(4)
    for var in model._logits.variables:  # pylint: disable=protected-access
      var.assign(rng.normal(size=var.shape).astype(np.float32))
    testing.write_checkpoint(layout.checkpoint_prefix(run_dir, 90), model,
                             epoch=90)
    pixels = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    images_path = os.path.join(root, "in.npz")
    np.savez(images_path, images_uint8=pixels)
    output = os.path.join(root, "out.npz")

    run = predict.predict_run(run_dir, images_path, output, batch_size=2)

    self.assertEqual((run.arch, run.num_classes), ("resnet50", 3))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    normalised = (pixels.astype(np.float32) / 255 - mean) / std
    expected = model(normalised, is_training=False).numpy()
    scaled_only = model(pixels.astype(np.float32) / 255,
                        is_training=False).numpy()
    with np.load(output) as out:
      logits = out["logits"]
    tolerance.assert_close(logits, expected, tolerance.FORWARD)
    # The check can fail: plain / 255 gives other logits.
    self.assertGreater(np.abs(scaled_only - expected).max(),
                       0.1 * np.abs(expected).max())


if __name__ == "__main__":
  tf.test.main()
