"""Each stage's artefact: an .npz with the arguments it ran with.

A stage's artefact is written atomically (`heldout.atomic.write_npz`) with
its arguments as `args_json`. `load_or_compute` reuses an artefact that
exists with the same arguments, refuses one made with other arguments
(`ArgumentsMismatchError`, saying what differs and how to overwrite) unless
`overwrite`, and otherwise computes and writes it.
"""

import json
import os
from typing import Callable, Dict, Mapping, Optional

from absl import logging
import numpy as np

from heldout import atomic
from heldout import npz_io
from heldout.estimators import pipeline

ARGS_KEY = "args_json"


def exists(path) -> bool:
  return os.path.exists(str(path))


def save(path, args: Mapping[str, object], arrays: Mapping[str, np.ndarray]):
  """Writes `arrays` and `args` (as `args_json`) to `path`, atomically."""
  arrays = dict(arrays)
  arrays[ARGS_KEY] = np.array(json.dumps(dict(args), sort_keys=True))
  atomic.write_npz(str(path), **arrays)


def load(path) -> Dict[str, np.ndarray]:
  """The arrays of an artefact (without `args_json`)."""
  with npz_io.load_npz(str(path)) as npz:
    return {k: npz[k] for k in npz.files if k != ARGS_KEY}


def load_or_compute(path, args: Mapping[str, object],
                    compute: Callable[[], Mapping[str, np.ndarray]],
                    overwrite: bool = False, what: str = "an artefact"
                    ) -> Dict[str, np.ndarray]:
  """The artefact at `path` made with `args`: reused, or computed and saved.

  Args:
    path: the artefact's .npz, or None to compute without saving.
    args: JSON-able arguments that determine its content.
    compute: returns the arrays when it must be computed.
    overwrite: replace an artefact made with other arguments.
    what: what it holds, for messages ("covariances").

  Returns:
    name -> array.

  Raises:
    ArgumentsMismatchError: if `path` exists, was made with other arguments
      and `overwrite` is False.
  """
  if path is None:
    return dict(compute())
  path = str(path)
  pipeline.check_stored_arguments(path, dict(args), overwrite=overwrite,
                                  what=what)
  if exists(path) and not overwrite:
    logging.info("%s: reusing %s made with the same arguments", path, what)
    return load(path)
  arrays = dict(compute())
  save(path, args, arrays)
  return arrays


def stored_arguments(path) -> Optional[dict]:
  """The `args_json` of an artefact, None if it has none."""
  with npz_io.load_npz(str(path)) as npz:
    if ARGS_KEY not in npz.files:
      return None
    return json.loads(str(npz[ARGS_KEY]))
