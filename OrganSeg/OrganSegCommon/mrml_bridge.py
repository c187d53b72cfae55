"""MRML <-> organseglib bridge: volume nodes to ``Volume`` and label maps to segmentation nodes.

Every function takes the MRML objects it works on (scene, nodes), so the same code runs inside
Slicer and headless on the PyPI ``slicer-core`` wheel (real MRML, no Qt). Only names listed in
``shared/slicer/API_FACTS.md`` are used; in particular segments get their terminology through
``vtkSegment.SetTag(GetTerminologyEntryTagName(), entry)`` (there is no ``SetSegmentTerminology``)
and the deprecated ``SetMasterRepresentationToBinaryLabelmap`` is never called (it is buggy).
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

import numpy as np
import slicer
import slicer.util
import vtk

from organseglib.errors import GeometryError, InputError
from organseglib.organs import (Organ, check_label_values, organ_for_segment, organ_table, parse_organ_list,
                                terminology_type_code)
from organseglib.volume import Volume

log = logging.getLogger(__name__)

REFERENCE_ROLE = "referenceImageGeometryRef"  # vtkMRMLSegmentationNode::GetReferenceImageGeometryReferenceRole()


# --- matrices -------------------------------------------------------------------------------------
def vtk_matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def numpy_to_vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def ijk_to_ras_of(node) -> np.ndarray:
    """The node's IJK->RAS matrix as a 4x4 numpy array (parent transforms are not applied)."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return vtk_matrix_to_numpy(matrix)


# --- volumes --------------------------------------------------------------------------------------
def volume_from_node(node) -> Volume:
    """Copy a scalar (or labelmap) volume node into a ``Volume`` (array ``[k, j, i]``, RAS matrix).

    Raises:
        InputError: the node is missing or holds no image data.
        GeometryError: the image is not 3D (e.g. one slice) or has zero spacing.
    """
    if node is None:
        raise InputError("no volume node given; pick a CT volume first")
    if node.GetImageData() is None:
        raise InputError(f"volume node {node.GetName()!r} holds no image data; load the CT again")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    if array.ndim != 3:
        raise GeometryError(f"volume node {node.GetName()!r} is not a 3D scalar volume (array shape {array.shape}); "
                            "convert vector/colour volumes to scalar first")
    if node.GetParentTransformNode() is not None:
        log.info("volume %r is under transform %r: OrganSeg works on its local grid and puts results under "
                 "the same transform", node.GetName(), node.GetParentTransformNode().GetName())
    return Volume(array, ijk_to_ras_of(node))


def update_node_from_volume(node, volume: Volume) -> None:
    """Replace a volume node's voxels and geometry with ``volume``'s."""
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    node.SetIJKToRASMatrix(numpy_to_vtk_matrix(volume.ijk_to_ras))
    node.Modified()


def node_from_volume(volume: Volume, scene, name: str, labelmap: bool = False):
    """Add a new scalar (or labelmap) volume node holding ``volume`` to ``scene``."""
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name)
    update_node_from_volume(node, volume)
    return node


# --- segments <-> organs ---------------------------------------------------------------------------
def segment_terminology(segment) -> str:
    """The segment's terminology entry string ("" when it has none)."""
    value = vtk.reference("")
    found = segment.GetTag(segment.GetTerminologyEntryTagName(), value)
    return str(value) if found else ""


def organ_of_segment(segment) -> Optional[Organ]:
    """The organ a ``vtkSegment`` stands for (``organseglib.organs.organ_for_segment``: terminology
    type code first, then name); None when it matches no organ of the table."""
    if segment is None:
        return None
    return organ_for_segment(segment.GetName(), terminology_type_code(segment_terminology(segment)))


def segment_ids_by_organ(segmentation_node) -> dict:
    """``{organ.key: segment id}`` for the segments of a segmentation node that match an organ
    (the first such segment per organ)."""
    segmentation = segmentation_node.GetSegmentation()
    found: dict = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        organ = organ_of_segment(segmentation.GetSegment(segment_id))
        if organ is not None and organ.key not in found:
            found[organ.key] = segment_id
    return found


def style_segment(segment, organ: Organ) -> None:
    """Give a segment the organ's name, colour and SNOMED terminology."""
    segment.SetName(organ.name)
    segment.SetColor(*organ.color)
    segment.SetTag(segment.GetTerminologyEntryTagName(), organ.terminology_entry)


def ensure_organ_segment(segmentation_node, organ: Organ) -> str:
    """Id of the segment for ``organ``, created empty (with name, colour, terminology) if absent."""
    existing = segment_ids_by_organ(segmentation_node).get(organ.key)
    segmentation = segmentation_node.GetSegmentation()
    if existing is None:
        wanted_id = organ.key
        if segmentation.GetSegment(wanted_id) is not None:  # id taken by a segment of another name
            wanted_id = segmentation.GenerateUniqueSegmentID(organ.key)
        existing = segmentation.AddEmptySegment(wanted_id, organ.name, list(organ.color))
    style_segment(segmentation.GetSegment(existing), organ)
    return existing


def set_reference_geometry(segmentation_node, reference_volume_node) -> None:
    """Segmentation labelmaps on the CT's grid, and the reference role DICOM SEG export and the
    ``slicer.util`` segment helpers use; an empty segmentation also goes under the CT's parent
    transform (``follow_parent_transform``)."""
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    segmentation_node.SetNodeReferenceID(REFERENCE_ROLE, reference_volume_node.GetID())
    if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        follow_parent_transform(segmentation_node, reference_volume_node)


# --- parent transforms ------------------------------------------------------------------------------
def follow_parent_transform(node, reference_node) -> None:
    """Put ``node`` under ``reference_node``'s parent transform (or under none when it has none).

    OrganSeg computes labels on the CT's local (untransformed) grid; a segmentation in the same
    local frame under the same transform then sits on the CT in world coordinates, whatever the
    transform (shift, rotation, even non-linear), with no resampling.
    """
    wanted = reference_node.GetTransformNodeID()
    if node.GetTransformNodeID() != wanted:
        node.SetAndObserveTransformNodeID(wanted)


def matrix_between_parents(source_node, target_node) -> np.ndarray:
    """4x4 from ``source_node``'s local RAS frame to ``target_node``'s (identity under the same
    parent transform).

    Raises:
        GeometryError: a transform between them is not linear (harden it first).
    """
    if source_node.GetTransformNodeID() == target_node.GetTransformNodeID():
        return np.eye(4)
    return np.linalg.inv(_local_to_world(target_node, source_node)) @ _local_to_world(source_node, target_node)


def _local_to_world(node, other) -> np.ndarray:
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise GeometryError(
            f"transform {parent.GetName()!r} of {node.GetName()!r} is not linear and {other.GetName()!r} is not "
            f"under it; harden it, or put {other.GetName()!r} under the same transform")
    matrix = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(matrix)
    return vtk_matrix_to_numpy(matrix)


def _organs(organs: Optional[Iterable]) -> tuple:
    if organs is None:
        return organ_table()
    items = list(organs)
    if items and all(isinstance(o, Organ) for o in items):
        return tuple(items)
    return parse_organ_list([o.key if isinstance(o, Organ) else str(o) for o in items])


def labels_to_segmentation(labels: Volume, segmentation_node, reference_volume_node,
                           organs: Optional[Iterable] = None, scene=None) -> dict:
    """Write a CT-ORG label map into a segmentation node, one segment per organ.

    Only the segments of ``organs`` (default: all five) are created or replaced; every other
    segment (other organs, a user's "Tumor") keeps its voxels. An organ with no voxels in ``labels``
    becomes an empty segment.

    Args:
        labels: uint8 ``Volume`` of organ values on the reference CT's grid.
        segmentation_node: target ``vtkMRMLSegmentationNode`` (in ``scene``).
        reference_volume_node: the CT node; sets the segmentation's reference geometry.
        organs: organ keys/names/``Organ``s to write.
        scene: the MRML scene (default: the segmentation node's scene).

    Returns:
        ``{organ.key: segment id}`` of the written segments.

    Raises:
        GeometryError: ``labels`` are not on the reference CT's grid.
        LabelValueError: ``labels`` hold values outside the organ table.
    """
    organs = _organs(organs)
    scene = scene if scene is not None else segmentation_node.GetScene()
    reference = Volume(np.zeros((1, 1, 1), np.uint8), ijk_to_ras_of(reference_volume_node))
    ref_shape = tuple(slicer.util.arrayFromVolume(reference_volume_node).shape)
    if tuple(labels.shape) != ref_shape or not np.allclose(labels.ijk_to_ras, reference.ijk_to_ras, atol=1e-4):
        raise GeometryError(
            f"labels (shape {labels.shape}, spacing {labels.spacing}) are not on the grid of volume "
            f"{reference_volume_node.GetName()!r} (shape {ref_shape}, spacing {reference.spacing}); resample "
            "them onto the CT first (organseglib.resample.resample_labels_to_grid)"
        )
    check_label_values(labels.array, "labels")
    set_reference_geometry(segmentation_node, reference_volume_node)
    segmentation_node.SetSourceRepresentationToBinaryLabelmap()
    ids = [ensure_organ_segment(segmentation_node, organ) for organ in organs]
    # Label k (1-based, in the order of `organs`) goes to ids[k-1]: ImportLabelmapToSegmentationNode
    # with a vtkStringArray replaces exactly those segments and leaves the others alone.
    remapped = np.zeros(labels.shape, dtype=np.uint8)
    for index, organ in enumerate(organs, start=1):
        remapped[labels.array == organ.value] = index
    # The labels are on the CT's local grid. The temporary labelmap goes under the segmentation's
    # own transform with its grid moved into that frame, so the import itself never has to apply a
    # transform (slicer-core 5.11 applies one twice when the two differ).
    ct_to_segmentation = matrix_between_parents(reference_volume_node, segmentation_node)
    temp = node_from_volume(Volume(remapped, ct_to_segmentation @ labels.ijk_to_ras), scene,
                            "OrganSegImportTemp", labelmap=True)
    follow_parent_transform(temp, segmentation_node)
    try:
        id_array = vtk.vtkStringArray()
        for segment_id in ids:
            id_array.InsertNextValue(segment_id)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(temp, segmentation_node, id_array)
        if not ok:
            raise InputError(f"Slicer could not import the labels into segmentation {segmentation_node.GetName()!r}")
    finally:
        scene.RemoveNode(temp)
    for organ, segment_id in zip(organs, ids):  # import may reset names/colours; set them again
        style_segment(segmentation_node.GetSegmentation().GetSegment(segment_id), organ)
    return {organ.key: segment_id for organ, segment_id in zip(organs, ids)}


def segmentation_to_labels(segmentation_node, reference_volume_node, scene=None,
                           organs: Optional[Iterable] = None) -> tuple:
    """Export the organ segments of a segmentation node as a CT-ORG label map on the CT's grid.

    Segments are matched to organs by terminology, then name; other segments are ignored (and
    listed in the returned tuple). Where organ segments overlap, the later organ in the table order
    (liver, bladder, lungs, kidneys, bone) wins.

    Returns:
        ``(labels, ignored)``: a uint8 ``Volume`` with exact organ values on the reference grid,
        and the names of segments that matched no organ.
    """
    wanted = {o.key for o in _organs(organs)}
    scene = scene if scene is not None else segmentation_node.GetScene()
    by_organ = segment_ids_by_organ(segmentation_node)
    ordered = [(o, by_organ[o.key]) for o in organ_table() if o.key in by_organ and o.key in wanted]
    segmentation = segmentation_node.GetSegmentation()
    used = {segment_id for _, segment_id in ordered}
    ignored = tuple(segmentation.GetSegment(segmentation.GetNthSegmentID(i)).GetName()
                    for i in range(segmentation.GetNumberOfSegments())
                    if segmentation.GetNthSegmentID(i) not in used)
    reference = volume_from_node(reference_volume_node)
    out = np.zeros(reference.shape, dtype=np.uint8)
    if ordered:
        temp = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "OrganSegExportTemp")
        try:
            id_array = vtk.vtkStringArray()
            for _, segment_id in ordered:
                id_array.InsertNextValue(segment_id)
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, id_array, temp, reference_volume_node,
                slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
            if not ok:
                raise InputError(f"Slicer could not export segmentation {segmentation_node.GetName()!r}")
            exported = volume_from_node(temp)
        finally:
            scene.RemoveNode(temp)
        if not exported.same_grid(reference):
            raise GeometryError(f"exported labels {exported!r} are not on the CT grid {reference!r}")
        lut = np.zeros(len(ordered) + 1, dtype=np.uint8)
        for index, (organ, _) in enumerate(ordered, start=1):
            lut[index] = organ.value
        out = lut[exported.array.astype(np.int64)]
    return reference.with_array(out), ignored


# --- .seg.nrrd without the application ---------------------------------------------------------------
def write_segmentation_file(segmentation_node, path: str, scene=None) -> None:
    """Write a segmentation node to ``.seg.nrrd`` with a storage node (works without ``slicer.app``,
    unlike ``slicer.util.saveNode``)."""
    scene = scene if scene is not None else segmentation_node.GetScene()
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    try:
        storage.SetFileName(str(path))
        if not storage.WriteData(segmentation_node):
            raise InputError(f"could not write segmentation to {str(path)!r}")
    finally:
        scene.RemoveNode(storage)


def read_segmentation_file(path: str, scene, name: Optional[str] = None):
    """Read a ``.seg.nrrd`` into a new segmentation node of ``scene``."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or "Segmentation")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(storage)
        scene.RemoveNode(node)
        raise InputError(f"could not read segmentation {str(path)!r}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def show_segmentation(segmentation_node, show_3d: bool = True) -> bool:
    """Display nodes for slice views and, when converter rules exist, a closed surface for 3D.
    Returns whether the 3D representation was made."""
    segmentation_node.CreateDefaultDisplayNodes()
    return bool(show_3d and segmentation_node.CreateClosedSurfaceRepresentation())
