"""The slow reference: influence functions from their definitions, in numpy float64.

For tests only. Per-example gradients come from one `tf.GradientTape` per
example, in a Python loop, taken with respect to the layers' variables
(kernel transposed to [d_out, d_in], bias the last column). The Kronecker
factors are built from explicit rows: the layer inputs (with a column of
ones; for a convolution, patches cut out of the zero-padded input by a loop
over output locations, using TensorFlow's SAME/VALID arithmetic) and the
gradients of the example's loss with respect to the layer outputs (another
tape). Each strategy's damped curvature is then an explicit matrix on the
vectorised block, K = kron(S, A) + damping I for KFAC, and scores solve with
it (`numpy.linalg.solve`), no eigendecomposition trick involved except where
the definition has one (EKFAC's eigenbasis).

The model must offer `layer_io(images) -> (logits, {module: (inputs,
outputs)})` computing the same function as its `__call__(images, False)`.
"""

import math

import numpy as np
import tensorflow as tf

from heldout.influence_functions import arguments
from heldout.influence_functions import tracked_modules
from heldout.models import layer_calls


def _same_padding(size, kernel, stride, rate):
  effective = (kernel - 1) * rate + 1
  out = math.ceil(size / stride)
  total = max((out - 1) * stride + effective - size, 0)
  return out, total // 2


def im2col(image, module):
  """[locations, kh*kw*c_in] patches of one [h, w, c] image, by loops."""
  kh, kw, c_in, _ = [int(d) for d in module.w.shape]
  sh, sw = layer_calls.pair(module.stride)
  rh, rw = layer_calls.pair(module.rate)
  h, w, _ = image.shape
  if module.conv_padding == "SAME":
    out_h, top = _same_padding(h, kh, sh, rh)
    out_w, left = _same_padding(w, kw, sw, rw)
  else:
    out_h = (h - ((kh - 1) * rh + 1)) // sh + 1
    out_w = (w - ((kw - 1) * rw + 1)) // sw + 1
    top = left = 0
  rows = []
  for i in range(out_h):
    for j in range(out_w):
      patch = np.zeros((kh, kw, c_in))
      for u in range(kh):
        for v in range(kw):
          y, x = i * sh - top + u * rh, j * sw - left + v * rw
          if 0 <= y < h and 0 <= x < w:
            patch[u, v] = image[y, x]
      rows.append(patch.reshape(-1))
  return np.array(rows)


def labels_for(model, images, labels, ids, fisher, seed, pass_id):
  """The labels of a pass: true, or sampled as the implementation samples them."""
  if fisher == arguments.EMPIRICAL_FISHER:
    return np.asarray(labels)
  logits, _ = model.layer_io(tf.constant(images))
  noise = tracked_modules.sampled_label_noise(ids, int(logits.shape[-1]), seed,
                                              pass_id)
  return np.argmax(np.asarray(logits, np.float64) + noise, axis=-1)


def per_example(model, tracked, images, labels, kind=arguments.CROSS_ENTROPY):
  """Per example: gradient blocks (from the variables) and rows a, s.

  Returns:
    (grads, a_rows, s_rows): per example a list over layers of [d_out, d_in]
    blocks; a list over layers of [locations, d_in] rows; of [locations,
    d_out] rows.
  """
  grads, a_rows, s_rows = [], [], []
  for x, y in zip(images, labels):
    with tf.GradientTape() as tape:
      logits, io = model.layer_io(tf.constant(x[None]))
      loss = tf.reduce_sum(tracked_modules.losses(logits, tf.constant([y]),
                                                  kind))
    variables = [v for t in tracked for v in t.variables]
    flat = tape.gradient(loss, variables + [io[t.module][1] for t in tracked])
    output_grads = flat[len(variables):]
    variable_grads = []
    for t in tracked:
      variable_grads.append(flat[:len(t.variables)])
      flat = flat[len(t.variables):]
    blocks, a_n, s_n = [], [], []
    for t, layer_grads, d in zip(tracked, variable_grads, output_grads):
      inputs = io[t.module][0]
      blocks.append(tracked_modules.variable_gradient_block(t, layer_grads))
      d = np.asarray(d, np.float64)[0]
      s_n.append(d.reshape(-1, d.shape[-1]))
      inputs = np.asarray(inputs, np.float64)[0]
      rows = (im2col(inputs, t.module) if t.kind == layer_calls.CONV
              else inputs.reshape(1, -1))
      if t.with_bias:
        rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
      a_n.append(rows)
    grads.append(blocks)
    a_rows.append(a_n)
    s_rows.append(s_n)
  return grads, a_rows, s_rows


def curvatures(model, tracked, images, labels, ids, strategy, fisher, seed,
               damping):
  """The damped curvature matrix K of each layer, on row-major vec(G)."""
  num_layers = len(tracked)
  if strategy == arguments.IDENTITY:
    return [np.eye(t.d_out * t.d_in) for t in tracked]
  lam_labels = labels_for(model, images, labels, ids, fisher, seed,
                          tracked_modules.LAMBDA_PASS)
  lam_grads, _, _ = per_example(model, tracked, images, lam_labels)
  out = []
  if strategy == arguments.DIAGONAL:
    for i in range(num_layers):
      lam = np.mean([g[i] ** 2 for g in lam_grads], axis=0)
      d = 0.1 * lam.mean() if damping == arguments.HEURISTIC else damping
      out.append(np.diag(lam.reshape(-1) + d))
    return out
  cov_labels = labels_for(model, images, labels, ids, fisher, seed,
                          tracked_modules.COVARIANCE_PASS)
  _, a_rows, s_rows = per_example(model, tracked, images, cov_labels)
  for i in range(num_layers):
    a = np.concatenate([r[i] for r in a_rows])
    s = np.concatenate([r[i] for r in s_rows])
    cov_a = a.T @ a / len(a)
    cov_s = s.T @ s / len(s)
    if strategy == arguments.KFAC:
      eig_a = np.linalg.eigvalsh(cov_a)
      eig_s = np.linalg.eigvalsh(cov_s)
      lam_mean = eig_s.mean() * eig_a.mean()
      d = 0.1 * lam_mean if damping == arguments.HEURISTIC else damping
      out.append(np.kron(cov_s, cov_a) + d * np.eye(cov_s.shape[0] *
                                                    cov_a.shape[0]))
      continue
    _, q_a = np.linalg.eigh(cov_a)
    _, q_s = np.linalg.eigh(cov_s)
    lam = np.mean([(q_s.T @ g[i] @ q_a) ** 2 for g in lam_grads], axis=0)
    d = 0.1 * lam.mean() if damping == arguments.HEURISTIC else damping
    basis = np.kron(q_s, q_a)
    out.append(basis @ np.diag(lam.reshape(-1) + d) @ basis.T)
  return out


def pairwise_scores(curvature, query_grads, train_grads):
  """[M, Q, N] sum-free per-layer scores vec(g_q)^T K^-1 vec(g_n)."""
  out = []
  for i, k in enumerate(curvature):
    q = np.stack([g[i].reshape(-1) for g in query_grads])
    t = np.stack([g[i].reshape(-1) for g in train_grads])
    out.append(np.linalg.solve(k, q.T).T @ t.T)
  return np.array(out)


def self_scores(curvature, grads, preconditioned_side=None):
  """[M, N] vec(g'_n)^T K^-1 vec(g_n), g' = `preconditioned_side` or g."""
  preconditioned_side = grads if preconditioned_side is None else (
      preconditioned_side)
  out = []
  for i, k in enumerate(curvature):
    t = np.stack([g[i].reshape(-1) for g in grads])
    p = np.stack([g[i].reshape(-1) for g in preconditioned_side])
    out.append(np.sum(np.linalg.solve(k, p.T).T * t, axis=1))
  return np.array(out)
