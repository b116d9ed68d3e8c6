r"""Downloads (a selection of) a released heldout-training experiment.

Streams `<experiment>.tar.gz` (239-367 GB) and extracts while reading, so
`--only=aux_arrays` writes just the `aux_arrays.npz` files without storing the
archive. The result, `DEST/<experiment>/<ratio>/<run>/...`, is an experiment
directory `//heldout:estimate --experiment_dir=DEST/<experiment>` reads.

  bazel run //heldout:download -- --experiment=cifar10-inception \
      --dest=/data/heldout --only=aux_arrays

Selections: `--ratios=0.7,0.5`, `--runs=0:100` (half-open; "3,5,10:20" works
too). Sources: `--source=auto` uses HTTP Range requests for http(s) URLs,
`gsutil cat` for gs:// (gsutil is installed with the project; `tf.io.gfile`
when it is missing). `--source=gsutil` also reads a file:// mirror through
gsutil. `--base_url` points at a mirror (its own MD5 via `--md5`, or
`--md5=skip`).
Relative paths (`--dest`, a local `--base_url`) are taken from the directory
`bazel run` was started in; an error prints one line `error: ...`.
`--keep_archive` stores `DEST/<experiment>.tar.gz` (resuming `.part`),
verifies its MD5, then extracts. Interrupted runs resume: re-run the same
command; finished files are skipped, and a completed selection returns at once.
"""

import sys

from absl import flags

from heldout import cli
from heldout.released import catalog
from heldout.released import downloader

_EXPERIMENT = flags.DEFINE_enum(
    "experiment", None, sorted(catalog.ARCHIVES), "Which released experiment.")
_DEST = flags.DEFINE_string(
    "dest", None, "Local folder receiving <experiment>/<ratio>/<run>/...")
_ONLY = flags.DEFINE_enum(
    "only", "all", ["all", "aux_arrays", "checkpoints"],
    "Which files of each run to write.")
_RATIOS = flags.DEFINE_string(
    "ratios", None, "Comma-separated subset ratios to keep (default: all).")
_RUNS = flags.DEFINE_string(
    "runs", None, "Run ids to keep: start:stop (half-open) and/or ids, "
    "comma-separated (default: all).")
_BASE_URL = flags.DEFINE_string(
    "base_url", None, "Folder URL holding <experiment>.tar.gz (default: {}).".format(
        catalog.DEFAULT_BASE_URL))
_SOURCE = flags.DEFINE_enum(
    "source", "auto", ["auto", "http", "gsutil", "gfile", "local"],
    "How to read the archive (gsutil: gs:// or file:// URLs).")
_KEEP_ARCHIVE = flags.DEFINE_bool(
    "keep_archive", False, "Store DEST/<experiment>.tar.gz, verify it, then extract.")
_MD5 = flags.DEFINE_string(
    "md5", None, "Expected MD5 overriding the built-in one (for a mirror), "
    "or 'skip'.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")
_MAX_RETRIES = flags.DEFINE_integer(
    "max_retries", 8, "Consecutive failed reconnections allowed.")
_BACKOFF_S = flags.DEFINE_float(
    "retry_backoff_s", 1.0, "First wait before reconnecting (doubles each time).")


@cli.exit_status
def main(argv):
  cli.check_no_arguments(argv)
  if not _EXPERIMENT.value:
    raise ValueError("--experiment is required (one of {})".format(
        ", ".join(sorted(catalog.ARCHIVES))))
  cli.require_flags(dest=_DEST.value)
  try:
    summary = downloader.download_experiment(
        _EXPERIMENT.value, cli.resolve_path(_DEST.value), only=_ONLY.value,
        ratios=_RATIOS.value, runs=_RUNS.value,
        base_url=cli.resolve_path(_BASE_URL.value), source=_SOURCE.value,
        keep_archive=_KEEP_ARCHIVE.value, md5=_MD5.value,
        progress=_PROGRESS.value, max_retries=_MAX_RETRIES.value,
        backoff_s=_BACKOFF_S.value)
  except KeyboardInterrupt:
    # Finished files are kept, so an interrupted download is not lost.
    print("error: interrupted; re-run the same command to resume",
          file=sys.stderr)
    return 1
  print(summary.describe())
  return 0


if __name__ == "__main__":
  cli.run(main)
