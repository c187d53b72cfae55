"""Fixtures for the Slicer-logic suites: real MRML from the PyPI ``slicer-core`` wheel (no Qt).

The headless wheel has no application, so the shims the module code never needs inside Slicer are
built here: the segmentation converter rules Slicer registers at start-up, ``slicer.mrmlScene``
and ``slicer.modules.segmentations/volumes.logic()`` for the ``slicer.util`` segment helpers.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "OrganSeg"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


@pytest.fixture(scope="session")
def slicer_core():
    """The ``slicer`` package of slicer-core with the converter rules registered (skip without it)."""
    slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (pip install slicer-core)")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("the installed 'slicer' package is not slicer-core (no vtkMRMLScene)")
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    return slicer


@pytest.fixture
def scene(slicer_core, monkeypatch):
    """A fresh MRML scene, also installed as ``slicer.mrmlScene`` with ``slicer.modules`` logic shims."""
    slicer = slicer_core
    mrml_scene = slicer.vtkMRMLScene()
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(mrml_scene)
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLScene(mrml_scene)
    modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: segmentations),
        volumes=types.SimpleNamespace(logic=lambda: volumes),
    )
    monkeypatch.setattr(slicer, "mrmlScene", mrml_scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    yield mrml_scene
    mrml_scene.Clear(1)


def oblique_matrix(degrees: float = 20.0, spacing=(0.8, 0.9, 2.5), origin=(-10.0, 20.0, 30.0)) -> np.ndarray:
    """IJK->RAS with a rotation about the S axis and then about R (not axis-aligned)."""
    a, b = np.deg2rad(degrees), np.deg2rad(degrees / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rx @ rz @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


@pytest.fixture
def oblique_ct():
    """A small CT-like Volume (int16 HU) on an oblique grid."""
    from organseglib.volume import Volume

    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1500, size=(12, 20, 24)).astype(np.int16)
    return Volume(array, oblique_matrix())


@pytest.fixture
def organ_labels(oblique_ct):
    """Disjoint boxes of every organ value on the oblique CT's grid."""
    labels = np.zeros(oblique_ct.shape, np.uint8)
    labels[1:3, 1:4, 1:4] = 1      # liver
    labels[1:3, 15:19, 2:6] = 2    # bladder
    labels[4:7, 3:10, 4:12] = 3    # lungs
    labels[4:7, 12:18, 14:22] = 4  # kidneys
    labels[8:11, 5:15, 2:20] = 5   # bone
    return oblique_ct.with_array(labels)
