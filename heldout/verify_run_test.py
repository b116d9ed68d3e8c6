"""Tests for heldout.verify_run and the demo's released-checkpoint path.

A run written by upstream's SmallInception (the golden checkpoint) is checked
against CIFAR-10 loaded through TFDS exactly as upstream loads it, with
`tfds.testing.mock_data` standing in for the real files.
"""

import contextlib
import io
import os
import shutil

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow_datasets as tfds

from heldout import demo
from heldout import errors
from heldout import verify_run
from heldout.data import registry as data_registry
from heldout.data import testing as data_testing
from heldout.inference import predict_logits
from heldout.readers import aux_arrays
from heldout.readers import checkpoints
from heldout.readers import layout

GOLDEN_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "testdata", "golden_inception_run")
NUM_EXAMPLES = 24


class VerifyRunTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.data_dir = self.create_tempdir().full_path
    data_testing.write_tfds_metadata(self.data_dir, "cifar10:3.0.2",
                                     NUM_EXAMPLES)
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=self.data_dir):
      self.dataset = data_registry.load_dataset(
          "cifar10:3.0.2", data_dir=self.data_dir, download=False)
    self.run_dir = layout.run_dir(self.create_tempdir().full_path, 0.5, 7)
    shutil.copytree(GOLDEN_RUN, self.run_dir)
    # What the golden model predicts, computed independently of verify_run.
    model = checkpoints.restore_run(GOLDEN_RUN).model
    self.correct = {
        split: np.argmax(predict_logits(model, data.images), axis=1)
               == data.labels
        for split, data in self.dataset.splits.items()}

  def _write_aux(self, flip_test=(), flip_train=()):
    rng = np.random.default_rng(0)
    n = NUM_EXAMPLES
    subset = rng.permutation(n)[:n // 2]
    removed = np.setdiff1d(np.arange(n), subset)
    index_train = rng.permutation(subset)        # any evaluation order
    index_removed = rng.permutation(removed)
    index_test = rng.permutation(n)
    train_ok = self.correct["train"].copy()
    train_ok[list(flip_train)] ^= True
    test_ok = self.correct["test"].copy()
    test_ok[list(flip_test)] ^= True
    aux_arrays.write_aux_arrays(
        layout.aux_arrays_path(self.run_dir), subsample_idx=subset,
        correctness_train=train_ok[index_train],
        correctness_removed=train_ok[index_removed],
        correctness_test=test_ok[index_test], index_train=index_train,
        index_removed=index_removed, index_test=index_test)

  def test_all_match(self):
    self._write_aux()
    check = verify_run.verify_run(self.run_dir, self.dataset)
    self.assertEqual((check.n_match, check.n), (NUM_EXAMPLES, NUM_EXAMPLES))
    self.assertEqual(check.run.arch, "small_inception")
    self.assertEqual(check.run.epoch, 200)
    self.assertAlmostEqual(check.accuracy, self.correct["test"].mean())
    self.assertAlmostEqual(check.subset_fraction, 0.5)
    self.assertEqual(check.message(), "24 out of 24 predictions match")

  @parameterized.named_parameters(("test", "test"), ("train", "train"))
  def test_mismatches_are_found_by_id(self, split):
    flips = (3, 11, 20)
    self._write_aux(**{"flip_" + split: flips})
    check = verify_run.verify_run(self.run_dir, self.dataset, split=split)
    self.assertEqual(check.n_match, NUM_EXAMPLES - 3)
    np.testing.assert_array_equal(check.mismatched, flips)

  def test_released_run_demo_prints_upstream_lines(self):
    self._write_aux(flip_test=(5,))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      demo.released_run_demo(self.run_dir, self.dataset)
    text = out.getvalue()
    self.assertIn("Loaded small_inception (num_classes=10) from checkpoint "
                  "(epoch=200, global_step=3) trained on a random 50% subset",
                  text)
    self.assertIn("23 out of 24 predictions match", text)

  def test_wrong_dataset_size(self):
    self._write_aux()
    small = data_registry.load_dataset("digits")
    with self.assertRaisesRegex(errors.AuxArraysError, "training examples"):
      verify_run.verify_run(self.run_dir, small)

  def test_bad_split(self):
    with self.assertRaisesRegex(ValueError, "`split`"):
      verify_run.verify_run(self.run_dir, self.dataset, split="removed")


if __name__ == "__main__":
  absltest.main()
