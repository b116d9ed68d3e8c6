"""Stage artefacts: saved with their arguments, reused, refused, overwritten."""

import os

from absl.testing import absltest
import numpy as np

from heldout import errors
from heldout.influence_functions import arguments
from heldout.influence_functions import artefacts
from heldout.influence_functions import examples as examples_lib
from heldout.influence_functions import fit_covariances
from heldout.influence_functions import fit_lambda
from heldout.influence_functions import influence
from heldout.influence_functions import testing


class ArtefactsTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = testing.tiny_model("mlp", dtype=np.float32)
    cls.train = examples_lib.Examples(
        *testing.tiny_data("mlp", 20, seed=1, dtype=np.float32), name="train")
    cls.queries = examples_lib.Examples(
        *testing.tiny_data("mlp", 3, seed=2, dtype=np.float32), name="q")

  def _functions(self, directory, strategy="ekfac", seed=0, overwrite=False,
                 damping="heuristic"):
    return influence.InfluenceFunctions(
        self.model, arguments.FactorArgs(strategy=strategy, seed=seed),
        arguments.ScoreArgs(damping=damping), model_id="tiny",
        factors_dir=directory, overwrite=overwrite, batch_size=8,
        progress=False)

  def test_reuse_refuse_overwrite(self):
    directory = self.create_tempdir().full_path
    first = self._functions(directory)
    first.fit_factors(self.train)
    scores = first.pairwise_scores(self.queries, self.train)
    names = sorted(os.listdir(directory))
    self.assertEqual(names, ["covariances.npz", "eigendecomposition.npz",
                             "lambda_ekfac.npz",
                             "preconditioned_queries_ekfac.npz"])
    stored = artefacts.stored_arguments(os.path.join(directory,
                                                     "covariances.npz"))
    self.assertEqual(stored["model"], "tiny")
    self.assertEqual(stored["seed"], 0)
    self.assertEqual(stored["train"], self.train.description())
    mtimes = {n: os.stat(os.path.join(directory, n)).st_mtime_ns
              for n in names}

    # The same arguments: every stage reused, nothing computed.
    def fail(*args, **kwargs):
      raise AssertionError("recomputed a stage present with the same args")
    with absltest.mock.patch.object(fit_covariances, "fit_covariances", fail):
      with absltest.mock.patch.object(fit_lambda, "fit_lambda", fail):
        again = self._functions(directory)
        again.fit_factors(self.train)
        reused = again.pairwise_scores(self.queries, self.train)
    np.testing.assert_array_equal(reused.values, scores.values)
    self.assertEqual(mtimes, {n: os.stat(os.path.join(directory, n))
                                 .st_mtime_ns for n in names})

    # Other arguments: refused, saying what differs and how to overwrite.
    with self.assertRaisesRegex(
        errors.ArgumentsMismatchError,
        r"covariances.npz: exists and was made with other arguments "
        r"\(seed: 0 then, 1 now\).*--overwrite"):
      self._functions(directory, seed=1).fit_factors(self.train)
    other_train = examples_lib.Examples(self.train.images[:-1],
                                        self.train.labels[:-1],
                                        self.train.index[:-1], "train")
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                r"train: .*num_examples': 20.*19"):
      self._functions(directory).fit_factors(other_train)
    damped = self._functions(directory, damping=0.5)
    damped.fit_factors(self.train)  # factors do not depend on damping
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                r"preconditioned_queries_ekfac.npz.*damping: "
                                r"'heuristic' then, 0.5 now"):
      damped.pairwise_scores(self.queries, self.train)
    self.assertEqual(mtimes, {n: os.stat(os.path.join(directory, n))
                                 .st_mtime_ns for n in names})

    # Overwrite: recomputed with the new arguments.
    replaced = self._functions(directory, seed=1, overwrite=True)
    replaced.fit_factors(self.train)
    self.assertEqual(artefacts.stored_arguments(
        os.path.join(directory, "lambda_ekfac.npz"))["seed"], 1)

  def test_strategies_share_the_covariances(self):
    directory = self.create_tempdir().full_path
    self._functions(directory, strategy="ekfac").fit_factors(self.train)
    self._functions(directory, strategy="kfac").fit_factors(self.train)
    self._functions(directory, strategy="diagonal").fit_factors(self.train)
    self.assertEqual(sorted(os.listdir(directory)),
                     ["covariances.npz", "eigendecomposition.npz",
                      "lambda_diagonal.npz", "lambda_ekfac.npz"])

  def test_no_half_written_artefact(self):
    directory = self.create_tempdir().full_path

    def interrupted(*args, **kwargs):
      raise KeyboardInterrupt
    with absltest.mock.patch.object(fit_lambda, "fit_lambda", interrupted):
      with self.assertRaises(KeyboardInterrupt):
        self._functions(directory).fit_factors(self.train)
    self.assertEqual(sorted(os.listdir(directory)),
                     ["covariances.npz", "eigendecomposition.npz"])


  def test_non_finite_factors_are_refused(self):
    def broken(*args, **kwargs):
      out = real(*args, **kwargs)
      out["lambda_0"] = out["lambda_0"] * np.nan
      return out
    real = fit_lambda.fit_lambda
    with absltest.mock.patch.object(fit_lambda, "fit_lambda", broken):
      with self.assertRaisesRegex(ValueError, r"ekfac eigenvalues of tiny "
                                  r"hold non-finite values \(lambda_0\)"):
        self._functions(None).fit_factors(self.train)


if __name__ == "__main__":
  absltest.main()
