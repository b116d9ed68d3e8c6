"""Writes the requirements the virtualenv installs: CPU TensorFlow, or GPU on request.

requirements.txt pins `tensorflow-cpu==X`. With the switch `HELDOUT_GPU=1`
the virtualenv rule (venv.bzl) installs `tensorflow[and-cuda]==X` instead:
the same pinned version, with the CUDA libraries from PyPI. Unset, empty or
`0` keeps the CPU build; any other value is refused.

The rule runs this file with the host Python before pip, so it uses the
standard library only:

  python3 select_requirements.py REQUIREMENTS OUTPUT [HELDOUT_GPU value]
"""

import re
import sys

SWITCH = "HELDOUT_GPU"

_CPU_LINE_RE = re.compile(
    r"^\s*tensorflow[-_.]cpu\s*==\s*(?P<version>[^\s;#]+)\s*(?P<rest>(;[^#]*)?(#.*)?)$",
    re.IGNORECASE)
_CPU_NAME_RE = re.compile(r"^\s*tensorflow[-_.]cpu\b", re.IGNORECASE)


class SelectionError(ValueError):
  """The switch's value or requirements.txt does not allow a selection."""


def parse_switch(value):
  """Whether `HELDOUT_GPU=value` asks for the GPU build.

  Args:
    value: the variable's value, or None when it is unset.

  Returns:
    True for "1", False for None, "" or "0" (surrounding blanks ignored).

  Raises:
    SelectionError: for any other value.
  """
  if value is None or value.strip() in ("", "0"):
    return False
  if value.strip() == "1":
    return True
  raise SelectionError(
      "{}={!r} is not understood: use {}=1 for the GPU build "
      "(tensorflow[and-cuda]), or leave it unset (or 0) for the CPU build".format(
          SWITCH, value, SWITCH))


def select_requirements(text, gpu):
  """The effective requirements: `text` as is, or with TensorFlow for GPUs.

  Args:
    text: the contents of requirements.txt.
    gpu: whether to swap `tensorflow-cpu==X` for `tensorflow[and-cuda]==X`.

  Returns:
    The requirements to install, ending with a newline.

  Raises:
    SelectionError: if `gpu` and there is not exactly one pinned
      `tensorflow-cpu==X` line to replace.
  """
  lines = text.splitlines()
  if not gpu:
    return "\n".join(lines) + "\n"
  pinned = [i for i, line in enumerate(lines) if _CPU_LINE_RE.match(line)]
  named = [i for i, line in enumerate(lines) if _CPU_NAME_RE.match(line)]
  if len(named) != 1 or pinned != named:
    found = [lines[i].strip() for i in named]
    raise SelectionError(
        "{}=1 replaces the one `tensorflow-cpu==VERSION` line of requirements.txt "
        "with `tensorflow[and-cuda]==VERSION`, but found {}; pin TensorFlow as "
        "`tensorflow-cpu==VERSION`".format(
            SWITCH, "these tensorflow-cpu lines: {}".format(found) if found else "none"))
  match = _CPU_LINE_RE.match(lines[pinned[0]])
  rest = match.group("rest")
  lines[pinned[0]] = "tensorflow[and-cuda]=={}{}".format(
      match.group("version"), " " + rest if rest else "")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) not in (3, 4):
    print("usage: {} REQUIREMENTS OUTPUT [{} value]".format(argv[0], SWITCH),
          file=sys.stderr)
    return 2
  requirements, output = argv[1], argv[2]
  try:
    gpu = parse_switch(argv[3] if len(argv) == 4 else None)
    with open(requirements) as f:
      selected = select_requirements(f.read(), gpu)
  except SelectionError as e:
    print("error: {}".format(e), file=sys.stderr)
    return 1
  with open(output, "w") as f:
    f.write(selected)
  print("TensorFlow build: {}".format("GPU (tensorflow[and-cuda])" if gpu else "CPU"))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
