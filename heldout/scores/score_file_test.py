"""Tests of the score artefact: round trip, CSV, arguments, every malformed file."""

import csv
import json
import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout import errors
from heldout.scores import score_file


def _scores(**kw):
  fields = dict(
      index=np.array([4, 0, 7], np.int64),
      values=np.array([0.5, np.inf, np.nan]),
      se=np.array([0.1, np.nan, np.nan]),
      num_runs=np.array([3, 2, 0], np.int64),
      method="forgetting_minibatch",
      args={"seeds": [0, 1, 2], "dataset": "digits"},
      extras={"never_learned": np.array([False, True, False])})
  fields.update(kw)
  return score_file.Scores(**fields)


def _valid_arrays():
  return _scores().arrays()


class ScoreFileTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = self.create_tempdir().full_path
    self.path = os.path.join(self.folder, "s.npz")

  def test_round_trip(self):
    scores = _scores()
    csv_path = score_file.save_scores(scores, self.path)
    self.assertEqual(csv_path, os.path.join(self.folder, "s.csv"))
    back = score_file.read_scores(self.path)
    for key in ("index", "values", "se", "num_runs"):
      np.testing.assert_array_equal(getattr(back, key), getattr(scores, key))
      self.assertEqual(getattr(back, key).dtype, getattr(scores, key).dtype)
    self.assertEqual(back.method, "forgetting_minibatch")
    self.assertEqual(back.args, {"seeds": [0, 1, 2], "dataset": "digits"})
    self.assertEqual(list(back.extras), ["never_learned"])
    np.testing.assert_array_equal(back.extras["never_learned"], [False, True, False])
    self.assertEqual(back.extras["never_learned"].dtype, bool)
    self.assertEqual(json.loads(back.args_json), back.args)
    self.assertEqual(back.by_id([7, 4]).tolist()[1], 0.5)
    # No temporary files left beside the outputs.
    self.assertEqual(sorted(os.listdir(self.folder)), ["s.csv", "s.npz"])

  def test_csv(self):
    # What pandas.read_csv parses (pandas is not a dependency of the project;
    # checked by hand): a header row, ints, floats as repr (inf, nan).
    score_file.save_scores(_scores(), self.path)
    with open(os.path.join(self.folder, "s.csv")) as f:
      rows = list(csv.reader(f))
    self.assertEqual(rows[0], ["index", "value", "se", "num_runs", "never_learned"])
    self.assertEqual(rows[1:], [["4", "0.5", "0.1", "3", "0"],
                                ["0", "inf", "nan", "2", "1"],
                                ["7", "nan", "nan", "0", "0"]])
    table = np.genfromtxt(os.path.join(self.folder, "s.csv"), delimiter=",",
                          names=True)
    self.assertTrue(np.isposinf(table["value"][1]))
    self.assertEqual(table["index"].tolist(), [4, 0, 7])

  def test_refuses_other_arguments_unless_overwrite(self):
    score_file.save_scores(_scores(), self.path)
    score_file.save_scores(_scores(), self.path)  # same arguments: fine
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                r"s\.npz.*seeds: \[0, 1, 2\] then, \[0\] now"):
      score_file.save_scores(_scores(args={"seeds": [0], "dataset": "digits"}),
                             self.path)
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                "method 'forgetting_minibatch', not 'el2n'"):
      score_file.save_scores(_scores(method="el2n"), self.path)
    score_file.save_scores(_scores(method="el2n"), self.path, overwrite=True)
    self.assertEqual(score_file.read_scores(self.path).method, "el2n")

  def test_refuses_replacing_a_file_without_arguments(self):
    np.savez(self.path, x=np.zeros(2))
    with self.assertRaisesRegex(errors.ArgumentsMismatchError,
                                "not a file of scores with stored arguments"):
      score_file.save_scores(_scores(), self.path)

  def test_is_score_file(self):
    score_file.save_scores(_scores(), self.path)
    self.assertTrue(score_file.is_score_file(self.path))
    other = os.path.join(self.folder, "est.npz")
    np.savez(other, memorization=np.zeros(3), index=np.arange(3))
    self.assertFalse(score_file.is_score_file(other))
    self.assertFalse(score_file.is_score_file(os.path.join(self.folder, "none.npz")))

  def _write(self, arrays):
    np.savez(self.path, **arrays)

  @parameterized.named_parameters(
      ("missing_index", lambda a: a.pop("index"), "key `index`: expected a key"),
      ("missing_values", lambda a: a.pop("values"), "key `values`: expected a key"),
      ("missing_se", lambda a: a.pop("se"), "key `se`: expected a key"),
      ("missing_num_runs", lambda a: a.pop("num_runs"), "key `num_runs`"),
      ("missing_method", lambda a: a.pop("method"), "key `method`"),
      ("missing_args", lambda a: a.pop("args_json"), "key `args_json`"),
      ("index_float", lambda a: a.update(index=a["index"].astype(float)),
       "key `index`: expected dtype int64, found dtype float64"),
      ("index_int32", lambda a: a.update(index=a["index"].astype(np.int32)),
       "key `index`: expected dtype int64, found dtype int32"),
      ("values_float32", lambda a: a.update(values=a["values"].astype(np.float32)),
       "key `values`: expected dtype float64, found dtype float32"),
      ("se_int", lambda a: a.update(se=np.zeros(3, np.int64)),
       "key `se`: expected dtype float64"),
      ("num_runs_float", lambda a: a.update(num_runs=np.zeros(3)),
       "key `num_runs`: expected dtype int64"),
      ("values_2d", lambda a: a.update(values=np.zeros((3, 1))),
       r"key `values`: expected a 1-D array, found shape \(3, 1\)"),
      ("values_short", lambda a: a.update(values=np.zeros(2)),
       r"key `values`: expected length 3 \(that of `index`\), found length 2"),
      ("se_long", lambda a: a.update(se=np.zeros(4)), "key `se`: expected length 3"),
      ("num_runs_short", lambda a: a.update(num_runs=np.zeros(1, np.int64)),
       "key `num_runs`: expected length 3"),
      ("duplicate_ids", lambda a: a.update(index=np.array([4, 0, 4])),
       "key `index`: expected distinct example ids, found id 4 2 times"),
      ("negative_id", lambda a: a.update(index=np.array([4, -1, 7])),
       "key `index`: expected example ids >= 0, found id -1"),
      ("negative_se", lambda a: a.update(se=np.array([0.1, -0.2, np.nan])),
       "key `se`: expected values >= 0 or NaN, found -0.2 at id 0"),
      ("negative_runs", lambda a: a.update(num_runs=np.array([1, 2, -1])),
       "key `num_runs`: expected counts >= 0, found -1 at id 7"),
      ("method_array", lambda a: a.update(method=np.array(["a", "b"])),
       "key `method`: expected a str scalar"),
      ("method_empty", lambda a: a.update(method=np.array("")),
       "key `method`: expected a non-empty method name"),
      ("args_not_json", lambda a: a.update(args_json=np.array("{seeds")),
       "key `args_json`: expected JSON text"),
      ("args_not_object", lambda a: a.update(args_json=np.array("[1, 2]")),
       "key `args_json`: expected a JSON object, found list"),
      ("args_bytes", lambda a: a.update(args_json=np.array(b"{}")),
       "key `args_json`: expected a str scalar"),
      ("extra_wrong_length", lambda a: a.update(never_learned=np.zeros(2, bool)),
       r"key `never_learned`: expected shape \(3,\)"),
      ("extra_strings", lambda a: a.update(never_learned=np.array(["a", "b", "c"])),
       "key `never_learned`: expected a bool, integer or float"),
  )
  def test_malformed(self, change, message):
    arrays = _valid_arrays()
    change(arrays)
    self._write(arrays)
    with self.assertRaisesRegex(errors.ScoreFileError, message) as cm:
      score_file.read_scores(self.path)
    self.assertIn(self.path, str(cm.exception))
    self.assertIsInstance(cm.exception, ValueError)

  def test_missing_and_unreadable_files(self):
    with self.assertRaisesRegex(errors.ScoreFileError, "none.npz: no such file"):
      score_file.read_scores(os.path.join(self.folder, "none.npz"))
    with open(self.path, "wb") as f:
      f.write(b"not a zip")
    with self.assertRaisesRegex(errors.ScoreFileError, "unreadable file"):
      score_file.read_scores(self.path)
    np.save(os.path.join(self.folder, "a.npy"), np.zeros(2))
    with self.assertRaisesRegex(errors.ScoreFileError, "unreadable file"):
      score_file.read_scores(os.path.join(self.folder, "a.npy"))
    arrays = _valid_arrays()
    arrays["objects"] = np.array([None, 1, 2], dtype=object)
    np.savez(self.path, **arrays)
    with self.assertRaisesRegex(errors.ScoreFileError, "unreadable file"):
      score_file.read_scores(self.path)

  def test_constructor_checks(self):
    with self.assertRaisesRegex(errors.ScoreFileError, "distinct example ids"):
      _scores(index=np.array([1, 1, 2]))
    with self.assertRaisesRegex(ValueError, "`method` must be a non-empty string"):
      _scores(method="")
    with self.assertRaisesRegex(ValueError, "JSON-able"):
      _scores(args={"x": object()})
    with self.assertRaisesRegex(errors.ScoreFileError, "key `values`: expected"):
      _scores(values=np.zeros(2))

  def test_average_over_runs_against_a_loop(self):
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(5):
      ids = rng.choice(20, size=rng.integers(0, 15), replace=False)
      values = rng.normal(size=len(ids))
      values[rng.random(len(ids)) < 0.1] = np.nan  # not averaged
      runs.append((ids, values))
    scores = score_file.average_over_runs(runs, "el2n", {"a": 1})
    for i, example in enumerate(scores.index):
      found = [v[list(ids).index(example)] for ids, v in runs if example in ids]
      found = [v for v in found if np.isfinite(v)]
      self.assertEqual(scores.num_runs[i], len(found))
      if not found:
        self.assertTrue(np.isnan(scores.values[i]))
        continue
      self.assertAlmostEqual(scores.values[i], np.mean(found), places=12)
      if len(found) < 2:
        self.assertTrue(np.isnan(scores.se[i]))
      else:
        self.assertAlmostEqual(scores.se[i], np.std(found, ddof=1) /
                               np.sqrt(len(found)), places=12)
    self.assertEqual(set(scores.index.tolist()),
                     set(np.concatenate([r[0] for r in runs]).tolist()))
    with self.assertRaisesRegex(errors.ScoreFileError, "run 0"):
      score_file.average_over_runs([([1, 1], [0.0, 1.0])], "el2n")
    with self.assertRaisesRegex(ValueError, "not in `index`"):
      score_file.average_over_runs([([5], [0.0])], "el2n", index=[1, 2])


if __name__ == "__main__":
  absltest.main()
