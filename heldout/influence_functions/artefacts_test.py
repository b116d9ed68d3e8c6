"""Stage artefacts: saved with their arguments, reused, refused, overwritten."""

import os

from absl.testing import absltest
import numpy as np

from heldout import errors
from heldout import tolerance
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
                 damping="heuristic", query_batch_size=2):
    return influence.InfluenceFunctions(
        self.model, arguments.FactorArgs(strategy=strategy, seed=seed),
        arguments.ScoreArgs(damping=damping), model_id="tiny",
        factors_dir=directory, overwrite=overwrite, batch_size=8,
        progress=False, query_batch_size=query_batch_size)

  def _listing(self, directory):
    """Relative paths of every file under `directory` -> mtime."""
    out = {}
    for root, _, files in os.walk(directory):
      for name in files:
        path = os.path.join(root, name)
        out[os.path.relpath(path, directory)] = os.stat(path).st_mtime_ns
    return out

  def test_reuse_refuse_overwrite(self):
    directory = self.create_tempdir().full_path
    first = self._functions(directory)
    first.fit_factors(self.train)
    scores = first.pairwise_scores(self.queries, self.train)
    mtimes = self._listing(directory)
    # Three queries in chunks of two.
    self.assertEqual(sorted(mtimes), [
        "covariances.npz", "eigendecomposition.npz", "lambda_ekfac.npz",
        "preconditioned_queries_ekfac/args.json",
        "preconditioned_queries_ekfac/queries_0-2.npz",
        "preconditioned_queries_ekfac/queries_2-3.npz"])
    self.assertEqual(artefacts.stored_arguments(os.path.join(
        directory, "preconditioned_queries_ekfac", "queries_2-3.npz"))[
            "chunk"], [2, 3])
    stored = artefacts.stored_arguments(os.path.join(directory,
                                                     "covariances.npz"))
    self.assertEqual(stored["model"], "tiny")
    self.assertEqual(stored["seed"], 0)
    self.assertEqual(stored["train"], self.train.description())

    # The same arguments: every stage reused, nothing computed.
    def fail(*args, **kwargs):
      raise AssertionError("recomputed a stage present with the same args")
    with absltest.mock.patch.object(fit_covariances, "fit_covariances", fail):
      with absltest.mock.patch.object(fit_lambda, "fit_lambda", fail):
        again = self._functions(directory)
        again.fit_factors(self.train)
        reused = again.pairwise_scores(self.queries, self.train)
    np.testing.assert_array_equal(reused.values, scores.values)
    self.assertEqual(mtimes, self._listing(directory))

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
                                r"preconditioned_queries_ekfac: holds "
                                r"preconditioned queries made with other "
                                r"arguments \(damping: 'heuristic' then, 0.5 "
                                r"now\).*--overwrite"):
      damped.pairwise_scores(self.queries, self.train)
    # Whatever the chunk size.
    one_by_one = self._functions(directory, damping=0.5, query_batch_size=1)
    one_by_one.fit_factors(self.train)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError, "damping"):
      one_by_one.pairwise_scores(self.queries, self.train)
    self.assertEqual(mtimes, self._listing(directory))
    # Another chunk size with the same arguments: the same scores.
    rechunked = self._functions(directory, query_batch_size=3)
    rechunked.fit_factors(self.train)
    tolerance.assert_close(
        rechunked.pairwise_scores(self.queries, self.train).values,
        scores.values, tolerance.ELEMENTWISE)

    # Overwrite of the queries: the old chunks go with the old arguments.
    damped = self._functions(directory, damping=0.5, overwrite=True,
                             query_batch_size=1)
    damped.fit_factors(self.train)
    damped.pairwise_scores(self.queries, self.train)
    self.assertEqual(
        sorted(os.listdir(os.path.join(directory,
                                       "preconditioned_queries_ekfac"))),
        ["args.json", "queries_0-1.npz", "queries_1-2.npz",
         "queries_2-3.npz"])

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
