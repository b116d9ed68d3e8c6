"""oneDNN kernels for the influence matmuls, where TensorFlow leaves them off.

TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with
AVX-512 and newer ISAs; on the others (AVX2-only CPUs such as AMD EPYC before
Zen 4) it runs Eigen's. For the influence products oneDNN's float32 matmul is
about twice Eigen's there: batched [8, 3334, 255] x [8, 255, 2000], the packed
float32 path's shape, ran at 75-81 GFLOP per CPU-second with oneDNN against
40-45 with Eigen on a 2-core AVX2 AMD EPYC (and numpy's OpenBLAS at 63-76).
The influence sums are exact integers either way (the paths are tested bit
for bit), so the binaries that compute influence ask for oneDNN, unless the
user set `TF_ENABLE_ONEDNN_OPTS` themselves, by calling `prefer_onednn()`
before anything imports TensorFlow (which reads the variable once, when it
loads).
"""

import os
import sys

ENV = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn(environ=None):
  """Asks TensorFlow, not yet imported, for its oneDNN CPU kernels.

  Args:
    environ: the environment to set (`os.environ` if None; a copy for a
      child process).

  Returns:
    True if oneDNN will be on: the variable is (now) "1" and, for this
    process's own environment, TensorFlow was not imported before.
  """
  own = environ is None
  environ = os.environ if own else environ
  environ.setdefault(ENV, "1")
  if own and "tensorflow" in sys.modules:
    return False
  return environ[ENV] == "1"
