"""What every binary of the toolkit does the same way: paths and user errors.

Paths. `bazel run` starts a binary inside its runfiles, not where the user
typed the command; it passes that directory as `BUILD_WORKING_DIRECTORY`.
`resolve_path` joins relative paths to it, and leaves URLs (`gs://...`),
absolute paths and empty values alone; `resolve_dataset_name` does the same
to the path inside `npz:<path>`.

Errors. A user error (a missing file, a malformed input, a bad flag value)
ends a binary with exactly one line `error: ...` on stderr and exit status 1,
no traceback. User errors are the toolkit's `HeldoutError`s, `ValueError`,
`OSError` (`IOError`) and TensorFlow's `tf.errors.OpError`; anything else (a
`KeyError`, a `KeyboardInterrupt`) is a bug or the user's interrupt and keeps
its traceback. Three ways to get this:

    if __name__ == "__main__":
      cli.run(main)                     # app.run(main), errors as one line

    @cli.exit_status                    # main returns 1 instead of raising,
    def main(argv): ...                 # for callers that read the status

    with cli.guard():                   # one block; exits 1 on a user error
      ...

A command line absl cannot parse (an unknown or misspelled flag, a value
not of the flag's type or not one of its choices) is a user error too, when
the binary starts with `cli.run`: one line naming the flag.

Run with `--v=1` to log the traceback of a user error as well.
"""

import contextlib
import difflib
import functools
import os
import sys
from typing import Callable, Optional

from absl import app
from absl import flags
from absl import logging

from heldout import errors

EXIT_USER_ERROR = 1
NPZ_PREFIX = "npz:"  # As heldout.data.registry.NPZ_PREFIX.
_URL_MARKER = "://"


def resolve_path(path: Optional[str]) -> Optional[str]:
  """A path flag as the user meant it.

  Args:
    path: a path flag's value: None or "" (unset), a URL (anything with
      "://", e.g. `gs://bucket/x`), an absolute path, a `~` path, or a path
      relative to where the user started the binary.

  Returns:
    None and "" unchanged; URLs and absolute paths unchanged; `~/x` expanded
    to the home directory; a relative path joined to
    `BUILD_WORKING_DIRECTORY` when that is set (under `bazel run`), else
    unchanged (relative to the current directory, which is then the user's).
  """
  if not path or _URL_MARKER in path:
    return path
  if path.startswith("~"):
    return os.path.expanduser(path)
  if os.path.isabs(path):
    return path
  base = os.environ.get("BUILD_WORKING_DIRECTORY")
  return os.path.join(base, path) if base else path


def resolve_dataset_name(name: Optional[str]) -> Optional[str]:
  """A `--dataset` flag with the path of `npz:<path>` resolved.

  Args:
    name: a dataset name: "digits", "cifar10:3.0.2", ... (unchanged) or
      `npz:<path>`, whose path is resolved as by `resolve_path`.

  Returns:
    The name, with `npz:<resolved path>` for npz datasets ("npz:" alone is
    left for the dataset registry to reject).
  """
  if not name or not name.startswith(NPZ_PREFIX):
    return name
  return NPZ_PREFIX + resolve_path(name[len(NPZ_PREFIX):])


def error_line(exc: BaseException) -> str:
  """The one line a binary prints for a user error.

  Args:
    exc: the exception.

  Returns:
    "error: <message>", the message's whitespace (newlines, tabs, runs of
    spaces) collapsed to single spaces; the exception's type name when its
    message is empty.
  """
  message = " ".join(str(exc).split()) or type(exc).__name__
  if message.startswith("error: "):
    message = message[len("error: "):]
  return "error: " + message


def _user_error_types():
  types = (errors.HeldoutError, ValueError, OSError)
  # A tf.errors.OpError can only come from TensorFlow once it is imported;
  # looking it up there keeps this module free of a TensorFlow import.
  tf = sys.modules.get("tensorflow")
  op_error = getattr(getattr(tf, "errors", None), "OpError", None)
  if isinstance(op_error, type):
    types += (op_error,)
  return types


def is_user_error(exc: BaseException) -> bool:
  """Whether `exc` is reported as one line (see the module docstring)."""
  return isinstance(exc, _user_error_types())


def report(exc: BaseException) -> int:
  """Prints `error_line(exc)` to stderr; returns the exit status, 1."""
  logging.debug("user error", exc_info=exc)
  print(error_line(exc), file=sys.stderr, flush=True)
  return EXIT_USER_ERROR


@contextlib.contextmanager
def guard():
  """A block whose user errors end the program with one line and status 1.

  Yields:
    Nothing.

  Raises:
    SystemExit: with code 1, after printing `error_line` to stderr, when the
      block raises a user error. Other exceptions pass unchanged.
  """
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    if not is_user_error(e):
      raise
    sys.exit(report(e))


def exit_status(main_fn: Callable[..., Optional[int]]) -> Callable[..., int]:
  """Decorates a binary's `main(argv)` to return 1 on a user error.

  The decorated function prints `error_line` to stderr and returns 1 instead
  of raising a user error; otherwise it returns what `main_fn` returns.
  `app.run` exits with that status, and tests calling `main` in-process read
  it.

  Args:
    main_fn: the binary's main function.

  Returns:
    The decorated function.
  """
  @functools.wraps(main_fn)
  def wrapped(*args, **kwargs):
    try:
      return main_fn(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
      if not is_user_error(e):
        raise
      return report(e)
  return wrapped


def flag_error_line(exc: BaseException, known_flags=()) -> str:
  """The one line a binary prints for a command line absl cannot parse.

  Args:
    exc: the `flags.Error` absl raised: an unknown flag, a bad value.
    known_flags: the names of the binary's flags, for suggestions.

  Returns:
    "error: ..." naming the flag as the user typed it, `--name`: an unknown
    one with its closest known names, a bad value with what was expected.
  """
  if isinstance(exc, flags.UnrecognizedFlagError):
    name = exc.flagname
    close = difflib.get_close_matches(name, list(known_flags), n=3)
    return "error: unknown flag --{}{}; --helpshort lists the flags".format(
        name, " (did you mean {}?)".format(
            " or ".join("--" + c for c in close)) if close else "")
  return error_line(exc)


def parse_flags(argv):
  """`app.run`'s flag parser, with a bad command line as one `error:` line.

  Args:
    argv: the command line, the program name first.

  Returns:
    The arguments left after the flags, the program name first.

  Raises:
    SystemExit: with status 1 after printing `flag_error_line` to stderr,
      when absl cannot parse a flag (unknown name, malformed value).
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(flag_error_line(e, flags.FLAGS), file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def run(main_fn: Callable[..., Optional[int]]) -> None:
  """`app.run(main_fn)` with user errors (bad flags included) as one line and
  exit status 1."""
  app.run(exit_status(main_fn), flags_parser=parse_flags)


def calling_module_name(depth: int = 2) -> str:
  """The module `depth` frames up, as absl names it (the main script by its
  path): for a flag-defining helper, whose flags should be listed among the
  binary's own in `--help` (`module_name=` of `flags.DEFINE_*`)."""
  name = sys._getframe(depth).f_globals.get("__name__")  # pylint: disable=protected-access
  return sys.argv[0] if name == "__main__" else name


def check_no_arguments(argv) -> None:
  """Raises ValueError if positional arguments follow the program name.

  Args:
    argv: `main`'s argv, the program name first.

  Raises:
    ValueError: naming the unexpected arguments.
  """
  if len(argv) > 1:
    raise ValueError("unexpected arguments: {} (flags are written "
                     "--name=value)".format(" ".join(argv[1:])))


def require_flags(**values) -> None:
  """Raises ValueError naming every required flag left unset.

  Args:
    **values: flag name -> value; None and "" are unset.

  Raises:
    ValueError: "--a, --b are required" for the unset ones.
  """
  missing = ["--" + name for name, value in values.items()
             if value is None or value == ""]
  if missing:
    raise ValueError("{} {} required".format(
        ", ".join(missing), "is" if len(missing) == 1 else "are"))
