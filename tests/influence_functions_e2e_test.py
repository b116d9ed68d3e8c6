"""End-to-end: the built `//heldout/influence_functions` binary.

On a digits MLP run (64-32-10, written in the released layout): EKFAC
pairwise scores dense with per-layer scores (queries in chunks of 7), then
top-k from the same factors and preconditioned query chunks (reused, not
recomputed), a re-run with other arguments refused as one error line, and
--overwrite. On the golden released SmallInception run
(`heldout/testdata`), architecture inferred from its checkpoint, on
CIFAR-shaped images from an npz dataset: self-influence written as the
per-example score file.
"""

import json
import os
import subprocess
import tempfile

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from heldout import tolerance
from heldout.data import digits
from heldout.data import npz_format
from heldout.estimators import influence_estimator
from heldout.models import registry
from heldout.models import testing as model_testing
from heldout.scores import score_file
from tests import binaries

REPO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         os.pardir)
GOLDEN_RUN = os.path.join(REPO_ROOT, "heldout", "testdata",
                          "golden_inception_run")


def _command():
  return binaries.command(
      "heldout/influence_functions/influence_functions",
      "heldout/influence_functions/influence_functions_main.py")


def _read(path):
  with open(path, "rb") as f:
    return f.read()


class InfluenceFunctionsBinaryTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.digits_run = os.path.join(cls.root, "digits_run")
    tf.random.set_seed(0)
    model = registry.build_model("mlp", 10, hidden_sizes=(32,))
    model(tf.zeros((1, 8, 8, 1)), is_training=False)
    dataset = digits.load_digits()
    for _ in range(30):  # a few full-batch steps: a model that has learned
      model_testing.train_step(model, dataset.train.images[:600],
                               dataset.train.labels[:600], learning_rate=0.5)
    model_testing.write_checkpoint(
        os.path.join(cls.digits_run, "checkpoints", "ckpt-30"), model,
        epoch=30)

  def _run(self, *flags):
    result = subprocess.run(
        _command() + ["--noprogress"] + list(flags),
        env=binaries.environment(self.root), capture_output=True, text=True,
        timeout=600, check=False)
    return result

  def _run_ok(self, *flags):
    result = self._run(*flags)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return result

  def test_digits_pairwise_dense_topk_reuse_and_refusal(self):
    common = ["--model_dir=digits_run", "--dataset=digits",
              "--strategy=ekfac", "--damping=heuristic", "--fisher=true",
              "--queries=test[:20]", "--train=train[:300]",
              "--factors_dir=digits.factors", "--batch_size=128",
              "--query_batch_size=7"]  # 20 queries: chunks of 7, 7, 6
    result = self._run_ok(*common, "--output=dense.npz", "--per_module")
    self.assertIn("restored mlp (num_classes=10)", result.stdout)
    self.assertIn("wrote", result.stdout)
    with np.load(os.path.join(self.root, "dense.npz")) as npz:
      values = npz["values"]
      per_module = npz["per_module"]
      np.testing.assert_array_equal(npz["query_index"], np.arange(20))
      np.testing.assert_array_equal(npz["train_index"], np.arange(300))
      self.assertEqual(list(npz["module_names"]), ["_layers/0", "_layers/1"])
      args = json.loads(str(npz["args_json"]))
    self.assertEqual(values.shape, (20, 300))
    self.assertEqual(per_module.shape, (2, 20, 300))
    self.assertEqual(args["factors"]["strategy"], "ekfac")
    self.assertEqual(args["scores"]["damping"], "heuristic")
    tolerance.assert_close(per_module.sum(axis=0), values,
                           4 * tolerance.ELEMENTWISE)
    # A query's own class helps it more than the others (the model has
    # learned): mean score over same-label training examples is larger.
    dataset = digits.load_digits()
    same = (dataset.test.labels_by_id()[:20, None] ==
            dataset.train.labels_by_id()[None, :300])
    self.assertGreater(values[same].mean(), values[~same].mean())

    factors = os.path.join(self.root, "digits.factors")
    mtimes = {n: os.stat(os.path.join(factors, n)).st_mtime_ns
              for n in os.listdir(factors)}
    self.assertLen(mtimes, 4)
    self.assertEqual(sorted(os.listdir(os.path.join(
        factors, "preconditioned_queries_ekfac"))),
                     ["args.json", "queries_0-7.npz", "queries_14-20.npz",
                      "queries_7-14.npz"])
    self._run_ok(*common, "--output=top.npz", "--top_k=7")
    self.assertEqual(mtimes, {n: os.stat(os.path.join(factors, n)).st_mtime_ns
                              for n in os.listdir(factors)})
    with np.load(os.path.join(self.root, "top.npz")) as npz:
      top_values, top_columns = influence_estimator.topk_from_dense(values, 7)
      np.testing.assert_array_equal(npz["topk_values"], top_values)
      np.testing.assert_array_equal(npz["topk_indices"], top_columns)

    before = _read(os.path.join(self.root, "top.npz"))
    result = self._run(*common, "--output=top.npz", "--top_k=7", "--seed=1")
    self.assertEqual(result.returncode, 1)
    self.assertNotIn("Traceback", result.stderr)
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    self.assertLen(errors, 1, result.stderr)
    self.assertIn("--overwrite", errors[0])
    self.assertIn("seed", errors[0])
    self.assertEqual(_read(os.path.join(self.root, "top.npz")), before)
    self._run_ok(*common, "--output=top.npz", "--top_k=7", "--seed=1",
                 "--overwrite")
    with np.load(os.path.join(self.root, "top.npz")) as npz:
      self.assertEqual(json.loads(str(npz["args_json"]))["factors"]["seed"], 1)

  def test_golden_small_inception_self_influence(self):
    rng = np.random.default_rng(0)
    npz_format.write_npz_dataset(
        os.path.join(self.root, "cifar_like.npz"),
        {"train": {"image": rng.integers(0, 256, (8, 32, 32, 3),
                                         dtype=np.uint8),
                   "label": rng.integers(0, 10, 8)},
         "test": {"image": rng.integers(0, 256, (3, 32, 32, 3),
                                        dtype=np.uint8),
                  "label": rng.integers(0, 10, 3)}},
        num_classes=10, data_scale=255)
    result = self._run_ok(f"--model_dir={GOLDEN_RUN}",
                          "--dataset=npz:cifar_like.npz",
                          "--strategy=diagonal", "--damping=heuristic",
                          "--self", "--output=self.npz", "--batch_size=8",
                          "--devices=cpu")
    self.assertIn("restored small_inception (num_classes=10), epoch 200",
                  result.stdout)
    self.assertIn("20 tracked layers", result.stdout)
    self.assertIn("1 replica (OneDeviceStrategy", result.stdout)
    scores = score_file.read_scores(os.path.join(self.root, "self.npz"))
    self.assertEqual(scores.method, "self_influence_diagonal")
    np.testing.assert_array_equal(scores.index, np.arange(8))
    self.assertTrue((scores.values > 0).all())
    self.assertLen(scores.extras, 20)
    self.assertIn("module._pred", scores.extras)
    tolerance.assert_close(sum(scores.extras.values()), scores.values,
                           20 * tolerance.ELEMENTWISE)
    self.assertTrue(os.path.exists(os.path.join(self.root, "self.csv")))
    self.assertEqual(scores.args["factors"]["strategy"], "diagonal")


if __name__ == "__main__":
  absltest.main()
