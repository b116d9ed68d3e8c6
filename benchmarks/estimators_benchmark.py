r"""Memorization + influence at MNIST scale: upstream's computation vs ours.

  bazel run -c opt //benchmarks:estimators_benchmark            # 2000 runs x 60000 train x 10000 test
  bazel run -c opt //benchmarks:estimators_benchmark -- --small # 200 x 6000 x 1000, seconds
  bazel run -c opt //benchmarks:estimators_benchmark -- --matmul_dtype=auto,float32,bfloat16

The full size takes one to two minutes on two cores and needs about 11 GB of
free memory (the upstream variant holds several dense [n_test, n_train]
matrices at once: about 10 GB peak).

Synthetic heldout runs (subsets of exactly `ratio * train` examples, with
correctness on training and test examples correlated with the subsets so that
memorization and influence are not pure noise) are written once to a temporary
folder; each variant then runs in its own subprocess, which loads them, times
its computation and saves its results. Its peak resident memory comes from the
kernel's accounting of that child alone (`os.wait4`), so the variants do not
pollute each other's numbers.

- upstream: the computation of google-research/heldout-influence-estimation's
  `mnist-example/mnist_infl_mem.py`, restated: float32 casts of whole arrays,
  masked means by dense `np.matmul`s over the mask and its complement, and a
  dense [n_test, n_train] influence matrix (whose top-k per test example is
  taken afterwards, untimed, to compare).
- ours: `heldout.estimators` memorization, and top-k influence streamed over
  blocks of training examples in TensorFlow (bool masks cast on the fly, one
  matmul per block on the path `--matmul_dtype` names, "auto" choosing it from
  the CPU; never a [n_test, n_train] matrix). Several paths, comma-separated,
  are each measured against the same upstream run; for each the report says
  which path ran, the CPU features it was chosen from, and the rate its
  matmuls reached as a fraction of this machine's measured matmul peak.

The table gives compute time (data loading excluded), the child's wall time
and peak RSS, their ratios, and the largest differences between the two
variants' memorization and top-k influence values.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from heldout import onednn

_RUNS = flags.DEFINE_integer("runs", 2000, "Number of heldout runs R.")
_TRAIN = flags.DEFINE_integer("train", 60000, "Training set size.")
_TEST = flags.DEFINE_integer("test", 10000, "Test set size.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Influential training examples kept "
                              "per test example.")
_RATIO = flags.DEFINE_float("ratio", 0.7, "Subset ratio.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic runs.")
_MEMORY_BUDGET_MB = flags.DEFINE_float(
    "memory_budget_mb", 256.0, "Our influence working set per block, MiB.")
_MATMUL_DTYPE = flags.DEFINE_list(
    "matmul_dtype", ["auto"],
    "Our influence matmul path(s), each measured against the same upstream "
    "run: auto (picked from the CPU), float32, packed_float32, bfloat16 "
    "(exact whichever; see influence_estimator).")
_SMALL = flags.DEFINE_bool("small", False, "Quick run: 200 x 6000 x 1000.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Folder for the synthetic data (default: a temporary one).")
# Internal: run one variant in this process (the parent starts these).
_VARIANT = flags.DEFINE_enum("variant", None, ["upstream", "ours"],
                             "Internal: compute one variant on --data.")
_DATA = flags.DEFINE_string("data", None, "Internal: the synthetic runs (.npz).")
_RESULT = flags.DEFINE_string("result", None, "Internal: where to save results.")

SMALL_SIZES = dict(runs=200, train=6000, test=1000)


def make_synthetic(num_runs, n_train, n_test, ratio=0.7, seed=0,
                   runs_per_chunk=64):
  """Synthetic heldout runs with correctness correlated with the subsets.

  Each run trains on exactly int(ratio * n_train) examples. A training example
  has a held-out accuracy p_out (most are easy, some hard) and an in-subset
  accuracy p_in >= p_out (hard ones are memorized). A test example has a base
  accuracy and leans on one training example: when that one is held out, the
  accuracy drops by up to 0.4 for a third of the test examples.

  Args:
    num_runs: R.
    n_train: training set size.
    n_test: test set size.
    ratio: subset ratio.
    seed: random seed.
    runs_per_chunk: runs drawn at a time (bounds the float32 temporaries).

  Returns:
    (mask [R, n_train] bool, correct_train [R, n_train] bool,
     correct_test [R, n_test] bool).
  """
  rng = np.random.default_rng(seed)
  hard = rng.random(n_train) < 0.1
  p_out = np.where(hard, rng.uniform(0.0, 0.9, n_train),
                   rng.uniform(0.9, 1.0, n_train)).astype(np.float32)
  p_in = (p_out + (1 - p_out) * rng.uniform(0.0, 1.0, n_train)).astype(
      np.float32)
  partner = rng.integers(0, n_train, n_test)
  q_test = np.where(rng.random(n_test) < 0.2, rng.uniform(0.3, 0.9, n_test),
                    rng.uniform(0.9, 1.0, n_test)).astype(np.float32)
  drop = (rng.uniform(0.0, 0.4, n_test) * (rng.random(n_test) < 1 / 3)).astype(
      np.float32)
  subset_size = int(ratio * n_train)
  mask = np.zeros((num_runs, n_train), bool)
  correct_train = np.zeros((num_runs, n_train), bool)
  correct_test = np.zeros((num_runs, n_test), bool)
  for start in range(0, num_runs, runs_per_chunk):
    rows = slice(start, min(num_runs, start + runs_per_chunk))
    count = rows.stop - rows.start
    chosen = np.argpartition(rng.random((count, n_train), np.float32),
                             subset_size - 1, axis=1)[:, :subset_size]
    np.put_along_axis(mask[rows], chosen, True, axis=1)
    m = mask[rows]
    correct_train[rows] = (rng.random((count, n_train), np.float32) <
                           np.where(m, p_in, p_out))
    correct_test[rows] = (rng.random((count, n_test), np.float32) <
                          q_test - drop * ~m[:, partner])
  return mask, correct_train, correct_test


def upstream_estimates(mask, correct_train, correct_test):
  """Upstream's computation: dense float casts and matmuls.

  Restates `estimate_infl_mem` of upstream's `mnist_infl_mem.py`: masked
  means as sums of products divided by counts floored at 1e-10 (so an empty
  mean gives 0, not NaN), the correctness matrix cast to float32 and
  multiplied with the whole mask and its complement.

  Args:
    mask: [R, n_train] bool.
    correct_train: [R, n_train] bool.
    correct_test: [R, n_test] bool.

  Returns:
    (memorization [n_train] float32, influence [n_test, n_train] float32).
  """
  held_out = np.logical_not(mask)

  def mean_where(values, where):
    total = np.sum(values * where, axis=0)
    return (total / np.maximum(np.sum(where, axis=0), 1e-10)).astype(np.float32)

  def mean_where_matrix(values, where):
    values_t = values.T.astype(np.float32)
    counts = np.maximum(np.sum(where, axis=0, keepdims=True), 1e-10)
    return (np.matmul(values_t, where) / counts).astype(np.float32)

  memorization = (mean_where(correct_train, mask) -
                  mean_where(correct_train, held_out))
  influence = (mean_where_matrix(correct_test, mask) -
               mean_where_matrix(correct_test, held_out))
  return memorization, influence


def _import_ours():
  """Our estimators, imported only where used: the upstream child never loads
  TensorFlow, whose import alone is about 0.6 GB of resident memory."""
  # pylint: disable=g-import-not-at-top
  from heldout.estimators import influence_estimator
  from heldout.estimators import memorization_estimator
  # pylint: enable=g-import-not-at-top
  return influence_estimator, memorization_estimator


def ours_estimates(mask, correct_train, correct_test, top_k,
                   memory_budget_bytes, matmul_dtype="auto"):
  """Ours: memorization and streamed top-k influence.

  Args:
    mask: [R, n_train] bool.
    correct_train: [R, n_train] bool.
    correct_test: [R, n_test] bool.
    top_k: training examples kept per test example.
    memory_budget_bytes: influence working set per block.
    matmul_dtype: one of `influence_estimator.MATMUL_DTYPES`.

  Returns:
    (`Memorization`, `InfluenceTopK`, seconds spent on the influence).
  """
  influence_estimator, memorization_estimator = _import_ours()
  memorization = memorization_estimator.memorization(mask, correct_train)
  started = time.perf_counter()
  influence = influence_estimator.influence_topk(
      mask, correct_test, top_k, memory_budget_bytes=memory_budget_bytes,
      matmul_dtype=matmul_dtype)
  return memorization, influence, time.perf_counter() - started


def executed_matmul_flops(path, num_runs, n_train, n_test):
  """Multiply-adds (x2) that our influence matmuls execute on a path.

  float32: R x n_test x n_train; packed float32: the runs padded to chunks
  of 255 and a third of the test rows; bfloat16: the runs padded to chunks
  of 256.
  """
  if path == "float32":
    return 2.0 * num_runs * n_test * n_train
  if path == "packed_float32":
    return 2.0 * (-(-num_runs // 255) * 255) * (-(-n_test // 3)) * n_train
  return 2.0 * (-(-num_runs // 256) * 256) * n_test * n_train


def matmul_peak_flops(dtype, size=2048, repeats=5):
  """This machine's measured matmul rate: best of `repeats` size^3 products."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.cast(tf.random.stateless_uniform([size, size], [1, 2]), dtype)
  b = tf.cast(tf.random.stateless_uniform([size, size], [3, 4]), dtype)
  matmul = tf.function(tf.linalg.matmul)
  matmul(a, b).numpy()
  best = np.inf
  for _ in range(repeats):
    started = time.perf_counter()
    matmul(a, b).numpy()
    best = min(best, time.perf_counter() - started)
  return 2.0 * size**3 / best


def topk_of_dense(influence, top_k, rows_per_chunk=256):
  """Top-k per row of upstream's dense matrix, ranked as ours.

  Larger value first, ties by smaller training index, NaN below every real
  value: the rule of `heldout.estimators.influence_estimator`. Plain numpy,
  so that the upstream child does not import TensorFlow.

  Args:
    influence: [n_test, n_train] float32.
    top_k: entries kept per row.
    rows_per_chunk: rows partitioned at a time.

  Returns:
    (values [n_test, top_k] float32, indices [n_test, top_k] int64).
  """
  n_test, n_train = influence.shape
  values = np.empty((n_test, top_k), influence.dtype)
  indices = np.empty((n_test, top_k), np.int64)
  for start in range(0, n_test, rows_per_chunk):
    keys = influence[start:start + rows_per_chunk]
    keys = np.where(np.isnan(keys), -np.inf, keys)
    kth = np.partition(keys, n_train - top_k, axis=1)[:, n_train - top_k]
    for row, (row_keys, threshold) in enumerate(zip(keys, kth), start):
      candidates = np.flatnonzero(row_keys >= threshold)
      chosen = candidates[np.lexsort((candidates, -row_keys[candidates]))[:top_k]]
      indices[row] = chosen
      values[row] = influence[row, chosen]
  return values, indices


def compare(upstream, ours):
  """Largest differences between the variants' results.

  Args:
    upstream: dict with memorization, topk_values, topk_indices.
    ours: the same keys.

  Returns:
    dict: memorization_max_abs_diff, topk_values_max_abs_diff (over entries
    finite in both), topk_indices_agree (fraction of equal indices),
    nan_mismatches (entries NaN in one variant only; upstream reports empty
    means as 0).
  """
  out = {}
  nan_mismatches = 0
  for key, name in (("memorization", "memorization_max_abs_diff"),
                    ("topk_values", "topk_values_max_abs_diff")):
    a = np.asarray(upstream[key], np.float64)
    b = np.asarray(ours[key], np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    nan_mismatches += int(np.sum(np.isnan(a) != np.isnan(b)))
    out[name] = float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else 0.0
  out["topk_indices_agree"] = float(np.mean(
      np.asarray(upstream["topk_indices"]) == np.asarray(ours["topk_indices"])))
  out["nan_mismatches"] = nan_mismatches
  return out


def _run_variant(variant, data_path, result_path, top_k, memory_budget_bytes,
                 matmul_dtype):
  """Child: loads the runs, times one variant, saves its results."""
  with np.load(data_path) as data:
    mask, correct_train, correct_test = (data["mask"], data["correct_train"],
                                         data["correct_test"])
  details = {}
  if variant == "ours":
    # Not part of the computation's time (it is of its memory).
    influence_estimator, _ = _import_ours()
    path = influence_estimator.resolve_matmul_dtype(matmul_dtype)
  started = time.perf_counter()
  if variant == "upstream":
    memorization, influence = upstream_estimates(mask, correct_train,
                                                 correct_test)
    seconds = time.perf_counter() - started
    del mask, correct_train, correct_test
    topk_values, topk_indices = topk_of_dense(influence, top_k)
    del influence
  else:
    mem, top, influence_seconds = ours_estimates(
        mask, correct_train, correct_test, top_k, memory_budget_bytes, path)
    seconds = time.perf_counter() - started
    memorization, topk_values, topk_indices = mem.values, top.values, top.indices
    # After the timed part: the machine's matmul rates, for the fractions.
    peak_dtype = "bfloat16" if path == "bfloat16" else "float32"
    float32_peak = matmul_peak_flops("float32")
    details = dict(
        path=influence_estimator.describe_matmul_path(path),
        cpu_features=" ".join(sorted(
            f for f in influence_estimator.cpu_flags()
            if f.startswith(("avx512_bf16", "avx512_vnni", "amx", "avx_vnni"))
            or f in ("avx2", "avx512f"))) or "none listed",
        influence_seconds=influence_seconds,
        executed_flops=executed_matmul_flops(path, *mask.shape,
                                             correct_test.shape[1]),
        products=2.0 * mask.shape[0] * mask.shape[1] * correct_test.shape[1],
        peak_dtype=peak_dtype,
        peak_flops=(float32_peak if peak_dtype == "float32"
                    else matmul_peak_flops(peak_dtype)),
        float32_peak_flops=float32_peak)
  np.savez(result_path, memorization=memorization, topk_values=topk_values,
           topk_indices=topk_indices)
  print(json.dumps(dict(seconds=seconds, details=details)))


def _spawn(variant, data_path, result_path, top_k, memory_budget_mb,
           matmul_dtype):
  """Runs one variant in a child.

  Returns:
    (compute s, wall s, peak RSS bytes, details) of the child.
  """
  command = [sys.executable, os.path.abspath(__file__), "--variant=" + variant,
             "--data=" + data_path, "--result=" + result_path,
             "--top_k={}".format(top_k),
             "--memory_budget_mb={}".format(memory_budget_mb),
             "--matmul_dtype=" + matmul_dtype]
  env = dict(os.environ)
  if variant == "ours":
    # As //heldout:estimate does (upstream never loads TensorFlow).
    onednn.prefer_onednn(env)
  started = time.perf_counter()
  child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
  stdout = child.stdout.read()
  child.stdout.close()
  _, status, usage = os.wait4(child.pid, 0)
  child.returncode = os.waitstatus_to_exitcode(status)
  wall = time.perf_counter() - started
  if child.returncode != 0:
    raise RuntimeError("variant {} failed with exit code {}".format(
        variant, child.returncode))
  report = json.loads(stdout.decode().strip().splitlines()[-1])
  # ru_maxrss is in KiB on Linux.
  return report["seconds"], wall, usage.ru_maxrss * 1024, report["details"]


def _fraction_line(d):
  return (
      "  path {path} (CPU features: {features}): influence {secs:.2f} s, "
      "{rate:.1f} GFLOP/s executed in {dtype} = {frac:.1%} of this machine's "
      "measured {dtype} matmul peak ({peak:.1f} GFLOP/s, 2048^3 tf.matmul); "
      "{eq:.1f} G 0/1 multiply-adds/s (x2) = {eq_frac:.2f}x the float32 "
      "peak ({fpeak:.1f} GFLOP/s)".format(
          path=d["path"], features=d["cpu_features"],
          secs=d["influence_seconds"],
          rate=d["executed_flops"] / d["influence_seconds"] / 1e9,
          dtype=d["peak_dtype"],
          frac=d["executed_flops"] / d["influence_seconds"] / d["peak_flops"],
          peak=d["peak_flops"] / 1e9,
          eq=d["products"] / d["influence_seconds"] / 1e9,
          eq_frac=d["products"] / d["influence_seconds"] /
          d["float32_peak_flops"],
          fpeak=d["float32_peak_flops"] / 1e9))


def _table(sizes, measured, diffs):
  """The report: one row per variant, then ours against upstream.

  Args:
    sizes: runs, train, test, top_k.
    measured: {"upstream" or "ours (<path>)": (compute s, wall s, peak RSS
      bytes, details)}, upstream first.
    diffs: {"ours (<path>)": `compare` of it with upstream}.

  Returns:
    The text.
  """
  lines = ["runs={runs} train={train} test={test} top_k={top_k}".format(**sizes),
           "{:<24} {:>10} {:>10} {:>14}".format(
               "variant", "compute s", "wall s", "peak RSS GB")]
  for variant, (seconds, wall, rss, _) in measured.items():
    lines.append("{:<24} {:>10.2f} {:>10.2f} {:>14.2f}".format(
        variant, seconds, wall, rss / 1e9))
  up = measured["upstream"]
  for variant, diff in diffs.items():
    ours = measured[variant]
    lines.append("{} / upstream: compute time {:.3f} (target <= 0.2), peak "
                 "RSS {:.3f}; its peak RSS {:.2f} GB (target <= 1.5)".format(
                     variant, ours[0] / up[0], ours[2] / up[2], ours[2] / 1e9))
    lines.append(_fraction_line(ours[3]))
    lines.append(
        "  memorization max abs diff {:.3g}; top-{} influence values max abs "
        "diff {:.3g}; top-k indices identical {:.4%}; NaN mismatches "
        "{}".format(diff["memorization_max_abs_diff"], sizes["top_k"],
                    diff["topk_values_max_abs_diff"],
                    diff["topk_indices_agree"], diff["nan_mismatches"]))
  return "\n".join(lines)


def main(argv):
  del argv
  if _VARIANT.value:
    _run_variant(_VARIANT.value, _DATA.value, _RESULT.value, _TOP_K.value,
                 int(_MEMORY_BUDGET_MB.value * 2**20), _MATMUL_DTYPE.value[0])
    return
  sizes = dict(runs=_RUNS.value, train=_TRAIN.value, test=_TEST.value,
               top_k=_TOP_K.value)
  if _SMALL.value:
    sizes.update(SMALL_SIZES)
  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="estimators_benchmark_")
  try:
    started = time.perf_counter()
    data_path = os.path.join(workdir, "runs.npz")
    mask, correct_train, correct_test = make_synthetic(
        sizes["runs"], sizes["train"], sizes["test"], _RATIO.value, _SEED.value)
    np.savez(data_path, mask=mask, correct_train=correct_train,
             correct_test=correct_test)
    del mask, correct_train, correct_test
    print("synthetic runs written in {:.1f} s".format(
        time.perf_counter() - started), flush=True)
    runs = [("upstream", "upstream", "auto")] + [
        ("ours ({})".format(path), "ours", path) for path in _MATMUL_DTYPE.value]
    measured, results = {}, {}
    for label, variant, path in runs:
      result_path = os.path.join(workdir, "result.npz")
      measured[label] = _spawn(variant, data_path, result_path,
                               sizes["top_k"], _MEMORY_BUDGET_MB.value, path)
      with np.load(result_path) as npz:
        results[label] = {k: npz[k] for k in npz.files}
      print("{} done".format(label), flush=True)
    diffs = {label: compare(results["upstream"], results[label])
             for label, variant, _ in runs if variant == "ours"}
    print(_table(sizes, measured, diffs))
    if _SMALL.value:
      print("(--small: the targets are for the full size)")
  finally:
    if not _WORKDIR.value:
      shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
