"""A repository rule that builds a Python virtualenv from requirements.txt.

The virtualenv lives in Bazel's external directory and is registered as the
Python toolchain, so `bazel test //...` on a fresh machine installs the
project's Python dependencies itself. Bazel re-runs this rule (rebuilding the
environment) whenever requirements.txt, this file, or one of the environment
variables in `environ` changes; otherwise the environment is reused as is.

TensorFlow: requirements.txt pins `tensorflow-cpu==X`, which is installed by
default. With `HELDOUT_GPU=1` in the environment of the `bazel` command, the
rule installs `tensorflow[and-cuda]==X` (same version, CUDA libraries from
PyPI) instead; select_requirements.py makes that choice, writes the effective
requirements to `requirements.effective.txt` in the repository, and pip
installs those. Changing HELDOUT_GPU rebuilds the environment.

pip runs as it would from the shell, so the machine's pip configuration
(/etc/pip.conf, /etc/xdg/pip, PIP_* variables, proxies, local wheel folders)
is honoured.
"""

_PY_RUNTIME_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{interpreter}",
    python_version = "PY3",
    # The second line names the installed package set, so binaries and test
    # results built against another environment are not reused from cache.
    stub_shebang = "#!/usr/bin/env python3\\n# python_venv packages: {packages_hash}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "python_toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)

exports_files(["requirements.lock"])
"""

def _run(ctx, args, what, timeout = 3600, quiet = True):
    result = ctx.execute(args, timeout = timeout, quiet = quiet)
    if result.return_code != 0:
        fail("python_venv: {} failed (exit {}).\\ncommand: {}\\nstdout:\\n{}\\nstderr:\\n{}".format(
            what,
            result.return_code,
            " ".join([str(a) for a in args]),
            result.stdout[-4000:],
            result.stderr[-4000:],
        ))
    return result

def _python_venv_impl(ctx):
    requirements = ctx.path(ctx.attr.requirements)
    wanted = ctx.os.environ.get("HELDOUT_PYTHON", ctx.attr.python)
    python = ctx.which(wanted)
    if python == None:
        fail("python_venv: no `{}` on PATH; install python3 or set HELDOUT_PYTHON.".format(wanted))

    # Resolve shims (pyenv) to the real interpreter so the venv does not
    # depend on the shell that started Bazel.
    real = _run(ctx, [python, "-c", "import sys; print(sys.executable)"], "finding the Python interpreter").stdout.strip()
    if ctx.execute([real, "-c", "import ensurepip, venv"]).return_code != 0:
        fail("python_venv: {} cannot create virtualenvs (no venv/ensurepip module); ".format(real) +
             "on Debian/Ubuntu: apt-get install python3-venv")

    gpu_switch = ctx.os.environ.get("HELDOUT_GPU")
    ctx.report_progress("selecting requirements (HELDOUT_GPU={})".format(gpu_switch or ""))
    selected = ctx.path("requirements.effective.txt")
    select_args = [real, ctx.path(ctx.attr._select_requirements), requirements, selected]
    if gpu_switch != None:
        select_args.append(gpu_switch)
    selection = ctx.execute(select_args, quiet = True)
    if selection.return_code != 0:
        fail("python_venv: cannot select the requirements to install:\n{}{}".format(
            selection.stderr,
            selection.stdout,
        ))

    ctx.report_progress("creating virtualenv")
    _run(ctx, [real, "-m", "venv", "--clear", "venv"], "creating the virtualenv")
    venv_python = ctx.path("venv/bin/python3")

    ctx.report_progress("pip install -r requirements.txt (first build only; several minutes)")
    _run(
        ctx,
        [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "-r", selected],
        "pip install -r {} ({}: requirements.txt for HELDOUT_GPU={})".format(
            selected,
            selection.stdout.strip(),
            gpu_switch or "",
        ),
        quiet = False,
    )
    lock = _run(ctx, [venv_python, "-m", "pip", "freeze"], "pip freeze").stdout
    ctx.file("requirements.lock", lock)
    ctx.file("BUILD.bazel", _PY_RUNTIME_BUILD.format(
        interpreter = str(venv_python),
        packages_hash = hash(lock),
    ))
    ctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(ctx.name))

python_venv = repository_rule(
    implementation = _python_venv_impl,
    attrs = {
        "requirements": attr.label(allow_single_file = True, mandatory = True),
        "python": attr.string(default = "python3"),
        "_select_requirements": attr.label(
            default = Label("//third_party/python:select_requirements.py"),
            allow_single_file = True,
        ),
    },
    environ = [
        "HELDOUT_GPU",
        "HELDOUT_PYTHON",
        "PIP_CONFIG_FILE",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_CONSTRAINT",
        "HTTPS_PROXY",
        "HTTP_PROXY",
    ],
)
