"""Stage 3: the eigenvalues Lambda [d_out, d_in] each preconditioner divides by.

- EKFAC: Lambda = mean over examples of (Q_S^T G_n Q_A)^2 elementwise, G_n
  the example's gradient block (summed over locations for a convolution;
  divided by the number of examples, not of locations).
- diagonal: Lambda = mean over examples of G_n^2 (no eigenbasis).
- KFAC: Lambda[i, j] = eig_S[i] * eig_A[j] (`kfac_lambda`, no pass).

The EKFAC and diagonal passes use the cross-entropy with labels sampled from
the model (true Fisher, `LAMBDA_PASS` samples, independent of the covariance
pass's) or the true labels.
"""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from heldout.influence_functions import arguments
from heldout.influence_functions import eigendecompose as eigen_lib
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import passes
from heldout.influence_functions import tracked_modules


def lambda_key(i: int) -> str:
  return "lambda_{}".format(i)


def kfac_lambda(eigen: Mapping[str, np.ndarray], num_layers: int
                ) -> Dict[str, np.ndarray]:
  """KFAC's Lambda = outer(eig_S, eig_A) per layer (float64)."""
  return {lambda_key(i): np.outer(
      eigen[eigen_lib.gradient_eigenvalues_key(i)],
      eigen[eigen_lib.activation_eigenvalues_key(i)])
          for i in range(num_layers)}


def fit_lambda(model, tracked: Sequence[tracked_modules.TrackedModule],
               examples: examples_lib.Examples,
               factor_args: arguments.FactorArgs,
               eigen: Optional[Mapping[str, np.ndarray]] = None,
               batch_size: int = passes.DEFAULT_BATCH_SIZE,
               progress: bool = True,
               distribute_strategy: Optional[tf.distribute.Strategy] = None
               ) -> Dict[str, np.ndarray]:
  """EKFAC's or the diagonal's Lambda, one pass over `examples`.

  Args:
    model: the model.
    tracked: its `find_tracked_modules`.
    examples: the examples (the training set).
    factor_args: `strategy` (`EKFAC` or `DIAGONAL`), `fisher`, `seed`,
      `dtype`.
    eigen: `eigendecompose`'s arrays (EKFAC).
    batch_size: examples per batch.
    progress: show a progress bar.
    distribute_strategy: None (the default device) or a
      `tf.distribute.Strategy` (`devices.make_strategy`): each batch split
      across its replicas.

  Returns:
    `lambda_key(i)`: [d_out, d_in] per layer (factor_args.dtype) and
    `num_examples`, the count they were divided by.

  Raises:
    ValueError: for another strategy, or EKFAC without `eigen`.
  """
  strategy = factor_args.strategy
  if strategy not in (arguments.EKFAC, arguments.DIAGONAL):
    raise ValueError("fit_lambda fits {} and {}, got strategy {!r}".format(
        arguments.EKFAC, arguments.DIAGONAL, strategy))
  if strategy == arguments.EKFAC and eigen is None:
    raise ValueError("EKFAC's Lambda needs the eigendecomposition (`eigen`)")
  dtype = passes.tf_dtype(factor_args.dtype)
  num_classes = passes.num_classes_of(model, examples)
  bases = None
  if strategy == arguments.EKFAC:
    bases = [(tf.constant(eigen[eigen_lib.gradient_eigenvectors_key(i)],
                          dtype),
              tf.constant(eigen[eigen_lib.activation_eigenvectors_key(i)],
                          dtype)) for i in range(len(tracked))]

  def step(images, labels, noise):
    a, s, _ = tracked_modules.layer_rows(model, tracked, images, labels,
                                         label_noise=noise, dtype=dtype)
    out = []
    for i, (x, d) in enumerate(zip(a, s[0])):
      if bases is not None:
        q_s, q_a = bases[i]
        # Q_S^T G Q_A = sum_l (Q_S^T s_l)(Q_A^T a_l)^T.
        x = tf.einsum("bli,ij->blj", x, q_a)
        d = tf.einsum("blo,op->blp", d, q_s)
      out.append(tf.reduce_sum(
          tf.square(tracked_modules.per_example_gradients(x, d)), axis=0))
    return out

  step = passes.compile_step(step, distribute_strategy, passes.sum_replicas)
  total = None
  for _, images, labels, noise in passes.batches(
      model, examples, batch_size, progress, "lambda ({})".format(strategy),
      factor_args.fisher, factor_args.seed, tracked_modules.LAMBDA_PASS,
      num_classes):
    sums = step(images, labels, noise)
    total = list(sums) if total is None else [
        x + y for x, y in zip(total, sums)]
  n = len(examples)
  out = {lambda_key(i): t.numpy() / float(n) for i, t in enumerate(total)}
  out["num_examples"] = np.array(n, np.int64)
  return out
