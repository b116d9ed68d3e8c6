"""Tests of per-run manifests and of checking runs against them."""

import json
import os

from absl.testing import absltest

from heldout import errors
from heldout import manifest
from heldout.released import testing_archive

_CKPT = "checkpoints/ckpt-3.index"


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


class ManifestTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.root = self.create_tempdir().full_path
    testing_archive.build_experiment_tree(self.root, "exp", {0.5: [0, 1], 0.7: [0, 1, 2]},
                                          with_checkpoints=False)
    self.exp = os.path.join(self.root, "exp")
    for ratio, run in (("0.5", 0), ("0.5", 1), ("0.7", 0), ("0.7", 1), ("0.7", 2)):
      run_dir = self._run(ratio, run)
      _write(os.path.join(run_dir, _CKPT), bytes(range(256)) * 4)
      _write(os.path.join(run_dir, "checkpoints", "ckpt-3.data-00000-of-00001"),
             b"weights" * 1000)
      manifest.record_run(run_dir, source="test")

  def _run(self, ratio, run):
    return os.path.join(self.exp, ratio, str(run))

  def test_record_lists_every_file_with_size_and_sha256(self):
    data = manifest.read_manifest(self._run("0.7", 1))
    self.assertEqual(data["algorithm"], "sha256")
    self.assertEqual(sorted(data["files"]), ["aux_arrays.npz",
                                             "checkpoints/ckpt-3.data-00000-of-00001", _CKPT])
    self.assertEqual(data["files"][_CKPT], {
        "size": 1024,
        # sha256 of bytes 0..255 four times, computed independently (sha256sum).
        "sha256": "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9"})

  def test_clean_experiment_is_ok(self):
    report = manifest.check_experiment(self.exp, progress=False)
    self.assertFalse(report.mismatch)
    self.assertEqual(report.counts(), {manifest.OK: 5})
    self.assertEqual(sum(r.checked for r in report.runs), 15)
    report.raise_on_mismatch()
    self.assertIn("5 runs, 15 files checked: 5 ok", report.describe())

  def test_flipped_byte_deleted_file_extra_file_and_no_manifest(self):
    flipped = os.path.join(self._run("0.7", 1), _CKPT)
    with open(flipped, "r+b") as f:
      f.seek(500)
      byte = f.read(1)
      f.seek(500)
      f.write(bytes([byte[0] ^ 0x01]))
    os.remove(os.path.join(self._run("0.5", 0), "aux_arrays.npz"))
    _write(os.path.join(self._run("0.7", 2), "notes.txt"), b"x")
    _write(os.path.join(self._run("0.7", 2), ".aux_arrays.npz.tmp-0123456789ab"), b"x")
    os.remove(manifest.manifest_path(self._run("0.7", 0)))
    report = manifest.check_experiment(self.exp, progress=False)
    by_name = {r.name: r for r in report.runs}
    self.assertEqual(by_name["0.7/1"].statuses, [manifest.CHANGED])
    self.assertEqual([p for p, _ in by_name["0.7/1"].changed], [_CKPT])
    self.assertEqual(by_name["0.5/0"].statuses, [manifest.MISSING])
    self.assertEqual(by_name["0.5/0"].missing, ["aux_arrays.npz"])
    self.assertEqual(by_name["0.7/2"].extra, ["notes.txt"])  # Not the temporary file.
    self.assertEqual(by_name["0.7/0"].statuses, [manifest.NO_MANIFEST])
    self.assertEqual(by_name["0.5/1"].statuses, [manifest.OK])
    self.assertTrue(report.mismatch)
    text = report.describe()
    self.assertIn("0.7/1: changed: {} (sha256 ".format(_CKPT), text)
    self.assertIn("0.5/0: missing: aux_arrays.npz", text)
    self.assertIn("1 ok, 1 missing, 1 changed, 1 extra, 1 no manifest", text)
    self.assertIn("1 run has no manifest and was not checked", text)
    with self.assertRaisesRegex(errors.ExperimentError,
                                r"3 of 5 runs differ from their manifests \(1 missing, 1 "
                                r"changed, 1 extra; the first: 0.5/0: missing: aux_arrays.npz\)"):
      report.raise_on_mismatch()

  def test_changed_size(self):
    _write(os.path.join(self._run("0.5", 1), "aux_arrays.npz"), b"short")
    (run,) = [r for r in manifest.check_experiment(self.exp, progress=False).runs
              if r.name == "0.5/1"]
    self.assertEqual(run.changed[0][0], "aux_arrays.npz")
    self.assertIn("5 bytes, expected", run.changed[0][1])

  def test_write_missing_records_a_manifest(self):
    os.remove(manifest.manifest_path(self._run("0.7", 0)))
    report = manifest.check_experiment(self.exp, write_missing=True, progress=False)
    self.assertEqual(report.counts(), {manifest.OK: 4, manifest.MANIFEST_WRITTEN: 1})
    self.assertFalse(report.mismatch)
    self.assertEqual(manifest.read_manifest(self._run("0.7", 0))["source"],
                     "//heldout:verify --write_manifest")
    self.assertEqual(manifest.check_experiment(self.exp, progress=False).counts(),
                     {manifest.OK: 5})

  def test_run_folder_gone_that_the_download_recorded(self):
    with open(os.path.join(self.exp, manifest.DOWNLOAD_MARKER_FILENAME), "w") as f:
      json.dump({"entries": [{"files": {"0.7/2/aux_arrays.npz": 1, "0.7/9/aux_arrays.npz": 1,
                                        "README": 1}}]}, f)
    report = manifest.check_experiment(self.exp, progress=False)
    self.assertEqual(report.missing_runs, ["0.7/9"])
    self.assertTrue(report.mismatch)
    self.assertIn("0.7/9: run folder missing", report.describe())

  def test_merge_keeps_other_entries(self):
    run_dir = self._run("0.5", 1)
    before = manifest.read_manifest(run_dir)["files"]
    manifest.write_manifest(run_dir, {"aux_arrays.npz": before["aux_arrays.npz"]}, "again",
                            merge=True)
    self.assertEqual(manifest.read_manifest(run_dir)["files"], before)
    manifest.write_manifest(run_dir, {"aux_arrays.npz": before["aux_arrays.npz"]}, "again")
    self.assertEqual(list(manifest.read_manifest(run_dir)["files"]), ["aux_arrays.npz"])

  def test_malformed_manifest(self):
    for content in ("{not json", json.dumps({"format": "other", "files": {}})):
      with open(manifest.manifest_path(self._run("0.5", 1)), "w") as f:
        f.write(content)
      with self.assertRaisesRegex(errors.ExperimentError, "0.5/1/.heldout_manifest.json"):
        manifest.check_experiment(self.exp, progress=False)


class UrlManifestTest(absltest.TestCase):
  """A run folder behind a URL (TensorFlow's in-memory file system stands in
  for gs://): recorded, checked, and every kind of mismatch found."""

  def test_record_and_check_through_tf_io_gfile(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    run_dir = "ram://manifest-{}/exp/0.7/3".format(os.getpid())
    files = {"aux_arrays.npz": b"aux" * 100, _CKPT: bytes(range(256)),
             "checkpoints/ckpt-3.data-00000-of-00001": b"w" * 5000}
    for rel, data in files.items():
      tf.io.gfile.makedirs(os.path.dirname(run_dir + "/" + rel))
      with tf.io.gfile.GFile(run_dir + "/" + rel, "wb") as f:
        f.write(data)
    self.assertIsNone(manifest.read_manifest(run_dir))
    recorded = manifest.record_run(run_dir, source="test")
    self.assertEqual(recorded["files"], {
        rel: manifest.bytes_record(data) for rel, data in files.items()})
    self.assertEqual(manifest.check_run(run_dir).statuses, [manifest.OK])
    with tf.io.gfile.GFile(run_dir + "/" + _CKPT, "wb") as f:
      f.write(bytes(range(255, -1, -1)))
    with tf.io.gfile.GFile(run_dir + "/notes.txt", "wb") as f:
      f.write(b"x")
    tf.io.gfile.remove(run_dir + "/aux_arrays.npz")
    result = manifest.check_run(run_dir)
    self.assertEqual(result.missing, ["aux_arrays.npz"])
    self.assertEqual([rel for rel, _ in result.changed], [_CKPT])
    self.assertEqual(result.extra, ["notes.txt"])


if __name__ == "__main__":
  absltest.main()
