"""MRML bridge on real MRML (slicer-core): volumes, segments, terminology, export, .seg.nrrd."""

from __future__ import annotations

import numpy as np
import pytest

from organseglib.errors import GeometryError
from organseglib.organs import organ_by_key, organ_table

pytestmark = pytest.mark.slicer


@pytest.fixture
def bridge(slicer_core):
    from OrganSegCommon import mrml_bridge

    return mrml_bridge


def _segment_arrays(slicer, seg_node, ct_node):
    """{segment name: mask on the CT grid} through Slicer's own helper."""
    segmentation = seg_node.GetSegmentation()
    out = {}
    for i in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(i)
        array = slicer.util.arrayFromSegmentBinaryLabelmap(seg_node, segment_id, ct_node)
        out[segmentation.GetSegment(segment_id).GetName()] = array > 0
    return out


def test_volume_round_trip_keeps_voxels_and_oblique_geometry(bridge, scene, oblique_ct):
    node = bridge.node_from_volume(oblique_ct, scene, "CT")
    back = bridge.volume_from_node(node)
    assert back.array.dtype == np.int16
    assert np.array_equal(back.array, oblique_ct.array)
    assert np.allclose(back.ijk_to_ras, oblique_ct.ijk_to_ras, atol=1e-9)
    # Slicer's own view of the geometry matches Volume's derived properties (hand-set 0.8/0.9/2.5 mm).
    assert np.allclose(node.GetSpacing(), (0.8, 0.9, 2.5))
    assert np.allclose(node.GetOrigin(), (-10.0, 20.0, 30.0))
    assert np.allclose(node.GetSpacing(), back.spacing)
    # A voxel maps to the same RAS point through the node's matrix and through Volume.
    ijk = np.array([[3.0, 4.0, 5.0]])
    ras_node = bridge.ijk_to_ras_of(node) @ np.array([3.0, 4.0, 5.0, 1.0])
    assert np.allclose(back.ijk_to_ras_points(ijk)[0], ras_node[:3])
    # The array is a copy: editing it does not touch the node.
    back.array[0, 0, 0] = 1234
    assert bridge.volume_from_node(node).array[0, 0, 0] == oblique_ct.array[0, 0, 0]


def test_labels_become_named_coloured_segments_with_terminology(bridge, scene, slicer_core, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    ids = bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    assert set(ids) == {o.key for o in organ_table()}
    segmentation = seg_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 5
    for organ in organ_table():
        segment = segmentation.GetSegment(ids[organ.key])
        assert segment.GetName() == organ.name
        assert np.allclose(segment.GetColor(), organ.color)
        entry = bridge.segment_terminology(segment)
        assert entry == organ.terminology_entry
        assert f"SCT^{organ.type[1]}^{organ.type[2]}" in entry
    assert seg_node.GetNodeReferenceID("referenceImageGeometryRef") == ct_node.GetID()
    masks = _segment_arrays(slicer_core, seg_node, ct_node)
    for organ in organ_table():
        assert np.array_equal(masks[organ.name], organ_labels.array == organ.value), organ.name


def test_edited_segments_export_with_exact_values_and_geometry(bridge, scene, slicer_core, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    ids = bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    # A "correction": the user paints the lungs segment anew (as the Segment Editor would).
    corrected = np.zeros(oblique_ct.shape, np.uint8)
    corrected[4:8, 2:11, 3:13] = 1
    slicer_core.util.updateSegmentBinaryLabelmapFromArray(corrected, seg_node, ids["lungs"], ct_node)
    labels, ignored = bridge.segmentation_to_labels(seg_node, ct_node)
    expected = organ_labels.array.copy()
    expected[expected == 3] = 0
    expected[(corrected > 0) & (expected == 0)] = 3
    expected[(corrected > 0) & (organ_labels.array == 5)] = 5  # bone is later in table order: wins overlaps
    assert ignored == ()
    assert labels.array.dtype == np.uint8
    assert np.array_equal(labels.array, expected)
    assert labels.same_grid(oblique_ct, atol=1e-9)


def test_rerun_replaces_only_the_given_organs(bridge, scene, slicer_core, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    tumor_id = seg_node.GetSegmentation().AddEmptySegment("tumor", "Tumor", [1.0, 0.0, 0.0])
    tumor = np.zeros(oblique_ct.shape, np.uint8)
    tumor[0:2, 8:12, 8:12] = 1
    slicer_core.util.updateSegmentBinaryLabelmapFromArray(tumor, seg_node, tumor_id, ct_node)
    before = _segment_arrays(slicer_core, seg_node, ct_node)

    new_lungs = np.zeros(oblique_ct.shape, np.uint8)
    new_lungs[5:6, 0:5, 0:5] = 3
    bridge.labels_to_segmentation(oblique_ct.with_array(new_lungs), seg_node, ct_node, organs=["lungs", "bone"])
    after = _segment_arrays(slicer_core, seg_node, ct_node)
    assert set(after) == set(before)
    for name in ("Liver", "Bladder", "Kidneys", "Tumor"):
        assert np.array_equal(after[name], before[name]), name
    assert np.array_equal(after["Lungs"], new_lungs == 3)
    assert not after["Bone"].any()  # a requested organ absent from the labels becomes empty
    labels, ignored = bridge.segmentation_to_labels(seg_node, ct_node)
    assert ignored == ("Tumor",)
    assert set(np.unique(labels.array)) == {0, 1, 2, 3, 4}


def test_segments_are_matched_by_terminology_when_renamed(bridge, scene, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    ids = bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    seg_node.GetSegmentation().GetSegment(ids["liver"]).SetName("hepar (corrected)")
    labels, _ = bridge.segmentation_to_labels(seg_node, ct_node)
    assert np.array_equal(labels.array, organ_labels.array)
    assert bridge.segment_ids_by_organ(seg_node)["liver"] == ids["liver"]


def test_labels_on_another_grid_are_refused(bridge, scene, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    shifted = organ_labels.ijk_to_ras.copy()
    shifted[0, 3] += 5.0
    from organseglib.volume import Volume

    with pytest.raises(GeometryError, match="not on the grid"):
        bridge.labels_to_segmentation(Volume(organ_labels.array, shifted), seg_node, ct_node)
    assert seg_node.GetSegmentation().GetNumberOfSegments() == 0


def test_seg_nrrd_written_and_read_back_by_mrml_slicerio_and_organseglib(bridge, scene, oblique_ct, organ_labels, tmp_path):
    slicerio = pytest.importorskip("slicerio", reason="needs slicerio")
    from organseglib.io import read_labels

    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    path = tmp_path / "organs.seg.nrrd"
    bridge.write_segmentation_file(seg_node, str(path))

    again = bridge.read_segmentation_file(str(path), scene, "reloaded")
    labels, _ = bridge.segmentation_to_labels(again, ct_node)
    assert np.array_equal(labels.array, organ_labels.array)

    seg = slicerio.read_segmentation(str(path))
    names = {s["name"] for s in seg["segments"]}
    assert names == {o.name for o in organ_table()}
    lungs = next(s for s in seg["segments"] if s["name"] == "Lungs")
    assert lungs["terminology"]["type"][1] == organ_by_key("lungs").type[1]
    # slicerio's voxels are [i, j, k] (API_FACTS axis-order trap); Volume arrays are [k, j, i].
    voxels = np.asarray(seg["voxels"])
    layers = voxels if voxels.ndim == 4 else voxels[None]
    lung_mask = layers[int(lungs.get("layer", 0))] == int(lungs["labelValue"])
    assert lung_mask.shape == organ_labels.shape[::-1]
    assert np.array_equal(lung_mask.transpose(2, 1, 0), organ_labels.array == 3)

    read = read_labels(str(path))
    assert np.array_equal(read.array, organ_labels.array)
    assert read.same_grid(oblique_ct, atol=1e-6)


def test_show_segmentation_makes_3d_surface(bridge, scene, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    assert bridge.show_segmentation(seg_node) is True
    assert seg_node.GetDisplayNode() is not None
    assert seg_node.GetSegmentation().ContainsRepresentation("Closed surface")


def test_a_foreign_segment_with_an_organ_id_is_kept(bridge, scene, slicer_core, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT segmentation")
    seg_node.GetSegmentation().AddEmptySegment("lungs", "Nodule", [0.0, 1.0, 0.0])
    ids = bridge.labels_to_segmentation(organ_labels, seg_node, ct_node, organs=["lungs"])
    assert ids["lungs"] != "lungs"
    segmentation = seg_node.GetSegmentation()
    assert segmentation.GetSegment("lungs").GetName() == "Nodule"
    assert segmentation.GetSegment(ids["lungs"]).GetName() == "Lungs"
