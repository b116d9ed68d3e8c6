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

  def test_cifar_recipe(self):
    config = configs.get_config("cifar10")
    self.assertEqual(config.arch, "small_inception")
    self.assertTrue(config.augment)
    self.assertEqual(config.momentum, 0.9)

  @parameterized.named_parameters(
      ("epochs", dict(epochs=0), "`epochs`"),
      ("batch", dict(batch_size=-1), "`batch_size`"),
      ("lr", dict(learning_rate=0.0), "`learning_rate`"),
      ("momentum", dict(momentum=1.0), "`momentum`"),
      ("schedule", dict(lr_schedule="step"), "`lr_schedule`"),
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
