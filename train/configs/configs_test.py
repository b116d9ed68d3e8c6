"""Tests for train.configs: every config is valid; validation names arguments."""

from absl.testing import absltest
from absl.testing import parameterized

from heldout.models import registry as model_registry
import train
from train import configs
from train.configs import base


class ConfigsTest(parameterized.TestCase):

  def test_all_configs_valid_and_buildable(self):
    for name, config in configs.CONFIGS.items():
      self.assertEqual(config.name, name)
      self.assertIn(config.arch, model_registry.ARCHITECTURES)
      self.assertEqual(config.eval_batch_size, 200)
      self.assertEqual(configs.get_config(name), config)

  def test_package_surface(self):
    self.assertIs(train.get_config, configs.get_config)
    self.assertIs(train.TrainConfig, base.TrainConfig)
    self.assertTrue(callable(train.train_heldout_batched))

  def test_defaults(self):
    for dataset, name in configs.DEFAULT_CONFIGS.items():
      self.assertEqual(configs.get_config(
          configs.default_config_name(dataset)).dataset, dataset)
    with self.assertRaisesRegex(ValueError, "--config"):
      configs.default_config_name("npz:/x.npz")
    with self.assertRaisesRegex(ValueError, "cifar10"):
      configs.get_config("nope")

  def test_resolve_config(self):
    self.assertEqual(configs.resolve_config("digits"),
                     configs.get_config(configs.default_config_name("digits")))
    config = configs.resolve_config("digits", "cifar10_data_diet",
                                    arch="mlp", epochs=4)
    self.assertEqual((config.name, config.arch, config.arch_kwargs,
                      config.epochs), ("cifar10_data_diet", "mlp", {}, 4))
    self.assertLessEqual(config.warmup_epochs, 2)
    same_arch = configs.get_config("cifar10_data_diet")
    self.assertEqual(
        configs.resolve_config("mnist", "cifar10_data_diet",
                               arch=same_arch.arch).arch_kwargs,
        same_arch.arch_kwargs)
    with self.assertRaisesRegex(ValueError, "--config"):
      configs.resolve_config("npz:/x.npz")

  def test_cifar_recipe(self):
    config = configs.get_config("cifar10")
    self.assertEqual(config.arch, "small_inception")
    self.assertTrue(config.augment)
    self.assertEqual(config.momentum, 0.9)

  def test_data_diet_recipe(self):
    for name, dataset, arch in (
        ("cifar10_data_diet", "cifar10:3.0.2", "cifar_resnet18"),
        ("cifar100_data_diet", "cifar100:3.0.2", "cifar_resnet50")):
      config = configs.get_config(name)
      self.assertEqual(config.dataset, dataset)
      self.assertEqual(config.arch, arch)
      self.assertEqual(
          (config.epochs, config.batch_size, config.learning_rate,
           config.momentum, config.nesterov, config.weight_decay),
          (200, 128, 0.1, 0.9, True, 5e-4))
      self.assertEqual(config.lr_schedule, "step")
      self.assertEqual(config.lr_boundaries_epochs, (60, 120, 160))
      self.assertEqual(config.lr_decay, 0.2)
      self.assertTrue(config.augment)
    small = configs.get_config("digits_data_diet")
    self.assertEqual((small.dataset, small.epochs, small.lr_boundaries_epochs),
                     ("digits", 20, (6, 12, 16)))

  def test_ssft_recipe(self):
    for name, dataset in (("cifar10_ssft", "cifar10:3.0.2"),
                          ("cifar100_ssft", "cifar100:3.0.2"),
                          ("mnist_ssft", "mnist"), ("digits_ssft", "digits")):
      config = configs.get_config(name)
      self.assertEqual(config.dataset, dataset)
      self.assertEqual((config.optimizer, config.momentum, config.weight_decay),
                       ("momentum", 0.9, 5e-4))
      # Triangular as SSFT's code: up to the peak at 10% of training (epoch
      # 10 of 100), then down to 0.
      self.assertEqual(config.lr_schedule, "linear")
      self.assertAlmostEqual(config.warmup_epochs, 0.1 * config.epochs)
    cifar = configs.get_config("cifar10_ssft")
    self.assertEqual((cifar.epochs, cifar.batch_size, cifar.learning_rate),
                     (100, 512, 0.1))

  def test_samis_recipe(self):
    for name, dataset in (("cifar10_samis", "cifar10:3.0.2"),
                          ("cifar100_samis", "cifar100:3.0.2")):
      config = configs.get_config(name)
      self.assertEqual(config.dataset, dataset)
      self.assertEqual(
          (config.arch, config.epochs, config.batch_size,
           config.learning_rate, config.lr_schedule, config.augment),
          ("cifar_resnet50", 160, 128, 0.1, "step", True))
    for dataset, name in configs.samis.DEFAULT_CONFIGS.items():
      self.assertEqual(configs.get_config(name).dataset, dataset)
    self.assertEqual(configs.get_config("digits_samis").arch, "mlp")

  def test_step_survives_shorter_epochs(self):
    config = configs.get_config("cifar10_data_diet").replace(epochs=2)
    self.assertEqual(config.lr_boundaries_epochs, (60, 120, 160))

  @parameterized.named_parameters(
      ("epochs", dict(epochs=0), "`epochs`"),
      ("batch", dict(batch_size=-1), "`batch_size`"),
      ("lr", dict(learning_rate=0.0), "`learning_rate`"),
      ("momentum", dict(momentum=1.0), "`momentum`"),
      ("schedule", dict(lr_schedule="multistep"), "`lr_schedule`"),
      ("step_no_boundaries", dict(lr_schedule="step"),
       "`lr_boundaries_epochs`"),
      ("step_unsorted", dict(lr_schedule="step", lr_boundaries_epochs=(5, 3)),
       "`lr_boundaries_epochs`"),
      ("step_zero", dict(lr_schedule="step", lr_boundaries_epochs=(0, 3)),
       "`lr_boundaries_epochs`"),
      ("step_float", dict(lr_schedule="step", lr_boundaries_epochs=(2.5,)),
       "`lr_boundaries_epochs`"),
      ("step_decay", dict(lr_schedule="step", lr_boundaries_epochs=(3,),
                          lr_decay=0.0), "`lr_decay`"),
      ("boundaries_not_step", dict(lr_boundaries_epochs=(3,)),
       "`lr_boundaries_epochs`"),
      ("optimizer", dict(optimizer="adam"), "`optimizer`"),
      ("warmup", dict(warmup_epochs=20.0), "`warmup_epochs`"),
      ("decay", dict(weight_decay=-1.0), "`weight_decay`"),
      ("int", dict(epochs=2.5), "`epochs`"),
  )
  def test_validation(self, change, message):
    with self.assertRaisesRegex(ValueError, message):
      configs.get_config("digits").replace(**change)

  def test_to_json_round_trips_through_json(self):
    import json  # pylint: disable=g-import-not-at-top
    config = configs.get_config("mnist")
    self.assertEqual(json.loads(json.dumps(config.to_json())),
                     config.to_json())
    self.assertIsInstance(config, base.TrainConfig)


if __name__ == "__main__":
  absltest.main()
