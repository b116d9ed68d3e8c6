"""`TrainConfig`: the hyperparameters of one heldout training recipe."""

import dataclasses
from typing import Any, Dict, Tuple

LR_SCHEDULES = ("constant", "linear", "cosine", "step")
OPTIMIZERS = ("momentum", "sgd")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of heldout training; validated on construction.

  Attributes:
    name: the config's name (e.g. "cifar10", "digits_small").
    dataset: the dataset it is meant for (`heldout.data.load_dataset` name).
    arch: architecture name of `heldout.models.registry.build_model`.
    arch_kwargs: further constructor arguments of the architecture.
    epochs: passes over the run's training subset.
    batch_size: global batch size (split across replicas).
    optimizer: "momentum" (heavy ball, Sonnet's rule: a <- m a + g,
      p <- p - lr a) or "sgd".
    learning_rate: peak learning rate.
    momentum: momentum coefficient (ignored by "sgd").
    nesterov: Nesterov momentum.
    lr_schedule: "constant"; "linear" (linear warmup over `warmup_epochs`,
      then linear decay to 0 at the end of training); "cosine" (warmup, then
      cosine decay to 0); "step" (warmup, then the peak multiplied by
      `lr_decay` at the start of each epoch of `lr_boundaries_epochs`:
      multistep, as Data Diet's x0.2 at epochs 60/120/160). "linear" with
      `warmup_epochs = f * epochs` is the triangular schedule (linear up to
      the peak at fraction f of training, then linear down to 0).
    lr_boundaries_epochs: for "step", the epochs (0-based, strictly
      increasing, positive) from which the rate is decayed once more;
      boundaries at or past `epochs` never apply (so `--epochs` may shorten
      a recipe). Empty for the other schedules.
    lr_decay: for "step", the factor applied at each boundary, in (0, 1].
    warmup_epochs: length of the linear warmup from 0 (may be fractional).
    weight_decay: L2 coefficient on the weights `w` of linear and conv
      layers (not biases, not batch norm); adds `weight_decay * w` to their
      gradients.
    augment: CIFAR augmentation (zero-pad 4, random crop, random flip).
    eval_batch_size: batch size of the final evaluation (200 as upstream).
    checkpoint_every_seconds: an unfinished run saves its progress (in its
      temporary folder, so that a killed job can continue) at the end of the
      first epoch that ends at least this long after its start or its last
      save; 0 saves after every epoch. Runs shorter than this are simply
      redone if killed.
  """
  name: str
  dataset: str
  arch: str
  epochs: int
  batch_size: int
  learning_rate: float
  arch_kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
  optimizer: str = "momentum"
  momentum: float = 0.9
  nesterov: bool = False
  lr_schedule: str = "constant"
  warmup_epochs: float = 0.0
  lr_boundaries_epochs: Tuple[int, ...] = ()
  lr_decay: float = 0.1
  weight_decay: float = 0.0
  augment: bool = False
  eval_batch_size: int = 200
  checkpoint_every_seconds: float = 60.0

  def __post_init__(self):
    def positive(name, value):
      if value <= 0:
        raise ValueError("`{}` must be positive, got {}".format(name, value))
    if not self.name:
      raise ValueError("`name` must not be empty")
    if not self.arch:
      raise ValueError("`arch` must not be empty")
    for name in ("epochs", "batch_size", "eval_batch_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("`{}` must be an int, got {!r}".format(name, value))
      positive(name, value)
    positive("learning_rate", self.learning_rate)
    if self.optimizer not in OPTIMIZERS:
      raise ValueError("`optimizer` must be one of {}, got {!r}".format(
          OPTIMIZERS, self.optimizer))
    if not 0.0 <= self.momentum < 1.0:
      raise ValueError("`momentum` must be in [0, 1), got {}".format(
          self.momentum))
    if self.lr_schedule not in LR_SCHEDULES:
      raise ValueError("`lr_schedule` must be one of {}, got {!r}".format(
          LR_SCHEDULES, self.lr_schedule))
    boundaries = tuple(self.lr_boundaries_epochs)
    if self.lr_schedule == "step":
      if (not boundaries
          or any(not isinstance(b, int) or isinstance(b, bool) or b <= 0
                 for b in boundaries)
          or any(a >= b for a, b in zip(boundaries, boundaries[1:]))):
        raise ValueError(
            "`lr_boundaries_epochs` must be strictly increasing positive "
            "epochs for lr_schedule='step', got {!r}".format(
                self.lr_boundaries_epochs))
      if not 0.0 < self.lr_decay <= 1.0:
        raise ValueError("`lr_decay` must be in (0, 1], got {}".format(
            self.lr_decay))
    elif boundaries:
      raise ValueError("`lr_boundaries_epochs` is for lr_schedule='step', not "
                       "{!r}".format(self.lr_schedule))
    object.__setattr__(self, "lr_boundaries_epochs", boundaries)
    if not 0.0 <= self.warmup_epochs < self.epochs:
      raise ValueError("`warmup_epochs` must be in [0, epochs={}), got {}".format(
          self.epochs, self.warmup_epochs))
    if self.checkpoint_every_seconds < 0:
      raise ValueError("`checkpoint_every_seconds` must be non-negative, got {}"
                       .format(self.checkpoint_every_seconds))
    if self.weight_decay < 0:
      raise ValueError("`weight_decay` must be non-negative, got {}".format(
          self.weight_decay))
    object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))

  def replace(self, **changes) -> "TrainConfig":
    """A copy with `changes`, validated again."""
    return dataclasses.replace(self, **changes)

  def to_json(self) -> Dict[str, Any]:
    """Plain JSON-able dict of every field (lists for tuples)."""
    def plain(value):
      if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
      if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
      return value
    return plain(dataclasses.asdict(self))
