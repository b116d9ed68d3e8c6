"""The heldout demo: `python demo.py` is `bazel run //heldout:demo`.

See heldout/demo.py for what it does and its flags.
"""

from heldout import cli
from heldout import demo

if __name__ == "__main__":
  cli.run(demo.main)
