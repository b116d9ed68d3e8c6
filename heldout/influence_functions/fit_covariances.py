"""Stage 1: the Kronecker factors A and S of every tracked layer.

A = sum a a^T and S = sum s s^T over every row (one per example for
`snt.Linear`, one per example and output location for `snt.Conv2D`), each
divided by the number of rows; s is the gradient of the summed cross-entropy
with labels sampled from the model (true Fisher, `COVARIANCE_PASS` samples)
or the true labels (empirical Fisher).
"""

from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from heldout.influence_functions import arguments
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import passes
from heldout.influence_functions import tracked_modules


def activation_key(i: int) -> str:
  return "activation_covariance_{}".format(i)


def gradient_key(i: int) -> str:
  return "gradient_covariance_{}".format(i)


def fit_covariances(model, tracked: Sequence[tracked_modules.TrackedModule],
                    examples: examples_lib.Examples,
                    factor_args: arguments.FactorArgs,
                    batch_size: int = passes.DEFAULT_BATCH_SIZE,
                    progress: bool = True,
                    distribute_strategy: Optional[tf.distribute.Strategy] = None
                    ) -> Dict[str, np.ndarray]:
  """The covariances of every tracked layer.

  Args:
    model: the model.
    tracked: its `find_tracked_modules`.
    examples: the examples they are fitted on (the training set).
    factor_args: `fisher`, `seed` and `dtype` are used.
    batch_size: examples per batch.
    progress: show a progress bar.
    distribute_strategy: None (the default device) or a
      `tf.distribute.Strategy` (`devices.make_strategy`): each batch split
      across its replicas.

  Returns:
    `activation_key(i)`: [d_in, d_in] and `gradient_key(i)`: [d_out, d_out]
    (factor_args.dtype) per layer i, symmetrised; `num_rows`: [layers]
    int64, the rows each was divided by.
  """
  dtype = passes.tf_dtype(factor_args.dtype)
  num_classes = passes.num_classes_of(model, examples)

  def step(images, labels, noise):
    a, s, _ = tracked_modules.layer_rows(model, tracked, images, labels,
                                         label_noise=noise, dtype=dtype)
    return ([tf.einsum("bli,blj->ij", x, x) for x in a],
            [tf.einsum("bli,blj->ij", x, x) for x in s[0]],
            [tf.shape(x, tf.int64)[0] * tf.shape(x, tf.int64)[1] for x in a])

  step = passes.compile_step(step, distribute_strategy, passes.sum_replicas)
  a_sum = s_sum = rows = None
  for _, images, labels, noise in passes.batches(
      model, examples, batch_size, progress, "covariances", factor_args.fisher,
      factor_args.seed, tracked_modules.COVARIANCE_PASS, num_classes):
    a, s, r = step(images, labels, noise)
    if a_sum is None:
      a_sum, s_sum, rows = list(a), list(s), list(r)
    else:
      a_sum = [x + y for x, y in zip(a_sum, a)]
      s_sum = [x + y for x, y in zip(s_sum, s)]
      rows = [x + y for x, y in zip(rows, r)]
  out = {"num_rows": np.array([int(r) for r in rows], np.int64)}
  for i, (a, s, r) in enumerate(zip(a_sum, s_sum, rows)):
    a = a.numpy() / float(r)
    s = s.numpy() / float(r)
    out[activation_key(i)] = (a + a.T) / 2
    out[gradient_key(i)] = (s + s.T) / 2
  return out
