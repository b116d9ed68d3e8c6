"""Tests of forgetting events against slow, obviously correct loops."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout.data import digits
from heldout.data import label_noise
from heldout.models import registry
from heldout.scores import forgetting
from heldout.scores import score_file
from train import loop
from train.configs import base


def _slow_counts(index, correct):
  """Toneva's definition, one example at a time: {id: (events, learned, n)}."""
  out = {}
  for example in sorted(set(int(i) for i in index)):
    seq = [bool(c) for i, c in zip(index, correct) if i == example]
    events = sum(1 for t in range(len(seq) - 1) if seq[t] and not seq[t + 1])
    out[example] = (events, any(seq), len(seq))
  return out


def _random_sequence(rng, num_examples=30, steps=40, batch=8):
  """Minibatches of distinct ids (as the loop gives), correctness drifting up."""
  index, correct, batches = [], [], []
  for t in range(steps):
    ids = rng.choice(num_examples, size=batch, replace=False)
    p = min(0.9, 0.2 + t / steps)
    c = rng.random(batch) < p
    c[ids % 7 == 3] = False  # some examples never learned
    batches.append((ids, c))
    index.extend(ids)
    correct.extend(c)
  return np.array(index), np.array(correct), batches


class Recorder(loop.Callback):

  def __init__(self):
    self.index, self.correct = [], []

  def on_batch_end(self, epoch, step, index, per_example_loss, correct):
    self.index.append(np.array(index))
    self.correct.append(np.array(correct))


class ForgettingTest(parameterized.TestCase):

  def _assert_matches_slow(self, counts, index, correct):
    slow = _slow_counts(index, correct)
    self.assertEqual(counts.index.tolist(), sorted(slow))
    for i, example in enumerate(counts.index):
      events, learned, n = slow[int(example)]
      self.assertEqual(int(counts.never_learned[i]), int(not learned), example)
      self.assertEqual(int(counts.events[i]), events if learned else 0, example)
      self.assertEqual(int(counts.presentations[i]), n, example)
      expected_f = events if learned else np.inf
      self.assertEqual(counts.forgetting[i], expected_f)

  @parameterized.parameters(0, 1, 2)
  def test_minibatch_counts_match_slow_loop(self, seed):
    index, correct, _ = _random_sequence(np.random.default_rng(seed))
    counts = forgetting.count_forgetting_events(index, correct)
    self._assert_matches_slow(counts, index, correct)
    self.assertTrue(counts.never_learned.any())
    self.assertGreater(counts.events.max(), 1)

  def test_hand_computed(self):
    # id 5: 1 0 1 0 -> 2 events; id 2: 0 0 -> never learned (inf);
    # id 9: 0 1 1 -> learned, unforgettable; id 1: 1 -> 0 events.
    index = [5, 2, 5, 9, 5, 2, 9, 5, 9, 1]
    correct = [1, 0, 0, 0, 1, 0, 1, 0, 1, 1]
    counts = forgetting.count_forgetting_events(index, correct)
    self.assertEqual(counts.index.tolist(), [1, 2, 5, 9])
    self.assertEqual(counts.events.tolist(), [0, 0, 2, 0])
    self.assertEqual(counts.never_learned.tolist(), [False, True, False, False])
    self.assertEqual(counts.forgetting.tolist(), [0.0, np.inf, 2.0, 0.0])
    self.assertEqual(counts.presentations.tolist(), [1, 2, 4, 3])

  def test_callback_equals_pure_function(self):
    rng = np.random.default_rng(3)
    index, correct, batches = _random_sequence(rng)
    callback = forgetting.ForgettingCallback(num_examples=30)
    for step, (ids, c) in enumerate(batches):
      callback.on_batch_end(0, step + 1, ids, np.zeros(len(ids)), c)
    got = callback.counts()
    self._assert_matches_slow(got, index, correct)
    # An id twice in one batch is taken in order.
    callback.reset()
    callback.on_batch_end(0, 1, np.array([3, 3, 3]), np.zeros(3),
                          np.array([True, False, True]))
    self.assertEqual(callback.counts().events.tolist(), [1])
    with self.assertRaisesRegex(ValueError, r"ids must lie in \[0, 30\)"):
      callback.on_batch_end(0, 1, np.array([30]), np.zeros(1), np.array([True]))
    with self.assertRaisesRegex(ValueError, "`num_examples` must be positive"):
      forgetting.ForgettingCallback(0)

  def test_per_epoch_matches_slow_loop(self):
    rng = np.random.default_rng(4)
    masks = rng.random((12, 25)) < 0.6
    masks[:, 3] = False
    index = rng.permutation(100)[:25]
    counts = forgetting.count_per_epoch_forgetting(masks, index)
    for i, example in enumerate(counts.index):
      column = list(index).index(example)
      seq = masks[:, column].tolist()
      events = sum(seq[e] and not seq[e + 1] for e in range(len(seq) - 1))
      self.assertEqual(counts.never_learned[i], not any(seq))
      self.assertEqual(counts.events[i], events if any(seq) else 0)
      self.assertEqual(counts.presentations[i], 12)
    # The per-epoch variant is the minibatch count over the masks read as a
    # sequence of one "batch" per epoch.
    seq_index = np.tile(index, 12)
    same = forgetting.count_forgetting_events(seq_index, masks.reshape(-1))
    np.testing.assert_array_equal(same.events, counts.events)
    np.testing.assert_array_equal(same.never_learned, counts.never_learned)

  def test_forgetting_scores_averaging(self):
    # Example 0: learned in runs 0, 1 (2 and 4 events), never in run 2.
    # Example 1: never learned in the two runs that saw it.
    # Example 2: learned in one run (1 event). Example 3: only run 2, 0 events.
    runs = [
        forgetting.ForgettingCounts(np.array([0, 1, 2]), np.array([2, 0, 1]),
                                    np.array([False, True, False]), np.ones(3, np.int64)),
        forgetting.ForgettingCounts(np.array([0, 1]), np.array([4, 0]),
                                    np.array([False, True]), np.ones(2, np.int64)),
        forgetting.ForgettingCounts(np.array([0, 3]), np.array([0, 0]),
                                    np.array([True, False]), np.ones(2, np.int64)),
    ]
    scores = forgetting.forgetting_scores(runs, args={"seeds": [0, 1, 2]})
    self.assertEqual(scores.method, forgetting.MINIBATCH)
    self.assertEqual(scores.index.tolist(), [0, 1, 2, 3])
    self.assertEqual(scores.values.tolist(), [3.0, np.inf, 1.0, 0.0])
    self.assertAlmostEqual(scores.se[0], np.std([2, 4], ddof=1) / np.sqrt(2))
    self.assertTrue(np.isnan(scores.se[1:]).all())
    self.assertEqual(scores.num_runs.tolist(), [3, 2, 1, 1])
    self.assertEqual(scores.extras["num_learned_runs"].tolist(), [2, 0, 1, 1])
    self.assertEqual(scores.extras["never_learned"].tolist(),
                     [False, True, False, False])
    np.testing.assert_allclose(scores.extras["never_learned_fraction"],
                               [1 / 3, 1.0, 0.0, 0.0])
    with self.assertRaisesRegex(ValueError, "`method` must be"):
      forgetting.forgetting_scores(runs, method="forget")
    # Never learned in every run (1), then in a third of the runs (0), then
    # by mean count: 2 (1 event), 3 (0 events).
    self.assertEqual(forgetting.most_forgettable_first(scores).tolist(),
                     [1, 0, 2, 3])
    # Through the file and back: +inf and the flags survive.
    path = self.create_tempdir().full_path + "/f.npz"
    score_file.save_scores(scores, path)
    back = score_file.read_scores(path)
    self.assertEqual(back.values.tolist(), [3.0, np.inf, 1.0, 0.0])
    self.assertEqual(back.extras["never_learned"].dtype, bool)


class ForgettingTrainerTest(absltest.TestCase):
  """The callbacks fed by a real `train.loop.Trainer` on digits."""

  def test_callbacks_during_training(self):
    data = digits.load_digits()
    split = data.train
    config = base.TrainConfig(name="t", dataset="digits", arch="mlp", epochs=2,
                              batch_size=64, learning_rate=0.05,
                              arch_kwargs={"hidden_sizes": (16,)})
    trainer = loop.Trainer(
        lambda: registry.build_model("mlp", 10, hidden_sizes=(16,)),
        (8, 8, 1), config)
    trainer.reset(seed=0)
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(len(split), size=600, replace=False))
    callback = forgetting.ForgettingCallback(num_examples=len(split))
    recorder = Recorder()
    per_epoch = forgetting.EpochCorrectnessCallback(split, ids=subset)
    trainer.fit(split, subset, seed=0, epochs=2,
                callbacks=[callback, recorder, per_epoch])
    index = np.concatenate(recorder.index)
    correct = np.concatenate(recorder.correct)
    self.assertLen(index, 2 * 600)
    counts = callback.counts()
    np.testing.assert_array_equal(counts.index, subset)
    slow = _slow_counts(index, correct)
    self.assertEqual(counts.events.tolist(),
                     [slow[int(i)][0] if slow[int(i)][1] else 0 for i in subset])
    self.assertEqual(counts.never_learned.tolist(),
                     [not slow[int(i)][1] for i in subset])
    self.assertTrue((counts.presentations == 2).all())
    # Two epochs from scratch: some examples learned then forgotten, many
    # never learned yet.
    self.assertGreater(counts.events.sum(), 0)
    self.assertGreater(counts.never_learned.sum(), 0)
    # The per-epoch variant: masks of the model after each epoch, checked
    # against the model's own predictions after training.
    self.assertLen(per_epoch.masks, 2)
    _, final = trainer.evaluate(split, subset)
    np.testing.assert_array_equal(per_epoch.masks[-1], final)
    epoch_counts = per_epoch.counts()
    np.testing.assert_array_equal(epoch_counts.index, subset)
    masks = np.stack(per_epoch.masks)
    self.assertEqual(epoch_counts.events.tolist(),
                     (masks[0] & ~masks[1]).astype(int).tolist())
    scores = forgetting.forgetting_scores([counts, counts], args={"seeds": [0, 0]})
    self.assertTrue(np.isposinf(scores.values[counts.never_learned]).all())


class CorruptedLabelsTest(absltest.TestCase):
  """On digits with 10% of the labels corrupted, those rank most forgettable."""

  def test_corrupted_examples_rank_most_forgettable(self):
    split = digits.load_digits().train
    n = len(split)
    # The first 10% of ids get a random different class.
    noisy, corrupted = label_noise.corrupt_labels(split, 0.1, 10, seed=0)
    config = base.TrainConfig(name="t", dataset="digits", arch="mlp",
                              epochs=12, batch_size=64, learning_rate=0.1,
                              arch_kwargs={"hidden_sizes": (64,)})
    trainer = loop.Trainer(
        lambda: registry.build_model("mlp", 10, hidden_sizes=(64,)),
        (8, 8, 1), config)
    minibatch, per_epoch = [], []
    for seed in (0, 1):
      trainer.reset(seed)
      callback = forgetting.ForgettingCallback(n)
      epochs = forgetting.EpochCorrectnessCallback(noisy)
      trainer.fit(noisy, np.arange(n), seed=seed, callbacks=[callback, epochs])
      minibatch.append(callback.counts())
      per_epoch.append(epochs.counts())
    for method, runs in ((forgetting.MINIBATCH, minibatch),
                         (forgetting.PER_EPOCH, per_epoch)):
      scores = forgetting.forgetting_scores(runs, method, {"seeds": [0, 1]})
      top = forgetting.most_forgettable_first(scores)[:n // 5]
      found = np.isin(corrupted, top).mean()
      # Random ranking finds 20%; measured: 100% with either variant.
      self.assertGreater(found, 0.8, method)


if __name__ == "__main__":
  tf.config.set_visible_devices([], "GPU")
  absltest.main()
