"""``python -m organseglib ...`` runs the ``organseg`` command (used by the Slicer GUI's child process)."""

import sys

from .cli import main

sys.exit(main())
