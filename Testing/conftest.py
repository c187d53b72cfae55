"""Shared fixtures: real CT data from ../shared/data (skipped with a reason when absent) and phantoms."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared_data.py, importable from every folder


@pytest.fixture(autouse=True)
def _private_organseg_home(tmp_path_factory, monkeypatch):
    """Every test (and the child processes it starts) gets an empty ``$ORGANSEG_HOME``: the user's
    model registry is never read nor written by the suite."""
    monkeypatch.setenv("ORGANSEG_HOME", str(tmp_path_factory.mktemp("organseg-home")))


@pytest.fixture(scope="session")
def tiny_abdomen():
    from organseglib.phantom import make_phantom

    return make_phantom(seed=0, region="abdomen", size="tiny")


@pytest.fixture(scope="session")
def tiny_chest():
    from organseglib.phantom import make_phantom

    return make_phantom(seed=0, region="chest", size="tiny")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A model package of random weights at width 0.0625 on a 6 mm grid (fast; finds nothing)."""
    import torch

    from organseglib.model_package import ModelCard, save_model_package
    from organseglib.network import build_network

    torch.manual_seed(0)
    card = ModelCard(name="tiny-random", width=0.0625, tile_shape=(64, 64, 64), spacing_mm=6.0,
                     training_data="none: random weights (test)")
    return save_model_package(tmp_path_factory.mktemp("model") / "tiny-random", build_network(width=0.0625), card)
