"""Tests for heldout.models.registry."""

import os

from absl.testing import parameterized
import tensorflow as tf

from heldout import errors
from heldout.models import registry
from heldout.models import resnet
from heldout.models import testing

SUFFIX = registry.VARIABLE_SUFFIX

# (name, arch, num_classes, kwargs, image shape)
CASES = (
    ("small_inception", "small_inception", 10, {"large_inputs": False},
     (32, 32, 3)),
    ("small_inception_large", "small_inception", 100, {"large_inputs": True},
     (32, 32, 3)),
    ("cifar_resnet18", "cifar_resnet18", 10, {}, (32, 32, 3)),
    ("cifar_resnet50", "cifar_resnet50", 100, {}, (32, 32, 3)),
    ("mlp", "mlp", 10, {"hidden_sizes": (32, 16)}, (8, 8, 1)),
    ("mlp_linear", "mlp", 3, {"hidden_sizes": ()}, (4, 4, 2)),
    ("small_cnn", "small_cnn", 10, {"channels": (32, 64), "hidden": 128},
     (8, 8, 1)),
    ("small_cnn_one_conv", "small_cnn", 2, {"channels": (4,), "hidden": 8},
     (28, 28, 1)),
    # Three stages: 32 -> 4 pixels, so the image side is 4 * 2**3, not 4 * 2*3
    # (with one or two stages 2*n and 2**n coincide).
    ("small_cnn_three_convs", "small_cnn", 5,
     {"channels": (4, 6, 8), "hidden": 16}, (32, 32, 3)),
)


class KeyManifestTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*CASES)
  def test_matches_written_checkpoint(self, arch, num_classes, kwargs,
                                      image_shape):
    model = registry.build_model(arch, num_classes, **kwargs)
    manifest = registry.key_manifest(model, image_shape)
    prefix = testing.write_checkpoint(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"), model)
    listed = testing.listed_variables(prefix)
    self.assertEqual(manifest, registry.model_variable_shapes(listed))
    self.assertEqual(sorted(set(listed) - set(manifest)),
                     ["epoch" + SUFFIX, "global_step" + SUFFIX])

  def test_released_inception_keys(self):
    model = registry.build_model("small_inception", 100)
    expected = testing.released_variables("cifar100-inception")
    self.assertEqual(registry.key_manifest(model, (32, 32, 3)),
                     registry.model_variable_shapes(expected))

  def test_escapes_names_as_checkpoints_do(self):
    module = tf.Module()
    setattr(module, "a.b/c", tf.Variable([1.0, 2.0]))
    prefix = tf.train.Checkpoint(model=module).write(
        os.path.join(self.create_tempdir().full_path, "ckpt-1"))
    self.assertEqual(registry.key_manifest(module),
                     registry.model_variable_shapes(
                         testing.listed_variables(prefix)))
    self.assertEqual(list(registry.key_manifest(module)),
                     ["model/a..b.Sc" + SUFFIX])


class InferArchitectureTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*CASES)
  def test_round_trip(self, arch, num_classes, kwargs, image_shape):
    model = registry.build_model(arch, num_classes, **kwargs)
    manifest = registry.key_manifest(model, image_shape)
    self.assertEqual(registry.infer_architecture(manifest),
                     (arch, num_classes, kwargs))
    # The inferred image shape rebuilds exactly the same variables.
    rebuilt = registry.build_model(arch, num_classes, **kwargs)
    self.assertEqual(
        registry.key_manifest(rebuilt,
                              registry.infer_input_shape(arch, manifest)),
        manifest)

  @parameterized.named_parameters(
      ("cifar10", "cifar10-inception", ("small_inception", 10,
                                        {"large_inputs": False})),
      ("cifar100", "cifar100-inception", ("small_inception", 100,
                                          {"large_inputs": False})),
      ("imagenet", "imagenet-resnet50", ("resnet50", 1000, {})),
  )
  def test_released_listings(self, experiment, expected):
    self.assertEqual(
        registry.infer_architecture(testing.released_variables(experiment)),
        expected)

  def test_input_shapes(self):
    self.assertEqual(registry.infer_input_shape(
        "resnet50", testing.released_variables("imagenet-resnet50")),
                     (224, 224, 3))
    mnist_cnn = registry.key_manifest(registry.build_model("small_cnn", 10),
                                      (28, 28, 1))
    self.assertEqual(registry.infer_input_shape("small_cnn", mnist_cnn),
                     (28, 28, 1))
    deep_cnn = registry.key_manifest(
        registry.build_model("small_cnn", 10, channels=(8, 8, 8, 8)),
        (48, 48, 1))
    self.assertEqual(registry.infer_input_shape("small_cnn", deep_cnn),
                     (48, 48, 1))
    mlp = registry.key_manifest(registry.build_model("mlp", 10), (8, 8, 1))
    self.assertEqual(registry.infer_input_shape("mlp", mlp), (1, 1, 64))
    # Keys of another architecture: the default shape, to build and compare.
    self.assertEqual(registry.infer_input_shape("small_cnn", mlp), (8, 8, 1))
    with self.assertRaisesRegex(ValueError, "`arch` must be one of"):
      registry.infer_input_shape("vgg", mlp)

  def test_ignores_counters_slots_and_optimizer(self):
    shapes = dict(testing.released_variables("cifar10-inception"))
    shapes["model/_pred/w/.OPTIMIZER_SLOT/optimizer/momentum" + SUFFIX] = (9,)
    shapes["optimizer/iter" + SUFFIX] = ()
    shapes["_CHECKPOINTABLE_OBJECT_GRAPH"] = ()
    model_shapes = registry.model_variable_shapes(shapes)
    self.assertLen(model_shapes, 173)
    self.assertTrue(all(k.startswith("model/") for k in model_shapes))
    self.assertEqual(registry.infer_architecture(shapes)[:2],
                     ("small_inception", 10))

  def test_nothing_matches(self):
    with self.assertRaisesRegex(errors.CheckpointMismatchError,
                                "no `model/...` variables"):
      registry.infer_architecture({"epoch" + SUFFIX: ()})
    with self.assertRaisesRegex(errors.CheckpointMismatchError,
                                "match no known architecture.*model/foo/w"):
      registry.infer_architecture({"model/foo/w" + SUFFIX: (3, 4)})

  def test_other_resnets_are_named(self):
    released = testing.released_variables("imagenet-resnet50")
    no_last_group = {k: v for k, v in released.items()
                     if "_block_groups/3/" not in k}
    with self.assertRaisesRegex(errors.CheckpointMismatchError,
                                r"snt.nets.ResNet with blocks per group "
                                r"\[3, 4, 6\]"):
      registry.infer_architecture(no_last_group)
    imagenet_v2 = resnet.ResNetV2(10, (2, 2, 2, 2), bottleneck_block=False)
    with self.assertRaisesRegex(errors.CheckpointMismatchError,
                                r"ResNetV2 .*\[2, 2, 2, 2\].*7x7"):
      registry.infer_architecture(
          registry.key_manifest(imagenet_v2, (64, 64, 3)))

  def test_incomplete_family_is_reported(self):
    shapes = registry.key_manifest(registry.build_model("small_cnn", 10),
                                   (8, 8, 1))
    del shapes["model/_convs/1/b" + SUFFIX]
    with self.assertRaisesRegex(errors.CheckpointMismatchError,
                                "lacks model/_convs/1/b"):
      registry.infer_architecture(shapes)

  def test_build_model_rejects_unknown_arch(self):
    with self.assertRaisesRegex(ValueError, "`arch` must be one of .*'mlp'"):
      registry.build_model("vgg16", 10)


if __name__ == "__main__":
  tf.test.main()
