"""Tolerances for float32 results that CPUs compute differently.

TensorFlow chooses its CPU kernels from what the processor offers: oneDNN on
CPUs with AVX-512 (Intel with or without AMX, AMD Zen 4), Eigen on the others
(AVX2-only CPUs such as earlier AMD EPYC), and within oneDNN other blockings
on other ISAs and cache sizes. They vectorize, block and fuse float32
reductions in their own ways (FMA or not, other summation orders, other
convolution algorithms), so one model on one input gives results that differ
in their last bits from machine to machine, and more so the longer the chain
of float32 operations and the larger the values. Measured: the golden
SmallInception logits (magnitude ~4) differ by 1.0e-5 between an Intel AMX
machine and an AMD EPYC with AVX-512, 2.5e-6 of their magnitude.

So a test that compares float32 outputs of TensorFlow computations uses an
absolute tolerance of `relative * max |expected|`: `relative` says how many
float32 roundings the computation may accumulate (below, with its reason),
and the magnitude comes from the values themselves. Each level stays one or
more orders of magnitude below the effect of the bugs such tests are for (a
weight restored into the wrong place, a wrong batch-norm epsilon, a missing
bias, a wrong gradient), which the tests check separately where it matters.

Results that are exact by construction (integer counts, the estimators'
quotients of them, bitwise reproducibility on one machine) are compared
exactly or at float64 precision, not with these.
"""

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7

# Elementwise float32 arithmetic (scaling, normalising pixels): each op is
# correctly rounded, but kernels may reassociate (x * (1/s) for x / s) or
# fuse; a few ulps of the largest value.
ELEMENTWISE = 8 * FLOAT32_EPS

# One forward pass of a network: dot products of up to ~10^4 terms in each of
# up to ~20 layers, summed in kernel-specific orders (the golden logits:
# 1.9e-6 and 2.5e-6 of their magnitude on two CPUs). 1e-4 leaves a margin of
# 40x; a wrong batch-norm epsilon (1e-3 for 1e-5) moves the golden logits by
# 5.7e-2 of their magnitude, and a misplaced weight by O(1).
FORWARD = 1e-4

# Weights or outputs after training the same run in two ways (one device or
# several replicas, one model or K batched, resumed or not): every step's
# rounding differences (~1e-7 relative) are carried into the next steps and
# amplified by them; after the tens of steps of these tests they stay below
# ~2e-5 of the largest weight. A wrong gradient or update moves weights by
# the learning rate times the gradient, 1e-2 or more.
TRAINED = 1e-3


def scaled_atol(expected, relative):
  """`relative` x the largest finite |expected| (and > 0).

  Args:
    expected: array-like, the reference values.
    relative: a level above (or another, justified where it is used).

  Returns:
    The absolute tolerance, a float.
  """
  values = np.abs(np.asarray(expected, np.float64))
  values = values[np.isfinite(values)]
  scale = float(values.max()) if values.size else 0.0
  return relative * max(scale, np.finfo(np.float32).tiny)


def assert_close(actual, expected, relative, err_msg=""):
  """`np.testing.assert_allclose` with `atol = scaled_atol(expected, relative)`.

  Args:
    actual: array-like.
    expected: array-like, the reference (its magnitude sets the tolerance).
    relative: a level above, or another with its reason at the call.
    err_msg: added to the failure message.
  """
  atol = scaled_atol(expected, relative)
  np.testing.assert_allclose(
      actual, expected, rtol=0, atol=atol,
      err_msg="{} (tolerance {:.3g} = {:g} x max |expected|)".format(
          err_msg, atol, relative).strip())
