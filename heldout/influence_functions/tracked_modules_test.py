"""Tracked layers of real architectures, per-example gradients, losses, labels."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import sonnet as snt
import tensorflow as tf

from heldout import tolerance
from heldout.influence_functions import arguments
from heldout.influence_functions import tracked_modules
from heldout.models import registry


def _built(arch, shape, **kwargs):
  tf.random.set_seed(0)
  model = registry.build_model(arch, 10, **kwargs)
  model(tf.zeros((1,) + shape), is_training=False)
  return model


class FindTrackedModulesTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("mlp", "mlp", (8, 8, 1), {"hidden_sizes": (64, 32)}, 3, 0),
      ("small_cnn", "small_cnn", (8, 8, 1), {}, 2, 2),
      ("small_inception", "small_inception", (32, 32, 3), {}, 1, 19))
  def test_every_linear_and_conv(self, arch, shape, kwargs, linears, convs):
    model = _built(arch, shape, **kwargs)
    tracked = tracked_modules.find_tracked_modules(model)
    kinds = [t.kind for t in tracked]
    self.assertEqual(kinds.count("linear"), linears)
    self.assertEqual(kinds.count("conv"), convs)
    self.assertLen({t.name for t in tracked}, len(tracked))
    # Every trainable variable not of batch norm belongs to a tracked layer.
    covered = {v.ref() for t in tracked for v in t.variables}
    rest = [v.name for v in model.trainable_variables
            if v.ref() not in covered]
    self.assertTrue(all("batch_norm" in n or "bn" in n.lower() for n in rest),
                    rest)

  def test_small_inception_gradients_equal_a_tape_per_example(self):
    # Strided SAME convolutions without bias, batch norm (inference mode),
    # the linear head: the closed forms against GradientTape.
    model = _built("small_inception", (32, 32, 3))
    tracked = tracked_modules.find_tracked_modules(model)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    labels = np.array([3, 7])
    a, s, _ = tracked_modules.layer_rows(model, tracked, tf.constant(images),
                                         tf.constant(labels),
                                         dtype=tf.float64)
    for n in range(2):
      with tf.GradientTape() as tape:
        logits = model(tf.constant(images[n:n + 1]), is_training=False)
        loss = tf.reduce_sum(tracked_modules.losses(logits, labels[n:n + 1],
                                                    "ce"))
      grads = tape.gradient(loss, [v for t in tracked for v in t.variables])
      for i, t in enumerate(tracked):
        count = len(t.variables)
        expected = tracked_modules.variable_gradient_block(t, grads[:count])
        grads = grads[count:]
        actual = tracked_modules.per_example_gradients(a[i], s[0][i])[n]
        tolerance.assert_close(actual.numpy(), expected, 1e-4,
                               err_msg=t.name)

  def test_a_layer_called_twice_is_refused(self):

    class Twice(snt.Module):

      def __init__(self):
        super().__init__()
        self.layer = snt.Linear(4)

      def __call__(self, x, is_training):
        return self.layer(self.layer(snt.flatten(x)))

    model = Twice()
    model(tf.zeros((1, 2, 2, 1)), False)
    tracked = tracked_modules.find_tracked_modules(model)
    with self.assertRaisesRegex(tracked_modules.UnsupportedModelError,
                                "called 2 times"):
      tracked_modules.layer_rows(model, tracked, tf.zeros((2, 2, 2, 1)),
                                 tf.constant([0, 1]))

  def test_no_layer(self):
    with self.assertRaisesRegex(tracked_modules.UnsupportedModelError,
                                "no snt.Linear or snt.Conv2D"):
      tracked_modules.find_tracked_modules(snt.Module(name="empty"))


class LossesAndLabelsTest(absltest.TestCase):

  def test_margin(self):
    logits = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    labels = np.array([1, 0])
    margin = tracked_modules.losses(tf.constant(logits), labels,
                                    arguments.MARGIN).numpy()
    for n in range(2):
      others = np.delete(logits[n], labels[n])
      expected = -(logits[n, labels[n]] - np.log(np.exp(others).sum()))
      self.assertAlmostEqual(margin[n], expected, places=12)

  def test_sampled_labels_follow_the_model(self):
    logits = np.log(np.array([0.6, 0.3, 0.1]))
    ids = np.arange(20000)
    noise = tracked_modules.sampled_label_noise(ids, 3, seed=5, pass_id=1)
    labels = np.argmax(logits + noise, axis=1)
    frequencies = np.bincount(labels, minlength=3) / len(ids)
    # 4 standard errors of a frequency of 20,000 draws: 0.014.
    np.testing.assert_allclose(frequencies, [0.6, 0.3, 0.1], atol=0.014)
    # A function of (seed, pass, id) only: any batch, any order.
    np.testing.assert_array_equal(
        tracked_modules.sampled_label_noise(ids[[7, 3]], 3, 5, 1),
        noise[[7, 3]])
    other_pass = tracked_modules.sampled_label_noise(ids, 3, 5, 2)
    other_seed = tracked_modules.sampled_label_noise(ids, 3, 6, 1)
    for other in (other_pass, other_seed):
      agree = np.mean(np.argmax(logits + other, axis=1) == labels)
      # Independent draws agree with probability sum p^2 = 0.46.
      self.assertLess(abs(agree - 0.46), 0.03)


if __name__ == "__main__":
  absltest.main()
