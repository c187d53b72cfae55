"""Real scans from ../shared/data through MRML: Slicer's reader and organseglib agree on voxels and
RAS geometry, and real five-organ labels survive segmentation node -> .seg.nrrd -> training export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shared_data import shared_file

pytestmark = [pytest.mark.slicer, pytest.mark.slow]


def _load_with_slicer_reader(scene, path):
    """Read a volume file the way Slicer does (its archetype storage node, LPS->RAS inside MRML)."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", Path(path).name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node), f"Slicer could not read {path}"
    return node


@pytest.mark.parametrize("name", ["ct/chest_lung1.nrrd", "ct/abdomen_totalseg.nii.gz"])
def test_slicer_reader_and_organseglib_agree(name, scene):
    from organseglib.io import read_volume

    from OrganSegCommon.mrml_bridge import volume_from_node

    path = shared_file(name)
    from_slicer = volume_from_node(_load_with_slicer_reader(scene, path))
    from_library = read_volume(path)
    assert from_slicer.shape == from_library.shape
    assert np.array_equal(from_slicer.array, from_library.array)
    assert np.allclose(from_slicer.ijk_to_ras, from_library.ijk_to_ras, atol=1e-4)


def test_real_labels_round_trip_through_segmentation_file_and_training_export(scene, logic_factory, tmp_path):
    from organseglib.io import read_labels

    from OrganSegCommon import mrml_bridge as bridge

    ct_node = _load_with_slicer_reader(scene, shared_file("ct/abdomen_totalseg.nii.gz"))
    truth = read_labels(shared_file("ct/abdomen_totalseg_labels.nii.gz"))
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "abdomen segmentation")
    bridge.labels_to_segmentation(truth, seg_node, ct_node)
    bridge.write_segmentation_file(seg_node, str(tmp_path / "abdomen.seg.nrrd"))
    assert np.array_equal(read_labels(tmp_path / "abdomen.seg.nrrd", reference=truth).array, truth.array)

    case = logic_factory(scene).save_to_training_set(ct_node, seg_node, str(tmp_path / "set"),
                                                     corrected_organs=["liver"])
    exported = read_labels(tmp_path / "set" / case.labels)
    assert np.array_equal(exported.array, truth.array)
    assert exported.same_grid(truth)
    assert set(np.unique(exported.array)) == {0, 1, 2, 3, 4, 5}


@pytest.fixture
def logic_factory(tmp_path):
    from OrganSegCommon.model_registry import ModelRegistry
    from OrganSegCommon.workflows import WorkflowLogic

    return lambda scene: WorkflowLogic(scene, registry=ModelRegistry(tmp_path / "models.json"))
