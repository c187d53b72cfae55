"""A CT under a parent transform: the segmentation lands on it in world coordinates (issue 13).

Real MRML (slicer-core). World placement is checked by exporting the segmentation onto a second,
untransformed volume whose grid is the transformed CT's grid in world coordinates: Slicer resamples
across the transforms, so the export equals the labels exactly when the segmentation sits on the
CT, and is empty or shifted when it is 50 mm off.
"""

from __future__ import annotations

import numpy as np
import pytest

from organseglib.errors import GeometryError
from organseglib.volume import Volume

pytestmark = pytest.mark.slicer

SHIFT_50_MM = np.array([[1, 0, 0, 50.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


@pytest.fixture
def bridge(slicer_core):
    from OrganSegCommon import mrml_bridge

    return mrml_bridge


def _transform(scene, bridge, matrix, name="shift"):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformToParent(bridge.numpy_to_vtk_matrix(matrix))
    return node


def _rotation_and_shift(degrees=30.0, shift=(50.0, -20.0, 10.0)):
    a = np.deg2rad(degrees)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    matrix[:3, 3] = shift
    return matrix


def _labels_in_world(bridge, scene, seg_node, ct: Volume, ct_to_world: np.ndarray) -> np.ndarray:
    """The segmentation resampled onto the CT's grid as it lies in world coordinates."""
    world_grid = bridge.node_from_volume(Volume(np.zeros(ct.shape, np.int16), ct_to_world @ ct.ijk_to_ras),
                                         scene, "world grid")
    labels, _ = bridge.segmentation_to_labels(seg_node, world_grid, scene=scene)
    return labels.array


def _world_bounds(seg_node):
    bounds = [0.0] * 6
    seg_node.GetRASBounds(bounds)
    return np.array(bounds)


def test_new_segmentation_goes_under_the_cts_shift(bridge, scene, oblique_ct, organ_labels, tmp_path):
    from OrganSegCommon.model_registry import ModelRegistry
    from OrganSegCommon.workflows import WorkflowLogic

    logic = WorkflowLogic(scene, registry=ModelRegistry(tmp_path / "models.json"))
    plain_ct = bridge.node_from_volume(oblique_ct, scene, "plain CT")
    plain_seg = logic.apply_labels(organ_labels, plain_ct, show=False)

    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    shift = _transform(scene, bridge, SHIFT_50_MM)
    ct_node.SetAndObserveTransformNodeID(shift.GetID())
    seg_node = logic.apply_labels(organ_labels, ct_node, show=False)  # the GUI's path: a new segmentation

    assert seg_node.GetTransformNodeID() == shift.GetID()
    assert np.array_equal(_labels_in_world(bridge, scene, seg_node, oblique_ct, SHIFT_50_MM), organ_labels.array)
    # world bounds: exactly 50 mm to the right of the same labels on the untransformed CT
    assert np.allclose(_world_bounds(seg_node) - _world_bounds(plain_seg), [50, 50, 0, 0, 0, 0], atol=1e-6)
    # and on the CT's own (transformed) grid the export is the labels again (training-set export)
    assert np.array_equal(bridge.segmentation_to_labels(seg_node, ct_node, scene=scene)[0].array, organ_labels.array)


def test_existing_untransformed_segmentation_gets_labels_in_world_place(bridge, scene, slicer_core, oblique_ct,
                                                                     organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    ct_to_world = _rotation_and_shift()
    ct_node.SetAndObserveTransformNodeID(_transform(scene, bridge, ct_to_world).GetID())
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "user segmentation")
    seg_node.GetSegmentation().AddEmptySegment("tumor", "Tumor", [1.0, 0.0, 0.0])  # not empty: keeps its frame
    bridge.labels_to_segmentation(organ_labels, seg_node, ct_node, organs=["liver", "lungs", "bone"])

    assert seg_node.GetTransformNodeID() is None  # a user's node is not moved
    assert seg_node.GetSegmentation().GetSegmentIdBySegmentName("Tumor") == "tumor"
    wanted = np.where(np.isin(organ_labels.array, [1, 3, 5]), organ_labels.array, 0)
    assert np.array_equal(_labels_in_world(bridge, scene, seg_node, oblique_ct, ct_to_world), wanted)


def test_segmentation_under_another_transform_than_the_ct(bridge, scene, oblique_ct, organ_labels):
    ct_node = bridge.node_from_volume(oblique_ct, scene, "CT")
    ct_to_world = _rotation_and_shift(30.0, (50.0, 0.0, 0.0))
    ct_node.SetAndObserveTransformNodeID(_transform(scene, bridge, ct_to_world, "ct transform").GetID())
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segmentation")
    seg_node.GetSegmentation().AddEmptySegment("tumor", "Tumor", [1.0, 0.0, 0.0])
    seg_node.SetAndObserveTransformNodeID(_transform(scene, bridge, SHIFT_50_MM, "segmentation transform").GetID())
    bridge.labels_to_segmentation(organ_labels, seg_node, ct_node)
    assert np.array_equal(_labels_in_world(bridge, scene, seg_node, oblique_ct, ct_to_world), organ_labels.array)


def test_matrix_between_parents_and_non_linear_refusal(bridge, scene, slicer_core, oblique_ct):
    import vtk

    a = bridge.node_from_volume(oblique_ct, scene, "A")
    b = bridge.node_from_volume(oblique_ct, scene, "B")
    assert np.array_equal(bridge.matrix_between_parents(a, b), np.eye(4))
    a.SetAndObserveTransformNodeID(_transform(scene, bridge, SHIFT_50_MM).GetID())
    assert np.allclose(bridge.matrix_between_parents(a, b), SHIFT_50_MM)
    assert np.allclose(bridge.matrix_between_parents(b, a), np.linalg.inv(SHIFT_50_MM))

    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point, moved in (((0, 0, 0), (0, 0, 0)), ((100, 0, 0), (110, 5, 0)), ((0, 100, 0), (0, 100, 7)),
                         ((0, 0, 100), (3, 0, 100)), ((100, 100, 100), (100, 100, 100))):
        source.InsertNextPoint(*point)
        target.InsertNextPoint(*moved)
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    spline.SetBasisToR()
    warp = scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    warp.SetAndObserveTransformToParent(spline)
    b.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(GeometryError, match="is not linear and .* harden it"):
        bridge.matrix_between_parents(a, b)
