"""Where the real CT scans live (../shared/data beside the repository) and the skip rule for them.

A plain module, not a conftest, so every test folder imports the same function
(``from shared_data import shared_file``): pytest puts ``Testing/`` on sys.path via its conftest.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ORGANSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path of a file in ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real CT data not available: {path} is absent (it lives in ../shared/data beside the "
                    "repository; set ORGANSEG_SHARED_DATA to its folder)")
    return path
