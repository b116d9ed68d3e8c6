"""Publishing a run needs no atomic rename: killed at every step, on a file
system whose rename copies file by file.

`CopyingFileSystem` stands in for gcsfuse or an object store behind a mount:
a file put appears whole (an object upload), but a copy is written chunk by
chunk and a rename copies each file and then deletes the sources. It counts
its steps (each chunk, put, removal) and can be killed before any of them.
A job is killed at every step of its run's publication in turn; after each
kill the readers must see the run complete (and byte-identical to an
uninterrupted job's) or not at all, and a restarted job must finish it,
byte for byte, leaving nothing behind. A publisher that renames a finished
folder into place, run through the same checks, fails them (the checks can
fail).
"""

import os

from absl.testing import absltest
import tensorflow as tf

from heldout import manifest
from heldout import storage
from heldout.data import digits
from heldout.readers import experiment
from heldout.readers import layout
from train import heldout_training
from train.configs import base

# No progress checkpoints: a restarted run trains again from its seed, so
# every restart must give the uninterrupted job's bytes.
CONFIG = base.TrainConfig(name="tiny", dataset="digits", arch="mlp",
                          arch_kwargs={"hidden_sizes": (16,)}, epochs=2,
                          batch_size=128, learning_rate=0.1,
                          checkpoint_every_seconds=1e9)
RUN_FILES = ("aux_arrays.npz", "checkpoints/ckpt-2.index",
             "checkpoints/ckpt-2.data-00000-of-00001")


class Killed(BaseException):
  """kill -9, as far as the job is concerned (no `except Exception` stops it)."""


class CopyingFileSystem(storage.LocalFileSystem):
  """A local file system whose copies and renames are not atomic.

  Attributes:
    steps: [what] of every step taken so far.
    kill_at: the 1-based step before which it is killed (None: never).
  """

  CHUNK = 4096

  def __init__(self, kill_at=None):
    self.steps = []
    self.kill_at = kill_at

  def _step(self, what):
    self.steps.append(what)
    if len(self.steps) == self.kill_at:
      raise Killed(what)

  def makedirs(self, path):
    self._step("makedirs " + path)
    super().makedirs(path)

  def remove(self, path):
    self._step("remove " + path)
    super().remove(path)

  def rmtree(self, path):
    # File by file, as an object store deletes a prefix.
    if not os.path.exists(path):
      return
    for dirpath, _, filenames in sorted(os.walk(path),
                                        key=lambda e: -e[0].count(os.sep)):
      for name in sorted(filenames):
        self.remove(os.path.join(dirpath, name))
      self._step("rmdir " + dirpath)
      os.rmdir(dirpath)

  def put_bytes(self, path, data):
    self._step("put " + path)
    super().put_bytes(path, data)

  def copy(self, source, destination):
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    with open(source, "rb") as src, open(destination, "wb") as dst:
      while True:
        self._step("copy chunk to " + destination)
        chunk = src.read(self.CHUNK)
        dst.write(chunk)
        dst.flush()
        if not chunk:
          break

  def rename(self, source, destination):
    """Copies every file of the folder `source`, then deletes it."""
    for dirpath, _, filenames in sorted(os.walk(source)):
      for name in sorted(filenames):
        rel = os.path.relpath(os.path.join(dirpath, name), source)
        self.copy(os.path.join(source, rel), os.path.join(destination, rel))
    self.rmtree(source)


def _read(path):
  with open(path, "rb") as f:
    return f.read()


class PublishTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits.load_digits()

  def _train(self, out, **kw):
    return heldout_training.train_heldout(self.data, CONFIG, 0.7, [5], out,
                                          progress=False, **kw)

  def _reference(self):
    out = self.create_tempdir().full_path
    self._train(out)
    run = layout.run_dir(out, 0.7, 5)
    return {rel: _read(os.path.join(run, rel)) for rel in RUN_FILES}

  def _problems(self, out, want):
    """Why `out` is not "the run complete and as `want`, or no run"."""
    run = layout.run_dir(out, 0.7, 5)
    if not os.path.isdir(os.path.dirname(run)):
      return None  # killed before the run's folder was made
    scanned = experiment.scan_experiment(out)
    if not scanned.complete_runs(0.7):
      if os.path.exists(layout.aux_arrays_path(run)):
        return "aux_arrays.npz is there but the run is incomplete: {}".format(
            experiment.run_problems(run))
      heldout_training.pending_runs(out, 0.7, [5])  # must not raise
      return None
    for rel, data in want.items():
      if _read(os.path.join(run, rel)) != data:
        return "{} differs from the uninterrupted job's".format(rel)
    if manifest.check_run(run).mismatch:
      return manifest.check_run(run).describe()
    return None

  def _publication_steps(self, fs):
    # Steps of the run's publication: from the first checkpoint copy on.
    return [i + 1 for i, what in enumerate(fs.steps)
            if what.startswith(("copy", "put", "remove", "rmdir")) and
            "heldout_training.json" not in what]

  def test_killed_at_every_step_of_publishing(self):
    want = self._reference()
    dry = CopyingFileSystem()
    with storage.overridden(dry):
      self._train(self.create_tempdir().full_path)
    steps = self._publication_steps(dry)
    kinds = {what.split(" ")[0] for what in dry.steps}
    self.assertEqual(kinds, {"makedirs", "put", "copy", "remove", "rmdir"})
    self.assertNotIn("rename", kinds)
    self.assertGreater(len(steps), 8)
    for kill_at in steps:
      out = self.create_tempdir().full_path
      with self.assertRaises(Killed):
        with storage.overridden(CopyingFileSystem(kill_at)):
          self._train(out)
      self.assertIsNone(self._problems(out, want),
                        "killed before step {}: {}".format(
                            kill_at, dry.steps[kill_at - 1]))
      (result,) = self._train(out)  # restarted
      self.assertIn(result.status, ("trained", "skipped"))
      self.assertIsNone(self._problems(out, want))
      self.assertTrue(experiment.scan_experiment(out).complete_runs(0.7))
      self.assertEqual(sorted(os.listdir(os.path.join(out, "0.7"))), ["5"],
                       "leftovers after a kill before step {}".format(kill_at))

  def test_a_publisher_that_renames_a_folder_is_caught(self):
    # The checks above, against the old way: everything written into the
    # temporary folder, which is then renamed into place. On this file
    # system the rename copies aux_arrays.npz before the checkpoint.
    want = self._reference()
    original = heldout_training.publish_run

    def rename_into_place(tmp_dir, final_dir, checkpoint, epoch, arrays,
                          num_train, num_test, write_fn=None):
      staged = os.path.join(tmp_dir, "whole")
      original(os.path.join(tmp_dir, "unused"), staged, checkpoint, epoch,
               arrays, num_train, num_test, write_fn)
      storage.for_path(final_dir).rename(staged, final_dir)
      return True

    found = []
    heldout_training.publish_run = rename_into_place
    try:
      for kill_at in range(1, 60):
        out = self.create_tempdir().full_path
        fs = CopyingFileSystem(kill_at)
        try:
          with storage.overridden(fs):
            self._train(out)
        except Killed:
          problem = self._problems(out, want)
          if problem:
            found.append(problem)
            break
        else:
          break
    finally:
      heldout_training.publish_run = original
    self.assertTrue(found)
    self.assertIn("aux_arrays.npz is there but the run is incomplete",
                  found[0])


if __name__ == "__main__":
  tf.test.main()
