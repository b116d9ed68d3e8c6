"""Tests for heldout.cli: path resolution and one-line user errors."""

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import tensorflow as tf

from heldout import cli
from heldout import errors
from heldout.data import registry as data_registry

_WORKDIR = "/home/user/project"


def _with_workdir(workdir):
  env = dict(os.environ)
  env.pop("BUILD_WORKING_DIRECTORY", None)
  if workdir is not None:
    env["BUILD_WORKING_DIRECTORY"] = workdir
  return mock.patch.dict(os.environ, env, clear=True)


class ResolvePathTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("none", None, None),
      ("empty", "", ""),
      ("relative", "out/est.npz", _WORKDIR + "/out/est.npz"),
      ("dot", "./x.npz", _WORKDIR + "/./x.npz"),
      ("parent", "../x", _WORKDIR + "/../x"),
      ("absolute", "/data/x.npz", "/data/x.npz"),
      ("gs_url", "gs://bucket/exp/x.npz", "gs://bucket/exp/x.npz"),
      ("http_url", "http://127.0.0.1:8000/a", "http://127.0.0.1:8000/a"),
  )
  def test_under_bazel_run(self, path, expected):
    with _with_workdir(_WORKDIR):
      self.assertEqual(cli.resolve_path(path), expected)

  @parameterized.named_parameters(
      ("relative", "out/est.npz", "out/est.npz"),
      ("absolute", "/data/x.npz", "/data/x.npz"),
      ("url", "gs://b/x", "gs://b/x"),
      ("none", None, None),
  )
  def test_without_bazel_run(self, path, expected):
    # Run directly, the current directory is the user's: nothing is joined.
    with _with_workdir(None):
      self.assertEqual(cli.resolve_path(path), expected)

  def test_home(self):
    with _with_workdir(_WORKDIR), mock.patch.dict(os.environ,
                                                  {"HOME": "/home/me"}):
      self.assertEqual(cli.resolve_path("~/data/x.npz"), "/home/me/data/x.npz")


class ResolveDatasetNameTest(parameterized.TestCase):

  def test_prefix_matches_registry(self):
    self.assertEqual(cli.NPZ_PREFIX, data_registry.NPZ_PREFIX)

  @parameterized.named_parameters(
      ("digits", "digits", "digits"),
      ("tfds", "cifar10:3.0.2", "cifar10:3.0.2"),
      ("npz_relative", "npz:data/d.npz", "npz:" + _WORKDIR + "/data/d.npz"),
      ("npz_absolute", "npz:/data/d.npz", "npz:/data/d.npz"),
      ("npz_url", "npz:gs://bucket/x.npz", "npz:gs://bucket/x.npz"),
      ("npz_empty", "npz:", "npz:"),
      ("none", None, None),
  )
  def test_names(self, name, expected):
    with _with_workdir(_WORKDIR):
      self.assertEqual(cli.resolve_dataset_name(name), expected)


class ErrorLineTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("plain", ValueError("bad value"), "error: bad value"),
      ("multi_line", errors.AuxArraysError("a.npz: key `x`:\n  expected 3,\n"
                                           "\tfound 4\n"),
       "error: a.npz: key `x`: expected 3, found 4"),
      ("empty", OSError(), "error: OSError"),
      ("blank", ValueError("  \n "), "error: ValueError"),
      ("prefixed", ValueError("error: once"), "error: once"),
      ("errno", FileNotFoundError(2, "No such file or directory", "x.npz"),
       "error: [Errno 2] No such file or directory: 'x.npz'"),
  )
  def test_one_line(self, exc, expected):
    self.assertEqual(cli.error_line(exc), expected)


def _raise(exc):
  raise exc


class GuardTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("heldout", errors.RunNotFoundError("run/: no\ncheckpoint"),
       "error: run/: no checkpoint"),
      ("value", ValueError("`top_k` must be positive, got 0"),
       "error: `top_k` must be positive, got 0"),
      ("os", FileNotFoundError("x.npz: no such file"),
       "error: x.npz: no such file"),
      ("io", IOError("disk full"), "error: disk full"),
      ("tf_op", tf.errors.NotFoundError(None, None, "gs://b/x; not\nfound"),
       "error: gs://b/x; not found"),
  )
  def test_user_errors_exit_1_with_one_line(self, exc, expected):
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
      with self.assertRaises(SystemExit) as caught:
        with cli.guard():
          _raise(exc)
    self.assertEqual(caught.exception.code, 1)
    self.assertEqual(stderr.getvalue(), expected + "\n")
    self.assertEqual(stdout.getvalue(), "")

  @parameterized.named_parameters(
      ("interrupt", KeyboardInterrupt()),
      ("bug", KeyError("x")),
      ("exit", SystemExit(3)),
  )
  def test_others_pass_through(self, exc):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
      with self.assertRaises(type(exc)):
        with cli.guard():
          _raise(exc)
    self.assertEqual(stderr.getvalue(), "")

  def test_no_error_no_output(self):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
      with cli.guard():
        value = 3
    self.assertEqual(value, 3)
    self.assertEqual(stderr.getvalue(), "")


class ExitStatusTest(absltest.TestCase):

  def test_returns_status(self):
    @cli.exit_status
    def main(argv):
      """Doc."""
      if argv[1:] == ["fail"]:
        raise errors.ExperimentError("no runs\nin exp/")
      if argv[1:] == ["interrupt"]:
        raise KeyboardInterrupt
      return None if argv[1:] == ["none"] else 0

    self.assertEqual(main.__doc__, "Doc.")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
      self.assertEqual(main(["prog"]), 0)
      self.assertIsNone(main(["prog", "none"]))
      self.assertEqual(stderr.getvalue(), "")
      self.assertEqual(main(["prog", "fail"]), 1)
      self.assertEqual(stderr.getvalue(), "error: no runs in exp/\n")
      with self.assertRaises(KeyboardInterrupt):
        main(["prog", "interrupt"])


class FlagChecksTest(absltest.TestCase):

  def test_check_no_arguments(self):
    cli.check_no_arguments(["prog"])
    with self.assertRaisesRegex(ValueError, "unexpected arguments: a b"):
      cli.check_no_arguments(["prog", "a", "b"])

  def test_require_flags(self):
    cli.require_flags(a="x", b=0)
    with self.assertRaisesRegex(ValueError, "^--a is required$"):
      cli.require_flags(a=None, b="y")
    with self.assertRaisesRegex(ValueError, "^--a, --c are required$"):
      cli.require_flags(a="", b="y", c=None)


class RunTest(absltest.TestCase):
  """`cli.run` in a fresh interpreter, as a binary's `__main__` uses it."""

  def _run(self, body):
    script = os.path.join(self.create_tempdir().full_path, "prog.py")
    with open(script, "w") as f:
      f.write(textwrap.dedent("""\
          from heldout import cli
          from heldout import errors

          def main(argv):
          """) + textwrap.indent(textwrap.dedent(body), "  ") +
              "\n\ncli.run(main)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, script], capture_output=True,
                          text=True, env=env, timeout=120, check=False)

  def test_user_error_is_one_line(self):
    result = self._run("""\
        print("started")
        raise errors.CheckpointMismatchError("run/ does not fit\\n  mlp")
        """)
    self.assertEqual(result.returncode, 1, result.stderr)
    self.assertEqual(result.stdout, "started\n")
    self.assertEqual(result.stderr, "error: run/ does not fit mlp\n")

  def test_success_and_bug(self):
    result = self._run("print('ok')")
    self.assertEqual((result.returncode, result.stdout), (0, "ok\n"),
                     result.stderr)
    result = self._run("raise KeyError('bug')")
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("Traceback", result.stderr)
    self.assertIn("KeyError: 'bug'", result.stderr)

  def test_bad_flags_are_one_line_naming_the_flag(self):
    script = os.path.join(self.create_tempdir().full_path, "prog.py")
    with open(script, "w") as f:
      f.write(textwrap.dedent("""\
          from absl import flags
          from heldout import cli

          flags.DEFINE_enum("influence", "topk", ["dense", "topk"], "mode")
          flags.DEFINE_string("experiment_dir", None, "folder")

          def main(argv):
            print("ran")

          cli.run(main)
          """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for argv, expected in (
        (["--influence=bogus"],
         "error: flag --influence=bogus: value should be one of "
         "<dense|topk>\n"),
        (["--experment_dir=x"],
         "error: unknown flag --experment_dir (did you mean "
         "--experiment_dir?); --helpshort lists the flags\n"),
        (["--zzzzzz=1"],
         "error: unknown flag --zzzzzz; --helpshort lists the flags\n")):
      result = subprocess.run([sys.executable, script] + argv,
                              capture_output=True, text=True, env=env,
                              timeout=120, check=False)
      self.assertEqual((result.returncode, result.stdout, result.stderr),
                       (1, "", expected))


if __name__ == "__main__":
  absltest.main()
