"""How the end-to-end tests start the project's binaries, as a user would.

Under `bazel test` a binary is the built target in the test's runfiles (list
it in the test's `data`; a missing one fails the test, naming it); run by hand
(`python tests/foo_e2e_test.py`) it is the source file with this Python and
the repository on PYTHONPATH.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(target, source):
  """The command line that runs a binary.

  Args:
    target: the binary's package path and name, e.g. "heldout/predict" for
      `//heldout:predict`.
    source: its main file relative to the repository, e.g.
      "heldout/predict.py".

  Returns:
    A list of strings for `subprocess.run`.

  Raises:
    AssertionError: under Bazel (TEST_SRCDIR set), if the binary is not in
      the runfiles: the test lacks it in its `data`. Running the source file
      instead would test something other than the built target.
  """
  srcdir = os.environ.get("TEST_SRCDIR")
  if srcdir:
    path = os.path.join(srcdir, os.environ.get("TEST_WORKSPACE",
                                               "heldout_toolkit"), target)
    if not os.path.exists(path):
      package, _, name = target.rpartition("/")
      raise AssertionError(
          "{} is not in this test's runfiles; add \"//{}:{}\" to the test's "
          "`data` in its BUILD file".format(path, package, name))
    return [path]
  return [sys.executable, os.path.join(REPO_ROOT, source)]


def environment(working_directory=None):
  """The environment for a binary: quiet TF, `BUILD_WORKING_DIRECTORY` set.

  Args:
    working_directory: what `bazel run` would pass as the user's directory
      (relative flags resolve against it); None to leave it unset.

  Returns:
    A dict for `subprocess.run(env=...)`.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("BUILD_WORKING_DIRECTORY", None)
  if working_directory is not None:
    env["BUILD_WORKING_DIRECTORY"] = working_directory
  if "TEST_SRCDIR" not in os.environ:
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env
