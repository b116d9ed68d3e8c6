"""Tests of the readers of published estimates, on files built in each format."""

import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout import errors
from heldout.released import published

_NUM_CLASSES = 3


def _save(folder, name, **arrays):
  path = os.path.join(folder, name)
  np.savez(path, **arrays)
  return path


def _infl_arrays(rng, transpose=False, n_train=30, n_test=12):
  """A small cifar100_infl_matrix.npz: classes 0..2, influence = 1000*k + 10*a + b."""
  tr_labels = np.arange(n_train) % _NUM_CLASSES
  tt_labels = (np.arange(n_test) + 1) % _NUM_CLASSES
  rng.shuffle(tr_labels)
  arrays = {"tr_mem": rng.random(n_train), "tr_labels": tr_labels, "tt_labels": tt_labels}
  for k in range(_NUM_CLASSES):
    tr = np.flatnonzero(tr_labels == k)
    tt = np.flatnonzero(tt_labels == k)
    matrix = 1000.0 * k + 10.0 * np.arange(len(tr))[:, None] + np.arange(len(tt))[None, :]
    arrays["infl_matrix_class{}".format(k)] = matrix.T if transpose else matrix
    arrays["tr_classidx_{}".format(k)] = tr
    arrays["tt_classidx_{}".format(k)] = tt
  return arrays


class CScoresTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = self.create_tempdir().full_path
    self.rng = np.random.default_rng(0)

  def test_cifar_file(self):
    scores = self.rng.random(50)
    labels = self.rng.integers(0, 10, 50)
    path = _save(self.folder, "cifar10-cscores-orig-order.npz", labels=labels, scores=scores)
    result = published.read_cscores(path, num_examples=50)
    np.testing.assert_array_equal(result.values, scores)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.index, np.arange(50))
    self.assertEqual(result.kind, "cscore")
    self.assertEqual(result.order, "original")
    self.assertIsNone(result.filenames)

  @parameterized.named_parameters(
      ("missing_scores", dict(labels=np.zeros(5, int)), "missing key\\(s\\) `scores`"),
      ("missing_labels", dict(scores=np.zeros(5)), "missing key\\(s\\) `labels`"),
      ("short_labels", dict(labels=np.zeros(4, int), scores=np.zeros(5)),
       "key `labels`: expected length 5 \\(len\\(scores\\)\\), found length 4"),
      ("wrong_count", dict(labels=np.zeros(6, int), scores=np.zeros(6)),
       "key `scores`: expected length 5 \\(the number of training examples\\), found length 6"),
      ("matrix_scores", dict(labels=np.zeros(5, int), scores=np.zeros((5, 1))),
       "key `scores`: expected a 1-D array, found shape \\(5, 1\\)"),
      ("float_labels", dict(labels=np.zeros(5), scores=np.zeros(5)),
       "key `labels`: expected an integer array, found dtype float64"),
      ("text_scores", dict(labels=np.zeros(5, int), scores=np.array(["a"] * 5)),
       "key `scores`: expected a numeric array"))
  def test_malformed(self, arrays, pattern):
    path = _save(self.folder, "bad.npz", **arrays)
    with self.assertRaisesRegex(errors.PublishedFormatError, pattern) as cm:
      published.read_cscores(path, num_examples=5)
    self.assertIn(path, str(cm.exception))

  def test_not_a_file(self):
    with self.assertRaisesRegex(errors.PublishedFormatError, "no such file"):
      published.read_cscores(os.path.join(self.folder, "absent.npz"))
    path = os.path.join(self.folder, "junk.npz")
    with open(path, "wb") as f:
      f.write(b"not an npz")
    with self.assertRaisesRegex(errors.PublishedFormatError, "not a readable .npz"):
      published.read_cscores(path)

  def _imagenet_files(self, filenames_dtype="S", label_offset=0):
    train_names = ["n{:08d}_{}.JPEG".format(k, i) for i in range(4) for k in range(3)]
    train_labels = np.array([k for _ in range(4) for k in range(3)])
    test_names = ["ILSVRC2012_val_{:08d}.JPEG".format(i) for i in range(5)]
    index_path = _save(self.folder, "imagenet_index.npz",
                       tr_filenames=np.array(train_names, dtype="S"), tr_labels=train_labels,
                       tt_filenames=np.array(test_names, dtype="S"),
                       tt_labels=np.arange(5) % 3)
    order = self.rng.permutation(len(train_names))
    scores = self.rng.random(len(train_names))
    names = ["train/n{:08d}/{}".format(train_labels[i], train_names[i]) for i in order]
    cscores_path = _save(self.folder, "imagenet-cscores-with-filename.npz",
                         labels=train_labels[order] + label_offset, scores=scores,
                         filenames=np.array(names, dtype=filenames_dtype))
    return index_path, cscores_path, order, scores

  @parameterized.named_parameters(("bytes", "S", 0), ("unicode", "U", 0),
                                  ("labels_from_one", "S", 1))
  def test_imagenet_cscores_aligned_by_filename(self, dtype, offset):
    index_path, cscores_path, order, scores = self._imagenet_files(dtype, offset)
    index = published.read_imagenet_index(index_path, num_train=12, num_test=5)
    self.assertEqual(index.train_lookup()["n00000002_1.JPEG"], 5)
    raw = published.read_cscores(cscores_path)
    self.assertIsNone(raw.index)
    self.assertEqual(raw.order, "filename")
    aligned = published.align_by_filename(raw, index)
    np.testing.assert_array_equal(aligned.index, order)
    np.testing.assert_array_equal(aligned.values, scores)
    np.testing.assert_array_equal(aligned.labels, index.train_labels[order])
    via_read = published.read_published(cscores_path, imagenet_index=index)
    np.testing.assert_array_equal(via_read.index, order)

  def test_imagenet_alignment_errors(self):
    index_path, cscores_path, _, _ = self._imagenet_files()
    index = published.read_imagenet_index(index_path)
    with self.assertRaisesRegex(errors.PublishedFormatError, "pass the imagenet_index"):
      published.read_published(cscores_path)
    raw = published.read_cscores(cscores_path)
    wrong = raw.labels.copy()
    wrong[0] = (wrong[0] + 2) % 3
    bad = published.PublishedScores("cscore", raw.values, None, wrong, raw.filenames,
                                    "filename", "x.npz")
    with self.assertRaisesRegex(errors.PublishedFormatError, "key `labels`: .* 1 of 12 differ"):
      published.align_by_filename(bad, index)
    unknown = raw.filenames.copy()
    unknown[3] = "nothere.JPEG"
    bad = published.PublishedScores("cscore", raw.values, None, raw.labels, unknown,
                                    "filename", "x.npz")
    with self.assertRaisesRegex(errors.PublishedFormatError, "1 of 12 not listed.*nothere"):
      published.align_by_filename(bad, index)

  def test_object_filenames_need_allow_pickle(self):
    path = _save(self.folder, "obj.npz", labels=np.zeros(2, int), scores=np.zeros(2),
                 filenames=np.array(["a.JPEG", "b.JPEG"], dtype=object))
    with self.assertRaisesRegex(errors.PublishedFormatError, "allow_pickle"):
      published.read_cscores(path)
    result = published.read_cscores(path, allow_pickle=True)
    self.assertEqual(list(result.filenames), ["a.JPEG", "b.JPEG"])

  @parameterized.named_parameters(
      ("missing", "tt_labels", None, "missing key\\(s\\) `tt_labels`"),
      ("short", "tr_labels", np.zeros(11, int), "key `tr_labels`: expected length 12"),
      ("label_range", "tr_labels", np.full(12, 1000), "key `tr_labels`: expected labels in 0..999"))
  def test_imagenet_index_malformed(self, key, value, pattern):
    arrays = dict(tr_filenames=np.array(["f{}".format(i) for i in range(12)], dtype="S"),
                  tr_labels=np.zeros(12, int), tt_filenames=np.array(["t"], dtype="S"),
                  tt_labels=np.zeros(1, int))
    if value is None:
      del arrays[key]
    else:
      arrays[key] = value
    with self.assertRaisesRegex(errors.PublishedFormatError, pattern):
      published.read_imagenet_index(_save(self.folder, "idx.npz", **arrays))

  def test_imagenet_index_duplicate_filename(self):
    path = _save(self.folder, "idx.npz", tr_filenames=np.array([b"a", b"b", b"a"]),
                 tr_labels=np.zeros(3, int), tt_filenames=np.array([b"t"]),
                 tt_labels=np.zeros(1, int))
    with self.assertRaisesRegex(errors.PublishedFormatError, "each filename once.*a"):
      published.read_imagenet_index(path)


class InfluenceMatrixTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = self.create_tempdir().full_path
    self.rng = np.random.default_rng(1)

  @parameterized.named_parameters(("as_documented", False, "train_by_test"),
                                  ("transposed", True, "test_by_train"))
  def test_reads_either_orientation(self, transpose, orientation):
    arrays = _infl_arrays(self.rng, transpose=transpose)
    path = _save(self.folder, "cifar100_infl_matrix.npz", **arrays)
    result = published.read_infl_matrix(path, num_train=30, num_test=12)
    self.assertEqual(result.orientation, orientation)
    np.testing.assert_array_equal(result.memorization, arrays["tr_mem"])
    for k in range(_NUM_CLASSES):
      c = result.classes[k]
      self.assertEqual(c.influence.shape, (len(c.train_index), len(c.test_index)))
      # Entry (a, b) is 1000k + 10a + b whatever the stored orientation.
      self.assertEqual(c.influence[2, 1], 1000 * k + 21)
    tr = arrays["tr_classidx_1"][3]
    tt = arrays["tt_classidx_1"][2]
    self.assertEqual(result.influence(tr, tt), 1000 + 32)
    other = arrays["tt_classidx_2"][0]
    self.assertTrue(np.isnan(result.influence(tr, other)))
    scores = result.memorization_scores()
    self.assertEqual(scores.kind, "memorization")
    np.testing.assert_array_equal(scores.index, np.arange(30))

  def test_square_matrices_are_reported(self):
    arrays = _infl_arrays(self.rng, n_train=9, n_test=9)
    arrays["tt_labels"] = np.sort(arrays["tr_labels"])
    for k in range(_NUM_CLASSES):
      arrays["tt_classidx_{}".format(k)] = np.flatnonzero(arrays["tt_labels"] == k)
    path = _save(self.folder, "square.npz", **arrays)
    self.assertEqual(published.read_infl_matrix(path).orientation, "square")

  def _broken(self, edit):
    arrays = _infl_arrays(self.rng)
    edit(arrays)
    return _save(self.folder, "broken.npz", **arrays)

  @parameterized.named_parameters(
      ("missing_tr_mem", lambda a: a.pop("tr_mem"), "missing key\\(s\\) `tr_mem`"),
      ("missing_classidx", lambda a: a.pop("tt_classidx_1"),
       "missing key\\(s\\) `tt_classidx_1`"),
      ("class_gap", lambda a: a.pop("infl_matrix_class1"),
       "key `infl_matrix_class1`: expected classes 0..2 without gaps"),
      ("no_matrices", lambda a: [a.pop("infl_matrix_class{}".format(k)) for k in range(3)],
       "key `infl_matrix_class0`: expected one `infl_matrix_class\\{k\\}` per class"),
      ("short_labels", lambda a: a.update(tr_labels=a["tr_labels"][:-1]),
       "key `tr_labels`: expected length 30 \\(len\\(tr_mem\\)\\), found length 29"),
      ("wrong_shape", lambda a: a.update(infl_matrix_class2=np.zeros((3, 3))),
       "key `infl_matrix_class2`: expected shape \\[len\\(tr_classidx_2\\), "
       "len\\(tt_classidx_2\\)\\] = \\[10, 4\\] \\(or its transpose\\), found shape \\[3, 3\\]"),
      ("one_transposed", lambda a: a.update(infl_matrix_class0=a["infl_matrix_class0"].T),
       "one orientation for every class"),
      ("wrong_class_members", lambda a: a.update(
          tr_classidx_0=np.concatenate([a["tr_classidx_0"][:-1], a["tr_classidx_1"][:1]])),
       "key `tr_classidx_0`: expected ids of examples of class 0"),
      ("id_out_of_range", lambda a: a.update(
          tt_classidx_2=np.concatenate([a["tt_classidx_2"][:-1], [12]])),
       "key `tt_classidx_2`: expected example ids in \\[0, 12\\)"),
      ("int_matrix", lambda a: a.update(infl_matrix_class0=np.zeros((10, 4), int)),
       "key `infl_matrix_class0`: expected a float array"))
  def test_malformed(self, edit, pattern):
    with self.assertRaisesRegex(errors.PublishedFormatError, pattern):
      published.read_infl_matrix(self._broken(edit))

  def test_expected_sizes(self):
    path = _save(self.folder, "m.npz", **_infl_arrays(self.rng))
    with self.assertRaisesRegex(errors.PublishedFormatError,
                                "key `tr_mem`: expected length 50000"):
      published.read_infl_matrix(path, num_train=50000)
    with self.assertRaisesRegex(errors.PublishedFormatError,
                                "key `tt_labels`: expected length 10000"):
      published.read_infl_matrix(path, num_test=10000)


class HighInfluencePairsTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = self.create_tempdir().full_path
    self.rng = np.random.default_rng(2)
    self.matrix_arrays = _infl_arrays(self.rng)
    self.matrix_arrays["tr_mem"] = 0.3 + 0.7 * self.rng.random(30)
    self.matrix = published.read_infl_matrix(
        _save(self.folder, "cifar100_infl_matrix.npz", **self.matrix_arrays))

  def _pairs(self, n=8):
    """Same-class pairs with mem = tr_mem[tr_idx], infl = the matrix entry."""
    tr, tt, infl = [], [], []
    for k in range(_NUM_CLASSES):
      c = self.matrix.classes[k]
      for a, b in ((0, 0), (1, 2), (0, 3)):
        tr.append(c.train_index[a])
        tt.append(c.test_index[b])
        infl.append(c.influence[a, b] / 10000.0 + 0.2)
    tr, tt = np.array(tr[:n]), np.array(tt[:n])
    return dict(tr_idx=tr, tt_idx=tt, infl=np.array(infl[:n]),
                mem=self.matrix_arrays["tr_mem"][tr])

  def test_reads_pairs_and_memorization(self):
    arrays = self._pairs()
    path = _save(self.folder, "cifar100_high_infl_pairs_infl0.15_mem0.25.npz", **arrays)
    pairs = published.read_high_influence_pairs(path, num_train=30, num_test=12)
    self.assertEqual(pairs.thresholds, (0.15, 0.25))
    np.testing.assert_array_equal(pairs.train_index, arrays["tr_idx"])
    scores = pairs.memorization_scores()
    ids = np.unique(arrays["tr_idx"])
    np.testing.assert_array_equal(scores.index, ids)
    np.testing.assert_allclose(scores.values, self.matrix_arrays["tr_mem"][ids])
    via_read = published.read_published(path)
    np.testing.assert_array_equal(via_read.index, ids)

  def test_cross_check_with_matrix(self):
    arrays = self._pairs()
    arrays["infl"] = np.array([self.matrix.influence(a, b) for a, b in
                               zip(arrays["tr_idx"], arrays["tt_idx"])])
    path = _save(self.folder, "pairs.npz", **arrays)
    pairs = published.read_high_influence_pairs(path)
    self.assertEqual(published.check_pairs_against_matrix(pairs, self.matrix), 8)
    arrays["infl"][4] += 1.0
    bad = published.read_high_influence_pairs(_save(self.folder, "bad.npz", **arrays))
    with self.assertRaisesRegex(errors.PublishedFormatError, "key `infl`: expected the "
                                "influence matrix entry"):
      published.check_pairs_against_matrix(bad, self.matrix)
    arrays["mem"] = arrays["mem"] + 0.01
    bad = published.read_high_influence_pairs(_save(self.folder, "bad2.npz", **arrays))
    with self.assertRaisesRegex(errors.PublishedFormatError, "8 of 8 pairs differ"):
      published.check_pairs_against_matrix(bad, self.matrix)

  @parameterized.named_parameters(
      ("missing", lambda a: a.pop("mem"), "missing key\\(s\\) `mem`"),
      ("short", lambda a: a.update(tt_idx=a["tt_idx"][:-1]),
       "key `tt_idx`: expected length 8 \\(len\\(tr_idx\\)\\), found length 7"),
      ("float_ids", lambda a: a.update(tr_idx=a["tr_idx"].astype(float)),
       "key `tr_idx`: expected an integer array"),
      ("negative_id", lambda a: a["tt_idx"].__setitem__(0, -1),
       "key `tt_idx`: expected example ids"),
      ("mem_not_per_example", lambda a: a.update(
          tr_idx=np.concatenate([a["tr_idx"][:-1], a["tr_idx"][:1]]),
          mem=np.concatenate([a["mem"][:-1], [a["mem"][0] - 0.05]])),
       "key `mem`: expected one memorization value per training example"))
  def test_malformed(self, edit, pattern):
    arrays = self._pairs()
    edit(arrays)
    with self.assertRaisesRegex(errors.PublishedFormatError, pattern):
      published.read_high_influence_pairs(_save(self.folder, "p.npz", **arrays))

  def test_thresholds_in_name_are_checked(self):
    arrays = self._pairs()
    arrays["infl"][2] = 0.1
    path = _save(self.folder, "x_high_infl_pairs_infl0.15_mem0.25.npz", **arrays)
    with self.assertRaisesRegex(errors.PublishedFormatError,
                                "key `infl`: expected every value >= 0.15.*minimum 0.100000 "
                                "\\(1 of 8 pairs below\\)"):
      published.read_high_influence_pairs(path)
    pairs = published.read_high_influence_pairs(path, check_thresholds=False)
    self.assertEqual(pairs.thresholds, (0.15, 0.25))
    unnamed = published.read_high_influence_pairs(_save(self.folder, "plain.npz", **arrays))
    self.assertIsNone(unnamed.thresholds)


class ReadPublishedTest(absltest.TestCase):

  def test_kind_detection_and_mismatch(self):
    folder = self.create_tempdir().full_path
    rng = np.random.default_rng(3)
    cscores = _save(folder, "c.npz", labels=np.zeros(4, int), scores=rng.random(4))
    matrix = _save(folder, "m.npz", **_infl_arrays(rng))
    self.assertEqual(published.read_published(cscores).kind, "cscore")
    self.assertEqual(published.read_published(matrix).kind, "memorization")
    self.assertEqual(published.read_published(matrix, kind="memorization").kind,
                     "memorization")
    with self.assertRaisesRegex(errors.PublishedFormatError, "asked for kind memorization"):
      published.read_published(cscores, kind="memorization")
    other = _save(folder, "o.npz", something=np.zeros(3))
    with self.assertRaisesRegex(errors.PublishedFormatError, "found \\['something'\\]"):
      published.read_published(other)
    with self.assertRaisesRegex(ValueError, "`kind` must be"):
      published.read_published(cscores, kind="influence")


class TfdsIdsTest(absltest.TestCase):

  def test_original_index(self):
    ids = [b"train_00002", "train_00000", "train_00001"]
    np.testing.assert_array_equal(published.original_index_from_tfds_ids(ids), [2, 0, 1])
    np.testing.assert_array_equal(
        published.original_index_from_tfds_ids(np.array(["train_1", "train_0"])), [1, 0])
    with self.assertRaisesRegex(ValueError, "^TFDS id 'img_1' \\(position 1\\) is not of "
                                "the form"):
      published.original_index_from_tfds_ids(np.array(["train_0", "img_1"]))
    with self.assertRaisesRegex(ValueError, "exactly once"):
      published.original_index_from_tfds_ids(["train_00000", "train_00000"])


if __name__ == "__main__":
  absltest.main()
