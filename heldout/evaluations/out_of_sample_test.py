"""Tests of out-of-sample probabilities from heldout runs, and cleanlab."""

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.data import digits
from heldout.evaluations import out_of_sample
from heldout.readers import aux_arrays
from heldout.readers import checkpoints
from heldout.readers import layout
from train import batched
from train import configs


class OutOfSampleTest(absltest.TestCase):

  def test_mean_softmax_of_the_runs_that_held_each_example_out(self):
    data = digits.load_digits()
    folder = self.create_tempdir().full_path
    config = configs.get_config("digits_small").replace(epochs=2)
    batched.train_heldout_batched(data, "mlp", 0.5, [0, 1, 2], folder, config,
                                  k=3, progress=False)
    probs, count = out_of_sample.out_of_sample_probabilities(
        folder, 0.5, [0, 1, 2], data.train, batch_size=100, progress=False)
    # The slow way: each example, each run, one at a time.
    ids = [0, 5, 17, 600, 1256]
    for i in ids:
      got = []
      for run_id in range(3):
        run = layout.run_dir(folder, 0.5, run_id)
        aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run))
        if i in set(aux.subsample_idx.tolist()):
          continue
        model = checkpoints.restore_run(run).model
        x = data.train.images[data.train.positions_of([i])]
        got.append(tf.nn.softmax(model(tf.constant(x), is_training=False))
                   .numpy()[0])
      self.assertEqual(count[i], len(got))
      if got:
        tolerance.assert_close(probs[i], np.mean(got, axis=0),
                               tolerance.FORWARD)
      else:
        self.assertTrue(np.isnan(probs[i]).all())
    self.assertTrue(((count >= 0) & (count <= 3)).all())
    self.assertGreater(count.sum(), 0)

  def test_cleanlab_scores(self):
    rng = np.random.default_rng(0)
    n, c = 200, 4
    labels = rng.integers(0, c, n)
    probs = np.full((n, c), 0.02)
    probs[np.arange(n), labels] = 0.94
    wrong = np.arange(10)
    labels[wrong] = (labels[wrong] + 1) % c  # confidently predicted other
    probs[5] = np.nan  # no out-of-sample prediction
    score, flagged = out_of_sample.cleanlab_scores(labels, probs)
    # Self-confidence: 1 - p(given label).
    defined = np.arange(n) != 5
    np.testing.assert_allclose(score[defined],
                               1 - probs[defined][np.arange(n - 1),
                                                  labels[defined]])
    self.assertTrue(np.isnan(score[5]))
    self.assertFalse(flagged[5])
    np.testing.assert_array_equal(np.flatnonzero(flagged),
                                  [0, 1, 2, 3, 4, 6, 7, 8, 9])
    precision, recall = out_of_sample.flagged_precision_recall(
        flagged, np.arange(n) < 10)
    self.assertEqual((precision, recall), (1.0, 0.9))


if __name__ == "__main__":
  absltest.main()
