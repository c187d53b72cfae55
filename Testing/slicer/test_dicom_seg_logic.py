"""The Logic's DICOM SEG export on real MRML (slicer-core): segments of a CT node from a DICOM series."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("highdicom", reason="DICOM SEG needs highdicom")

from dicom_series import check_seg_against_source, phantom_hu, phantom_labels, rotation, write_ct_series  # noqa: E402
from shared_data import shared_file  # noqa: E402

from organseglib.dicom_seg import series_files  # noqa: E402
from organseglib.errors import GeometryError  # noqa: E402
from organseglib.io import read_labels, read_volume  # noqa: E402
from organseglib.organs import organ_by_key, organ_table  # noqa: E402

pytestmark = pytest.mark.slicer


@pytest.fixture
def logic(slicer_core, scene, tmp_path):
    from OrganSegCommon.model_registry import ModelRegistry
    from OrganSegCommon.workflows import WorkflowLogic

    return WorkflowLogic(scene, registry=ModelRegistry(tmp_path / "models.json"))


def test_export_dicom_seg_of_an_oblique_series_with_a_user_segment(logic, scene, tmp_path):
    from OrganSegCommon import mrml_bridge as bridge

    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), rotation(20, 10)[:, 0], rotation(20, 10)[:, 1], (10.0, -20.0, 30.0),
                    2.5 * rotation(20, 10)[:, 2])
    ct = read_volume(folder)
    ct_node = bridge.node_from_volume(ct, scene, "CT")
    labels = phantom_labels()
    seg_node = logic.apply_labels(ct.with_array(labels), ct_node, organs=["liver", "lungs", "bone", "kidneys"],
                                  show=False)
    seg_node.GetSegmentation().AddEmptySegment("tumor", "Tumor", [1.0, 0.0, 0.0])  # not an organ: left out
    out = tmp_path / "organs.dcm"
    assert logic.export_dicom_seg(ct_node, seg_node, str(folder), str(out)) == str(out)
    expected = np.where(labels == 2, 0, labels)  # the bladder was not written into the segmentation
    organs = [organ_by_key(k) for k in ("liver", "lungs", "kidneys", "bone")]
    check_seg_against_source(out, series_files(folder), expected, organs)


def test_export_refuses_a_ct_node_that_is_not_the_series(logic, scene, tmp_path):
    from OrganSegCommon import mrml_bridge as bridge

    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
    ct = read_volume(folder)
    moved = ct.ijk_to_ras.copy()
    moved[:3, 3] += 10.0
    from organseglib.volume import Volume

    ct_node = bridge.node_from_volume(Volume(ct.array, moved), scene, "another CT")
    seg_node = logic.apply_labels(Volume(phantom_labels(), moved), ct_node, show=False)
    with pytest.raises(GeometryError, match="not on the grid of DICOM series"):
        logic.export_dicom_seg(ct_node, seg_node, str(folder), str(tmp_path / "x.dcm"))
    assert not (tmp_path / "x.dcm").exists()


def test_export_real_ct3slice_liver(logic, scene, tmp_path):
    from OrganSegCommon import mrml_bridge as bridge

    folder = shared_file("dicom/ct3slice")
    ct = read_volume(folder)
    liver = read_labels(shared_file("dicom/ct3slice_liver_seg.nrrd"), reference=ct)
    ct_node = bridge.node_from_volume(ct, scene, "ct3slice")
    seg_node = logic.apply_labels(liver, ct_node, show=False)  # all five segments, four of them empty
    out = tmp_path / "ct3slice.dcm"
    logic.export_dicom_seg(ct_node, seg_node, str(folder), str(out))
    check_seg_against_source(out, series_files(folder), liver.array, list(organ_table()))
