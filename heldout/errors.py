"""Error types of the heldout toolkit.

Every error says what was expected, what was found, and, where it helps, what
to do about it. They derive from ValueError (bad input) or IOError (missing
files) so callers that only know the builtin types still catch them.
"""


class HeldoutError(Exception):
  """Base class of the toolkit's own errors."""


class DatasetError(HeldoutError, ValueError):
  """A dataset file or array set is malformed or lacks what is asked of it."""


class AuxArraysError(HeldoutError, ValueError):
  """An `aux_arrays.npz` file is missing a key or holds inconsistent arrays."""


class CheckpointMismatchError(HeldoutError, ValueError):
  """A checkpoint's variables do not match the module restoring it."""


class RunNotFoundError(HeldoutError, IOError):
  """A run directory lacks the files of a released run."""


class ExperimentError(HeldoutError, ValueError):
  """An experiment directory cannot be used as asked."""


class ArchiveError(HeldoutError, ValueError):
  """A downloaded archive is corrupt, unsafe, or not what was expected."""


class PublishedFormatError(HeldoutError, ValueError):
  """A file of published estimates lacks a key or has the wrong shape."""


class ArgumentsMismatchError(HeldoutError, ValueError):
  """An output already exists and was made with different arguments."""


class ScoreFileError(HeldoutError, ValueError):
  """A per-example score file lacks a key or holds a malformed array."""
