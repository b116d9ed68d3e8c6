"""Tests of `download_experiment` against a local Range-capable HTTP server."""

import gzip
import hashlib
import json
import os

from absl.testing import absltest
from absl.testing import parameterized

from heldout import errors
from heldout import manifest
from heldout.released import byte_stream
from heldout.released import downloader
from heldout.released import testing_archive
from heldout.released import testing_http

_EXP = "cifar100-inception"
_RUNS = {0.5: [0, 1], 0.7: [0, 1, 2]}
_URL_PATH = "/mirror/{}.tar.gz".format(_EXP)


def _read(path):
  with open(path, "rb") as f:
    return f.read()


class DownloaderTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.src = self.create_tempdir("src").full_path
    testing_archive.build_experiment_tree(self.src, _EXP, _RUNS, num_train=400,
                                          num_test=100)
    self.archive = testing_archive.pack_tar_gz(self.src, _EXP)
    self.md5 = hashlib.md5(self.archive).hexdigest()
    self.server = testing_http.RangeHTTPServer().start()
    self.server.add_file(_URL_PATH, self.archive)
    self.base_url = self.server.base_url + "/mirror"
    self.dest = self.create_tempdir("dest").full_path
    self.sleeps = []

  def tearDown(self):
    self.server.stop()
    super().tearDown()

  def _download(self, **kwargs):
    kwargs.setdefault("base_url", self.base_url)
    kwargs.setdefault("md5", self.md5)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("sleep", self.sleeps.append)
    return downloader.download_experiment(_EXP, self.dest, **kwargs)

  def _marker(self):
    return downloader.read_marker(os.path.join(self.dest, _EXP))

  def _assert_same_files(self, rels):
    for rel in rels:
      self.assertEqual(_read(os.path.join(self.dest, rel)),
                       _read(os.path.join(self.src, rel)), rel)

  def _extracted(self):
    return [_EXP + "/" + r for r in testing_archive.list_files(os.path.join(self.dest, _EXP))
            if r != downloader.MARKER_FILENAME
            and os.path.basename(r) != manifest.MANIFEST_FILENAME]

  def test_full_download(self):
    summary = self._download()
    expected = testing_archive.list_files(self.src)
    self.assertEqual(self._extracted(), expected)
    self._assert_same_files(expected)
    self.assertEqual(summary.members_written, len(expected))
    self.assertEqual(summary.bytes_read, len(self.archive))
    self.assertEqual(summary.md5, self.md5)
    self.assertTrue(summary.md5_verified)
    marker = self._marker()
    self.assertLen(marker["entries"], 1)
    entry = marker["entries"][0]
    self.assertEqual(entry["md5"], self.md5)
    self.assertTrue(entry["md5_verified"])
    self.assertEqual(entry["selection"], {"only": "all", "ratios": None, "runs": None})
    self.assertEqual(sorted(entry["files"]), [r[len(_EXP) + 1:] for r in expected])
    self.assertIn("MD5 verified", summary.describe())
    # Each file's size and SHA-256, in the marker and in its run's manifest.
    for rel in expected:
      data = _read(os.path.join(self.src, rel))
      record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
      self.assertEqual(entry["files"][rel[len(_EXP) + 1:]], record)
      ratio, run, name = rel[len(_EXP) + 1:].split("/", 2)
      run_manifest = manifest.read_manifest(os.path.join(self.dest, _EXP, ratio, run))
      self.assertEqual(run_manifest["files"][name], record)
    self.assertEqual(manifest.check_run(os.path.join(self.dest, _EXP, "0.7", "2")).statuses,
                     [manifest.OK])

  def test_selective_download_writes_only_the_selection(self):
    summary = self._download(only="aux_arrays", ratios="0.7", runs="1:3")
    expected = ["{}/0.7/{}/aux_arrays.npz".format(_EXP, n) for n in (1, 2)]
    self.assertEqual(self._extracted(), expected)
    self._assert_same_files(expected)
    self.assertEqual(summary.members_written, 2)
    self.assertEqual(summary.members_not_selected, 13)
    self.assertEqual(os.listdir(self.dest), [_EXP])  # The archive is never stored.
    self.assertEqual(self._marker()["entries"][0]["selection"],
                     {"only": "aux_arrays", "ratios": [0.7], "runs": [[1, 3]]})

  def test_dropped_connection_resumes_with_range(self):
    cut = len(self.archive) // 3
    self.server.cut_connections(_URL_PATH, [cut])
    summary = self._download()
    self.assertEqual(self._extracted(), testing_archive.list_files(self.src))
    self._assert_same_files(self._extracted())
    self.assertEqual(summary.reconnections, 1)
    self.assertTrue(summary.md5_verified)
    self.assertEqual([r.range for r in self.server.requests], [None, "bytes={}-".format(cut)])
    self.assertEqual(self.server.requests[1].status, 206)

  def test_interrupted_job_rerun_skips_finished_members(self):
    self.server.cut_connections(_URL_PATH, [int(len(self.archive) * 0.6)])
    with self.assertRaises(byte_stream.FetchError):
      self._download(max_retries=0)
    self.assertIsNone(self._marker())
    first = self._extracted()
    self.assertNotEmpty(first)
    self.assertLess(len(first), 15)
    self._assert_same_files(first)
    inodes = {r: os.stat(os.path.join(self.dest, r)).st_mtime_ns for r in first}
    summary = self._download()
    self.assertEqual(summary.members_skipped, len(first))
    self.assertEqual(summary.members_written, 15 - len(first))
    self.assertEqual(self._extracted(), testing_archive.list_files(self.src))
    for rel, mtime in inodes.items():
      self.assertEqual(os.stat(os.path.join(self.dest, rel)).st_mtime_ns, mtime, rel)

  def test_completed_selection_returns_without_reading(self):
    self._download(only="aux_arrays")
    n_requests = len(self.server.requests)
    summary = self._download(only="aux_arrays")
    self.assertTrue(summary.already_complete)
    self.assertLen(self.server.requests, n_requests)
    self.assertIn("already complete", summary.describe())
    # Another selection is a new download; both are recorded.
    self._download(only="checkpoints", ratios="0.5")
    self.assertLen(self.server.requests, n_requests + 1)
    self.assertLen(self._marker()["entries"], 2)
    # The run manifests hold both selections' files.
    run_dir = os.path.join(self.dest, _EXP, "0.5", "0")
    self.assertLen(manifest.read_manifest(run_dir)["files"], 3)
    self.assertEqual(manifest.check_run(run_dir).statuses, [manifest.OK])
    self.assertEqual(list(manifest.read_manifest(os.path.join(
        self.dest, _EXP, "0.7", "0"))["files"]), ["aux_arrays.npz"])
    # A deleted file makes the marked selection incomplete again.
    os.remove(os.path.join(self.dest, _EXP, "0.7", "2", "aux_arrays.npz"))
    summary = self._download(only="aux_arrays")
    self.assertFalse(summary.already_complete)
    self.assertEqual(summary.members_written, 1)
    self.assertEqual(summary.members_skipped, 4)

  def test_wrong_md5_is_an_error_and_nothing_is_marked(self):
    with self.assertRaisesRegex(errors.ArchiveError, "expected 0{32}"):
      self._download(md5="0" * 32)
    self.assertIsNone(self._marker())
    self.assertFalse(os.path.exists(os.path.join(self.dest, _EXP,
                                                 downloader.MARKER_FILENAME)))

  def test_builtin_md5_is_used_by_default(self):
    with self.assertRaisesRegex(errors.ArchiveError, "f87218368528afa6e2407c8410f1ffa1"):
      self._download(md5=None)
    self.assertIsNone(self._marker())

  def test_md5_skip(self):
    summary = self._download(md5="skip")
    self.assertIsNone(summary.md5_verified)
    self.assertEqual(summary.md5, self.md5)
    self.assertFalse(self._marker()["entries"][0]["md5_verified"])

  def _assert_nothing_marked(self):
    self.assertIsNone(self._marker())
    for dirpath, _, names in os.walk(self.dest):
      self.assertNotIn(manifest.MANIFEST_FILENAME, names, dirpath)

  def _serve(self, data):
    self.server.add_file(_URL_PATH, data)

  def test_corrupted_middle_with_md5_skip_is_an_error(self):
    middle = len(self.archive) // 2
    self._serve(self.archive[:middle] + bytes(b ^ 0xff for b in self.archive[
        middle:middle + 64]) + self.archive[middle + 64:])
    with self.assertRaisesRegex(errors.ArchiveError, r"{}: {} archive, compressed "
                                r"byte \d+: ".format(_URL_PATH, _EXP)):
      self._download(md5="skip")
    self._assert_nothing_marked()

  def test_trailing_garbage_with_md5_skip_is_an_error(self):
    self._serve(self.archive + b"garbage")
    with self.assertRaisesRegex(errors.ArchiveError, "compressed byte {}: .*trailing "
                                "garbage".format(len(self.archive))):
      self._download(md5="skip")
    self._assert_nothing_marked()

  def test_repeated_member_is_refused(self):
    rel = _EXP + "/0.7/0/aux_arrays.npz"
    self._serve(testing_archive.pack_tar_gz(self.src, _EXP, extra_members=[
        (rel, b"0123456789")]))
    with self.assertRaisesRegex(errors.ArchiveError, "appears twice"):
      self._download(md5="skip")
    self._assert_nothing_marked()
    self._assert_same_files([rel])

  def test_two_member_gzip_extracts(self):
    tar = gzip.decompress(self.archive)
    data = gzip.compress(tar[:len(tar) // 3]) + gzip.compress(tar[len(tar) // 3:])
    self._serve(data)
    summary = self._download(md5=hashlib.md5(data).hexdigest())
    self.assertEqual(self._extracted(), testing_archive.list_files(self.src))
    self._assert_same_files(self._extracted())
    self.assertTrue(summary.md5_verified)

  def test_server_md5_header_is_checked(self):
    self.server.set_goog_hash(_URL_PATH, md5=self.md5, crc32c=1)
    summary = self._download(md5="skip")
    self.assertEqual(summary.server_hashes_verified, ("md5",))  # The MD5 suffices.
    self.assertIn("x-goog-hash md5", summary.describe())
    os.remove(os.path.join(self.dest, _EXP, downloader.MARKER_FILENAME))
    self.server.set_goog_hash(_URL_PATH, md5="0" * 32)
    with self.assertRaisesRegex(errors.ArchiveError, "byte {} .*the server's x-goog-hash "
                                "says 0{{32}}".format(len(self.archive))):
      self._download(md5="skip")
    self.assertIsNone(self._marker())

  def test_server_crc32c_header_is_checked(self):
    crc = byte_stream.crc32c_function()
    self.assertIsNotNone(crc, "crcmod (installed with gsutil) is missing")
    good = crc(self.archive, 0)
    self.server.set_goog_hash(_URL_PATH, crc32c=good)
    self.server.cut_connections(_URL_PATH, [len(self.archive) // 2])  # Resumed too.
    summary = self._download(md5="skip")
    self.assertEqual(summary.server_hashes_verified, ("crc32c",))
    os.remove(os.path.join(self.dest, _EXP, downloader.MARKER_FILENAME))
    self.server.set_goog_hash(_URL_PATH, crc32c=good ^ 1)
    with self.assertRaisesRegex(errors.ArchiveError, "CRC32C of the stream is {:08x}, the "
                                "server's x-goog-hash says {:08x}".format(good, good ^ 1)):
      self._download(md5="skip")
    self.assertIsNone(self._marker())

  def test_keep_archive_checks_the_server_hash(self):
    self.server.set_goog_hash(_URL_PATH, md5="0" * 32)
    with self.assertRaisesRegex(errors.ArchiveError, "x-goog-hash"):
      self._download(md5="skip", keep_archive=True)
    self.assertTrue(os.path.exists(os.path.join(self.dest, _EXP + ".tar.gz.corrupt")))
    self.assertIsNone(self._marker())

  def test_keep_archive_continues_part_file(self):
    split = len(self.archive) // 2
    part = os.path.join(self.dest, _EXP + ".tar.gz.part")
    with open(part, "wb") as f:
      f.write(self.archive[:split])
    summary = self._download(keep_archive=True, only="aux_arrays")
    stored = os.path.join(self.dest, _EXP + ".tar.gz")
    self.assertEqual(_read(stored), self.archive)
    self.assertFalse(os.path.exists(part))
    self.assertEqual([r.range for r in self.server.requests], ["bytes={}-".format(split)])
    self.assertEqual(summary.bytes_read, len(self.archive) - split)
    self.assertTrue(summary.md5_verified)
    self.assertEqual(summary.archive_path, stored)
    self.assertLen(self._extracted(), 5)
    self.assertEqual(json.loads(_read(stored + ".md5"))["md5"], self.md5)
    # A stored, verified archive is reused without any request.
    os.remove(os.path.join(self.dest, _EXP, downloader.MARKER_FILENAME))
    summary = self._download(keep_archive=True, only="checkpoints")
    self.assertLen(self.server.requests, 1)
    self.assertEqual(summary.bytes_read, 0)
    self.assertLen(self._extracted(), 15)

  def test_keep_archive_with_cut_connection(self):
    self.server.cut_connections(_URL_PATH, [1000])
    summary = self._download(keep_archive=True)
    self.assertEqual(summary.reconnections, 1)
    self.assertEqual(_read(os.path.join(self.dest, _EXP + ".tar.gz")), self.archive)

  def test_keep_archive_wrong_md5(self):
    with self.assertRaisesRegex(errors.ArchiveError, "moved the download to"):
      self._download(keep_archive=True, md5="1" * 32)
    self.assertFalse(os.path.exists(os.path.join(self.dest, _EXP + ".tar.gz")))
    self.assertTrue(os.path.exists(os.path.join(self.dest, _EXP + ".tar.gz.corrupt")))
    self.assertIsNone(self._marker())
    self.assertFalse(os.path.exists(os.path.join(self.dest, _EXP)))

  def test_keep_archive_existing_file_with_wrong_md5(self):
    stored = os.path.join(self.dest, _EXP + ".tar.gz")
    with open(stored, "wb") as f:
      middle = len(self.archive) // 2
      f.write(self.archive[:middle] + bytes([self.archive[middle] ^ 1])
              + self.archive[middle + 1:])
    with self.assertRaisesRegex(errors.ArchiveError, "does not match"):
      self._download(keep_archive=True)
    self.assertEqual(self.server.requests, [])
    self.assertIsNone(self._marker())

  def test_selection_matching_nothing(self):
    with self.assertRaisesRegex(errors.ExperimentError, "no archive member matched"):
      self._download(ratios="0.3")
    self.assertIsNone(self._marker())

  def test_missing_archive(self):
    with self.assertRaisesRegex(byte_stream.FetchError, "HTTP 404"):
      self._download(base_url=self.server.base_url + "/elsewhere")

  def test_bad_arguments(self):
    with self.assertRaisesRegex(errors.ExperimentError, "unknown experiment"):
      downloader.download_experiment("mnist-mlp", self.dest)
    with self.assertRaisesRegex(ValueError, "`md5` must be 32 hex"):
      self._download(md5="abc")
    with self.assertRaisesRegex(ValueError, "`only` must be one of"):
      self._download(only="weights")
    with self.assertRaisesRegex(ValueError, "`dest` must be a local folder"):
      downloader.download_experiment(_EXP, "gs://bucket/dest")

  def test_local_mirror_folder(self):
    mirror = self.create_tempdir("mirror").full_path
    with open(os.path.join(mirror, _EXP + ".tar.gz"), "wb") as f:
      f.write(self.archive)
    summary = self._download(base_url=mirror, only="aux_arrays")
    self.assertEqual(summary.source, "local")
    self.assertLen(self._extracted(), 5)


if __name__ == "__main__":
  absltest.main()
