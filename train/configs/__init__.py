"""Heldout training recipes by name (`get_config("cifar10")`)."""

from train.configs import base
from train.configs import cifar10
from train.configs import cifar100
from train.configs import data_diet
from train.configs import digits
from train.configs import mnist
from train.configs import samis
from train.configs import ssft
from train.configs.base import TrainConfig

CONFIGS = {
    c.name: c for c in (
        digits.CONFIG, digits.SMALL, digits.CNN,
        mnist.CONFIG, mnist.SMALL, mnist.CNN,
        cifar10.CONFIG, cifar10.SMALL,
        cifar100.CONFIG, cifar100.SMALL,
        data_diet.CIFAR10, data_diet.CIFAR100, data_diet.DIGITS,
        ssft.CIFAR10, ssft.CIFAR100, ssft.MNIST, ssft.DIGITS,
        samis.CIFAR10, samis.CIFAR100, samis.DIGITS)
}

# Dataset name -> its default config.
DEFAULT_CONFIGS = {
    "digits": "digits",
    "mnist": "mnist",
    "cifar10:3.0.2": "cifar10",
    "cifar100:3.0.2": "cifar100",
}


def get_config(name: str) -> TrainConfig:
  """The config `name`.

  Raises:
    ValueError: naming the known configs.
  """
  if name not in CONFIGS:
    raise ValueError("`config` must be one of {}, got {!r}".format(
        sorted(CONFIGS), name))
  return CONFIGS[name]


def default_config_name(dataset_name: str) -> str:
  """The default config of a dataset.

  Raises:
    ValueError: for datasets without one (e.g. npz files: pass a config).
  """
  if dataset_name not in DEFAULT_CONFIGS:
    raise ValueError(
        "no default config for dataset {!r}; pass --config (one of {})".format(
            dataset_name, sorted(CONFIGS)))
  return DEFAULT_CONFIGS[dataset_name]


def resolve_config(dataset_name: str, name=None, arch=None,
                   epochs=None) -> TrainConfig:
  """The config a training binary runs: `--config`, `--arch`, `--epochs`.

  Args:
    dataset_name: the `--dataset` flag, whose default config is used when
      `name` is None.
    name: a config name, or None.
    arch: another architecture (with its default constructor arguments), or
      None for the config's.
    epochs: other total epochs (warmup capped at half of them), or None.

  Returns:
    The `TrainConfig`.

  Raises:
    ValueError: for an unknown config, or a dataset without a default one.
  """
  config = get_config(name or default_config_name(dataset_name))
  if arch and arch != config.arch:
    config = config.replace(arch=arch, arch_kwargs={})
  if epochs is not None:
    config = config.replace(epochs=epochs,
                            warmup_epochs=min(config.warmup_epochs,
                                              epochs / 2))
  return config


__all__ = ["CONFIGS", "DEFAULT_CONFIGS", "TrainConfig", "base",
           "data_diet", "default_config_name", "get_config",
           "resolve_config", "samis", "ssft"]


def define_flags(config_help: str = "Training recipe (train/configs); the "
                 "dataset's default if not given.",
                 epochs_help: str = "Override the config's epochs."):
  """Defines a training binary's `--dataset`, `--config`, `--arch`,
  `--epochs` and `--data_dir` (one definition for every binary).

  Args:
    config_help: the help of `--config` (a binary's own default recipes).
    epochs_help: the help of `--epochs`.

  Returns:
    (dataset, config, arch, epochs, data_dir) `FlagHolder`s; pass the first
    four values to `resolve_config`.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from heldout import cli  # pylint: disable=g-import-not-at-top
  module = cli.calling_module_name()  # Listed in the binary's --help.
  return (
      flags.DEFINE_string(
          "dataset", "digits", "digits, mnist, cifar10:3.0.2, cifar100:3.0.2 "
          "or npz:/path/file.npz.", module_name=module),
      flags.DEFINE_string("config", None, config_help, module_name=module),
      flags.DEFINE_string(
          "arch", None, "Architecture (heldout.models.registry); the "
          "config's if not given. A different arch uses its default "
          "constructor arguments.", module_name=module),
      flags.DEFINE_integer("epochs", None, epochs_help, module_name=module),
      flags.DEFINE_string("data_dir", None, "TFDS data directory.",
                          module_name=module),
  )
