"""One per-example score artefact for every scoring method.

A score file is an .npz holding

| key | dtype, shape | what |
| --- | --- | --- |
| `index` | int64 [n] | example ids (distinct, >= 0), any order |
| `values` | float64 [n] | the score (NaN: undefined; +inf allowed, e.g. never-learned forgetting) |
| `se` | float64 [n] | standard error across runs/seeds (NaN where undefined), >= 0 |
| `num_runs` | int64 [n] | runs behind each value, >= 0 |
| `method` | str scalar | e.g. "forgetting_minibatch", "el2n", "grand" |
| `args_json` | str scalar | a JSON object: the arguments it ran with |
| any other key | bool, integer or float [n] | extra per-example arrays (e.g. `never_learned`) |

and a CSV beside it (`SCORES.npz` -> `SCORES.csv`; columns index, value, se,
num_runs, then the extras in name order) that `pandas.read_csv` reads (+inf is
written `inf`, NaN `nan`). Both are written atomically, together
(`heldout.estimators.pipeline.write_npz_and_csv`), and an existing file made
with other arguments is not replaced unless asked (`check_stored_arguments`).

`read_scores` checks every key, dtype and length and raises `ScoreFileError`
naming the file, the key, what was expected and what was found.
`average_over_runs` turns per-run scores into a `Scores` with the mean, its
standard error and the number of runs of each example.
"""

import dataclasses
import io
import json
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from heldout import errors
from heldout import npz_io
from heldout.errors import ScoreFileError
from heldout.estimators import pipeline

REQUIRED_KEYS = ("index", "values", "se", "num_runs", "method", "args_json")
CSV_COLUMNS = ("index", "value", "se", "num_runs")


def _fail(path, key, expected, found):
  raise ScoreFileError("{}: key `{}`: expected {}, found {}".format(
      path, key, expected, found))


def _check_index(index, where="scores"):
  if len(index) and index.min() < 0:
    _fail(where, "index", "example ids >= 0", "id {}".format(int(index.min())))
  unique, counts = np.unique(index, return_counts=True)
  if (counts > 1).any():
    _fail(where, "index", "distinct example ids",
          "id {} {} times".format(int(unique[counts > 1][0]),
                                  int(counts[counts > 1][0])))


def _check_arrays(where, index, values, se, num_runs, extras):
  """Checks dtypes, shapes and ranges; `where` names the file or object."""
  for key, value, dtype in (("index", index, np.int64),
                            ("values", values, np.float64),
                            ("se", se, np.float64),
                            ("num_runs", num_runs, np.int64)):
    if value.dtype != dtype:
      _fail(where, key, "dtype {}".format(np.dtype(dtype).name),
            "dtype {}".format(value.dtype))
    if value.ndim != 1:
      _fail(where, key, "a 1-D array", "shape {}".format(value.shape))
  n = len(index)
  for key, value in (("values", values), ("se", se), ("num_runs", num_runs)):
    if len(value) != n:
      _fail(where, key, "length {} (that of `index`)".format(n),
            "length {}".format(len(value)))
  _check_index(index, where)
  bad = ~np.isnan(se) & ~(se >= 0)
  if bad.any():
    _fail(where, "se", "values >= 0 or NaN",
          "{} at id {}".format(se[bad][0], int(index[bad][0])))
  if (num_runs < 0).any():
    i = int(np.flatnonzero(num_runs < 0)[0])
    _fail(where, "num_runs", "counts >= 0",
          "{} at id {}".format(int(num_runs[i]), int(index[i])))
  for key, value in extras.items():
    if key in REQUIRED_KEYS:
      _fail(where, key, "an extra array's name other than {}".format(
          ", ".join(REQUIRED_KEYS)), "`{}`".format(key))
    if value.dtype.kind not in "bif":
      _fail(where, key, "a bool, integer or float per-example array",
            "dtype {}".format(value.dtype))
    if value.shape != (n,):
      _fail(where, key, "shape ({},) (one per example, as `index`)".format(n),
            "shape {}".format(value.shape))


@dataclasses.dataclass(frozen=True)
class Scores:
  """Per-example scores of one method, with their uncertainty.

  Attributes:
    index: [n] int64 example ids.
    values: [n] float64 scores (NaN undefined; +inf allowed).
    se: [n] float64 standard errors across runs (NaN where undefined).
    num_runs: [n] int64 runs behind each value.
    method: the method's name.
    args: dict, the JSON-able arguments it ran with.
    extras: name -> [n] bool/int/float array of further per-example values.
  """
  index: np.ndarray
  values: np.ndarray
  se: np.ndarray
  num_runs: np.ndarray
  method: str
  args: Mapping[str, object] = dataclasses.field(default_factory=dict)
  extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.method, str) or not self.method:
      raise ValueError("`method` must be a non-empty string, got {!r}".format(
          self.method))
    try:
      args = json.loads(json.dumps(dict(self.args), sort_keys=True))
    except (TypeError, ValueError) as e:
      raise ValueError("`args` must be a JSON-able dict: {}".format(e)) from None
    index = np.asarray(self.index)
    if index.dtype.kind in "iu":
      index = index.astype(np.int64)
    num_runs = np.asarray(self.num_runs)
    if num_runs.dtype.kind in "iu":
      num_runs = num_runs.astype(np.int64)
    values = np.asarray(self.values)
    se = np.asarray(self.se)
    if values.dtype.kind in "iuf":
      values = values.astype(np.float64)
    if se.dtype.kind in "iuf":
      se = se.astype(np.float64)
    extras = {str(k): np.asarray(v) for k, v in self.extras.items()}
    _check_arrays("scores", index, values, se, num_runs, extras)
    object.__setattr__(self, "index", index)
    object.__setattr__(self, "values", values)
    object.__setattr__(self, "se", se)
    object.__setattr__(self, "num_runs", num_runs)
    object.__setattr__(self, "args", args)
    object.__setattr__(self, "extras", dict(sorted(extras.items())))

  def __len__(self):
    return len(self.index)

  @property
  def args_json(self) -> str:
    return json.dumps(self.args, sort_keys=True)

  def arrays(self) -> Dict[str, np.ndarray]:
    """The npz's arrays."""
    out = dict(self.extras)
    out.update(index=self.index, values=self.values, se=self.se,
               num_runs=self.num_runs, method=np.array(self.method),
               args_json=np.array(self.args_json))
    return out

  def csv_text(self) -> str:
    """Per-example CSV: index, value, se, num_runs, then the extras."""
    names = list(CSV_COLUMNS) + list(self.extras)
    columns = [self.index, self.values, self.se, self.num_runs] + [
        self.extras[k] for k in self.extras]
    buf = io.StringIO()
    buf.write(",".join(names) + "\n")
    formats = ["{:d}", "{!r}", "{!r}", "{:d}"] + [
        "{:d}" if v.dtype.kind in "biu" else "{!r}" for v in columns[4:]]
    for row in zip(*[c.tolist() for c in columns]):
      buf.write(",".join(f.format(int(v) if f == "{:d}" else float(v))
                         for f, v in zip(formats, row)) + "\n")
    return buf.getvalue()

  def by_id(self, ids) -> np.ndarray:
    """`values` at example ids `ids` (KeyError naming a missing id)."""
    ids = np.asarray(ids, np.int64)
    order = np.argsort(self.index)
    pos = np.searchsorted(self.index[order], ids)
    pos = np.minimum(pos, len(order) - 1)
    found = self.index[order][pos] == ids
    if not found.all():
      raise KeyError("example id {} has no score".format(int(ids[~found][0])))
    return self.values[order][pos]


def score_csv_path(npz_path) -> str:
  """`SCORES.npz` -> `SCORES.csv`."""
  return pipeline.csv_path_for(npz_path)


def save_scores(scores: Scores, npz_path, overwrite: bool = False) -> str:
  """Writes `scores` as `npz_path` and its CSV beside it, atomically.

  Args:
    scores: `Scores`.
    npz_path: the .npz destination.
    overwrite: replace an existing file made with other arguments (or another
      method).

  Returns:
    The CSV's path.

  Raises:
    ArgumentsMismatchError: if `npz_path` exists, was made with other
      arguments or by another method, and `overwrite` is False.
    OSError: if a file cannot be written.
  """
  npz_path = str(npz_path)
  check_stored_arguments(npz_path, scores, overwrite)
  return pipeline.write_npz_and_csv(npz_path, scores.arrays(),
                                    scores.csv_text())


def check_stored_arguments(npz_path, scores: Scores, overwrite: bool = False):
  """Refuses to replace a score file of other arguments or another method.

  The method is compared with the arguments: it is stored under
  `args_json`'s key "method" only when the args hold one, so it is compared
  here from the file's `method` key.
  """
  npz_path = str(npz_path)
  pipeline.check_stored_arguments(npz_path, scores.args, overwrite=overwrite,
                                  what="scores")
  if overwrite:
    return
  try:
    with npz_io.load_npz(npz_path) as npz:
      previous = str(npz["method"]) if "method" in npz.files else None
  except FileNotFoundError:
    return
  if previous != scores.method:
    raise errors.ArgumentsMismatchError(
        "{}: exists and holds scores of method {!r}, not {!r}; choose another "
        "output or overwrite it (--overwrite)".format(npz_path, previous,
                                                      scores.method))


def _scalar_str(path, arrays, key):
  value = arrays[key]
  if value.shape != () or value.dtype.kind != "U":
    _fail(path, key, "a str scalar", "{} {}".format(value.dtype, value.shape))
  return str(value)


def is_score_file(path) -> bool:
  """Whether `path` is an .npz with a score file's `method` and `values` keys."""
  try:
    with npz_io.load_npz(str(path)) as npz:
      return "method" in npz.files and "values" in npz.files
  except (OSError, ValueError, EOFError):
    return False


def read_scores(path) -> Scores:
  """Reads and validates a score file.

  Args:
    path: the .npz (local or `tf.io.gfile` URL).

  Returns:
    `Scores`.

  Raises:
    ScoreFileError: for a missing or unreadable file, a missing key, a key of
      the wrong dtype or shape, arrays of different lengths, negative or
      repeated ids, negative standard errors or run counts, or `args_json`
      that is not a JSON object.
  """
  path = str(path)
  try:
    with npz_io.load_npz(path) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except FileNotFoundError:
    raise ScoreFileError("{}: no such file".format(path)) from None
  except (OSError, ValueError, EOFError) as e:
    raise ScoreFileError(
        "{}: expected a score file (.npz without pickled objects), found an "
        "unreadable file ({})".format(path, e)) from None
  missing = [k for k in REQUIRED_KEYS if k not in arrays]
  if missing:
    _fail(path, missing[0], "a key of every score file ({})".format(
        ", ".join(REQUIRED_KEYS)), "keys {}".format(sorted(arrays)))
  method = _scalar_str(path, arrays, "method")
  if not method:
    _fail(path, "method", "a non-empty method name", "''")
  args_text = _scalar_str(path, arrays, "args_json")
  try:
    args = json.loads(args_text)
  except ValueError as e:
    _fail(path, "args_json", "JSON text", "{!r} ({})".format(args_text[:80], e))
  if not isinstance(args, dict):
    _fail(path, "args_json", "a JSON object", type(args).__name__)
  extras = {k: v for k, v in arrays.items() if k not in REQUIRED_KEYS}
  _check_arrays(path, arrays["index"], arrays["values"], arrays["se"],
                arrays["num_runs"], extras)
  return Scores(index=arrays["index"], values=arrays["values"],
                se=arrays["se"], num_runs=arrays["num_runs"], method=method,
                args=args, extras=extras)


def average_over_runs(per_run: Sequence[Tuple[np.ndarray, np.ndarray]],
                      method: str, args: Optional[Mapping[str, object]] = None,
                      extras: Optional[Mapping[str, np.ndarray]] = None,
                      index: Optional[np.ndarray] = None) -> Scores:
  """Mean over runs of per-example values, with its standard error.

  An example's value is the mean of its finite values over the runs that
  scored it; `se` = sample standard deviation (ddof=1) / sqrt(m) over those m
  runs, NaN for m < 2; `num_runs` = m; values of examples no run scored are
  NaN.

  Args:
    per_run: [(ids [k] int, values [k] float)] per run; ids distinct within a
      run. Non-finite values are not averaged (not counted in m).
    method: the method's name.
    args: the arguments.
    extras: further per-example arrays, aligned with the result's `index`.
    index: the example ids of the result (default: every id some run has).

  Returns:
    `Scores`.
  """
  ids = [np.asarray(i, np.int64) for i, _ in per_run]
  vals = [np.asarray(v, np.float64) for _, v in per_run]
  for r, (i, v) in enumerate(zip(ids, vals)):
    if i.shape != v.shape or i.ndim != 1:
      raise ValueError("run {}: ids and values must be 1-D of one length, got "
                       "{} and {}".format(r, i.shape, v.shape))
    _check_index(i, "run {}".format(r))
  if index is None:
    index = (np.unique(np.concatenate(ids)) if ids
             else np.zeros(0, np.int64))
  index = np.asarray(index, np.int64)
  order = np.argsort(index)
  sorted_index = index[order]
  total = np.zeros(len(index))
  total_sq = np.zeros(len(index))
  count = np.zeros(len(index), np.int64)
  for r, (i, v) in enumerate(zip(ids, vals)):
    pos = np.searchsorted(sorted_index, i)
    pos_c = np.minimum(pos, max(len(index) - 1, 0))
    if len(i) and not (sorted_index[pos_c] == i).all():
      raise ValueError("run {}: example id {} is not in `index`".format(
          r, int(i[sorted_index[pos_c] != i][0])))
    keep = np.isfinite(v)
    at = order[pos_c[keep]]
    total[at] += v[keep]
    count[at] += 1
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = total / count
  for i, v in zip(ids, vals):
    pos = order[np.searchsorted(sorted_index, i)]
    keep = np.isfinite(v)
    total_sq[pos[keep]] += (v[keep] - mean[pos[keep]]) ** 2
  with np.errstate(invalid="ignore", divide="ignore"):
    se = np.sqrt(total_sq / (count - 1) / count)
  se[count < 2] = np.nan
  mean[count == 0] = np.nan
  return Scores(index=index, values=mean, se=se, num_runs=count,
                method=method, args=dict(args or {}), extras=dict(extras or {}))
