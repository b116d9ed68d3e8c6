"""What the influence-function stages compute: validated argument dataclasses.

`FactorArgs` fixes the preconditioner (strategy, Fisher, seed, dtype);
`ScoreArgs` how scores are computed from it (damping, measurement, query
compression, self-influence's measurement). Their `to_dict` is what each
stage stores beside its artefact (`artefacts`), together with the identity of
the model and of the examples it ran on.
"""

import dataclasses
import math
from typing import Optional, Union

IDENTITY = "identity"
DIAGONAL = "diagonal"
KFAC = "kfac"
EKFAC = "ekfac"
STRATEGIES = (IDENTITY, DIAGONAL, KFAC, EKFAC)

TRUE_FISHER = "true"
EMPIRICAL_FISHER = "empirical"
FISHERS = (TRUE_FISHER, EMPIRICAL_FISHER)

CROSS_ENTROPY = "ce"
MARGIN = "margin"
MEASUREMENTS = (CROSS_ENTROPY, MARGIN)

DTYPES = ("float32", "float64")
HEURISTIC = "heuristic"
# Kronfluence 1.0.1's default damping.
DEFAULT_DAMPING = 1e-8


def parse_damping(value) -> Union[float, str]:
  """A damping flag's value: a float >= 0, or "heuristic".

  Raises:
    ValueError: for anything else.
  """
  if isinstance(value, str):
    if value == HEURISTIC:
      return HEURISTIC
    try:
      value = float(value)
    except ValueError:
      raise ValueError("`damping` must be a number >= 0 or {!r}, got {!r}"
                       .format(HEURISTIC, value)) from None
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError("`damping` must be a number >= 0 or {!r}, got {!r}".format(
        HEURISTIC, value))
  value = float(value)
  if not math.isfinite(value) or value < 0:
    raise ValueError("`damping` must be a number >= 0 or {!r}, got {!r}".format(
        HEURISTIC, value))
  return value


def _check_choice(name, value, choices):
  if value not in choices:
    raise ValueError("`{}` must be one of {}, got {!r}".format(
        name, ", ".join(choices), value))


@dataclasses.dataclass(frozen=True)
class FactorArgs:
  """How the preconditioner is fitted.

  Attributes:
    strategy: `IDENTITY` (no preconditioner), `DIAGONAL` (the Fisher's
      diagonal), `KFAC` (Kronecker factors, eigenvalues eig_S x eig_A) or
      `EKFAC` (Kronecker eigenbases, eigenvalues refitted).
    fisher: `TRUE_FISHER` (labels sampled from the model, seeded; the
      covariance and the eigenvalue passes draw independent samples) or
      `EMPIRICAL_FISHER` (the true labels).
    seed: seed of the sampled labels.
    dtype: "float32" or "float64", of the factors and of every product made
      from the layers' inputs and output gradients.
  """
  strategy: str = EKFAC
  fisher: str = TRUE_FISHER
  seed: int = 0
  dtype: str = "float32"

  def __post_init__(self):
    _check_choice("strategy", self.strategy, STRATEGIES)
    _check_choice("fisher", self.fisher, FISHERS)
    _check_choice("dtype", self.dtype, DTYPES)
    if isinstance(self.seed, bool) or not isinstance(self.seed, int) or (
        self.seed < 0):
      raise ValueError("`seed` must be an integer >= 0, got {!r}".format(
          self.seed))

  def to_dict(self):
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ScoreArgs:
  """How scores are computed from the fitted preconditioner.

  Attributes:
    damping: a float >= 0 added to every eigenvalue, or `HEURISTIC`: 0.1 x
      the mean eigenvalue, per module (identity ignores it).
    measurement: the query side of pairwise scores, `CROSS_ENTROPY` or
      `MARGIN` (-(logit_y - logsumexp_{c != y} logit_c)).
    query_rank: None, or r >= 1: each preconditioned query gradient block is
      replaced by its rank-r truncated SVD where min(d_out, d_in) > r.
    self_measurement: self-influence with the measurement on the
      preconditioned side (else the training loss on both sides).
  """
  damping: Union[float, str] = DEFAULT_DAMPING
  measurement: str = CROSS_ENTROPY
  query_rank: Optional[int] = None
  self_measurement: bool = False

  def __post_init__(self):
    object.__setattr__(self, "damping", parse_damping(self.damping))
    _check_choice("measurement", self.measurement, MEASUREMENTS)
    if self.query_rank is not None and (
        isinstance(self.query_rank, bool) or
        not isinstance(self.query_rank, int) or self.query_rank < 1):
      raise ValueError("`query_rank` must be None or an integer >= 1, got "
                       "{!r}".format(self.query_rank))
    if not isinstance(self.self_measurement, bool):
      raise ValueError("`self_measurement` must be a bool, got {!r}".format(
          self.self_measurement))

  def to_dict(self):
    return dataclasses.asdict(self)
