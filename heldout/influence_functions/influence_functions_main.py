r"""Influence functions of a trained run (Kronfluence 1.0.1's conventions).

    bazel run //heldout:influence_functions -- --model_dir=RUN \
        --dataset=digits --strategy=ekfac --damping=heuristic --fisher=true \
        --measurement=ce --queries=test[:100] --train=train \
        --output=pairwise.npz [--top_k=10]
    bazel run //heldout:influence_functions -- --model_dir=RUN \
        --dataset=npz:/data/cifar10.npz --self --output=self_influence.npz

RUN is a run folder in the released layout (`checkpoints/ckpt-<epoch>.index`;
the architecture and number of classes are read from the checkpoint unless
given), a released run or one of ours. The dataset's images are
preprocessed as the architecture was trained (the dataset registry does it).
Stages (covariances -> eigendecomposition -> lambda -> preconditioned
queries -> scores), each with a progress bar, keep their artefacts in
--factors_dir (default `<output>.factors/`): run again with the same
arguments and finished stages are reused; other arguments are refused unless
--overwrite. Queries are preconditioned and scored in chunks of
--query_batch_size (default: as many as fit --query_memory_mb), one pass over
the training examples each; --devices splits each batch across the GPUs
(auto: all of them when there are several). The output is pairwise scores (see
`heldout/influence_functions/score_run.py`) or, with --self, the per-example
score file of self-influence (with its CSV). Relative paths are taken from
where `bazel run` was started; errors are one line `error: ...`.
"""

from absl import flags

from heldout import cli
from heldout.data import registry as data_registry
from heldout.influence_functions import arguments
from heldout.influence_functions import devices
from heldout.influence_functions import influence
from heldout.influence_functions import score_run

_MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                 "Run folder holding checkpoints/.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "digits, mnist, cifar10:3.0.2, cifar100:3.0.2 or "
    "npz:/path/file.npz.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_ARCH = flags.DEFINE_string("arch", None, "Architecture; inferred from the "
                            "checkpoint if unset.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Number of classes; "
                                    "inferred if unset.")
_STRATEGY = flags.DEFINE_enum("strategy", arguments.EKFAC,
                              list(arguments.STRATEGIES), "Preconditioner.")
_DAMPING = flags.DEFINE_string(
    "damping", str(arguments.DEFAULT_DAMPING),
    "A number >= 0, or heuristic (0.1 x mean eigenvalue per layer).")
_FISHER = flags.DEFINE_enum(
    "fisher", arguments.TRUE_FISHER, list(arguments.FISHERS),
    "true: labels sampled from the model (seeded); empirical: true labels.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the sampled labels.")
_MEASUREMENT = flags.DEFINE_enum("measurement", arguments.CROSS_ENTROPY,
                                 list(arguments.MEASUREMENTS),
                                 "Query measurement.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", list(arguments.DTYPES),
                           "Dtype of factors and products.")
_QUERIES = flags.DEFINE_string("queries", "test", "Query examples: split or "
                               "split[start:stop] over its sorted ids.")
_TRAIN = flags.DEFINE_string("train", "train", "Training examples (fitted "
                             "and scored), as --queries.")
_SELF = flags.DEFINE_bool("self", False, "Write self-influence of the "
                          "training examples instead of pairwise scores.")
_SELF_MEASUREMENT = flags.DEFINE_bool(
    "self_measurement", False, "Self-influence with the measurement on the "
    "preconditioned side.")
_TOP_K = flags.DEFINE_integer("top_k", None, "Keep the k largest scores per "
                              "query (streamed); dense if unset.")
_PER_MODULE = flags.DEFINE_bool("per_module", False, "Also write per-layer "
                                "pairwise scores (dense).")
_QUERY_RANK = flags.DEFINE_integer("query_rank", None, "Compress each "
                                   "preconditioned query block to this rank.")
_QUERY_BATCH_SIZE = flags.DEFINE_integer(
    "query_batch_size", None, "Queries preconditioned and scored per pass "
    "over the training examples; default: as many as fit --query_memory_mb.")
_QUERY_MEMORY_MB = flags.DEFINE_float(
    "query_memory_mb", influence.DEFAULT_QUERY_MEMORY_MB,
    "Memory of one chunk of preconditioned query gradients (MB), when "
    "--query_batch_size is unset.")
_DEVICES = flags.DEFINE_string(
    "devices", devices.AUTO, "Where the passes run: auto (every GPU when "
    "there are several, else the default device), cpu, or a number of "
    "replicas N (the first N GPUs, else N logical CPUs); each batch is "
    "split across the replicas.")
_OUTPUT = flags.DEFINE_string("output", None, "Output .npz.")
_FACTORS_DIR = flags.DEFINE_string("factors_dir", None, "Stage artefacts; "
                                   "default <output>.factors/.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Examples per batch.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace outputs and "
                               "artefacts made with other arguments.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  cli.check_no_arguments(argv)
  cli.require_flags(model_dir=_MODEL_DIR.value, dataset=_DATASET.value,
                    output=_OUTPUT.value)
  if _TOP_K.value is not None and _TOP_K.value < 1:
    raise ValueError("--top_k must be positive, got {}".format(_TOP_K.value))
  if _BATCH_SIZE.value < 1:
    raise ValueError("--batch_size must be positive, got {}".format(
        _BATCH_SIZE.value))
  if _QUERY_BATCH_SIZE.value is not None and _QUERY_BATCH_SIZE.value < 1:
    raise ValueError("--query_batch_size must be positive, got {}".format(
        _QUERY_BATCH_SIZE.value))
  if not _QUERY_MEMORY_MB.value > 0:
    raise ValueError("--query_memory_mb must be positive, got {}".format(
        _QUERY_MEMORY_MB.value))
  factor_args = arguments.FactorArgs(strategy=_STRATEGY.value,
                                     fisher=_FISHER.value, seed=_SEED.value,
                                     dtype=_DTYPE.value)
  score_args = arguments.ScoreArgs(damping=_DAMPING.value,
                                   measurement=_MEASUREMENT.value,
                                   query_rank=_QUERY_RANK.value,
                                   self_measurement=_SELF_MEASUREMENT.value)
  dataset = data_registry.load_dataset(
      cli.resolve_dataset_name(_DATASET.value),
      data_dir=cli.resolve_path(_DATA_DIR.value))
  written = score_run.score_run(
      cli.resolve_path(_MODEL_DIR.value), dataset,
      cli.resolve_path(_OUTPUT.value), factor_args, score_args,
      queries=_QUERIES.value, train=_TRAIN.value, self_influence=_SELF.value,
      top_k=_TOP_K.value, per_module=_PER_MODULE.value,
      factors_dir=cli.resolve_path(_FACTORS_DIR.value), arch=_ARCH.value,
      num_classes=_NUM_CLASSES.value, batch_size=_BATCH_SIZE.value,
      overwrite=_OVERWRITE.value, progress=_PROGRESS.value,
      query_batch_size=_QUERY_BATCH_SIZE.value,
      query_memory_mb=_QUERY_MEMORY_MB.value, devices=_DEVICES.value)
  print("wrote {}: {} (factors in {})".format(written.output, written.summary,
                                              written.factors_dir))


if __name__ == "__main__":
  cli.run(main)
