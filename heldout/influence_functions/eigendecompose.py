"""Stage 2: the eigendecomposition of every Kronecker factor.

A = Q_A diag(eig_A) Q_A^T and S = Q_S diag(eig_S) Q_S^T by `numpy.linalg.eigh`
in float64 (Kronfluence's default eigendecomposition dtype), whatever the
factors' dtype.
"""

from typing import Dict, Mapping

import numpy as np

from heldout.influence_functions import fit_covariances


def activation_eigenvectors_key(i: int) -> str:
  return "activation_eigenvectors_{}".format(i)


def activation_eigenvalues_key(i: int) -> str:
  return "activation_eigenvalues_{}".format(i)


def gradient_eigenvectors_key(i: int) -> str:
  return "gradient_eigenvectors_{}".format(i)


def gradient_eigenvalues_key(i: int) -> str:
  return "gradient_eigenvalues_{}".format(i)


def num_layers(covariances: Mapping[str, np.ndarray]) -> int:
  return len(covariances["num_rows"])


def eigendecompose(covariances: Mapping[str, np.ndarray]
                   ) -> Dict[str, np.ndarray]:
  """Eigenvectors and eigenvalues of each layer's A and S.

  Args:
    covariances: `fit_covariances.fit_covariances`'s arrays.

  Returns:
    float64 arrays per layer i: `activation_eigenvectors_key(i)` Q_A
    [d_in, d_in] (columns), `activation_eigenvalues_key(i)` [d_in], and the
    same for S (`gradient_...`), eigenvalues ascending.
  """
  out = {}
  for i in range(num_layers(covariances)):
    for matrix_key, vectors_key, values_key in (
        (fit_covariances.activation_key(i), activation_eigenvectors_key(i),
         activation_eigenvalues_key(i)),
        (fit_covariances.gradient_key(i), gradient_eigenvectors_key(i),
         gradient_eigenvalues_key(i))):
      matrix = np.asarray(covariances[matrix_key], np.float64)
      values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
      out[vectors_key] = vectors
      out[values_key] = values
  return out
