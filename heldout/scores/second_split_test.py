"""Tests of FSLT and SSFT: slow loops, a scripted trainer, digits with noise."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.data import digits
from heldout.data import label_noise
from heldout.models import registry
from heldout.scores import score_file
from heldout.scores import second_split
from train import loop
from train.configs import base


def _slow_fslt(seq):
  """First epoch e* (1-based) with correct at every e >= e*; E+1 if none."""
  epochs = len(seq)
  for start in range(1, epochs + 1):
    if all(seq[start - 1:]):
      return start
  return epochs + 1


def _slow_ssft(seq):
  """First epoch e* (1-based) with wrong at every e >= e*; E+1 if none."""
  epochs = len(seq)
  for start in range(1, epochs + 1):
    if not any(seq[start - 1:]):
      return start
  return epochs + 1


class Counter:
  """What `Trainer.epoch` offers: `.numpy()`."""

  def __init__(self, value):
    self.value = value

  def numpy(self):
    return np.int64(self.value)


class ScriptedTrainer:
  """Stands in for `train.loop.Trainer`: correctness from a rule, not a model.

  Example i is correct after `t` epochs since `reset` (both phases counted)
  when `rule(i, t, training_on)`; a training step predicts example i with
  the model of before its epoch, so right when `rule(i, t, training_on)` of
  the epochs done before it.
  """

  def __init__(self, rule):
    self.rule = rule
    self.fits = []

  def reset(self, seed):
    del seed
    self._epoch = 0
    self._clock = 0
    self._training_on = None

  def start_new_phase(self):
    self.fits.append("new phase")
    self._epoch = 0

  @property
  def epoch(self):
    return Counter(self._epoch)

  def fit(self, split, subset_ids, seed, epochs=None, callbacks=()):
    del split, seed
    self._training_on = np.asarray(subset_ids)
    self.fits.append((len(subset_ids), self._epoch, epochs))
    for e in range(self._epoch, epochs):
      correct = np.array([self.rule(int(i), self._clock, self._training_on)
                          for i in self._training_on], bool)
      for cb in callbacks:
        cb.on_batch_end(e, e + 1, self._training_on, None, correct)
      self._epoch = e + 1
      self._clock += 1
      for cb in callbacks:
        cb.on_epoch_end(e, self)

  def evaluate(self, split, ids=None, batch_size=None):
    del split, batch_size
    ids = np.asarray(ids)
    return ids, np.array([self.rule(int(i), self._clock, self._training_on)
                          for i in ids], bool)


class Split:
  def __init__(self, n):
    self.index = np.arange(n, dtype=np.int64)


class TimesTest(parameterized.TestCase):

  @parameterized.parameters(0, 1, 2)
  def test_against_slow_loops(self, seed):
    masks = np.random.default_rng(seed).random((7, 40)) < 0.6
    masks[:, 0] = True
    masks[:, 1] = False
    masks[-1, 2] = True
    fslt = second_split.first_split_learning_time(masks)
    ssft = second_split.second_split_forgetting_time(masks)
    for i in range(40):
      self.assertEqual(fslt[i], _slow_fslt(masks[:, i].tolist()), i)
      self.assertEqual(ssft[i], _slow_ssft(masks[:, i].tolist()), i)
    self.assertEqual((fslt[0], ssft[0]), (1, 8))  # always right
    self.assertEqual((fslt[1], ssft[1]), (8, 1))  # never right

  def test_hand_computed(self):
    # Columns: 0 1 1 -> FSLT 2, SSFT 4; 1 0 0 -> FSLT 4, SSFT 2.
    masks = np.array([[0, 1], [1, 0], [1, 0]], bool)
    self.assertEqual(second_split.first_split_learning_time(masks).tolist(), [2, 4])
    self.assertEqual(second_split.second_split_forgetting_time(masks).tolist(), [4, 2])
    with self.assertRaisesRegex(ValueError, r"must be \[epochs >= 1, n\]"):
      second_split.first_split_learning_time(np.zeros((0, 3), bool))

  def test_halves(self):
    a, b = second_split.split_halves(np.arange(11), seed=3)
    self.assertLen(a, 5)
    self.assertLen(b, 6)
    self.assertEqual(sorted(np.concatenate([a, b]).tolist()), list(range(11)))
    a2, _ = second_split.split_halves(np.arange(11), seed=3)
    np.testing.assert_array_equal(a, a2)


class ProtocolTest(absltest.TestCase):

  def test_scripted_trainer(self):
    # Example i is learned from epoch 1 + i % 4 while trained on; once its
    # half is no longer trained on, it is forgotten after i % 3 epochs.
    state = {}

    def scripted(i, epoch, training_on):
      if i in training_on:
        state[i] = epoch  # last epoch seen while trained on
        return epoch >= 1 + i % 4
      return epoch - state[i] <= i % 3

    trainer = ScriptedTrainer(scripted)
    split = Split(20)
    result = second_split.run_two_phases(trainer, split, seed=0, max_epochs=10,
                                         patience=2, second_epochs=7)
    np.testing.assert_array_equal(result.index, np.arange(20))
    # Every example of the half is right after 4 epochs, so the training
    # steps of epochs 5 and 6 predict all right: phase 1 stops after 6
    # (patience 2). Phase 2 trains on the other half, fit from its first
    # epoch on, so it stops after 2.
    np.testing.assert_array_equal(result.first_epochs, np.full(20, 6))
    np.testing.assert_array_equal(result.second_epochs, np.full(20, 2))
    # FSLT = 1 + i % 4 (learned then, never wrong again); phase 2: right for
    # i % 3 more epochs, so SSFT = 1 + i % 3 (3 = E + 1: never forgotten in
    # the 2 epochs of phase 2).
    np.testing.assert_array_equal(result.fslt, 1 + np.arange(20) % 4)
    np.testing.assert_array_equal(result.ssft, 1 + np.arange(20) % 3)
    # Phase 2 starts a new optimizer and schedule: epoch 0 to second_epochs.
    self.assertEqual(trainer.fits, [(10, 0, 10), "new phase", (10, 0, 7)] * 2)
    with self.assertRaisesRegex(ValueError, "must be positive"):
      second_split.run_two_phases(trainer, split, 0, second_epochs=0)

  def test_fit_epochs_need_not_be_consecutive(self):
    # SSFT's code counts epochs at 100% training accuracy over the phase and
    # never resets the count: here the training steps are all right in
    # epochs 2, 4 and 6 only, so patience 3 stops phase 1 after epoch 6.
    def alternating(i, epoch, training_on):
      if i in training_on:
        return epoch % 2 == 1
      return False

    trainer = ScriptedTrainer(alternating)
    result = second_split.run_two_phases(trainer, Split(6), seed=1,
                                         max_epochs=20, patience=3,
                                         second_epochs=4)
    np.testing.assert_array_equal(result.first_epochs, np.full(6, 6))
    # Phase 2: its steps are all right in epochs 2 and 4 only, so it runs
    # its 4 epochs; the first half is wrong after each of them: SSFT = 1.
    np.testing.assert_array_equal(result.second_epochs, np.full(6, 4))
    np.testing.assert_array_equal(result.ssft, np.ones(6))

  def test_scores_over_seeds(self):
    runs = [second_split.TwoPhaseResult(np.arange(3), np.array([1, 2, 3]),
                                        np.array([2, 4, 6]), np.full(3, 5),
                                        np.full(3, 6)),
            second_split.TwoPhaseResult(np.arange(3), np.array([3, 2, 1]),
                                        np.array([4, 4, 4]), np.full(3, 5),
                                        np.full(3, 6))]
    scores = second_split.two_phase_scores(runs, {"seeds": [0, 1]})
    self.assertEqual(scores.method, "ssft")
    np.testing.assert_allclose(scores.values, [3, 4, 5])
    np.testing.assert_allclose(scores.se, [1, 0, 1])
    np.testing.assert_allclose(scores.extras["fslt"], [2, 2, 2])
    np.testing.assert_allclose(scores.extras["fslt_se"], [1, 0, 1])
    self.assertTrue((scores.num_runs == 2).all())


class DigitsTest(absltest.TestCase):

  def test_mislabeled_examples_are_forgotten_first(self):
    split = digits.load_digits().train
    n = len(split)
    # The first 10% of ids get a random different class.
    noisy, corrupted = label_noise.corrupt_labels(split, 0.1, 10, seed=0)
    config = base.TrainConfig(name="t", dataset="digits", arch="mlp",
                              epochs=40, batch_size=64, learning_rate=0.1,
                              arch_kwargs={"hidden_sizes": (128,)})
    trainer = loop.Trainer(
        lambda: registry.build_model("mlp", 10, hidden_sizes=(128,)),
        (8, 8, 1), config)
    result = second_split.run_two_phases(trainer, noisy, seed=0, max_epochs=40,
                                         patience=3, second_epochs=5)
    self.assertTrue((result.fslt >= 1).all() and
                    (result.fslt <= result.first_epochs + 1).all())
    self.assertTrue((result.ssft >= 1).all() and (result.ssft <= result.second_epochs + 1).all())
    scores = second_split.two_phase_scores([result])
    # Low SSFT = likely mislabeled: the corrupted examples among the 20% of
    # lowest SSFT (ties broken by id; random: 20%). Measured: 100% (phase 1
    # ran its 40 epochs: the noisy halves are never fit at 100%).
    order = np.lexsort((scores.index, scores.values))
    lowest = scores.index[order[:n // 5]]
    found = np.isin(corrupted, lowest).mean()
    self.assertGreater(found, 0.6)
    self.assertIsInstance(scores, score_file.Scores)


if __name__ == "__main__":
  absltest.main()
