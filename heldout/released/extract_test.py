"""Tests of the streaming, selective, safe tar extraction."""

import gzip
import hashlib
import io
import os
import tarfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout import errors
from heldout.released import extract
from heldout.released import testing_archive

_EXP = "cifar10-inception"
_RUNS = {0.5: [0, 1], 0.7: [0, 1, 2]}


def _fake_checkpoints(root):
  """Adds checkpoint-named files (arbitrary bytes) to every run folder."""
  for ratio, runs in _RUNS.items():
    for run in runs:
      folder = os.path.join(root, _EXP, "{:g}".format(ratio), str(run), "checkpoints")
      os.makedirs(folder, exist_ok=True)
      for suffix, size in ((".index", 100 + run), (".data-00000-of-00001", 5000 + run)):
        with open(os.path.join(folder, "ckpt-7" + suffix), "wb") as f:
          f.write(bytes([run % 256]) * size)


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def _end_of_archive(tar):
  """The offset of the end-of-archive marker in an uncompressed tar."""
  with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
    t.getmembers()
    return t.offset


class SelectionTest(parameterized.TestCase):

  def test_parse_runs(self):
    self.assertIsNone(extract.parse_runs(None))
    self.assertIsNone(extract.parse_runs(" "))
    self.assertEqual(extract.parse_runs("0:100"), ((0, 100),))
    self.assertEqual(extract.parse_runs("7:9, 3"), ((3, 4), (7, 9)))
    self.assertEqual(extract.parse_runs("50:"), ((50, -1),))
    self.assertEqual(extract.parse_runs(":5"), ((0, 5),))
    for bad in ("a", "5:5", "9:3", "-1", "1:x"):
      with self.assertRaisesRegex(ValueError, "`runs`"):
        extract.parse_runs(bad)

  def test_parse_ratios(self):
    self.assertIsNone(extract.parse_ratios(None))
    self.assertEqual(extract.parse_ratios("0.7,0.5,0.7"), (0.5, 0.7))
    self.assertEqual(extract.parse_ratios([0.3]), (0.3,))
    with self.assertRaisesRegex(ValueError, "not a number"):
      extract.parse_ratios("0.5,x")
    with self.assertRaisesRegex(ValueError, r"in \(0, 1\]"):
      extract.parse_ratios("1.5")

  def test_only_is_checked(self):
    with self.assertRaisesRegex(ValueError, "`only` must be one of"):
      extract.Selection(only="weights")

  @parameterized.named_parameters(
      ("all_aux", "all", None, None, "e/0.7/3/aux_arrays.npz", True),
      ("all_toplevel", "all", None, None, "e/README", True),
      ("filtered_toplevel", "all", "0.7", None, "e/README", False),
      ("aux_only_aux", "aux_arrays", None, None, "e/0.7/3/aux_arrays.npz", True),
      ("aux_only_ckpt", "aux_arrays", None, None, "e/0.7/3/checkpoints/ckpt-1.index", False),
      ("ckpt_only_ckpt", "checkpoints", None, None, "e/0.7/3/checkpoints/ckpt-1.index", True),
      ("ckpt_only_aux", "checkpoints", None, None, "e/0.7/3/aux_arrays.npz", False),
      ("ratio_in", "all", "0.5,0.7", None, "e/0.7/3/aux_arrays.npz", True),
      ("ratio_out", "all", "0.5", None, "e/0.7/3/aux_arrays.npz", False),
      ("run_in", "all", None, "0:4", "e/0.7/3/aux_arrays.npz", True),
      ("run_out", "all", None, "0:3", "e/0.7/3/aux_arrays.npz", False),
      ("run_open_end", "all", None, "2:", "e/0.7/300/aux_arrays.npz", True),
      ("non_ratio_folder", "aux_arrays", None, None, "e/logs/3/aux_arrays.npz", False))
  def test_matches(self, only, ratios, runs, name, expected):
    selection = extract.Selection.from_args(only=only, ratios=ratios, runs=runs)
    self.assertEqual(selection.matches(name.split("/")), expected)

  def test_to_json(self):
    selection = extract.Selection.from_args("aux_arrays", "0.7", "0:10,12")
    self.assertEqual(selection.to_json(), {"only": "aux_arrays", "ratios": [0.7],
                                           "runs": [[0, 10], [12, 13]]})


class ExtractTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.src = self.create_tempdir("src").full_path
    testing_archive.build_experiment_tree(self.src, _EXP, _RUNS, with_checkpoints=False)
    _fake_checkpoints(self.src)
    self.archive = testing_archive.pack_tar_gz(self.src, _EXP)
    self.work = self.create_tempdir("work").full_path
    self.dest = os.path.join(self.work, "dest")

  def _extract(self, data=None, **selection):
    return extract.extract_stream(io.BytesIO(self.archive if data is None else data),
                                  self.dest, _EXP, extract.Selection.from_args(**selection))

  def _dest_files(self):
    return testing_archive.list_files(self.dest)

  def test_full_extraction_reproduces_the_tree(self):
    counts = self._extract()
    expected = testing_archive.list_files(self.src)
    self.assertLen(expected, 5 * 3)
    self.assertEqual(self._dest_files(), expected)
    for rel in expected:
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))
    self.assertEqual(counts.written, 15)
    self.assertEqual(counts.skipped_existing, 0)
    self.assertEqual(counts.not_selected, 0)
    self.assertEqual(counts.bytes_written,
                     sum(os.path.getsize(os.path.join(self.src, r)) for r in expected))
    self.assertEqual(sorted(counts.files), expected)

  @parameterized.named_parameters(
      ("aux_only", dict(only="aux_arrays"),
       ["{}/{}/{}/aux_arrays.npz".format(_EXP, r, n)
        for r, n in (("0.5", 0), ("0.5", 1), ("0.7", 0), ("0.7", 1), ("0.7", 2))]),
      ("ratio", dict(ratios="0.5"),
       ["{}/0.5/{}/{}".format(_EXP, n, f) for n in (0, 1) for f in (
           "aux_arrays.npz", "checkpoints/ckpt-7.data-00000-of-00001",
           "checkpoints/ckpt-7.index")]),
      ("runs_and_ratio_and_ckpt", dict(only="checkpoints", ratios="0.7", runs="1:3"),
       ["{}/0.7/{}/checkpoints/{}".format(_EXP, n, f) for n in (1, 2) for f in (
           "ckpt-7.data-00000-of-00001", "ckpt-7.index")]))
  def test_selective_extraction(self, selection, expected):
    counts = self._extract(**selection)
    self.assertEqual(self._dest_files(), sorted(expected))
    self.assertEqual(counts.written, len(expected))
    self.assertEqual(counts.not_selected, 15 - len(expected))
    for rel in expected:
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))

  def test_existing_files_are_compared_and_only_differing_ones_rewritten(self):
    self._extract()
    rel = "{}/0.7/1/checkpoints/ckpt-7.index".format(_EXP)
    path = os.path.join(self.dest, rel)
    flipped = bytearray(_read(path))
    flipped[len(flipped) // 2] ^= 0x01
    with open(path, "wb") as f:
      f.write(flipped)  # Same size, one bit differs.
    other = os.path.join(self.dest, _EXP, "0.5", "0", "aux_arrays.npz")
    with open(other, "wb") as f:
      f.write(b"truncated")
    os.remove(os.path.join(self.dest, _EXP, "0.5", "1", "aux_arrays.npz"))
    untouched = os.path.join(self.dest, _EXP, "0.7", "2", "aux_arrays.npz")
    inode = os.stat(untouched).st_ino
    counts = self._extract()
    for rel in testing_archive.list_files(self.src):
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))
    self.assertEqual(os.stat(untouched).st_ino, inode)  # Equal: not rewritten.
    self.assertEqual(counts.written, 3)
    self.assertEqual(counts.skipped_existing, 12)

  def test_every_file_is_recorded_with_its_size_and_sha256(self):
    counts = self._extract(only="aux_arrays")
    self.assertLen(counts.files, 5)
    for rel, record in counts.files.items():
      data = _read(os.path.join(self.src, rel))
      self.assertEqual(record, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    self._extract()  # Again, now confirming the existing files: the same records.
    self.assertEqual(self._extract().files[rel], record)

  def test_stale_temporary_files_are_removed(self):
    folder = os.path.join(self.dest, _EXP, "0.5", "0")
    os.makedirs(folder)
    stale = os.path.join(folder, ".aux_arrays.npz.tmp-0123456789ab")
    with open(stale, "wb") as f:
      f.write(b"partial")
    self._extract(only="aux_arrays")
    self.assertFalse(os.path.exists(stale))
    self.assertEqual(sorted(os.listdir(folder)), ["aux_arrays.npz"])

  def _assert_nothing_outside_dest(self):
    self.assertEqual(sorted(os.listdir(self.work)), ["dest"])
    self.assertFalse(os.path.exists("/tmp/heldout_extract_test_abs"))

  @parameterized.named_parameters(
      ("dotdot", ("../x", b"evil"), "'../x'"),
      ("dotdot_inside", (_EXP + "/0.5/../../../x", b"evil"), "'../x'|\\.\\./"),
      ("absolute", ("/tmp/heldout_extract_test_abs", b"evil"), "heldout_extract_test_abs"),
      ("symlink_out", (_EXP + "/link", b"", tarfile.SYMTYPE, "../../outside"),
       "symbolic link"),
      ("symlink_absolute", (_EXP + "/link", b"", tarfile.SYMTYPE, "/etc/passwd"),
       "symbolic link to absolute"),
      ("hardlink_out", (_EXP + "/hard", b"", tarfile.LNKTYPE, "../outside"),
       "hard link"),
      ("char_device", (_EXP + "/dev", b"", tarfile.CHRTYPE), "device file"),
      ("block_device", (_EXP + "/blk", b"", tarfile.BLKTYPE), "device file"),
      ("fifo", (_EXP + "/fifo", b"", tarfile.FIFOTYPE), "FIFO"),
      ("outside_experiment", ("other-experiment/0.5/0/aux_arrays.npz", b"x"),
       "outside the expected top-level folder"))
  def test_unsafe_members_are_refused(self, member, pattern):
    for where in ("prepend", "append"):
      data = testing_archive.pack_tar_gz(
          self.src, _EXP, **{"{}_members".format(
              "extra" if where == "append" else "prepend"): [member]})
      with self.assertRaisesRegex(errors.ArchiveError, pattern):
        self._extract(data)
      self._assert_nothing_outside_dest()

  def test_symlink_escape_then_write_through_it(self):
    data = testing_archive.pack_tar_gz(self.src, _EXP, prepend_members=[
        (_EXP + "/esc", b"", tarfile.SYMTYPE, "../.."),
        (_EXP + "/esc/pwned", b"evil")])
    with self.assertRaisesRegex(errors.ArchiveError, "esc"):
      self._extract(data)
    self._assert_nothing_outside_dest()

  def test_symlink_into_a_sibling_with_the_same_prefix_is_refused(self):
    # `work/dest-evil` starts with the string `work/dest` but lies outside it:
    # containment must compare path components, not string prefixes.
    sibling = os.path.join(self.work, "dest-evil")
    os.makedirs(sibling)
    data = testing_archive.pack_tar_gz(self.src, _EXP, prepend_members=[
        (_EXP + "/esc", b"", tarfile.SYMTYPE, "../../dest-evil"),
        (_EXP + "/esc/pwned", b"evil")])
    with self.assertRaisesRegex(errors.ArchiveError, "esc"):
      self._extract(data)
    self.assertEqual(os.listdir(sibling), [])
    self.assertFalse(os.path.lexists(os.path.join(self.dest, _EXP, "esc")))

  def test_existing_symlink_into_a_sibling_with_the_same_prefix(self):
    sibling = os.path.join(self.work, "dest-evil")
    os.makedirs(sibling)
    os.makedirs(os.path.join(self.dest, _EXP, "0.5"))
    os.symlink(sibling, os.path.join(self.dest, _EXP, "0.5", "0"))
    with self.assertRaisesRegex(errors.ArchiveError, "outside the destination"):
      self._extract()
    self.assertEqual(os.listdir(sibling), [])

  def test_existing_symlink_in_dest_is_not_followed_out(self):
    outside = self.create_tempdir("outside").full_path
    os.makedirs(os.path.join(self.dest, _EXP, "0.5"))
    os.symlink(outside, os.path.join(self.dest, _EXP, "0.5", "0"))
    with self.assertRaisesRegex(errors.ArchiveError, "outside the destination"):
      self._extract()
    self.assertEqual(os.listdir(outside), [])

  def test_links_inside_dest_are_created(self):
    target = _EXP + "/0.5/0/aux_arrays.npz"
    data = testing_archive.pack_tar_gz(self.src, _EXP, extra_members=[
        (_EXP + "/latest", b"", tarfile.SYMTYPE, "0.7/2"),
        (_EXP + "/copy.npz", b"", tarfile.LNKTYPE, target)])
    counts = self._extract(data)
    self.assertEqual(os.readlink(os.path.join(self.dest, _EXP, "latest")), "0.7/2")
    self.assertTrue(os.path.samefile(os.path.join(self.dest, _EXP, "copy.npz"),
                                     os.path.join(self.dest, target)))
    self.assertEqual(counts.written, 17)

  def test_hardlink_to_unselected_file_is_skipped(self):
    data = testing_archive.pack_tar_gz(self.src, _EXP, extra_members=[
        (_EXP + "/0.7/2/checkpoints/alias", b"", tarfile.LNKTYPE,
         _EXP + "/0.5/0/checkpoints/ckpt-7.index")])
    counts = self._extract(data, only="checkpoints", ratios="0.7")
    self.assertEqual(counts.links_skipped, 1)
    self.assertFalse(os.path.lexists(
        os.path.join(self.dest, _EXP, "0.7", "2", "checkpoints", "alias")))

  def test_truncated_archive(self):
    with self.assertRaisesRegex(errors.ArchiveError, _EXP + " archive"):
      self._extract(self.archive[:len(self.archive) // 2])
    for rel in self._dest_files():  # What was written is complete, nothing partial.
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))
    self.assertFalse([n for n in self._all_names() if ".tmp-" in n])

  def _all_names(self):
    return [n for _, _, names in os.walk(self.dest) for n in names]

  def test_not_a_gzip(self):
    with self.assertRaisesRegex(errors.ArchiveError, _EXP + " archive"):
      self._extract(b"this is not a tar.gz archive at all" * 100)

  def _tar_bytes(self, extra_members=()):
    """The uncompressed tar of the source tree (as `pack_tar_gz` packs it)."""
    return gzip.decompress(testing_archive.pack_tar_gz(self.src, _EXP, extra_members))

  def test_corrupted_middle_of_the_compressed_stream_is_an_error(self):
    # Checkpoint data that compresses poorly, so the middle of the stream is
    # inside member data, not only in headers.
    rng = np.random.default_rng(0)
    folder = os.path.join(self.src, _EXP, "0.7", "2", "checkpoints")
    with open(os.path.join(folder, "ckpt-7.data-00000-of-00001"), "wb") as f:
      f.write(rng.integers(0, 4, size=200_000, dtype=np.uint8).tobytes())
    good = testing_archive.pack_tar_gz(self.src, _EXP)
    middle = len(good) // 2
    bad = good[:middle] + bytes(b ^ 0xff for b in good[middle:middle + 64]) + good[
        middle + 64:]
    with self.assertRaisesRegex(errors.ArchiveError,
                                r"cifar10-inception archive, compressed byte \d+: "):
      self._extract(bad)
    self.assertFalse([n for n in self._all_names() if ".tmp-" in n])

  def test_crc_mismatch_in_the_trailer_is_an_error(self):
    # The deflate data intact, the trailer's CRC32 wrong: only the trailer
    # check can catch it.
    bad = bytearray(self.archive)
    bad[-8] ^= 0x01
    with self.assertRaisesRegex(errors.ArchiveError,
                                "compressed byte {}: .*CRC32 of the decompressed "
                                "data".format(len(bad) - 8)):
      self._extract(bytes(bad))

  @parameterized.named_parameters(
      ("garbage_after_gzip", lambda gz, tar: gz + b"GARBAGE", "trailing garbage"),
      ("zero_padding_then_garbage", lambda gz, tar: gz + b"\0" * 100 + b"x",
       "trailing garbage"),
      ("data_after_tar_end", lambda gz, tar: gzip.compress(tar + b"more data"),
       "after the tar end-of-archive marker"),
      ("garbage_member_after_tar_end",
       lambda gz, tar: gz + gzip.compress(b"\0" * 1024 + b"x"),
       "after the tar end-of-archive marker"),
      ("no_end_of_archive_marker",
       lambda gz, tar: gzip.compress(tar[:_end_of_archive(tar)]),
       "without an end-of-archive marker"),
      ("lone_zero_block",
       lambda gz, tar: gzip.compress(tar[:_end_of_archive(tar) + 512]),
       "without an end-of-archive marker"))
  def test_trailing_data_is_an_error(self, make, pattern):
    tar = self._tar_bytes()
    with self.assertRaisesRegex(errors.ArchiveError, pattern):
      self._extract(make(self.archive, tar))

  def test_damaged_tar_header_inside_a_valid_gzip_is_an_error(self):
    # tarfile alone ends the member list silently at a damaged header that is
    # not the first; the gzip layer is intact here, so only the end-of-archive
    # check can tell.
    tar = bytearray(self._tar_bytes())
    with tarfile.open(fileobj=io.BytesIO(bytes(tar)), mode="r:") as t:
      third = t.getmembers()[2].offset
    tar[third:third + 8] = b"damaged!"
    with tarfile.open(fileobj=io.BytesIO(gzip.compress(bytes(tar))), mode="r|gz") as t:
      self.assertLen(list(t), 2)  # What tarfile does alone: no error.
    with self.assertRaisesRegex(errors.ArchiveError,
                                "damaged tar header at uncompressed byte {}".format(third)):
      self._extract(gzip.compress(bytes(tar)))

  def test_zero_padding_after_the_stream_is_accepted(self):
    counts = self._extract(self.archive + b"\0" * 4096)
    self.assertEqual(counts.written, 15)

  def test_concatenated_gzip_members_extract(self):
    tar = self._tar_bytes()
    cuts = (0, 1000, len(tar) // 2, len(tar))  # Members end mid-header and mid-file.
    data = b"".join(gzip.compress(tar[a:b]) for a, b in zip(cuts, cuts[1:]))
    counts = self._extract(data)
    self.assertEqual(counts.written, 15)
    for rel in testing_archive.list_files(self.src):
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))

  def test_repeated_member_is_refused(self):
    rel = _EXP + "/0.7/0/aux_arrays.npz"
    data = testing_archive.pack_tar_gz(self.src, _EXP, extra_members=[
        (rel, b"0123456789")])
    with self.assertRaisesRegex(errors.ArchiveError, "'{}' appears twice".format(rel)):
      self._extract(data)
    self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))


if __name__ == "__main__":
  absltest.main()
