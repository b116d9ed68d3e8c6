"""Stage 4: preconditioning gradient blocks, and the preconditioned queries.

Per layer, with its eigenbases Q_S [d_out, d_out], Q_A [d_in, d_in] and
eigenvalues Lambda [d_out, d_in] (`fit_lambda`):

  P(G) = Q_S [ (Q_S^T G Q_A) / (Lambda + damping) ] Q_A^T   (KFAC, EKFAC)
  P(G) = G / (Lambda + damping)                               (diagonal)
  P(G) = G                                                    (identity)

damping a number, or "heuristic": 0.1 x mean(Lambda) of the layer.
`precondition_queries` computes every query's measurement gradient blocks
and preconditions them; with `query_rank` r, a block with
min(d_out, d_in) > r is stored as the factors of its rank-r truncated SVD,
left = U_r diag(sigma_r) [d_out, r] and right = V_r [d_in, r].
"""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from heldout.influence_functions import arguments
from heldout.influence_functions import eigendecompose as eigen_lib
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import fit_lambda as lambda_lib
from heldout.influence_functions import passes
from heldout.influence_functions import tracked_modules

HEURISTIC_FACTOR = 0.1


def query_key(i: int) -> str:
  return "query_{}".format(i)


def query_left_key(i: int) -> str:
  return "query_left_{}".format(i)


def query_right_key(i: int) -> str:
  return "query_right_{}".format(i)


class Preconditioner:
  """P(G) of every tracked layer, for one strategy and damping.

  Attributes:
    strategy: the strategy.
    dampings: [layers] the damping each layer's eigenvalues get (resolved
      from "heuristic"; 0 for identity).
  """

  def __init__(self, strategy: str, num_layers: int, dtype: str = "float32",
               eigen: Optional[Mapping[str, np.ndarray]] = None,
               lambdas: Optional[Mapping[str, np.ndarray]] = None,
               damping=arguments.DEFAULT_DAMPING):
    """Builds it from the fitted factors.

    Args:
      strategy: one of `arguments.STRATEGIES`.
      num_layers: number of tracked layers.
      dtype: "float32" or "float64", of every product.
      eigen: `eigendecompose`'s arrays (KFAC, EKFAC).
      lambdas: `fit_lambda`'s arrays (diagonal, EKFAC) or `kfac_lambda`'s.
      damping: a float >= 0 or "heuristic".

    Raises:
      ValueError: for a bad strategy or damping, or missing factors.
    """
    if strategy not in arguments.STRATEGIES:
      raise ValueError("`strategy` must be one of {}, got {!r}".format(
          arguments.STRATEGIES, strategy))
    damping = arguments.parse_damping(damping)
    self.strategy = strategy
    self._dtype = passes.tf_dtype(dtype)
    self._bases = [None] * num_layers
    self._denominators = [None] * num_layers
    self.dampings = np.zeros(num_layers)
    if strategy == arguments.IDENTITY:
      return
    if lambdas is None or (strategy != arguments.DIAGONAL and eigen is None):
      raise ValueError("strategy {} needs its fitted factors".format(strategy))
    for i in range(num_layers):
      lam = np.asarray(lambdas[lambda_lib.lambda_key(i)], np.float64)
      d = (HEURISTIC_FACTOR * float(lam.mean())
           if damping == arguments.HEURISTIC else float(damping))
      self.dampings[i] = d
      self._denominators[i] = tf.constant(lam + d, self._dtype)
      if strategy != arguments.DIAGONAL:
        self._bases[i] = (
            tf.constant(eigen[eigen_lib.gradient_eigenvectors_key(i)],
                        self._dtype),
            tf.constant(eigen[eigen_lib.activation_eigenvectors_key(i)],
                        self._dtype))

  def apply(self, i: int, gradients: tf.Tensor) -> tf.Tensor:
    """P(G) of layer i for a batch of blocks [batch, d_out, d_in] (traceable)."""
    if self.strategy == arguments.IDENTITY:
      return gradients
    if self._bases[i] is None:
      return gradients / self._denominators[i]
    q_s, q_a = self._bases[i]
    rotated = tf.einsum("op,boi,ij->bpj", q_s, gradients, q_a)
    rotated = rotated / self._denominators[i]
    return tf.einsum("op,bpj,ij->boi", q_s, rotated, q_a)


def precondition_queries(model, tracked: Sequence[tracked_modules.TrackedModule],
                         queries: examples_lib.Examples,
                         preconditioner: Preconditioner,
                         measurement: str = arguments.CROSS_ENTROPY,
                         query_rank: Optional[int] = None,
                         dtype: str = "float32",
                         batch_size: int = passes.DEFAULT_BATCH_SIZE,
                         progress: bool = True,
                         distribute_strategy: Optional[tf.distribute.Strategy] = None
                         ) -> Dict[str, np.ndarray]:
  """P(gradient of the measurement) of every query, per layer.

  Args:
    model: the model.
    tracked: its `find_tracked_modules`.
    queries: the query examples (their true labels).
    preconditioner: the fitted `Preconditioner`.
    measurement: `CROSS_ENTROPY` or `MARGIN`.
    query_rank: None, or the rank r of the compression.
    dtype: of the products.
    batch_size: queries per batch.
    progress: show a progress bar.
    distribute_strategy: None (the default device) or a
      `tf.distribute.Strategy` (`devices.make_strategy`): each batch split
      across its replicas.

  Returns:
    Per layer i: `query_key(i)` [Q, d_out, d_in], or, compressed,
    `query_left_key(i)` [Q, d_out, r] and `query_right_key(i)` [Q, d_in, r].
  """
  tf_dtype = passes.tf_dtype(dtype)

  def step(images, labels):
    a, s, _ = tracked_modules.layer_rows(model, tracked, images, labels,
                                         loss_kinds=(measurement,),
                                         dtype=tf_dtype)
    return [preconditioner.apply(
        i, tracked_modules.per_example_gradients(x, d))
            for i, (x, d) in enumerate(zip(a, s[0]))]

  step = passes.compile_step(step, distribute_strategy,
                             passes.concat_replicas(0))
  # Compressed batch by batch into preallocated arrays: memory queries x r x
  # (d_out + d_in) for the compressed blocks, not queries x parameters, and
  # no second copy of the result.
  out: Dict[str, np.ndarray] = {}
  for start, images, labels, _ in passes.batches(
      model, queries, min(batch_size, len(queries)), progress,
      "precondition queries"):
    for i, g in enumerate(step(images, labels)):
      g = g.numpy()
      if query_rank is not None and min(g.shape[1:]) > query_rank:
        u, sigma, vt = np.linalg.svd(g, full_matrices=False)
        blocks = {
            query_left_key(i): u[:, :, :query_rank] *
                               sigma[:, None, :query_rank],
            query_right_key(i): np.swapaxes(vt[:, :query_rank, :], 1, 2)}
      else:
        blocks = {query_key(i): g}
      for key, block in blocks.items():
        if key not in out:
          out[key] = np.empty((len(queries),) + block.shape[1:], g.dtype)
        out[key][start:start + len(block)] = block
  return out
