"""Shared fixtures: real CT data from ../shared/data (skipped with a reason when absent) and phantoms."""

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


@pytest.fixture(scope="session")
def tiny_abdomen():
    from organseglib.phantom import make_phantom

    return make_phantom(seed=0, region="abdomen", size="tiny")


@pytest.fixture(scope="session")
def tiny_chest():
    from organseglib.phantom import make_phantom

    return make_phantom(seed=0, region="chest", size="tiny")
