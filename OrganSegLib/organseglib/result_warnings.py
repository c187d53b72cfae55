"""Warnings about a result that was written but needs a look, and the exit status they give.

An empty organ is not an error (a chest CT holds no bladder) but never silent either: each command
prints one ``organseg COMMAND: warning: ...`` line per warning on stderr, puts the same strings in
its JSON done record's ``warnings`` list, and exits with ``errors.EXIT_WARNINGS`` (3) instead of 0.
Restrict ``--organs`` to what the scan covers to get 0.
"""

from __future__ import annotations

import sys
from typing import Iterable, Mapping, Sequence

from .errors import EXIT_OK, EXIT_WARNINGS


def missing_organ_warnings(requested: Sequence[str], volumes_ml: Mapping[str, float]) -> list[str]:
    """One warning per requested organ with no voxel (one line when none of them was found)."""
    missing = [k for k in requested if not volumes_ml.get(k)]
    if not missing:
        return []
    if len(missing) == len(requested) and len(requested) > 1:
        return [f"no organ found: {', '.join(missing)} are all empty; check that the image is a body CT in HU "
                "and that the model suits it"]
    return [f"{key}: not found (0 voxels): not in the field of view, or missed; check the result, or leave it "
            "out of --organs" for key in missing]


def print_warnings(command: str, warnings: Iterable[str]) -> int:
    """Print each warning as one stderr line; the exit status (3 with warnings, else 0)."""
    warnings = list(warnings)
    for text in warnings:
        print(f"organseg {command}: warning: {text}", file=sys.stderr)
    return EXIT_WARNINGS if warnings else EXIT_OK
