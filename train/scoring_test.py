"""Tests of scoring runs on digits: outputs, checkpoints, resuming, arguments."""

import dataclasses
import os

from absl.testing import absltest
import numpy as np

from heldout import errors
from heldout import tolerance
from heldout.data import digits
from heldout.models import registry
from heldout.readers import checkpoints
from heldout.scores import el2n_grand
from heldout.scores import forgetting
from heldout.scores import score_file
from heldout.scores import second_split
from train import batched
from train import loop
from train import scoring
from train import subsets
from train.configs import base

_CONFIG = base.TrainConfig(name="t", dataset="digits", arch="mlp", epochs=2,
                           batch_size=128, learning_rate=0.1,
                           arch_kwargs={"hidden_sizes": (16,)})


class ScoringTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  def setUp(self):
    super().setUp()
    self.folder = self.create_tempdir().full_path
    self.trainers = 0

  def _trainer_fn(self, config=_CONFIG):
    def make():
      self.trainers += 1
      return loop.Trainer(
          lambda: registry.build_model("mlp", 10, **config.arch_kwargs),
          (8, 8, 1), config)
    return make

  def _args(self, method="forgetting", seeds=(0, 1), score_epochs=(),
            config=_CONFIG, second_epochs=0):
    return scoring.ScoringArgs(method=method, dataset="digits",
                               config=dataclasses.asdict(config), seeds=seeds,
                               score_epochs=score_epochs,
                               second_epochs=second_epochs)

  def test_forgetting_outputs_and_resume(self):
    output = os.path.join(self.folder, "f.npz")
    paths = scoring.train_and_score(self.data, self._trainer_fn(),
                                    self._args(), output, progress=False)
    self.assertEqual(paths, {-1: output})
    scores = score_file.read_scores(output)
    self.assertEqual(scores.method, forgetting.MINIBATCH)
    self.assertEqual(scores.args["seeds"], [0, 1])
    self.assertLen(scores, 1257)
    self.assertTrue((scores.num_runs == 2).all())
    # The file is the average of the two seeds' own counts, recomputed here
    # by training seed 0 again independently (training is deterministic).
    trainer = self._trainer_fn()()
    trainer.reset(0)
    callback = forgetting.ForgettingCallback(1257)
    trainer.fit(self.data.train, np.arange(1257), 0, epochs=2,
                callbacks=[callback])
    seed0 = np.load(os.path.join(self.folder, "f.runs", "seed_0.npz"))
    np.testing.assert_array_equal(seed0["events"], callback.counts().events)
    np.testing.assert_array_equal(seed0["never_learned"],
                                  callback.counts().never_learned)
    seed1 = np.load(os.path.join(self.folder, "f.runs", "seed_1.npz"))
    expected = forgetting.forgetting_scores([
        forgetting.ForgettingCounts(s["index"], s["events"], s["never_learned"],
                                    s["presentations"]) for s in (seed0, seed1)])
    np.testing.assert_array_equal(scores.values, expected.values)
    self.assertTrue(os.path.exists(os.path.join(self.folder, "f.csv")))
    # Again: nothing trained. With a third seed: only it.
    self.trainers = 0
    mtime = os.path.getmtime(os.path.join(self.folder, "f.runs", "seed_0.npz"))
    scoring.train_and_score(self.data, self._trainer_fn(), self._args(),
                            output, progress=False)
    self.assertEqual(self.trainers, 0)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError, "seeds"):
      scoring.train_and_score(self.data, self._trainer_fn(),
                              self._args(seeds=(0, 1, 2)), output,
                              progress=False)
    # More seeds with overwrite: the finished two are reused.
    scoring.train_and_score(self.data, self._trainer_fn(),
                            self._args(seeds=(0, 1, 2)), output,
                            overwrite=True, progress=False)
    self.assertEqual(mtime, os.path.getmtime(
        os.path.join(self.folder, "f.runs", "seed_0.npz")))
    self.assertTrue((score_file.read_scores(output).num_runs == 3).all())
    # Other training arguments into the same place: refused.
    other = _CONFIG.replace(epochs=3)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError, "config"):
      scoring.train_and_score(self.data, self._trainer_fn(other),
                              self._args(config=other), output, progress=False)
    # With overwrite, the seeds are trained again.
    scoring.train_and_score(self.data, self._trainer_fn(other),
                            self._args(config=other), output, overwrite=True,
                            progress=False)
    self.assertNotEqual(mtime, os.path.getmtime(
        os.path.join(self.folder, "f.runs", "seed_0.npz")))
    self.assertEqual(score_file.read_scores(output).args["config"]["epochs"], 3)

  def test_seeds_split_across_workers_match_one_job(self):
    args = self._args(seeds=(0, 1, 2))
    single = os.path.join(self.folder, "single.npz")
    scoring.train_and_score(self.data, self._trainer_fn(), args, single,
                            progress=False)
    shared = os.path.join(self.folder, "shared.npz")
    workers = [subsets.select_runs(args.seeds, 2, i) for i in (0, 1)]
    self.assertEqual(workers, [[0, 2], [1]])
    # Worker 0 ends first: seed 1 is missing, so it writes nothing.
    self.assertEqual(scoring.train_and_score(
        self.data, self._trainer_fn(), args, shared, progress=False,
        train_seeds=workers[0]), {})
    self.assertFalse(os.path.exists(shared))
    self.assertEqual(scoring.missing_seeds(shared, args), [1])
    # Worker 1 finds every seed finished and writes the file.
    self.assertEqual(scoring.train_and_score(
        self.data, self._trainer_fn(), args, shared, progress=False,
        train_seeds=workers[1]), {-1: shared})
    self.assertEqual(scoring.missing_seeds(shared, args), [])
    one, split = score_file.read_scores(single), score_file.read_scores(shared)
    np.testing.assert_array_equal(one.index, split.index)
    np.testing.assert_array_equal(one.values, split.values)
    np.testing.assert_array_equal(one.se, split.se)
    np.testing.assert_array_equal(one.num_runs, split.num_runs)
    self.assertEqual(one.args, split.args)
    # Re-running worker 0 after all finished trains nothing and writes it.
    os.remove(shared)
    trainers = self.trainers
    self.assertEqual(scoring.train_and_score(
        self.data, self._trainer_fn(), args, shared, progress=False,
        train_seeds=workers[0]), {-1: shared})
    self.assertEqual(self.trainers, trainers)
    np.testing.assert_array_equal(score_file.read_scores(shared).values,
                                  one.values)
    with self.assertRaisesRegex(ValueError, "`train_seeds`"):
      scoring.train_and_score(self.data, self._trainer_fn(), args, shared,
                              progress=False, train_seeds=[7])

  def test_grand_at_epochs_with_checkpoints(self):
    output = os.path.join(self.folder, "g.npz")
    paths = scoring.train_and_score(
        self.data, self._trainer_fn(), self._args("grand", score_epochs=(2, 0)),
        output, progress=False)
    self.assertEqual(paths, {0: os.path.join(self.folder, "g_epoch0.npz"),
                             2: os.path.join(self.folder, "g_epoch2.npz")})
    for epoch, path in paths.items():
      scores = score_file.read_scores(path)
      self.assertEqual(scores.method, "grand")
      self.assertEqual(scores.args["score_epoch"], epoch)
      self.assertTrue((scores.num_runs == 2).all())
      self.assertTrue((scores.se >= 0).all())
      # Seed 1's model at that epoch, restored from its released-layout run,
      # scores as stored.
      run = os.path.join(self.folder, "g.runs", "epoch_{}".format(epoch), "1")
      restored = checkpoints.restore_run(run)
      self.assertEqual(restored.epoch, epoch)
      again = el2n_grand.score_split(restored.model, self.data.train,
                                     progress=False)
      stored = np.load(os.path.join(self.folder, "g.runs", "seed_1.npz"))
      tolerance.assert_close(again.grand, stored["grand_{}".format(epoch)],
                             tolerance.FORWARD)
    # Training moved the weights: the two epochs' scores differ.
    self.assertFalse(np.allclose(score_file.read_scores(paths[0]).values,
                                 score_file.read_scores(paths[2]).values))

  def _batched_fn(self, k, config=_CONFIG):
    self.trainers += 1
    return batched.BatchedTrainer("mlp", 10, (8, 8, 1), config, k)

  def _seed_arrays(self, name, seed):
    with np.load(os.path.join(self.folder, name + ".runs",
                              "seed_{}.npz".format(seed))) as f:
      return {k: f[k] for k in f.files}

  def test_batched_seeds_match_one_at_a_time(self):
    # Seeds 0..2 in groups of at most 2 ([0, 1] and [2], padded): each seed
    # is the model the single-model loop trains for it.
    for method, epochs in (("forgetting", ()), ("forgetting_per_epoch", ()),
                           ("grand", (0, 2)), ("el2n", (2,))):
      args = self._args(method, seeds=(0, 1, 2), score_epochs=epochs)
      one = os.path.join(self.folder, method + "_one.npz")
      many = os.path.join(self.folder, method + "_many.npz")
      scoring.train_and_score(self.data, self._trainer_fn(), args, one,
                              progress=False)
      self.trainers = 0
      scoring.train_and_score(self.data, self._trainer_fn(), args, many,
                              progress=False, batched_fn=self._batched_fn,
                              batched_k=2)
      self.assertEqual(self.trainers, 1)  # one BatchedTrainer, no Trainer
      for seed in (0, 1, 2):
        ref = self._seed_arrays(method + "_one", seed)
        got = self._seed_arrays(method + "_many", seed)
        self.assertEqual(sorted(ref), sorted(got))
        np.testing.assert_array_equal(got["index"], ref["index"])
        if method.startswith("forgetting"):
          # Float summation orders differ, so an example right at a decision
          # boundary may flip; all but a few counts agree.
          same = np.mean(got["events"] == ref["events"])
          self.assertGreater(same, 0.99, (method, seed))
          self.assertGreater(np.mean(got["never_learned"] ==
                                     ref["never_learned"]), 0.99)
          self.assertGreater(got["events"].sum(), 0)
        else:
          for e in epochs:
            key = "{}_{}".format(method, e)
            tolerance.assert_close(got[key], ref[key],
                                   tolerance.TRAINED if e else
                                   tolerance.FORWARD)
            run = os.path.join(self.folder, method + "_many.runs",
                               "epoch_{}".format(e), str(seed))
            restored = checkpoints.restore_run(run)
            self.assertEqual(restored.epoch, e)
            again = el2n_grand.score_split(restored.model, self.data.train,
                                           progress=False)
            tolerance.assert_close(getattr(again, method), got[key],
                                   tolerance.FORWARD)
    with self.assertRaisesRegex(ValueError, "ssft stops each model"):
      scoring.score_seeds_batched(self._batched_fn(2), self.data.train,
                                  self._args("ssft", seeds=(0,),
                                             second_epochs=2),
                                  [0], self.folder)

  def test_ssft(self):
    output = os.path.join(self.folder, "s.npz")
    scoring.train_and_score(self.data, self._trainer_fn(),
                            self._args("ssft", seeds=(0,), second_epochs=2),
                            output, progress=False)
    scores = score_file.read_scores(output)
    self.assertEqual(scores.method, "ssft")
    self.assertLen(scores, 1257)
    self.assertEqual(sorted(scores.extras), ["fslt", "fslt_se"])
    # Phase 2 of 2 epochs: SSFT in 1..3; phase 1 of at most 2: FSLT in 1..3.
    self.assertTrue(((scores.values >= 1) & (scores.values <= 3)).all())
    self.assertTrue(((scores.extras["fslt"] >= 1) &
                     (scores.extras["fslt"] <= 3)).all())
    # The seed's own result, recomputed independently of the job.
    trainer = self._trainer_fn()()
    again = second_split.run_two_phases(trainer, self.data.train, 0,
                                        max_epochs=2, patience=5,
                                        second_epochs=2)
    np.testing.assert_array_equal(scores.values, again.ssft)
    np.testing.assert_array_equal(scores.extras["fslt"], again.fslt)

  def test_argument_checks(self):
    with self.assertRaisesRegex(ValueError, "ssft needs `second_epochs`"):
      self._args(method="ssft")
    with self.assertRaisesRegex(ValueError, "`second_epochs` is for ssft"):
      self._args(second_epochs=3)
    with self.assertRaisesRegex(ValueError, "`method` must be one of"):
      self._args(method="fslt")
    with self.assertRaisesRegex(ValueError, "`score_epochs` must be epochs"):
      self._args(method="el2n")
    with self.assertRaisesRegex(ValueError, "`score_epochs` is for el2n"):
      self._args(score_epochs=(1,))
    with self.assertRaisesRegex(ValueError, "distinct"):
      self._args(seeds=(1, 1))
    self.assertEqual(scoring.parse_epochs("0, 20"), [0, 20])
    with self.assertRaisesRegex(ValueError, "'x' is not an epoch"):
      scoring.parse_epochs("0,x")


if __name__ == "__main__":
  absltest.main()
