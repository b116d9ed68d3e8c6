"""Tests for train.samis: paired runs, SAMIS from their checkpoints, resuming."""

import hashlib
import json
import os
import tempfile

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout import errors
from heldout import tolerance
from heldout.data import digits
from heldout.models import registry
from heldout.readers import aux_arrays
from heldout.readers import checkpoints
from heldout.scores import score_file
from train import loop
from train import sam
from train import samis_training as samis
from train import subsets
from train.configs import base


def _config(**kw):
  defaults = dict(name="t", dataset="digits", arch="mlp", epochs=2,
                  batch_size=64, learning_rate=0.1, weight_decay=5e-4,
                  arch_kwargs={"hidden_sizes": (16,)},
                  checkpoint_every_seconds=0.0)
  defaults.update(kw)
  return base.TrainConfig(**defaults)


def _args(config=None, **kw):
  defaults = dict(dataset="digits", config=(config or _config()).to_json(),
                  seeds=(0, 1), folds=3)
  defaults.update(kw)
  return samis.SamisArgs(**defaults)


class _Kill(Exception):
  pass


class _KillAfterEpoch(loop.Callback):

  def __init__(self, epoch):
    self._epoch = epoch

  def on_epoch_end(self, epoch, trainer):
    if epoch == self._epoch:
      raise _Kill()


class _Factory:
  """`trainer_fn` that counts the runs trained and can kill one mid-run."""

  def __init__(self, data, config, kill_at=None):
    self.data, self.config = data, config
    self.kill_at = kill_at  # (call number, epoch)
    self.calls = []

  def __call__(self, optimizer):
    trainer = sam.make_trainer(
        optimizer, lambda: registry.build_model(
            "mlp", 10, **self.config.arch_kwargs),
        self.data.image_shape, self.config,
        strategy=tf.distribute.get_strategy())
    fit = trainer.fit
    factory = self

    def counted_fit(split, ids, seed, epochs=None, callbacks=(), **kw):
      factory.calls.append((optimizer, seed, int(trainer.epoch.numpy())))
      if factory.kill_at and len(factory.calls) == factory.kill_at[0]:
        callbacks = list(callbacks) + [_KillAfterEpoch(factory.kill_at[1])]
      return fit(split, ids, seed, epochs=epochs, callbacks=callbacks, **kw)

    trainer.fit = counted_fit
    return trainer


def _mlp_logits(model, images):
  """Numpy forward pass of the restored MLP (one hidden layer, ReLU)."""
  by_name = {v.name.split(":")[0].split("/", 1)[1]: v.numpy().astype(
      np.float64) for v in model.trainable_variables}
  x = images.reshape(len(images), -1).astype(np.float64)
  h = np.maximum(x @ by_name["linear_0/w"] + by_name["linear_0/b"], 0.0)
  return h @ by_name["linear_1/w"] + by_name["linear_1/b"]


class SamisTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()
    cls.folder = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.args = _args()
    cls.output = os.path.join(cls.folder, "s.npz")
    cls.factory = _Factory(cls.data, _config())
    cls.paths = samis.train_and_score(cls.data, cls.factory, cls.args,
                                      cls.output, progress=False)

  def test_folds_partition_the_training_set(self):
    folds = samis.fold_ids(1257, 3)
    self.assertLen(folds, 3)
    joined = np.sort(np.concatenate(folds))
    np.testing.assert_array_equal(joined, np.arange(1257))
    self.assertLessEqual(max(map(len, folds)) - min(map(len, folds)), 1)
    train, held = samis.train_and_held_out(1257, self.args, 4)
    np.testing.assert_array_equal(held, folds[1])  # run 4 = seed 1, fold 1
    self.assertEmpty(np.intersect1d(train, held))

  def test_scores_recomputed_from_the_checkpoints(self):
    work = samis.work_dir_for(self.output)
    split = self.data.train
    per_seed = {m: {s: [] for s in self.args.seeds}
                for m in (samis.SAMIS_L, samis.SAMIS_P)}
    for run in self.args.run_ids:
      seed, fold = samis.seed_and_fold(run, self.args.folds)
      _, held = samis.train_and_held_out(len(split), self.args, run)
      pos = split.positions_of(held)
      probs, losses = {}, {}
      for optimizer in samis.OPTIMIZERS:
        restored = checkpoints.restore_run(
            samis.run_dir(work, self.args, optimizer, run))
        z = _mlp_logits(restored.model, split.images[pos])
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        probs[optimizer] = p
        losses[optimizer] = -np.log(p[np.arange(len(pos)), split.labels[pos]])
      per_seed[samis.SAMIS_L][seed].append(
          (held, np.abs(losses["sgd"] - losses["sam"])))
      per_seed[samis.SAMIS_P][seed].append(
          (held, np.abs(probs["sgd"] - probs["sam"]).sum(axis=1)))
    for method, path in self.paths.items():
      scores = score_file.read_scores(path)
      self.assertEqual(scores.method, method)
      self.assertEqual(scores.args["folds"], 3)
      np.testing.assert_array_equal(np.sort(scores.index), np.arange(1257))
      np.testing.assert_array_equal(scores.num_runs, 2)
      values = np.zeros((2, 1257))
      for i, seed in enumerate(self.args.seeds):
        for held, v in per_seed[method][seed]:
          values[i, held] = v
      order = np.argsort(scores.index)
      # Float32 logits against a float64 forward pass of the same weights.
      tolerance.assert_close(scores.values[order], values.mean(axis=0),
                             tolerance.FORWARD, err_msg=method)
      tolerance.assert_close(scores.se[order],
                             values.std(axis=0, ddof=1) / np.sqrt(2),
                             tolerance.FORWARD, err_msg=method + " se")
      self.assertGreater(values.max(), 1e-3)  # the two models do differ

  def test_pairs_start_alike_and_end_apart(self):
    work = samis.work_dir_for(self.output)
    config = _config()
    trainers = {o: _Factory(self.data, config)(o) for o in samis.OPTIMIZERS}
    for run in self.args.run_ids:
      seed = samis.pair_seed(self.args, run)
      for t in trainers.values():
        t.reset(seed)
      for a, b in zip(trainers["sgd"].model.variables,
                      trainers["sam"].model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
      records = {}
      for o in samis.OPTIMIZERS:
        with open(os.path.join(work, "pairs", "{}.{}.json".format(run, o))) as f:
          records[o] = json.load(f)
      self.assertEqual(records["sgd"]["initial_weights"],
                       samis.weights_fingerprint(trainers["sgd"].model))
      # The order each run saw: the pair seed's permutation of its ids.
      train, _ = samis.train_and_held_out(1257, self.args, run)
      for epoch in range(config.epochs):
        order = train[subsets.epoch_order(seed, epoch, len(train))]
        expected = hashlib.sha256(order.astype(np.int64).tobytes()).hexdigest()
        for o in samis.OPTIMIZERS:
          self.assertEqual(records[o]["epoch_orders"][str(epoch)], expected)
      sgd = checkpoints.restore_run(samis.run_dir(work, self.args, "sgd", run))
      sam_run = checkpoints.restore_run(
          samis.run_dir(work, self.args, "sam", run))
      gap = max(np.abs(a.numpy() - b.numpy()).max() for a, b in zip(
          sgd.model.trainable_variables, sam_run.model.trainable_variables))
      self.assertGreater(gap, 1e-4)
      aux = aux_arrays.read_aux_arrays(
          os.path.join(samis.run_dir(work, self.args, "sgd", run),
                       "aux_arrays.npz"))
      np.testing.assert_array_equal(aux.subsample_idx, train)

  def test_mismatched_pair_is_refused(self):
    folder = self.create_tempdir().full_path
    work = os.path.join(folder, "pairs")
    os.makedirs(work)
    record = {"seed": 1, "initial_weights": "aa", "num_train_ids": 5,
              "epoch_orders": {"0": "x"}}
    for o, weights in (("sgd", "aa"), ("sam", "bb")):
      with open(os.path.join(work, "3.{}.json".format(o)), "w") as f:
        json.dump(dict(record, initial_weights=weights), f)
    with self.assertRaisesRegex(samis.PairMismatchError,
                                "pair 3.*initial weights"):
      samis.check_pair(folder, 3)

  def test_rerun_trains_nothing_and_other_arguments_are_refused(self):
    factory = _Factory(self.data, _config())
    samis.train_and_score(self.data, factory, self.args, self.output,
                          progress=False)
    self.assertEmpty(factory.calls)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError, "rho"):
      samis.train_and_score(self.data, factory, _args(rho=0.1), self.output,
                            progress=False)

  def test_resume_after_kill(self):
    config = _config(epochs=3)
    args = _args(config, seeds=(0,), folds=2)
    uninterrupted = os.path.join(self.create_tempdir().full_path, "u.npz")
    samis.train_and_score(self.data, _Factory(self.data, config), args,
                          uninterrupted, progress=False)
    output = os.path.join(self.create_tempdir().full_path, "k.npz")
    # Killed in the 3rd run (pair 1's SGD run) after its 2nd epoch.
    killed = _Factory(self.data, config, kill_at=(3, 1))
    with self.assertRaises(_Kill):
      samis.train_and_score(self.data, killed, args, output, progress=False)
    self.assertEqual([c[0] for c in killed.calls], ["sgd", "sam", "sgd"])
    self.assertEqual(samis.missing_runs(output, args), [(1, "sgd"),
                                                        (1, "sam")])
    again = _Factory(self.data, config)
    paths = samis.train_and_score(self.data, again, args, output,
                                  progress=False)
    # The finished pair is not retrained; the killed run resumes at epoch 1
    # (its progress after epoch 0 was saved).
    self.assertEqual([(c[0], c[2]) for c in again.calls],
                     [("sgd", 1), ("sam", 0)])
    for method, path in paths.items():
      want = score_file.read_scores(samis.output_paths(uninterrupted)[method])
      got = score_file.read_scores(path)
      np.testing.assert_array_equal(got.index, want.index)
      # One machine, the same steps from the same state: rounding aside, equal.
      tolerance.assert_close(got.values, want.values, tolerance.TRAINED,
                             err_msg=method)

  def test_premature_scores_every_example_trained_on(self):
    config = samis.premature_config(_config(), epochs=2)
    self.assertEqual((config.lr_schedule, config.epochs), ("constant", 2))
    args = _args(config, seeds=(0, 1), folds=1, premature=True)
    output = os.path.join(self.create_tempdir().full_path, "p.npz")
    paths = samis.train_and_score(self.data, _Factory(self.data, config),
                                  args, output, progress=False)
    scores = score_file.read_scores(paths[samis.SAMIS_P])
    np.testing.assert_array_equal(np.sort(scores.index), np.arange(1257))
    np.testing.assert_array_equal(scores.num_runs, 2)
    aux = aux_arrays.read_aux_arrays(os.path.join(samis.run_dir(
        samis.work_dir_for(output), args, "sam", 1), "aux_arrays.npz"))
    self.assertLen(aux.subsample_idx, 1257)
    self.assertEmpty(aux.index_removed)

  def test_memorization_agreement(self):
    scores = score_file.read_scores(self.paths[samis.SAMIS_L])
    path = os.path.join(self.create_tempdir().full_path, "est.npz")
    memorization = np.exp(scores.values)  # a monotone map: Spearman 1
    memorization[:10] = np.nan
    np.savez(path, index=scores.index, memorization=memorization)
    report = samis.memorization_agreement(scores, path)
    self.assertEqual(report.n_compared, len(scores) - 10)
    self.assertAlmostEqual(report.spearman, 1.0)
    np.savez(path, index=scores.index, memorization=-memorization)
    self.assertAlmostEqual(
        samis.memorization_agreement(scores, path).spearman, -1.0)
    np.savez(path, index=scores.index)
    with self.assertRaisesRegex(ValueError, "`memorization` not found"):
      samis.memorization_agreement(scores, path)

  def test_arguments(self):
    for kw, message in ((dict(folds=1), "`folds` must be at least 2"),
                        (dict(premature=True), "`folds` must be 1"),
                        (dict(rho=0.0), "`rho` must be positive"),
                        (dict(seeds=()), "`seeds`"),
                        (dict(seeds=(1, 1)), "distinct")):
      with self.assertRaisesRegex(ValueError, message):
        _args(**kw)
    self.assertEqual(samis.output_paths("/a/S.npz"),
                     {samis.SAMIS_L: "/a/S_l.npz", samis.SAMIS_P: "/a/S_p.npz"})
    self.assertEqual(_args(folds=10).subset_ratio, 0.9)


if __name__ == "__main__":
  absltest.main()
