"""One model registry for the Slicer module and the ``organseg`` CLI (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from organseglib.errors import MissingFileError, ModelPackageError
from organseglib.model_package import (ModelCard, find_model_packages, model_search_paths, resolve_model,
                                       save_model_package)
from organseglib.model_registry import ModelRegistry, default_registry_path

REPO = Path(__file__).resolve().parents[2]


def _package(folder: Path) -> Path:
    from organseglib.network import build_network

    folder.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    card = ModelCard(name="tiny-random", width=0.0625, tile_shape=(64, 64, 64), spacing_mm=6.0,
                     training_data="none: random weights (test)")
    return save_model_package(folder, build_network(width=0.0625), card)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return _package(tmp_path_factory.mktemp("models") / "my-retrained")


def test_registry_location_follows_organseg_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORGANSEG_HOME", str(tmp_path / "home"))
    assert default_registry_path() == tmp_path / "home" / "models.json"
    assert ModelRegistry().path == tmp_path / "home" / "models.json"
    monkeypatch.delenv("ORGANSEG_HOME")
    assert default_registry_path() == Path.home() / ".organseg" / "models.json"


def test_register_find_and_skip_vanished_folders(tmp_path, package):
    registry = ModelRegistry(tmp_path / "r" / "models.json")
    assert registry.registered() == [] and registry.find("my-retrained") is None
    other = tmp_path / "a" / "my-retrained"
    other.mkdir(parents=True)
    registry.register(package)
    registry.register(other)
    registry.register(package)  # again: moved last, not duplicated
    assert registry.registered() == [str(other.resolve()), str(package.resolve())]
    assert registry.find("my-retrained") == package.resolve()  # the newest registration wins
    other.rmdir()
    assert registry.registered() == [str(package.resolve())]
    with pytest.raises(MissingFileError, match="no such folder"):
        registry.register(tmp_path / "nowhere")


def test_a_file_that_is_not_a_registry_is_ignored_with_a_warning(tmp_path, caplog):
    path = tmp_path / "models.json"
    for text in ("{not json", json.dumps({"models": "x"}), json.dumps([1, 2])):
        path.write_text(text)
        assert ModelRegistry(path).registered() == []
    assert "not a model registry" in caplog.text or "not a list" in caplog.text


def test_registered_packages_are_searched_after_organseg_models(tmp_path, monkeypatch, package):
    assert resolve_model("demo").name == "demo"
    with pytest.raises(ModelPackageError, match="register it"):
        resolve_model("my-retrained")
    ModelRegistry().register(package)
    assert resolve_model("my-retrained") == package.resolve()
    assert package.resolve() in [p.resolve() for p in find_model_packages()]
    shadow = _package(tmp_path / "extra" / "my-retrained")
    monkeypatch.setenv("ORGANSEG_MODELS", str(tmp_path / "extra"))
    assert model_search_paths()[0] == tmp_path / "extra"
    assert resolve_model("my-retrained") == shadow  # $ORGANSEG_MODELS first, as documented


def test_slicer_registry_is_the_library_registry(tmp_path, package):
    sys.path.insert(0, str(REPO / "OrganSeg"))
    try:
        from OrganSegCommon.model_registry import ModelRegistry as SlicerRegistry
    finally:
        sys.path.remove(str(REPO / "OrganSeg"))
    registry = SlicerRegistry()
    assert isinstance(registry, ModelRegistry) and registry.path == default_registry_path()
    registry.register(package)
    assert ModelRegistry().registered() == [str(package.resolve())]
    labels = dict((path, label) for label, path in registry.available())
    assert labels[str(package.resolve())].endswith("retrained (none: random weights (test))")
    assert len([p for p in labels if Path(p).resolve() == package.resolve()]) == 1  # listed once


@pytest.mark.slow
def test_model_registered_from_slicer_is_found_by_the_segment_command(tmp_path, tiny_abdomen, package):
    """The issue's case: Retrain in Slicer registers; `organseg segment --model NAME` must find it."""
    from organseglib.io import read_labels, write_volume

    ct = write_volume(tiny_abdomen.ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "labels.nii.gz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment")]),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "organseglib", "segment", str(ct), "-o", str(out), "--model", "my-retrained",
               "--device", "cpu", "--network-only", "--organs", "liver", "--progress", "none"]
    before = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert before.returncode == 2 and "neither a folder nor a known package name" in before.stderr
    assert not out.exists()

    sys.path.insert(0, str(REPO / "OrganSeg"))
    try:
        from OrganSegCommon.model_registry import ModelRegistry as SlicerRegistry
    finally:
        sys.path.remove(str(REPO / "OrganSeg"))
    SlicerRegistry().register(package)  # what WorkflowLogic.start_retrain does when retraining ends

    after = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    labels = read_labels(out, reference=tiny_abdomen.ct).array
    assert labels.shape == tiny_abdomen.ct.shape
    # found and run; exit 3 (written, with a warning) when the random weights find no liver
    assert after.returncode == (0 if (labels == 1).any() else 3), after.stderr
