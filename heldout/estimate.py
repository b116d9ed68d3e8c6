r"""Memorization, influence and consistency estimates of an experiment directory.

  bazel run //heldout:estimate -- --experiment_dir=EXP --output=EST.npz \
      [--subset_ratio=0.7] [--influence=dense|topk|none] [--top_k=10] \
      [--memory_budget_mb=256] [--overwrite] [--verify]

Reads `EXP/<ratio>/<run>/aux_arrays.npz` (runs without one are skipped and
listed), and writes atomically

- EST.npz: `memorization`, `memorization_se`, `memorization_n_in`,
  `memorization_n_out` (runs of --subset_ratio), `consistency` and
  `consistency_se` (at --subset_ratio when given, else averaged over all
  ratios: the C-score), `consistency_by_ratio`, `consistency_se_by_ratio`,
  `consistency_n_in_by_ratio`, `consistency_n_out_by_ratio`
  ([n_ratios, n_train]) with `ratios` and `runs_per_ratio`, `cscore`,
  `cscore_se`, `cscore_n_ratios`, `index` (training example ids),
  `test_index`, and `influence` / `influence_se` ([n_test, n_train],
  --influence=dense) or `influence_topk_values` / `influence_topk_se` /
  `influence_topk_indices` ([n_test, top_k], --influence=topk), then with
  either `influence_n_in`, `influence_n_out` ([n_train]) and
  `test_total_correct` ([n_test]); the arguments as `args_json`;
- EST.csv beside it: index, memorization, se, n_in, n_out, consistency,
  consistency_se.

Standard errors are Agresti-Caffo (p = (k + 1) / (n + 2) on each side);
values without a run on one side are NaN, never 0, with their counts.

--verify first re-reads every file against the runs' manifests (see
//heldout:verify) and stops on a mismatch. --subset_ratio is required when the
experiment holds several ratios. An existing output made with other arguments
is kept unless --overwrite. Relative paths are taken from the directory
`bazel run` was started in.
"""

# Before the imports below load TensorFlow (see heldout/onednn.py).
from heldout import onednn

onednn.prefer_onednn()

# pylint: disable=g-import-not-at-top,wrong-import-position
import time

from absl import flags

from heldout import cli
from heldout import manifest
from heldout.estimators import influence_estimator
from heldout.estimators import pipeline

_EXPERIMENT_DIR = flags.DEFINE_string(
    "experiment_dir", None, "Experiment folder: <ratio>/<run>/aux_arrays.npz.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Output .npz; the CSV goes beside it (EST.npz -> EST.csv).")
_SUBSET_RATIO = flags.DEFINE_float(
    "subset_ratio", None,
    "Ratio whose runs give memorization and influence (required when the "
    "experiment has several); also the ratio of `consistency`.")
_INFLUENCE = flags.DEFINE_enum(
    "influence", "topk", list(pipeline.INFLUENCE_MODES),
    "dense: the [n_test, n_train] matrix; topk: the --top_k most influential "
    "training examples per test example; none.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Training examples kept per test "
                              "example with --influence=topk.")
_MEMORY_BUDGET_MB = flags.DEFINE_float(
    "memory_budget_mb",
    influence_estimator.DEFAULT_MEMORY_BUDGET_BYTES / 2**20,
    "Bound on the influence working set per block of training examples, MiB.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an output made with other arguments.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_VERIFY = flags.DEFINE_bool(
    "verify", False, "First check every file against the runs' manifests, as "
    "//heldout:verify does, and stop if any is missing, changed or extra.")


def main(argv):
  cli.check_no_arguments(argv)
  cli.require_flags(experiment_dir=_EXPERIMENT_DIR.value, output=_OUTPUT.value)
  started = time.time()
  args = pipeline.EstimateArgs(
      experiment_dir=cli.resolve_path(_EXPERIMENT_DIR.value),
      subset_ratio=_SUBSET_RATIO.value,
      influence=_INFLUENCE.value,
      top_k=_TOP_K.value,
      memory_budget_bytes=int(_MEMORY_BUDGET_MB.value * 2**20))
  output = cli.resolve_path(_OUTPUT.value)
  pipeline.check_output(output, args, overwrite=_OVERWRITE.value)
  if _VERIFY.value:
    report = manifest.check_experiment(args.experiment_dir, progress=_PROGRESS.value)
    print(report.describe(), flush=True)
    report.raise_on_mismatch()
  estimates = pipeline.compute_estimates(args, progress=_PROGRESS.value)
  csv_path = pipeline.save_estimates(estimates, output, args)

  print("estimates of {}".format(args.experiment_dir))
  print(estimates.summary())
  if estimates.influence is None:
    print("influence: not computed")
  else:
    print("influence: {} {} ({})".format(
        args.influence,
        "x".join(str(d) for d in estimates.influence.values.shape),
        influence_estimator.describe_matmul_path()))
  print("wrote {}".format(output))
  print("wrote {}".format(csv_path))
  print("done in {:.1f} s".format(time.time() - started))


if __name__ == "__main__":
  cli.run(main)
