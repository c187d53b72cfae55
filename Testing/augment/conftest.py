"""Fixtures of the cudaaugment tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def backend(request, monkeypatch):
    """The backend name of an indirect ``backend`` parameter; "cupy-emulated" installs the CPU
    stand-in for CuPy (fake_cupy.py) for the test and runs the "cupy" backend on it."""
    name = request.param
    if name == "cupy-emulated":
        import fake_cupy

        fake_cupy.install(monkeypatch)
        return "cupy"
    return name
