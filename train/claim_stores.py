"""Where run claims live: a file system with an exclusive create.

A claim store holds the claim files of `train.claims.RunClaims`. It needs
what a plain read/write interface (`tf.io.gfile`) does not offer: a create
that fails when the file exists, so two workers never both claim a run.

* `LocalClaimStore`: local and shared POSIX file systems (NFS, Lustre,
  GPFS): `O_CREAT | O_EXCL`; a stale claim is taken over by writing a file
  beside it and renaming it over (the last rename wins; the taker reads it
  back after `settle_s`).

`for_path` picks the store of an output folder.
"""

import dataclasses
import os
import uuid
from typing import List, Optional


@dataclasses.dataclass(frozen=True)
class StoredClaim:
  """A claim file as stored.

  Attributes:
    text: its content.
    mtime: seconds since the epoch of its last write or refresh.
    version: what `replace`, `refresh` and `delete` compare against (opaque;
      None where the store has no versions).
  """
  text: str
  mtime: float
  version: object = None


class LocalClaimStore:
  """Claims on a local or shared POSIX file system."""

  # Several takers may rename over a stale claim at once; each reads back
  # which one won after this long.
  settle_s = 1.0

  def create(self, path, text) -> bool:
    """Creates `path` holding `text` if it does not exist; True if it did not."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(text)
    return True

  def read(self, path) -> Optional[StoredClaim]:
    """The claim at `path`, or None."""
    try:
      mtime = os.path.getmtime(path)
      with open(path) as f:
        text = f.read()
    except FileNotFoundError:
      return None
    return StoredClaim(text=text, mtime=mtime)

  def replace(self, path, text, version) -> bool:  # pylint: disable=unused-argument
    """Writes `text` over the claim at `path` (the last writer wins: read it
    back after `settle_s`)."""
    mine = "{}.{}".format(path, uuid.uuid4().hex[:12])
    with open(mine, "w") as f:
      f.write(text)
    os.replace(mine, path)
    return True

  def refresh(self, path, text, version) -> bool:  # pylint: disable=unused-argument
    """Marks the claim alive now (our `text` at `version`); False if gone."""
    try:
      os.utime(path)
    except FileNotFoundError:
      return False
    return True

  def delete(self, path, version) -> None:  # pylint: disable=unused-argument
    try:
      os.remove(path)
    except FileNotFoundError:
      pass

  def list(self, folder) -> List[str]:
    """Names of the files in `folder` ([] if it does not exist)."""
    try:
      return sorted(os.listdir(folder))
    except FileNotFoundError:
      return []


def for_path(path):
  """The claim store for the output folder `path`.

  Raises:
    ValueError: for a URL scheme without an exclusive create.
  """
  path = str(path)
  if "://" not in path:
    return LocalClaimStore()
  scheme = path.split("://", 1)[0]
  raise ValueError(
      "{}: run claims need a store with an exclusive create (a local or "
      "shared file system); {}:// has none here. Pass --noclaims and give "
      "each worker a disjoint range of runs".format(path, scheme))
