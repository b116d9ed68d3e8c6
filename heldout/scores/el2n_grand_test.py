"""Tests of EL2N and GraNd against per-example loops and closed forms."""

import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout import tolerance
from heldout.data import dataset as dataset_lib
from heldout.models import registry
from heldout.models import testing as model_testing
from heldout.readers import layout
from heldout.scores import el2n_grand
from heldout.scores import score_file

# Per-example gradients are one forward and one backward pass in float32,
# summed in other orders by the batched (pfor) kernels than by the
# one-example ones: the FORWARD level (a wrong or missing gradient term, e.g.
# a variable left out, moves a norm by O(1) of itself).
GRADIENT = tolerance.FORWARD

_ARCHS = {
    "mlp": ({"hidden_sizes": (32, 16)}, (8, 8, 1)),
    "small_cnn": ({"channels": (4, 8)}, (8, 8, 1)),
    "small_inception": ({}, (12, 12, 3)),
}


def _model(arch, seed=0):
  kwargs, shape = _ARCHS[arch]
  tf.random.set_seed(seed)
  model = registry.build_model(arch, 10, **kwargs)
  rng = np.random.default_rng(seed)
  images = rng.random((16,) + shape).astype(np.float32)
  labels = rng.integers(0, 10, 16)
  # A few training steps, so batch norm's moving averages are not their
  # initial values and the weights are not at initialisation.
  for _ in range(3):
    model_testing.train_step(model, images, labels, learning_rate=0.05)
  return model, shape


def _data(shape, n, seed=1):
  rng = np.random.default_rng(seed)
  return (rng.random((n,) + shape).astype(np.float32),
          rng.integers(0, 10, n).astype(np.int64))


class Linear(snt.Module):
  """logits = x W + b, for the closed form."""

  def __init__(self):
    super().__init__()
    self.linear = snt.Linear(10)

  def __call__(self, images, is_training):
    del is_training
    return self.linear(snt.flatten(tf.convert_to_tensor(images)))


class WithRawVariable(snt.Module):
  """A Linear layer and a trainable variable outside any Sonnet layer."""

  def __init__(self):
    super().__init__()
    self.linear = snt.Linear(10)
    self.temperature = tf.Variable(1.5, name="temperature")

  def __call__(self, images, is_training):
    del is_training
    return self.linear(snt.flatten(tf.convert_to_tensor(images))) * self.temperature


class TrainingModeBatchNorm(snt.Module):
  """Batch norm always in training mode: no per-example closed form."""

  def __init__(self):
    super().__init__()
    self.bn = snt.BatchNorm(create_scale=True, create_offset=True)
    self.linear = snt.Linear(10)

  def __call__(self, images, is_training):
    del is_training
    net = self.bn(tf.convert_to_tensor(images), is_training=True)
    return self.linear(snt.flatten(net))


class El2nGrandTest(parameterized.TestCase):

  def test_el2n_against_numpy(self):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 7)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = np.linalg.norm(p - np.eye(5)[labels], axis=1)
    tolerance.assert_close(el2n_grand.el2n_from_logits(logits, labels).numpy(),
                           expected, tolerance.ELEMENTWISE)

  @parameterized.product(arch=("mlp", "small_cnn", "small_inception"),
                         method=("layers", "pfor"))
  def test_vectorized_matches_per_example_loop(self, arch, method):
    model, shape = _model(arch)
    images, labels = _data(shape, 9)
    el2n, grand = el2n_grand.el2n_and_gradient_norms(model, images, labels,
                                                     method)
    reference = el2n_grand.gradient_norms_loop(model, images, labels,
                                               compiled=False)
    self.assertEqual(grand.shape, (9,))
    self.assertTrue((reference > 0).all())
    tolerance.assert_close(grand, reference, GRADIENT, err_msg=arch)
    logits = model(images, is_training=False).numpy()
    tolerance.assert_close(el2n, el2n_grand.el2n_from_logits(logits, labels),
                           tolerance.FORWARD)
    # The compiled one-example loop (the benchmark's baseline) agrees too.
    tolerance.assert_close(el2n_grand.gradient_norms_loop(model, images, labels),
                           reference, GRADIENT)
    # Inference mode: an example's norm does not depend on its batch.
    alone = el2n_grand.gradient_norms(model, images[4:5], labels[4:5], method)
    tolerance.assert_close(alone, grand[4:5], GRADIENT)

  def test_other_layers_fall_back_to_pfor(self):
    model = WithRawVariable()
    images, labels = _data((4, 4, 1), 6)
    model(images, is_training=False)
    with self.assertRaisesRegex(ValueError, "by layers do not apply: trainable "
                                "variables outside.*temperature"):
      el2n_grand.gradient_norms(model, images, labels, method="layers")
    grand = el2n_grand.gradient_norms(model, images, labels)  # auto: pfor
    reference = el2n_grand.gradient_norms_loop(model, images, labels,
                                               compiled=False)
    tolerance.assert_close(grand, reference, GRADIENT)
    with self.assertRaisesRegex(ValueError, "`method` must be one of"):
      el2n_grand.gradient_norms(model, images, labels, method="fast")

  def test_batch_norm_in_training_mode_is_not_by_layers(self):
    model = TrainingModeBatchNorm()
    images, labels = _data((4, 4, 2), 5)
    model(images, is_training=False)
    with self.assertRaisesRegex(ValueError, "called in training mode"):
      el2n_grand.gradient_norms(model, images, labels, method="layers")

  def test_every_trainable_variable_counts(self):
    model, shape = _model("small_inception")
    images, labels = _data(shape, 3)
    grand = el2n_grand.gradient_norms(model, images, labels)
    variables = model.trainable_variables
    # The batch-norm variables (scale and offset of every layer) contribute
    # to the squared norm several times what the tolerance allows (a squared
    # norm is known to 2 x GRADIENT of its size), so leaving them out shows.
    with tf.GradientTape() as tape:
      loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels[:1], logits=model(images[:1], is_training=False))
    grads = tape.gradient(loss, variables)
    partial = np.sqrt(sum(float(np.sum(g.numpy() ** 2)) for g, v in
                          zip(grads, variables) if "/bn/" not in v.name))
    full = np.sqrt(sum(float(np.sum(g.numpy() ** 2)) for g in grads))
    self.assertGreater(full ** 2 - partial ** 2, 5 * 2 * GRADIENT * full ** 2)
    tolerance.assert_close(grand[:1], [full], GRADIENT)

  def test_linear_closed_form(self):
    # For logits = x W + b: dCE/dW = x (p - y)^T, dCE/db = p - y, so
    # GraNd^2 = (||x||^2 + 1) ||p - y||^2 = (||x||^2 + 1) EL2N^2.
    model = Linear()
    images, labels = _data((4, 4, 2), 11)
    model(images, is_training=False)
    el2n, grand = el2n_grand.el2n_and_gradient_norms(model, images, labels)
    x = images.reshape(11, -1).astype(np.float64)
    expected = np.sqrt((np.sum(x ** 2, axis=1) + 1)) * el2n
    tolerance.assert_close(grand, expected, GRADIENT)

  def test_score_split_by_id(self):
    model, shape = _model("small_cnn")
    images, labels = _data(shape, 23)
    split = dataset_lib.SplitData(images=images, labels=labels,
                                  index=np.random.default_rng(0).permutation(23))
    ids = np.array([5, 0, 22, 7, 13, 1, 2])
    got = el2n_grand.score_split(model, split, ids, batch_size=3,
                                 progress=False)
    np.testing.assert_array_equal(got.index, ids)
    pos = split.positions_of(ids)
    reference = el2n_grand.gradient_norms_loop(model, images[pos], labels[pos],
                                               compiled=False)
    tolerance.assert_close(got.grand, reference, GRADIENT)
    logits = model(images[pos], is_training=False)
    tolerance.assert_close(got.el2n, el2n_grand.el2n_from_logits(
        logits, labels[pos]), tolerance.FORWARD)
    whole = el2n_grand.score_split(model, split, progress=False)
    np.testing.assert_array_equal(whole.index, np.arange(23))
    with self.assertRaisesRegex(ValueError, "`batch_size` must be positive"):
      el2n_grand.score_split(model, split, batch_size=0)

  def test_score_run_restores_the_checkpoint(self):
    model, shape = _model("mlp")
    run = os.path.join(self.create_tempdir().full_path, "0.7", "3")
    model_testing.write_checkpoint(layout.checkpoint_prefix(run, 20), model,
                                   epoch=20)
    images, labels = _data(shape, 10)
    split = dataset_lib.SplitData(images=images, labels=labels,
                                  index=np.arange(10))
    restored = el2n_grand.score_run(run, split, progress=False)
    direct = el2n_grand.score_split(model, split, progress=False)
    np.testing.assert_array_equal(restored.el2n, direct.el2n)
    np.testing.assert_array_equal(restored.grand, direct.grand)

  def test_scores_over_runs(self):
    runs = [el2n_grand.SplitScores(np.array([0, 1, 2]), np.array([.1, .2, .3]),
                                   np.array([1., 2., 3.])),
            el2n_grand.SplitScores(np.array([2, 0]), np.array([.5, .3]),
                                   np.array([5., 3.]))]
    el2n, grand = el2n_grand.el2n_grand_scores(runs, {"score_epochs": [0]})
    self.assertEqual((el2n.method, grand.method), ("el2n", "grand"))
    np.testing.assert_allclose(el2n.values, [.2, .2, .4])
    np.testing.assert_allclose(grand.values, [2., 2., 4.])
    np.testing.assert_allclose(grand.se[[0, 2]], [1., 1.])
    self.assertTrue(np.isnan(grand.se[1]))
    self.assertEqual(grand.num_runs.tolist(), [2, 1, 2])
    self.assertEqual(grand.args, {"score_epochs": [0]})
    self.assertIsInstance(grand, score_file.Scores)


if __name__ == "__main__":
  absltest.main()
