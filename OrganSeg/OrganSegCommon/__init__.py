"""Shared code of the OrganSeg Slicer modules: MRML bridge, child-process runner, workflows.

Run from a source checkout (module path added in Slicer's settings), ``organseglib`` and
``cudaaugment`` are found beside this folder; in a built extension they are installed next to the
scripted modules. ``resource_path`` finds ``.ui`` files and icons in either layout.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def add_source_packages() -> None:
    """Put a source checkout's ``OrganSegLib`` / ``CUDAAugment`` on ``sys.path`` when the packages
    are not installed (no-op in a built extension)."""
    for package, folder in (("organseglib", "OrganSegLib"), ("cudaaugment", "CUDAAugment")):
        candidate = SOURCE_ROOT / folder
        if importlib.util.find_spec(package) is None and (candidate / package).is_dir():
            sys.path.insert(0, str(candidate))


def resource_path(module_dir: str, relative: str) -> str:
    """``<module>/Resources/<relative>`` in a build, ``<repo>/Resources/<relative>`` in a source tree."""
    candidates = [Path(module_dir) / "Resources" / relative, SOURCE_ROOT / "Resources" / relative]
    for path in candidates:
        if path.exists():
            return str(path)
    raise FileNotFoundError(f"OrganSeg resource {relative!r} not found in {[str(p) for p in candidates]}")


add_source_packages()
