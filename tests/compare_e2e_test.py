"""End-to-end test of `//heldout:compare` on estimate and published files it makes.

The numbers are hand-computed (see each case); the binary runs once as a
subprocess and otherwise through its `main` in this process.
"""

import contextlib
import csv
import io
import os
import pickle
import subprocess
from unittest import mock

from absl.testing import absltest

from absl.testing import flagsaver
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from heldout import compare
from heldout.data import testing as data_testing
from heldout.scores import score_file
from tests import binaries


def _binary():
  return binaries.command("heldout/compare", "heldout/compare.py")


def _summary(path):
  with open(path) as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["metric", "value"], rows[0]
  return {name: float(value) for name, value in rows[1:]}


def _disagreements(path):
  with open(path) as f:
    return list(csv.reader(f))


class CompareEndToEndTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = self.create_tempdir().full_path
    # Ours, by example id: 5: .1, 4: .2, 3: .3, 2: .4, 1: .5, 0: NaN (stored in
    # reverse id order, as `index` allows).
    self.ours = os.path.join(self.folder, "est.npz")
    np.savez(self.ours, cscore=np.array([0.1, 0.2, 0.3, 0.4, 0.5, np.nan]),
             consistency=np.zeros(6), memorization=np.linspace(0, 1, 6),
             index=np.array([5, 4, 3, 2, 1, 0]))
    # Published C-scores by position: ids 1..5 -> .5 .4 .3 .1 .2 (ids 4 and 5 swapped).
    self.cscores = os.path.join(self.folder, "cifar10-cscores-orig-order.npz")
    np.savez(self.cscores, labels=np.arange(6) % 2,
             scores=np.array([0.9, 0.5, 0.4, 0.3, 0.1, 0.2]))

  def _run_main(self, env=None, **flag_values):
    stdout, stderr = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver(**flag_values), mock.patch.dict(os.environ, env or {}), \
        contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
      code = compare.main(["compare"])
    return subprocess.CompletedProcess([], code, stdout.getvalue(), stderr.getvalue())

  def test_cscores_hand_computed(self):
    prefix = os.path.join(self.folder, "out", "c10")
    result = subprocess.run(
        _binary() + ["--ours=" + self.ours, "--published=" + self.cscores,
                     "--output_prefix=" + prefix, "--top_k=1,2,4", "--num_disagreements=2",
                     "--assume_same_order"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=300)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    summary = _summary(prefix + "_summary.csv")
    # Ranks of ids 1..5: ours 5 4 3 2 1, published 5 4 3 1 2: sum d^2 = 2,
    # Spearman = 1 - 6 * 2 / (5 * 24) = 0.9. Deviations from the mean 0.3:
    # ours (.2 .1 0 -.1 -.2), published (.2 .1 0 -.2 -.1): Pearson = .09 / .10.
    self.assertAlmostEqual(summary["spearman"], 0.9)
    self.assertAlmostEqual(summary["pearson"], 0.9)
    self.assertEqual(summary["n_compared"], 5)
    self.assertEqual(summary["n_nan_ours"], 1)
    self.assertEqual(summary["n_common"], 6)
    self.assertAlmostEqual(summary["mean_abs_diff"], 0.04)
    # Top-4: ours {1,2,3,4}, published {1,2,3,5}; bottom-1: ours {5}, published {4}.
    self.assertEqual(summary["top_1_overlap"], 1.0)
    self.assertEqual(summary["top_2_overlap"], 1.0)
    self.assertEqual(summary["top_4_overlap"], 0.75)
    self.assertEqual(summary["bottom_1_overlap"], 0.0)
    self.assertEqual(summary["bottom_2_overlap"], 1.0)
    rows = _disagreements(prefix + "_disagreements.csv")
    self.assertEqual(rows[0][0], "index")
    # Ids 4 and 5: percentile ranks .25 vs 0 and 0 vs .25.
    self.assertEqual([(r[0], float(r[-1])) for r in rows[1:]], [("4", 0.25), ("5", -0.25)])
    with open(prefix + "_scatter.png", "rb") as f:
      self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
    self.assertIn("Spearman 0.9000", result.stdout)
    self.assertIn("--assume_same_order: our ids are taken as positions in the "
                  "original CIFAR order", result.stdout)
    self.assertIn("(cscore) vs", result.stdout)

  def test_memorization_from_infl_matrix_with_relative_prefix(self):
    rng = np.random.default_rng(0)
    tr_labels = np.array([0, 1, 0, 1, 0, 1])
    tt_labels = np.array([1, 0, 1])
    arrays = dict(tr_mem=np.linspace(0, 1, 6), tr_labels=tr_labels, tt_labels=tt_labels)
    for k in (0, 1):
      tr, tt = np.flatnonzero(tr_labels == k), np.flatnonzero(tt_labels == k)
      arrays["infl_matrix_class{}".format(k)] = rng.random((len(tr), len(tt)))
      arrays["tr_classidx_{}".format(k)] = tr
      arrays["tt_classidx_{}".format(k)] = tt
    published = os.path.join(self.folder, "cifar100_infl_matrix.npz")
    np.savez(published, **arrays)
    result = self._run_main(env={"BUILD_WORKING_DIRECTORY": self.folder},
                            ours=self.ours, published=published, output_prefix="rel/m")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    summary = _summary(os.path.join(self.folder, "rel", "m_summary.csv"))
    # Ours memorization by id: index reversed, so id i has value (5 - i) / 5;
    # published tr_mem[i] = i / 5: perfectly reversed.
    self.assertAlmostEqual(summary["spearman"], -1.0)
    self.assertAlmostEqual(summary["pearson"], -1.0)
    self.assertEqual(summary["n_compared"], 6)
    self.assertIn("(memorization) vs", result.stdout)
    self.assertTrue(os.path.exists(os.path.join(self.folder, "rel", "m_scatter.png")))

  def _tfds_order_files(self):
    """Ours in TFDS order and published C-scores in the original order.

    TFDS position t holds the example at original position original_index[t];
    ours equal the published values once mapped.
    """
    original_index = np.array([3, 0, 4, 1, 2])
    published_values = np.array([0.7, 0.1, 0.9, 0.3, 0.5])
    ours = os.path.join(self.folder, "tfds_order.npz")
    np.savez(ours, cscore=published_values[original_index], index=np.arange(5))
    cscores = os.path.join(self.folder, "c.npz")
    np.savez(cscores, labels=np.zeros(5, int), scores=published_values)
    return original_index, ours, cscores

  def test_index_map_translates_our_ids(self):
    original_index, ours, cscores = self._tfds_order_files()
    mapping = os.path.join(self.folder, "map.npz")
    np.savez(mapping, original_index=original_index)
    prefix = os.path.join(self.folder, "mapped")
    result = self._run_main(ours=ours, published=cscores, index_map=mapping,
                            output_prefix=prefix)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertAlmostEqual(_summary(prefix + "_summary.csv")["spearman"], 1.0)
    self.assertIn("mapped through " + mapping, result.stdout)
    # Taken as being in the same order, the ids do not line up.
    result = self._run_main(ours=ours, published=cscores, assume_same_order=True,
                            output_prefix=prefix + "_raw")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertLess(_summary(prefix + "_raw_summary.csv")["spearman"], 0.5)

  def test_index_map_from_tfds_ids(self):
    original_index, ours, cscores = self._tfds_order_files()
    data_dir = self.create_tempdir().full_path
    name = "cifar10:3.0.2"
    data_testing.write_tfds_metadata(data_dir, name, len(original_index))
    # The mock's own ids are random strings: the train split here holds the
    # ids of a TFDS order, "train_<original position>".
    ids = ["train_{:05d}".format(o) for o in original_index]

    def as_dataset(self, *args, **kwargs):
      del self, args, kwargs
      return tf.data.Dataset.from_tensor_slices({
          "id": ids, "image": tf.zeros([len(ids), 32, 32, 3], tf.uint8),
          "label": tf.zeros([len(ids)], tf.int64)})

    prefix = os.path.join(self.folder, "tfds_mapped")
    with tfds.testing.mock_data(as_dataset_fn=as_dataset,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
      result = self._run_main(
          env={"BUILD_WORKING_DIRECTORY": os.path.dirname(data_dir)},
          ours=ours, published=cscores, index_map="tfds:" + name,
          data_dir=os.path.basename(data_dir), output_prefix=prefix)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertAlmostEqual(_summary(prefix + "_summary.csv")["spearman"], 1.0)
    self.assertIn("our ids mapped through the `id` feature of TFDS "
                  "cifar10:3.0.2 (train)", result.stdout)

  def _score_file(self, name, index, values, method="el2n", **extras):
    path = os.path.join(self.folder, name)
    n = len(index)
    score_file.save_scores(score_file.Scores(
        index=np.array(index), values=np.array(values, np.float64),
        se=np.full(n, np.nan), num_runs=np.ones(n, np.int64), method=method,
        args={"seeds": [0]}, extras=extras), path)
    return path

  def test_two_score_files_by_index(self):
    # a: ids 0..5, b: ids 2..7 (2 dropped on each side), stored in other
    # orders. On the common ids 2..5: a = .2 .3 .4 .5, b by id = 4 3 2 +inf
    # (never learned, ranked highest). Ranks: a 1 2 3 4, b 3 2 1 4:
    # sum d^2 = 4 + 0 + 4 + 0 = 8, Spearman = 1 - 6 * 8 / (4 * 15) = 0.2.
    a = self._score_file("a.npz", [5, 4, 3, 2, 1, 0], [.5, .4, .3, .2, .1, 0.])
    b = self._score_file("b.npz", [2, 3, 4, 5, 6, 7], [4., 3., 2., np.inf, 1., 0.],
                         method="forgetting_minibatch",
                         never_learned=np.array([0, 0, 0, 1, 0, 0], bool))
    prefix = os.path.join(self.folder, "ab")
    result = subprocess.run(
        _binary() + ["--ours=" + a, "--published=" + b, "--output_prefix=" + prefix,
                     "--top_k=1,2", "--num_disagreements=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
        timeout=300)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    summary = _summary(prefix + "_summary.csv")
    self.assertAlmostEqual(summary["spearman"], 0.2)
    self.assertEqual(summary["n_compared"], 4)
    self.assertEqual(summary["n_common"], 4)
    self.assertEqual(summary["n_only_ours"], 2)
    self.assertEqual(summary["n_only_published"], 2)
    # Top-1: a {5}, b {5} (+inf); top-2: a {5, 4}, b {5, 2}.
    self.assertEqual(summary["top_1_overlap"], 1.0)
    self.assertEqual(summary["top_2_overlap"], 0.5)
    rows = _disagreements(prefix + "_disagreements.csv")
    self.assertEqual(rows[0][:3], ["index", "ours:el2n", "other:forgetting_minibatch"])
    # Percentile ranks (of 3): ids 2 and 4 differ by 2/3; id 2 first, its
    # values differing more (3.8 against 1.6).
    self.assertEqual([(r[0], round(float(r[-1]), 4)) for r in rows[1:]],
                     [("2", -0.6667), ("4", 0.6667)])
    # Pearson is undefined with a +inf value; reported as NaN.
    self.assertTrue(np.isnan(summary["pearson"]))
    self.assertIn("(el2n) vs", result.stdout)
    self.assertIn("(forgetting_minibatch), lined up by index", result.stdout)
    self.assertIn("2 only in ours, 2 only in other", result.stdout)
    # An extra array of a score file, by name.
    result = self._run_main(ours=b, ours_key="never_learned", published=a,
                            output_prefix=prefix + "_nl")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertIn("(forgetting_minibatch.never_learned)", result.stdout)
    result = self._run_main(ours=b, ours_key="nope", published=a,
                            output_prefix=prefix + "_x")
    self._assert_one_error_line(result, "key `nope` not found", "never_learned")

  def test_score_file_and_estimates(self):
    # self.ours memorization by id: (5 - i) / 5, ids 0..5.
    with np.load(self.ours) as npz:
      arrays = dict(npz)
    arrays["args_json"] = np.array("{}")
    np.savez(self.ours, **arrays)
    scores = self._score_file("s.npz", [0, 1, 2, 3, 9], [5., 4., 3., 2., 0.])
    prefix = os.path.join(self.folder, "se")
    result = self._run_main(ours=scores, published=self.ours,
                            published_key="memorization", output_prefix=prefix)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    summary = _summary(prefix + "_summary.csv")
    self.assertAlmostEqual(summary["spearman"], 1.0)
    self.assertAlmostEqual(summary["pearson"], 1.0)
    self.assertEqual(summary["n_compared"], 4)
    self.assertEqual(summary["n_only_ours"], 1)
    self.assertEqual(summary["n_only_published"], 2)
    self.assertIn("(el2n) vs", result.stdout)
    self.assertIn("(memorization), lined up by index", result.stdout)
    # The other way round: estimates as --ours with --ours_key.
    result = self._run_main(ours=self.ours, ours_key="cscore", published=scores,
                            output_prefix=prefix + "_r")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    # cscore by id 0..3: NaN .5 .4 .3 vs 5 4 3 2: ids 1..3 agree in order.
    summary = _summary(prefix + "_r_summary.csv")
    self.assertAlmostEqual(summary["spearman"], 1.0)
    self.assertEqual(summary["n_nan_ours"], 1)
    # An estimates file needs its key named.
    result = self._run_main(ours=scores, published=self.ours, output_prefix=prefix)
    self._assert_one_error_line(result, "an estimates file",
                                "--published_key (e.g. memorization)")
    result = self._run_main(ours=self.ours, published=scores, output_prefix=prefix)
    self._assert_one_error_line(result, "an estimates file", "--ours_key")
    result = self._run_main(ours=scores, published=self.ours, published_key="x",
                            output_prefix=prefix)
    self._assert_one_error_line(result, "key `x` not found")
    result = self._run_main(ours=scores, published=self.cscores, published_key="x",
                            output_prefix=prefix)
    self._assert_one_error_line(result, "--published_key is for a score or "
                                "estimates file")
    result = self._run_main(ours=scores, published=self.ours,
                            published_key="memorization", assume_same_order=True,
                            output_prefix=prefix)
    self._assert_one_error_line(result, "lined up with --ours by its `index`")

  def test_malformed_score_file(self):
    scores = self._score_file("s.npz", [0, 1, 2], [1., 2., 3.])
    with np.load(scores) as npz:
      arrays = dict(npz)
    arrays["se"] = np.zeros(2)
    np.savez(scores, **arrays)
    other = self._score_file("o.npz", [0, 1, 2], [1., 2., 3.])
    result = self._run_main(ours=scores, published=other,
                            output_prefix=os.path.join(self.folder, "m"))
    self._assert_one_error_line(result, "s.npz: key `se`: expected length 3",
                                "found length 2")
    self.assertFalse(os.path.exists(os.path.join(self.folder, "m_summary.csv")))

  def _assert_one_error_line(self, result, *fragments):
    self.assertEqual(result.returncode, 1, msg=result.stdout)
    self.assertNotIn("Traceback", result.stderr)
    # TFDS logs to stderr as well; the error is the one `error: ` line.
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    self.assertLen(lines, 1, msg=result.stderr)
    for fragment in fragments:
      self.assertIn(fragment, lines[0])

  def test_samis_pickle_through_an_index_map(self):
    # Published SAMIS by original position 0..4; ours (a score file, by TFDS
    # position t) is the published value of original_index[t] plus a
    # monotone change: Spearman 1 once mapped.
    original_index = np.array([3, 0, 4, 1, 2])
    published_values = np.array([0.7, 0.1, 0.9, 0.3, 0.5])
    pickled = os.path.join(self.folder, "cifar10_samis_l.pkl")
    with open(pickled, "wb") as f:
      pickle.dump({k: float(v) for k, v in enumerate(published_values)}, f)
    ours = self._score_file("samis_l.npz", range(5),
                            published_values[original_index] ** 2,
                            method="samis_l")
    mapping = os.path.join(self.folder, "map.npz")
    np.savez(mapping, original_index=original_index)
    prefix = os.path.join(self.folder, "samis")
    result = self._run_main(ours=ours, published=pickled, index_map=mapping,
                            allow_pickle=True, output_prefix=prefix)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    summary = _summary(prefix + "_summary.csv")
    self.assertAlmostEqual(summary["spearman"], 1.0)
    self.assertEqual(summary["n_compared"], 5)
    self.assertIn("(samis)", result.stdout)
    # Unmapped, the ids do not line up.
    result = self._run_main(ours=ours, published=pickled, allow_pickle=True,
                            assume_same_order=True, output_prefix=prefix + "_raw")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertLess(_summary(prefix + "_raw_summary.csv")["spearman"], 0.5)
    result = self._run_main(ours=ours, published=pickled, index_map=mapping,
                            output_prefix=prefix + "_x")
    self._assert_one_error_line(result, "cifar10_samis_l.pkl: a pickle",
                                "--allow_pickle")
    result = self._run_main(ours=ours, published=pickled, allow_pickle=True,
                            output_prefix=prefix + "_x")
    self._assert_one_error_line(result, "original CIFAR order")
    result = self._run_main(ours=ours, published=pickled, allow_pickle=True,
                            kind="cscore", output_prefix=prefix + "_x")
    self._assert_one_error_line(result, "--kind=cscore", "a SAMIS pickle")

  def test_original_order_needs_a_map(self):
    _, ours, cscores = self._tfds_order_files()
    prefix = os.path.join(self.folder, "refused")
    result = self._run_main(ours=ours, published=cscores, output_prefix=prefix)
    self._assert_one_error_line(
        result, "c.npz: the published scores are in the original CIFAR order",
        "--index_map=tfds:cifar10:3.0.2", "--index_map=MAP.npz",
        "--assume_same_order")
    short_map = os.path.join(self.folder, "short_map.npz")
    np.savez(short_map, original_index=np.array([1, 0, 2]))
    for flag_values, fragments in (
        (dict(index_map=short_map, assume_same_order=True), ("contradict",)),
        (dict(index_map=short_map),
         ("maps 3 examples, but", "c.npz holds 5", "another dataset")),
        (dict(index_map="tfds:"), ("needs a dataset name",))):
      result = self._run_main(ours=ours, published=cscores, output_prefix=prefix,
                              **flag_values)
      self._assert_one_error_line(result, *fragments)
    self.assertEqual([n for n in os.listdir(self.folder) if n.startswith("refused")],
                     [])

  def test_tfds_ids_not_of_the_cifar_form(self):
    _, ours, cscores = self._tfds_order_files()
    data_dir = self.create_tempdir().full_path
    data_testing.write_tfds_metadata(data_dir, "cifar10:3.0.2", 5)
    # The mock's random ids are not "train_<n>": refused, in one line.
    with tfds.testing.mock_data(num_examples=5,
                                policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
      result = self._run_main(ours=ours, published=cscores,
                              index_map="tfds:cifar10:3.0.2", data_dir=data_dir,
                              output_prefix=os.path.join(self.folder, "bad_ids"))
    self._assert_one_error_line(result, "--index_map=tfds:cifar10:3.0.2: TFDS id '",
                                "(position 0) is not of the form train_<n>")

  def test_errors_leave_no_output(self):
    bad = os.path.join(self.folder, "bad.npz")
    np.savez(bad, something=np.zeros(3))
    prefix = os.path.join(self.folder, "err")
    for flag_values, fragment in (
        (dict(ours=bad, published=self.cscores), "key `cscore` or `consistency` not found"),
        (dict(ours=self.ours, published=bad), "expected the keys of a C-score file"),
        (dict(ours=self.ours, published=self.cscores, kind="memorization"),
         "asked for kind memorization"),
        (dict(ours=self.ours, published=os.path.join(self.folder, "absent.npz")),
         "no such file")):
      result = self._run_main(output_prefix=prefix, **flag_values)
      self.assertEqual(result.returncode, 1, msg=result.stdout)
      lines = result.stderr.splitlines()
      self.assertLen(lines, 1, msg=result.stderr)
      self.assertTrue(lines[0].startswith("error: "), lines[0])
      self.assertIn(fragment, lines[0])
    self.assertEqual([n for n in os.listdir(self.folder) if n.startswith("err")], [])


if __name__ == "__main__":
  absltest.main()
