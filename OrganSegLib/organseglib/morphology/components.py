"""Connected components and hole filling with cc3d and fill_voids (no hand-written labelling)."""

from __future__ import annotations

from typing import Optional, Sequence

import cc3d
import fastremap
import fill_voids
import numpy as np
import scipy.ndimage as ndi

from ..errors import InputError
from ..boxes import mask_bounding_box

CONNECTIVITY_3D = 26
CONNECTIVITY_2D = 8


def label(mask: np.ndarray, connectivity: int = CONNECTIVITY_3D) -> tuple[np.ndarray, np.ndarray]:
    """Label the components of ``mask``; return ``(labels, sizes)`` with ``sizes[0] = 0``."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    # fastremap.unique counts uint32 labels in place; np.bincount would first copy them to int64
    # (0.5-0.8 s on a 512x512x300 CT against 0.09 s)
    ids, counts = fastremap.unique(labels, return_counts=True)
    sizes = np.zeros(n + 1, dtype=np.int64)
    sizes[ids] = counts
    sizes[0] = 0
    return labels, sizes


def count_values(labels: np.ndarray) -> dict[int, int]:
    """``{value: voxel count}`` of every value present in an integer label map (fastremap: one pass,
    no int64 copy; 0.9 s → ~0.1 s against ``np.unique`` on a 512×512×300 uint8 map)."""
    values, counts = fastremap.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def largest_components(mask: np.ndarray, count: int, connectivity: int = CONNECTIVITY_3D,
                       min_voxels: int = 1) -> tuple[np.ndarray, list[int]]:
    """Keep the ``count`` largest components of at least ``min_voxels`` voxels.

    Returns:
        ``(kept, sizes)``: a boolean mask and the kept sizes in voxels, largest first (fewer than
        ``count`` when the mask has fewer components).

    Raises:
        InputError: ``count`` below 1.
    """
    if count < 1:
        raise InputError(f"count must be at least 1; got {count!r}")
    labels, sizes = label(mask, connectivity)
    order = np.argsort(sizes[1:], kind="stable")[::-1][:count] + 1
    order = [int(i) for i in order if sizes[i] >= min_voxels]
    if len(order) <= 2:  # the skeleton, the two lungs: comparisons beat a lookup table
        kept = np.zeros(labels.shape, dtype=bool)
        for i in order:
            kept |= labels == i
    else:
        keep = np.zeros(sizes.size, dtype=bool)
        keep[order] = True
        kept = keep[labels]
    return kept, [int(sizes[i]) for i in order]


def reconstruct(marker: np.ndarray, mask: np.ndarray, connectivity: int = CONNECTIVITY_3D,
                margin: Optional[Sequence[int]] = None) -> np.ndarray:
    """Components of ``mask`` that touch ``marker`` (morphological reconstruction by dilation).

    Only the bounding box of ``mask`` is labelled (every component lies inside it); on a CT it is
    usually far smaller than the volume. With ``margin`` (voxels per axis) the box of ``marker``
    grown by it is labelled first: when no kept voxel lies on a face of that box inside the array,
    the kept components lie wholly inside it (a component leaving the box crosses its faces) and
    that is the answer; otherwise the whole mask is labelled. Same result, cheaper when the marked
    components are small beside the mask (the lungs beside all the air of a CT)."""
    mask = np.asarray(mask, dtype=bool)
    marker = np.asarray(marker, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    if margin is not None:
        box = mask_bounding_box(marker, margin)
        if box is None:
            return out
        kept = _marked(marker[box], mask[box], connectivity)
        if not _on_inner_faces(kept, box, mask.shape):
            out[box] = kept
            return out
    box = mask_bounding_box(mask)
    if box is None:
        return out
    out[box] = _marked(marker[box], mask[box], connectivity)
    return out


def _marked(marker: np.ndarray, mask: np.ndarray, connectivity: int) -> np.ndarray:
    """Components of ``mask`` touching ``marker`` (same shape)."""
    labels, n = cc3d.connected_components(np.ascontiguousarray(mask), connectivity=connectivity, return_N=True)
    touched = np.zeros(n + 1, dtype=bool)
    touched[labels[marker]] = True
    return select_labels(labels, np.flatnonzero(touched), n)


def select_labels(labels: np.ndarray, ids: np.ndarray, n: Optional[int] = None) -> np.ndarray:
    """``labels`` in ``ids`` (label 0 never): one comparison per id when they are few (0.03 s each
    on 80 M voxels), else a lookup table (0.2 s)."""
    ids = np.asarray(ids)
    ids = ids[ids > 0]
    if ids.size <= 4:
        out = np.zeros(labels.shape, dtype=bool)
        for index in ids:
            out |= labels == index
        return out
    keep = np.zeros(int(n if n is not None else labels.max()) + 1, dtype=bool)
    keep[ids] = True
    return lookup(keep, labels)


def lookup(table: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``table[labels]`` for a boolean ``table`` with ``table[0]`` False. On a sparse label map (the
    dense voxels of a CT: 2 % of it) only its non-zero voxels are looked up (0.05 s instead of
    0.2 s on 80 M voxels)."""
    table = np.asarray(table, dtype=bool)
    labels = np.asarray(labels)
    if table.size == 0 or table[0]:
        return table[labels]
    if np.count_nonzero(labels) > labels.size // 8:
        return table[labels]
    where = labels != 0  # a boolean index: much cheaper than np.flatnonzero of a uint32 map
    out = np.zeros(labels.shape, dtype=bool)
    out[where] = table[labels[where]]
    return out


def _on_inner_faces(kept: np.ndarray, box: tuple, shape: tuple) -> bool:
    """Does ``kept`` (the contents of ``box``) touch a face of the box that is not the array's?"""
    for axis, (b, n) in enumerate(zip(box, shape)):
        if b.start > 0 and kept.take(0, axis=axis).any():
            return True
        if b.stop < n and kept.take(-1, axis=axis).any():
            return True
    return False


def component_statistics(labels: np.ndarray, sizes: Optional[np.ndarray] = None) -> dict:
    """``{"voxel_counts": array, "bounding_boxes": list}`` indexed by label (0: background), as
    ``cc3d.statistics`` gives them, without its centroids: fastremap counts and scipy's
    ``find_objects`` boxes (0.4 s instead of 0.7 s on a 512x512x305 label map). A label absent from
    the map has count 0 and box None. ``sizes``: the counts when the caller has them (``label``'s;
    its background count is not used)."""
    if sizes is None:
        ids, counts = fastremap.unique(labels, return_counts=True)
        n = int(ids.max()) if ids.size else 0
        sizes = np.zeros(n + 1, dtype=np.int64)
        sizes[ids] = counts
    n = sizes.size - 1
    boxes = [tuple(slice(0, s) for s in labels.shape)] + list(ndi.find_objects(labels, max_label=n))
    return {"voxel_counts": sizes, "bounding_boxes": boxes}


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every cavity of ``mask`` not connected to the array border (3D, 6-connected background).

    Only the mask's bounding box is filled: background outside it reaches the array border, and
    background on the box's faces touches that outside, so the cavities are the same. The box is
    padded with one layer of background first: on the bare array, fill_voids 2.1 fills some
    background voxels that lie on the array's faces (47 of 3000 random small volumes differed from
    scipy's binary_fill_holes; none with the pad)."""
    mask = np.asarray(mask, dtype=bool)
    out = mask.copy()
    box = mask_bounding_box(mask)
    if box is not None:
        filled = fill_voids.fill(np.pad(mask[box], 1), in_place=False)
        out[box] = filled[1:-1, 1:-1, 1:-1]
    return out


def fill_holes_per_slice(mask: np.ndarray, axis: int = 0) -> np.ndarray:
    """Fill holes in each 2D slice along ``axis`` (axial slices for a [k, j, i] array)."""
    out = np.array(mask, dtype=bool, copy=True)
    moved = np.moveaxis(out, axis, 0)
    for index in range(moved.shape[0]):
        plane = moved[index]
        if plane.any():
            moved[index] = fill_voids.fill(np.ascontiguousarray(plane), in_place=False)
    return out


def remove_border_connected_per_slice(mask: np.ndarray, axis: int = 0,
                                      connectivity: int = CONNECTIVITY_2D) -> np.ndarray:
    """Remove, in each 2D slice along ``axis``, the components touching the slice's edge (paper
    III-B: air connected to "the maximal and minimal extent of the image in the x and y axes")."""
    out = np.array(mask, dtype=bool, copy=True)
    moved = np.moveaxis(out, axis, 0)
    for index in range(moved.shape[0]):
        plane = moved[index]
        if plane.any():
            labels, edge = _edge_components(plane, connectivity)
            _drop(plane, labels, edge)
    return out


def _edge_components(plane: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """2D component labels of ``plane`` and the ids of those touching its edge."""
    labels = cc3d.connected_components(np.ascontiguousarray(plane), connectivity=connectivity)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return labels, edge[edge > 0]


def _drop(plane: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
    """Clear the components ``ids`` of ``labels`` from ``plane`` in place."""
    if ids.size:
        drop = np.zeros(int(labels.max()) + 1, dtype=bool)
        drop[ids] = True
        plane[drop[labels]] = False


def fill_small_holes_per_slice(mask: np.ndarray, max_area_px: float, axis: int = 0) -> np.ndarray:
    """Fill, in each 2D slice along ``axis``, the holes (background not connected to the slice edge)
    of at most ``max_area_px`` pixels; larger holes stay open (e.g. the thorax ringed by ribs)."""
    out = np.array(mask, dtype=bool, copy=True)
    moved = np.moveaxis(out, axis, 0)
    for index in range(moved.shape[0]):
        # only the slice's box around the mask, with one pixel of background around it where the
        # slice has room: every hole lies inside the box, and the background on the box's edge
        # reaches the slice's edge around the box, so the holes are the same (and cost less)
        box = mask_bounding_box(moved[index], margin=(1, 1))
        if box is None:
            continue
        plane = np.ascontiguousarray(moved[index][box])
        filled = fill_voids.fill(plane, in_place=False)
        holes = filled & ~plane
        total = np.count_nonzero(holes)
        if total == 0:
            continue
        if total <= max_area_px:  # every hole is at most as large as all of them together
            moved[index][box] = filled
            continue
        labels, sizes = label(holes, CONNECTIVITY_2D // 2)  # holes are 4-connected in an 8-connected mask
        small = sizes <= max_area_px
        small[0] = False
        moved[index][box] = plane | small[labels]
    return out


def remove_border_gas_per_slice(mask: np.ndarray, values: np.ndarray, max_median: float,
                                axis: int = 0, connectivity: int = CONNECTIVITY_2D) -> np.ndarray:
    """Like ``remove_border_connected_per_slice`` but only removes the edge-touching components whose
    median of ``values`` is below ``max_median`` (air outside the body is pure gas, about -1000 HU; a
    lung that a cropped field of view cuts is not). The median, not the mean: the outside air's
    partial-volume rim along the skin, blankets and table pulls its mean up to about -930 HU on real
    scans (abdomen_totalseg), while its median stays near -1000 HU."""
    out = np.array(mask, dtype=bool, copy=True)
    moved = np.moveaxis(out, axis, 0)
    vals = np.moveaxis(values, axis, 0)
    for index in range(moved.shape[0]):
        plane = moved[index]
        if not plane.any():
            continue
        labels, edge = _edge_components(plane, connectivity)
        if not edge.size:
            continue
        below = np.asarray(vals[index]) < max_median
        if edge.size > _FEW:
            flat = labels.ravel()
            counts = np.bincount(flat)
            under = np.bincount(flat[below.ravel()], minlength=counts.size)
            _drop(plane, labels, edge[2 * under[edge] > counts[edge]])
            continue
        # a few edge components (the outside air, a lung cut by the field of view): one comparison
        # each instead of two bincounts of the whole slice
        for index_ in edge:
            mine = labels == index_
            if 2 * np.count_nonzero(mine & below) > np.count_nonzero(mine):  # median < max_median
                plane[mine] = False
    return out


_FEW = 8  # up to this many edge components are tested one by one
