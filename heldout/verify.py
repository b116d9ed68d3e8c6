r"""Checks every file of an experiment directory against the runs' manifests.

  bazel run //heldout:verify -- --experiment_dir=EXP [--write_manifest] [--every_run]

Each run folder `EXP/<ratio>/<run>/` holds a manifest (`.heldout_manifest.json`:
the size and SHA-256 of each of its files) written by `//heldout:download`
from the verified archive, or by `//train:heldout` when it published the run.
Every file is read again and the run reported as

- ok: every file listed is there with its size and checksum, and no other;
- missing: a file listed is not there;
- changed: a file's size or SHA-256 differs (a flipped bit, a partial copy);
- extra: a file is there that the manifest does not list;
- no manifest: the run came by other means (a copy, an older download);
  `--write_manifest` records one from the files as they are now.

A run the download recorded whose folder is gone is reported too. Runs that
are not ok are listed (every run with `--every_run`), then the counts. Exit
status 1 when anything is missing, changed or extra (`error: ...` on stderr),
else 0. Relative paths are taken from the directory `bazel run` was started in.

This checks that files are what was written; that a run's checkpoint
reproduces its exported correctness is `//heldout:demo --model_dir=RUN`
(`heldout.verify_run`).
"""

from absl import flags

from heldout import cli
from heldout import manifest

_EXPERIMENT_DIR = flags.DEFINE_string(
    "experiment_dir", None, "Experiment folder: <ratio>/<run>/... (local).")
_WRITE_MANIFEST = flags.DEFINE_bool(
    "write_manifest", False,
    "Record a manifest for each run without one (from its files as they are now).")
_EVERY_RUN = flags.DEFINE_bool(
    "every_run", False, "List every run, not only those that are not ok.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")


def main(argv):
  cli.check_no_arguments(argv)
  cli.require_flags(experiment_dir=_EXPERIMENT_DIR.value)
  report = manifest.check_experiment(cli.resolve_path(_EXPERIMENT_DIR.value),
                                     write_missing=_WRITE_MANIFEST.value,
                                     progress=_PROGRESS.value)
  print(report.describe(every_run=_EVERY_RUN.value), flush=True)
  report.raise_on_mismatch()


if __name__ == "__main__":
  cli.run(main)
