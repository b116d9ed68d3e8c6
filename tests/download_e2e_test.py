"""End-to-end test of `//heldout:download` against a local HTTP server.

A `.tar.gz` in the released layout (aux_arrays written with
`write_aux_arrays`, tiny `tf.train.Checkpoint`s) is served by a
Range-capable server on 127.0.0.1 that can drop connections mid-stream. The
binary runs as a subprocess; its output directory is then read by the
project's readers, restored with TensorFlow, and given to `//heldout:estimate`.
"""

import contextlib
import hashlib
import io
import json
import os
import subprocess
import tarfile
from unittest import mock

from absl.testing import absltest

from absl.testing import flagsaver
import numpy as np

from heldout import download
from heldout import manifest

from heldout.readers import aux_arrays
from heldout.readers import experiment as experiment_lib
from heldout.readers import layout
from heldout.released import testing_archive
from heldout.released import testing_http
from tests import binaries

_EXP = "cifar10-inception"
_RUNS = {0.5: [0, 1], 0.7: [0, 1, 2, 3]}
_NUM_TRAIN = 60
_NUM_TEST = 16
_PATH = "/gresearch/heldout-training-checkpoints/{}.tar.gz".format(_EXP)


def _binary(name):
  return binaries.command("heldout/" + name, "heldout/{}.py".format(name))


def _read(path):
  with open(path, "rb") as f:
    return f.read()


class DownloadEndToEndTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.src = os.path.join(absltest.get_default_test_tmpdir(), "download_e2e_src")
    cls.values = testing_archive.build_experiment_tree(
        cls.src, _EXP, _RUNS, num_train=_NUM_TRAIN, num_test=_NUM_TEST)
    cls.archive = testing_archive.pack_tar_gz(cls.src, _EXP)
    cls.md5 = hashlib.md5(cls.archive).hexdigest()
    cls.files = testing_archive.list_files(cls.src)

  def setUp(self):
    super().setUp()
    self.server = testing_http.RangeHTTPServer().start()
    self.server.add_file(_PATH, self.archive)
    self.base_url = self.server.base_url + os.path.dirname(_PATH)
    self.work = self.create_tempdir("work").full_path
    self.dest = os.path.join(self.work, "dest")

  def tearDown(self):
    self.server.stop()
    super().tearDown()

  def _run(self, *flags, env=None):
    return subprocess.run(
        _binary("download") + ["--experiment=" + _EXP, "--base_url=" + self.base_url,
                               "--noprogress", "--retry_backoff_s=0.01"] + list(flags),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        check=False, timeout=300)

  def _run_ok(self, *flags, **kwargs):
    result = self._run(*flags, **kwargs)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return result

  def _run_main(self, env=None, **flag_values):
    """Runs the binary's main in this process (no interpreter start-up)."""
    flag_values.setdefault("experiment", _EXP)
    flag_values.setdefault("base_url", self.base_url)
    flag_values.setdefault("progress", False)
    flag_values.setdefault("retry_backoff_s", 0.01)
    stdout, stderr = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver(**flag_values), mock.patch.dict(os.environ, env or {}), \
        contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
      code = download.main(["download"])
    return subprocess.CompletedProcess([], code, stdout.getvalue(), stderr.getvalue())

  def _assert_error(self, result, *fragments):
    self.assertEqual(result.returncode, 1, msg=result.stdout + result.stderr[-3000:])
    error_lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    self.assertLen(error_lines, 1, msg=result.stderr)
    self.assertNotIn("Traceback", result.stderr)
    for fragment in fragments:
      self.assertIn(fragment, error_lines[0])
    return error_lines[0]

  def _extracted(self, dest=None):
    folder = os.path.join(dest or self.dest, _EXP)
    return [_EXP + "/" + r for r in testing_archive.list_files(folder)
            if not r.startswith(".download_complete")
            and os.path.basename(r) != manifest.MANIFEST_FILENAME]

  def test_full_download_resumes_and_is_usable(self):
    cut = len(self.archive) // 2
    self.server.cut_connections(_PATH, [cut])
    result = self._run_ok("--dest=" + self.dest, "--md5=" + self.md5)
    self.assertIn("MD5 verified: " + self.md5, result.stdout)
    self.assertIn("1 reconnections", result.stdout)
    self.assertIn("{} files written".format(len(self.files)), result.stdout)
    self.assertEqual([r.range for r in self.server.requests], [None, "bytes={}-".format(cut)])
    self.assertEqual(self._extracted(), self.files)
    for rel in self.files:
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))
    with open(os.path.join(self.dest, _EXP, ".download_complete.json")) as f:
      marker = json.load(f)
    self.assertEqual(marker["entries"][0]["md5"], self.md5)

    # The project's readers see every run complete...
    experiment_dir = os.path.join(self.dest, _EXP)
    scanned = experiment_lib.scan_experiment(experiment_dir)
    self.assertEqual(scanned.ratios, [0.5, 0.7])
    self.assertEqual([r.run_id for r in scanned.complete_runs(0.7)], [0, 1, 2, 3])
    self.assertEqual(scanned.incomplete, [])
    aux = aux_arrays.read_aux_arrays(
        layout.aux_arrays_path(layout.run_dir(experiment_dir, 0.5, 1)),
        num_train=_NUM_TRAIN, num_test=_NUM_TEST)
    self.assertLen(aux.subsample_idx, _NUM_TRAIN // 2)
    # ...the checkpoints restore to the variables that were written...
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    prefix = layout.find_checkpoint_prefix(layout.run_dir(experiment_dir, 0.7, 3))
    reader = tf.train.load_checkpoint(prefix)
    w, b = self.values[(0.7, 3)]
    np.testing.assert_array_equal(
        reader.get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE"), w)
    np.testing.assert_array_equal(
        reader.get_tensor("model/b/.ATTRIBUTES/VARIABLE_VALUE"), b)
    self.assertEqual(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"), 3)
    # ...and //heldout:estimate reads the directory as it is.
    out = os.path.join(self.work, "est.npz")
    estimate = subprocess.run(
        _binary("estimate") + ["--experiment_dir=" + experiment_dir, "--output=" + out,
                               "--subset_ratio=0.7", "--influence=none", "--noprogress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
        timeout=300)
    self.assertEqual(estimate.returncode, 0, msg=estimate.stderr[-3000:])
    with np.load(out) as est:
      self.assertEqual(est["memorization"].shape, (_NUM_TRAIN,))
      self.assertEqual(est["consistency"].shape, (_NUM_TRAIN,))

    # A second identical run returns without reading the archive.
    n_requests = len(self.server.requests)
    result = self._run_main(dest=self.dest, md5=self.md5)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertIn("already complete", result.stdout)
    self.assertLen(self.server.requests, n_requests)

  def _verify(self, *flags):
    return subprocess.run(
        _binary("verify") + ["--experiment_dir=" + os.path.join(self.dest, _EXP),
                             "--noprogress"] + list(flags),
        env=binaries.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, check=False, timeout=300)

  def test_clean_download_verifies_and_damage_is_reported(self):
    result = self._run_main(dest=self.dest, md5=self.md5)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertIn("gzip CRC32 and size of every member", result.stdout)
    experiment_dir = os.path.join(self.dest, _EXP)
    result = self._verify("--every_run")
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    self.assertIn("0.7/3: ok (3 files)", result.stdout)
    self.assertIn("6 runs, 18 files checked: 6 ok", result.stdout)

    # A flipped byte in a checkpoint and a deleted aux_arrays.npz: both reported.
    ckpt = os.path.join(experiment_dir, "0.7", "2", "checkpoints", "ckpt-3.index")
    data = bytearray(_read(ckpt))
    data[len(data) // 2] ^= 0x40
    with open(ckpt, "wb") as f:
      f.write(data)
    os.remove(os.path.join(experiment_dir, "0.5", "1", "aux_arrays.npz"))
    result = self._verify()
    self._assert_error(result, "2 of 6 runs differ from their manifests")
    self.assertIn("0.7/2: changed: checkpoints/ckpt-3.index (sha256 ", result.stdout)
    self.assertIn("0.5/1: missing: aux_arrays.npz", result.stdout)
    self.assertNotIn("0.7/3", result.stdout)  # Only the runs that are not ok.
    # //heldout:estimate --verify stops before estimating.
    out = os.path.join(self.work, "est.npz")
    estimate = subprocess.run(
        _binary("estimate") + ["--experiment_dir=" + experiment_dir, "--output=" + out,
                               "--subset_ratio=0.7", "--influence=none", "--noprogress",
                               "--verify"],
        env=binaries.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, check=False, timeout=300)
    self._assert_error(estimate, "2 of 6 runs differ")
    self.assertFalse(os.path.exists(out))
    # Downloading again repairs both (the damaged file is compared with the
    # stream and rewritten).
    result = self._run_main(dest=self.dest, md5=self.md5)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertEqual(_read(ckpt), _read(os.path.join(self.src, _EXP, "0.7", "2",
                                                     "checkpoints", "ckpt-3.index")))
    self.assertIn("2 files written", result.stdout)

  def test_corrupted_stream_with_md5_skip_is_not_marked_complete(self):
    middle = len(self.archive) // 2
    self.server.add_file(_PATH, self.archive[:middle] + bytes(
        b ^ 0xff for b in self.archive[middle:middle + 64]) + self.archive[middle + 64:])
    result = self._run_main(dest=self.dest, md5="skip")
    line = self._assert_error(result, self.base_url + "/" + _EXP + ".tar.gz",
                              "compressed byte ")
    self.assertRegex(line, r"CRC32|corrupt deflate data|damaged tar header")
    self.assertFalse(os.path.exists(os.path.join(self.dest, _EXP, ".download_complete.json")))

  def test_server_hash_mismatch_is_an_error(self):
    self.server.set_goog_hash(_PATH, md5="0" * 32)
    result = self._run_main(dest=self.dest, md5="skip")
    self._assert_error(result, "x-goog-hash says " + "0" * 32, "not marked complete")
    self.assertFalse(os.path.exists(os.path.join(self.dest, _EXP, ".download_complete.json")))

  def test_selective_download_with_relative_dest(self):
    result = self._run_main(env={"BUILD_WORKING_DIRECTORY": self.work},
                            dest="rel/dest", md5=self.md5, only="aux_arrays",
                            ratios="0.7", runs="1:3")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    dest = os.path.join(self.work, "rel", "dest")
    expected = ["{}/0.7/{}/aux_arrays.npz".format(_EXP, n) for n in (1, 2)]
    self.assertEqual(self._extracted(dest), expected)
    self.assertEqual(os.listdir(dest), [_EXP])  # No archive stored.
    self.assertIn("2 files written", result.stdout)
    for rel in expected:
      self.assertEqual(_read(os.path.join(dest, rel)), _read(os.path.join(self.src, rel)))

  def test_keep_archive_continues_part(self):
    os.makedirs(self.dest)
    split = len(self.archive) // 3
    with open(os.path.join(self.dest, _EXP + ".tar.gz.part"), "wb") as f:
      f.write(self.archive[:split])
    result = self._run_main(dest=self.dest, md5=self.md5, keep_archive=True,
                            only="checkpoints")
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertEqual(_read(os.path.join(self.dest, _EXP + ".tar.gz")), self.archive)
    self.assertEqual([r.range for r in self.server.requests], ["bytes={}-".format(split)])
    self.assertIn("archive kept at", result.stdout)
    self.assertLen(self._extracted(), 2 * sum(len(r) for r in _RUNS.values()))

  def test_file_url_through_the_installed_gsutil(self):
    # The gsutil that requirements.txt installs, run by the binary on a
    # file:// mirror: no network, no credentials, no user configuration.
    mirror = self.create_tempdir("mirror").full_path
    with open(os.path.join(mirror, _EXP + ".tar.gz"), "wb") as f:
      f.write(self.archive)
    env = dict(binaries.environment(), HOME=self.create_tempdir("home").full_path,
               BOTO_CONFIG=os.devnull)
    result = subprocess.run(
        _binary("download") + ["--experiment=" + _EXP, "--base_url=file://" + mirror,
                               "--source=gsutil", "--dest=" + self.dest,
                               "--md5=" + self.md5, "--noprogress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        check=False, timeout=300)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    self.assertIn("MD5 verified: " + self.md5, result.stdout)
    self.assertEqual(self._extracted(), self.files)
    for rel in self.files:
      self.assertEqual(_read(os.path.join(self.dest, rel)), _read(os.path.join(self.src, rel)))
    with open(os.path.join(self.dest, _EXP, ".download_complete.json")) as f:
      entry = json.load(f)["entries"][0]
    self.assertEqual(entry["source"], "gsutil")
    self.assertEqual(entry["url"], "file://{}/{}.tar.gz".format(mirror, _EXP))
    self.assertEqual(self.server.requests, [])

  def test_wrong_md5_fails_without_marker(self):
    result = self._run_main(dest=self.dest)  # The built-in MD5 of the real archive.
    self._assert_error(result, "bc3b75203381709f8224810946be14b1", "not marked complete")
    self.assertFalse(os.path.exists(os.path.join(self.dest, _EXP, ".download_complete.json")))

  def test_unsafe_archive_is_refused(self):
    cases = [
        ("'../escaped.txt'", dict(extra_members=[("../escaped.txt", b"evil")])),
        ("'{}/link'".format(_EXP), dict(prepend_members=[
            (_EXP + "/link", b"", tarfile.SYMTYPE, "../../../outside")])),
    ]
    for i, (fragment, members) in enumerate(cases):
      self.server.add_file(_PATH, testing_archive.pack_tar_gz(self.src, _EXP, **members))
      dest = os.path.join(self.work, "dest{}".format(i))
      if i == 0:
        result = self._run_main(dest=dest, md5="skip")
      else:
        result = self._run("--dest=" + dest, "--md5=skip")
      self._assert_error(result, fragment, "unsafe archive member")
      self.assertFalse(os.path.exists(os.path.join(dest, _EXP, ".download_complete.json")))
    self.assertEqual(sorted(os.listdir(self.work)), ["dest0", "dest1"])
    self.assertEqual(os.listdir(os.path.join(self.work, "dest1")), [])

  def test_usage_error(self):
    result = self._run_main(dest=self.dest, md5="xyz")
    self._assert_error(result, "`md5` must be 32 hex digits")
    self.assertFalse(os.path.exists(self.dest))


if __name__ == "__main__":
  absltest.main()
