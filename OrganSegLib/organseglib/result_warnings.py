"""Warnings about a result that was written but needs a look, and the exit status they give.

An empty organ is not an error (a chest CT holds no bladder) but never silent either: each command
prints one ``organseg COMMAND: warning: ...`` line per warning on stderr, puts the same strings in
its JSON done record's ``warnings`` list, and exits with ``errors.EXIT_WARNINGS`` (3) instead of 0.
Restrict ``--organs`` to what the scan covers to get 0. Which organs are empty or implausible is
``organseglib.plausibility``'s to say (the one owner of those warnings).
"""

from __future__ import annotations

import sys
from typing import Iterable

from .errors import EXIT_OK, EXIT_WARNINGS


def print_warnings(command: str, warnings: Iterable[str]) -> int:
    """Print each warning as one stderr line; the exit status (3 with warnings, else 0)."""
    warnings = list(warnings)
    for text in warnings:
        print(f"organseg {command}: warning: {text}", file=sys.stderr)
    return EXIT_WARNINGS if warnings else EXIT_OK
