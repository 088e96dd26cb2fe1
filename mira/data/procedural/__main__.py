"""``python -m mira.data.procedural``: see :mod:`mira.data.procedural.cli`."""

import sys

from mira.data.procedural.cli import main

if __name__ == "__main__":
    sys.exit(main())
