"""Tests for train.batched against the single-model module and loop."""

import os
import shutil

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.data import digits
from heldout.models import registry
from heldout.readers import aux_arrays
from heldout.readers import layout
from train import batched
from train import heldout_training
from train import loop
from train import subsets
from train.configs import base

MLP = base.TrainConfig(name="tiny_mlp", dataset="digits", arch="mlp",
                       arch_kwargs={"hidden_sizes": (16, 12)}, epochs=2,
                       batch_size=64, learning_rate=0.1, momentum=0.9,
                       lr_schedule="linear", warmup_epochs=0.5,
                       weight_decay=1e-3)
CNN = MLP.replace(name="tiny_cnn", arch="small_cnn",
                  arch_kwargs={"channels": (4, 8), "hidden": 16})
CASES = (("mlp", MLP), ("small_cnn", CNN))


def _module(config):
  model = registry.build_model(config.arch, 10, **config.arch_kwargs)
  model(tf.zeros([1, 8, 8, 1]), is_training=False)
  return model


class BatchedTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  @parameterized.named_parameters(*CASES)
  def test_initial_weights_are_the_single_runs(self, config):
    trainer = batched.BatchedTrainer(config.arch, 10, (8, 8, 1), config, k=2)
    single = loop.Trainer(lambda: _module(config), (8, 8, 1), config)
    for seed in (7, 123456):
      fast = trainer.initial_values(seed)
      slow = trainer.initial_values_reference(seed)
      single.reset(seed)
      want = [batched._resolve(single.model, p).numpy()  # pylint: disable=protected-access
              for p in trainer.paths]
      for a, b, c in zip(fast, slow, want):
        self.assertAllEqual(a, b)
        self.assertAllEqual(a, c)

  @parameterized.named_parameters(*CASES)
  def test_forward_matches_single_modules(self, config):
    trainer = batched.BatchedTrainer(config.arch, 10, (8, 8, 1), config, k=3)
    trainer.reset([1, 2, 3])
    images = self.data.train.images[:30].reshape(3, 10, 8, 8, 1)
    logits = batched.batched_forward(config.arch, trainer.params, images)
    self.assertEqual(logits.shape, (3, 10, 10))
    for i in range(3):
      module = trainer.export(i)
      # Batched matmuls / convolutions against the module's own kernels.
      tolerance.assert_close(logits[i], module(images[i], is_training=False),
                             tolerance.FORWARD)

  @parameterized.named_parameters(("3x3", 3, 3), ("2x3", 2, 3))
  def test_convolutions_are_per_model_conv2d(self, kh, kw):
    rng = np.random.default_rng(kh)
    net = tf.constant(rng.standard_normal([3, 2, 6, 5, 2]), tf.float32)
    w = tf.constant(rng.standard_normal([3, kh, kw, 2, 4]), tf.float32)

    def per_model(net, w):
      return tf.stack([tf.nn.conv2d(net[k], w[k], strides=1, padding="SAME")
                       for k in range(3)])

    def value_and_grads(conv):
      with tf.GradientTape() as tape:
        tape.watch([net, w])
        out = conv(net, w)
        loss = tf.reduce_sum(tf.square(out))
      return [out.numpy()] + [g.numpy() for g in tape.gradient(loss,
                                                               [net, w])]

    want = value_and_grads(per_model)
    convs = [batched._patch_conv]  # pylint: disable=protected-access
    if batched.grouped_conv_has_gradients():
      convs.append(batched._grouped_conv)  # pylint: disable=protected-access
    else:
      # Its forward pass runs everywhere; only the gradients may not.
      got = batched._grouped_conv(net, w).numpy()  # pylint: disable=protected-access
      tolerance.assert_close(got, want[0], tolerance.FORWARD)
    for conv in convs:
      for got, ref in zip(value_and_grads(conv), want):
        # Outputs and gradients of one layer, summed by other kernels; a
        # wrong grouping or padding is off by O(1).
        tolerance.assert_close(got, ref, tolerance.FORWARD)

  @parameterized.named_parameters(*CASES)
  def test_k1_trains_like_the_single_model_loop(self, config):
    seed = subsets.run_seed(0.7, 5)
    ids = subsets.draw_subset(len(self.data.train), 0.7, 5)
    trainer = batched.BatchedTrainer(config.arch, 10, (8, 8, 1), config, k=1)
    trainer.fit(self.data.train, [ids], [seed])
    single = loop.Trainer(lambda: _module(config), (8, 8, 1), config)
    single.reset(seed)
    single.fit(self.data.train, ids, seed)
    self.assertEqual(int(trainer.global_step.numpy()),
                     int(single.global_step.numpy()))
    for path, stacked in zip(trainer.paths, trainer.params):
      want = batched._resolve(single.model, path).numpy()  # pylint: disable=protected-access
      tolerance.assert_close(stacked[0], want, tolerance.TRAINED, path)

  def test_models_train_independently(self):
    # Model 1 of a K=3 group equals the same run trained with K=1.
    config = MLP
    runs = [4, 9, 2]
    seeds = [subsets.run_seed(0.5, r) for r in runs]
    ids = [subsets.draw_subset(1257, 0.5, r) for r in runs]
    three = batched.BatchedTrainer("mlp", 10, (8, 8, 1), config, k=3)
    three.fit(self.data.train, ids, seeds)
    one = batched.BatchedTrainer("mlp", 10, (8, 8, 1), config, k=1)
    one.fit(self.data.train, ids[1:2], seeds[1:2])
    # K=3 and K=1 batched kernels sum in their own orders.
    for a, b in zip(three.params, one.params):
      tolerance.assert_close(a[1], b[0], tolerance.TRAINED)

  @parameterized.named_parameters(*CASES)
  def test_written_runs_restore_into_the_single_module(self, config):
    out = self.create_tempdir().full_path
    results = batched.train_heldout_batched(
        self.data, config.arch, 0.7, [0, 1, 2], out, config, k=2,
        progress=False)
    self.assertEqual([r.status for r in results], ["trained"] * 3)
    # Reference: the logits of the batched model, recomputed for run 2 alone.
    trainer = batched.BatchedTrainer(config.arch, 10, (8, 8, 1), config, k=1)
    trainer.fit(self.data.train, [subsets.draw_subset(1257, 0.7, 2)],
                [subsets.run_seed(0.7, 2)])
    want = batched.batched_forward(config.arch, trainer.params,
                                   self.data.test.images[None])[0]
    for run_id in (0, 1, 2):
      run_dir = layout.run_dir(out, 0.7, run_id)
      self.assertTrue(heldout_training.is_complete_run(run_dir))
      aux = aux_arrays.read_aux_arrays(layout.aux_arrays_path(run_dir),
                                       num_train=1257, num_test=540)
      np.testing.assert_array_equal(aux.subsample_idx,
                                    subsets.draw_subset(1257, 0.7, run_id))
      model = registry.build_model(config.arch, 10, **config.arch_kwargs)
      epoch = tf.Variable(0, dtype=tf.int64)
      step = tf.Variable(0, dtype=tf.int64)
      model(tf.zeros([1, 8, 8, 1]), is_training=False)
      tf.train.Checkpoint(model=model, epoch=epoch, global_step=step).restore(
          layout.find_checkpoint_prefix(run_dir)).expect_partial()
      self.assertEqual(int(epoch.numpy()), 2)
      self.assertEqual(int(step.numpy()), 2 * 14)
      logits = model(self.data.test.images, is_training=False).numpy()
      np.testing.assert_array_equal(
          aux.correctness_on_test_set(),
          np.argmax(logits, -1) == self.data.test.labels)
      pred_train = np.argmax(model(self.data.train.images,
                                   is_training=False), -1)
      np.testing.assert_array_equal(aux.correctness_on_train_set(),
                                    pred_train == self.data.train.labels)
      if run_id == 2:
        # Trained in a group of 2 against alone (K=1): other kernel shapes.
        tolerance.assert_close(logits, want, tolerance.TRAINED)

  def test_resumes_at_run_granularity_and_shares_experiments(self):
    out = self.create_tempdir().full_path
    heldout_training.train_heldout(self.data, MLP, 0.7, [1], out,
                                   progress=False)
    mtime = os.path.getmtime(layout.aux_arrays_path(layout.run_dir(out, 0.7,
                                                                   1)))
    results = batched.train_heldout_batched(self.data, "mlp", 0.7,
                                            [0, 1, 2, 3, 4], out, MLP, k=3,
                                            progress=False)
    self.assertEqual([r.status for r in results],
                     ["trained", "skipped", "trained", "trained", "trained"])
    self.assertEqual(mtime, os.path.getmtime(layout.aux_arrays_path(
        layout.run_dir(out, 0.7, 1))))
    self.assertEqual(sorted(os.listdir(os.path.join(out, "0.7"))),
                     ["0", "1", "2", "3", "4"])

  def test_restart_is_bitwise_the_uninterrupted_job(self):
    whole = self.create_tempdir().full_path
    batched.train_heldout_batched(self.data, "mlp", 0.7, list(range(6)),
                                  whole, MLP, k=4, progress=False)
    restarted = self.create_tempdir().full_path
    batched.train_heldout_batched(self.data, "mlp", 0.7, list(range(6)),
                                  restarted, MLP, k=4, progress=False)
    # As if killed while publishing each group's last run: 1 and 5 missing.
    for run_id in (1, 5):
      shutil.rmtree(layout.run_dir(restarted, 0.7, run_id))
    mtime = os.path.getmtime(layout.aux_arrays_path(
        layout.run_dir(restarted, 0.7, 0)))
    results = batched.train_heldout_batched(
        self.data, "mlp", 0.7, list(range(6)), restarted, MLP, k=4,
        progress=False)
    self.assertEqual([r.status for r in results],
                     ["skipped", "trained", "skipped", "skipped", "skipped",
                      "trained"])
    self.assertEqual(mtime, os.path.getmtime(layout.aux_arrays_path(
        layout.run_dir(restarted, 0.7, 0))))
    for run_id in (1, 5):
      ours = tf.train.load_checkpoint(layout.find_checkpoint_prefix(
          layout.run_dir(restarted, 0.7, run_id)))
      ref = tf.train.load_checkpoint(layout.find_checkpoint_prefix(
          layout.run_dir(whole, 0.7, run_id)))
      names = sorted(ours.get_variable_to_shape_map())
      self.assertEqual(names, sorted(ref.get_variable_to_shape_map()))
      for name in names:
        np.testing.assert_array_equal(ours.get_tensor(name),
                                      ref.get_tensor(name), err_msg=name)
      with open(layout.aux_arrays_path(layout.run_dir(restarted, 0.7,
                                                      run_id)), "rb") as f:
        got = f.read()
      with open(layout.aux_arrays_path(layout.run_dir(whole, 0.7, run_id)),
                "rb") as f:
        self.assertEqual(got, f.read())

  def test_groups_are_balanced(self):
    groups, size = batched.balanced_groups(list(range(100)), 64)
    self.assertEqual(size, 50)
    self.assertEqual([len(g) for g in groups], [50, 50])
    self.assertEqual(batched.balanced_groups([], 64), ([], 0))

  def test_refusals(self):
    with self.assertRaisesRegex(ValueError, "augmentation"):
      batched.BatchedTrainer("mlp", 10, (8, 8, 1), MLP.replace(augment=True),
                             k=2)
    with self.assertRaisesRegex(ValueError, "arch"):
      batched.BatchedTrainer("small_inception", 10, (8, 8, 1), MLP, k=2)
    with self.assertRaisesRegex(ValueError, "`k`"):
      batched.BatchedTrainer("mlp", 10, (8, 8, 1), MLP, k=0)

  def test_flops(self):
    module = _module(MLP)
    self.assertEqual(batched.train_flops_per_example("mlp", module, (8, 8, 1)),
                     2 * (64 * 16 + 16 * 12 + 12 * 10))
    cnn = _module(CNN)
    self.assertEqual(
        batched.train_flops_per_example("small_cnn", cnn, (8, 8, 1)),
        2 * (64 * 9 * 1 * 4 + 16 * 9 * 4 * 8 + 32 * 16 + 16 * 10))


if __name__ == "__main__":
  tf.test.main()
