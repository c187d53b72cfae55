"""Enclosure along the array axes: is a voxel *inside* a structure, or beside it?

``enclosed_axes(mask, spacing, max_span_mm)`` counts, for each voxel, the axes along which ``mask``
lies on both sides of it close together: the nearest ``mask`` voxel at or before it and the nearest
at or after it along that axis are at most ``max_span_mm`` apart. Marrow inside a vertebra, a femur
or a rib is enclosed by cortex along two or three axes; muscle between two ribs, or in the groove
between a vertebral body and its transverse process, along one at most. The bone labeler uses it to
tell the two apart among the voxels its closing filled (``organseglib.autolabel.bone``).

Each axis costs one sorted list of the ``mask`` voxels' flat indices (the array laid out with that
axis last, so that a ray is a run of consecutive indices; computed from the voxels' coordinates, not
by transposing the array) and a binary search per voxel asked about;
the cost grows with the voxels of ``mask`` and those asked about, not with the array.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..boxes import mask_bounding_box


def _enclosed_along(mask: np.ndarray, coords: tuple[np.ndarray, ...], axis: int, max_span: float,
                    mask_coords: Optional[tuple[np.ndarray, ...]] = None) -> np.ndarray:
    """For the voxels at ``coords``: do their nearest ``mask`` voxels at/before and at/after along
    ``axis`` exist and lie at most ``max_span`` voxels apart?

    The array is laid out with ``axis`` last, so that each ray is a run of consecutive flat indices;
    the sorted flat indices of ``mask`` are then searched for each voxel's neighbours. The flat
    indices are computed from the ``mask`` voxels' coordinates (``mask_coords``: ``np.nonzero(mask)``,
    computed once for all three axes when given) and sorted, not by copying the whole array
    transposed (on a 512x512x305 CT: 0.1 s instead of 0.5 s along the first axis).
    """
    n = mask.shape[axis]
    perm = tuple(a for a in range(3) if a != axis) + (axis,)
    if mask_coords is None:
        mask_coords = np.nonzero(mask)
    laid = tuple(mask.shape[a] for a in perm)
    dtype = np.int32 if int(np.prod(laid, dtype=np.int64)) < 2**31 else np.int64  # int32 sorts and searches faster

    def flat(c: tuple[np.ndarray, ...]) -> np.ndarray:
        first, second, last = (c[a].astype(dtype, copy=False) for a in perm)
        return (first * dtype(laid[1]) + second) * dtype(laid[2]) + last

    keys = flat(mask_coords)
    if axis != 2:  # np.nonzero lists the voxels in C order: already sorted along the last axis
        keys.sort()
    if keys.size == 0:
        return np.zeros(coords[0].shape, dtype=bool)
    query = flat(coords)
    line = query // n
    at = np.searchsorted(keys, query)  # first mask voxel at or after, in flat order
    after = keys[np.minimum(at, keys.size - 1)]
    found = (at < keys.size) & (after // n == line)
    before_at = np.where(found & (after == query), at, at - 1)  # a mask voxel is its own neighbour
    before = keys[np.maximum(before_at, 0)]
    found &= (before_at >= 0) & (before // n == line)
    found &= (after - before) <= max_span
    return found


def _with_closed_faces(mask: np.ndarray, where: np.ndarray, closed_faces) -> tuple:
    """``(mask, where, inner)``: both padded by one voxel on each face named in ``closed_faces``
    (``((before, after), ...)`` per axis; ``mask`` True there, ``where`` False), and the slices of the
    padded arrays that are the original ones."""
    if len(closed_faces) != 3 or any(len(pair) != 2 for pair in closed_faces):
        raise InputError(f"closed_faces needs a (before, after) pair for each of the 3 axes; got {closed_faces!r}")
    pad = tuple((int(bool(lo)), int(bool(hi))) for lo, hi in closed_faces)
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, mask.shape))
    return np.pad(mask, pad, constant_values=True), np.pad(where, pad), inner


def enclosed_axes(mask: np.ndarray, spacing: Sequence[float], max_span_mm: float,
                  where: Optional[np.ndarray] = None, closed_faces=None) -> np.ndarray:
    """Number of axes (0-3) along which ``mask`` encloses each voxel within ``max_span_mm``.

    Args:
        mask: boolean 3D array (the enclosing structure, e.g. dense bone).
        spacing: voxel size per array axis in mm.
        max_span_mm: largest distance, centre to centre, between the enclosing ``mask`` voxels on the
            two sides of a voxel (a voxel of ``mask`` encloses itself: span 0).
        where: optional boolean array; only these voxels are answered (the others get 0). Pass it
            on large volumes: the cost grows with the number of voxels answered and of ``mask``.
        closed_faces: optional ``((before, after), ...)`` per axis: the faces of the array that count
            as ``mask`` (a field of view's border: what lies beyond it is unknown, and a bone it cuts
            open still encloses its marrow).

    Returns:
        uint8 array of ``mask``'s shape.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3 or len(spacing) != 3:
        raise InputError(f"enclosed_axes needs a 3D mask and three spacings; got {mask.shape} and {spacing!r}")
    if not max_span_mm >= 0:
        raise InputError(f"max_span_mm must be >= 0; got {max_span_mm!r}")
    if closed_faces is not None:
        where = np.ones(mask.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
        padded, asked_padded, inner = _with_closed_faces(mask, where, closed_faces)
        return enclosed_axes(padded, spacing, max_span_mm, asked_padded)[inner]
    count = np.zeros(mask.shape, dtype=np.uint8)
    # voxels as flat indices of the whole array (cheaper than 3D coordinates of a box, and no copy of
    # it); mask voxels farther than the span from every voxel asked about cannot change an answer
    asked = np.arange(mask.size) if where is None else np.flatnonzero(np.asarray(where, dtype=bool))
    if asked.size == 0:
        return count
    coords = np.unravel_index(asked, mask.shape)
    mask_coords = np.unravel_index(np.flatnonzero(mask), mask.shape)
    hits = np.zeros(asked.shape, dtype=np.uint8)
    for axis in range(3):
        hits += _enclosed_along(mask, coords, axis, max_span_mm / float(spacing[axis]) + 1e-9, mask_coords)
    count.reshape(-1)[asked] = hits
    return count



def enclosure_bits(mask: np.ndarray, spacing: Sequence[float], max_span_mm: float,
                   where: np.ndarray, axes: Sequence[int] = (0, 1, 2), closed_faces=None) -> np.ndarray:
    """Like ``enclosed_axes``, but says along *which* axes: bit ``a`` (value ``1 << a``) is set where
    ``mask`` encloses the voxel along array axis ``a`` within ``max_span_mm``; only the voxels of
    ``where`` are answered (the others get 0), and only the ``axes`` asked for are tested
    (``closed_faces``: as ``enclosed_axes``'s). The bone labeler tells the spinal canal (enclosed in
    the axial plane, open along the body axis) from the marrow of a vertebral body (closed by its
    endplates along the body axis too) by it."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3 or len(spacing) != 3 or np.shape(where) != mask.shape:
        raise InputError(f"enclosure_bits needs a 3D mask, three spacings and a where mask of the same shape; got "
                         f"{mask.shape}, {spacing!r} and {np.shape(where)}")
    if not max_span_mm >= 0 or not set(axes) <= {0, 1, 2}:
        raise InputError(f"max_span_mm must be >= 0 and axes among 0, 1, 2; got {max_span_mm!r}, {axes!r}")
    if closed_faces is not None:
        padded, asked_padded, inner = _with_closed_faces(mask, np.asarray(where, dtype=bool), closed_faces)
        return enclosure_bits(padded, spacing, max_span_mm, asked_padded, axes)[inner]
    bits = np.zeros(mask.shape, dtype=np.uint8)
    margin = [int(np.ceil(max_span_mm / float(s))) if a in axes else 0 for a, s in enumerate(spacing)]
    box = mask_bounding_box(where, margin=margin)
    if box is None:
        return bits
    sub = np.ascontiguousarray(mask[box])
    coords = np.nonzero(where[box])
    hits = np.zeros(coords[0].shape, dtype=np.uint8)
    for axis in sorted(set(axes)):
        found = _enclosed_along(sub, coords, axis, max_span_mm / float(spacing[axis]) + 1e-9)
        hits |= found.astype(np.uint8) << axis
    bits[box][coords] = hits
    return bits
