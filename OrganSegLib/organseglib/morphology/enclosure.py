"""Enclosure along the array axes: is a voxel *inside* a structure, or beside it?

``enclosed_axes(mask, spacing, max_span_mm)`` counts, for each voxel, the axes along which ``mask``
lies on both sides of it close together: the nearest ``mask`` voxel at or before it and the nearest
at or after it along that axis are at most ``max_span_mm`` apart. Marrow inside a vertebra, a femur
or a rib is enclosed by cortex along two or three axes; muscle between two ribs, or in the groove
between a vertebral body and its transverse process, along one at most. The bone labeler uses it to
tell the two apart among the voxels its closing filled (``organseglib.autolabel.bone``).

Each axis costs two cumulative extrema over the array (no distance transform), computed only on the
box around ``where`` that the rays can reach.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..tiling import mask_bounding_box


def _enclosed_along(mask: np.ndarray, axis: int, max_span: float) -> np.ndarray:
    """Voxels whose nearest ``mask`` voxels at/before and at/after along ``axis`` exist and lie at
    most ``max_span`` voxels apart."""
    n = mask.shape[axis]
    dtype = np.int16 if n < np.iinfo(np.int16).max // 2 else np.int32
    shape = [1] * mask.ndim
    shape[axis] = n
    pos = np.arange(n, dtype=dtype).reshape(shape)
    none = dtype(n)  # marks "no mask voxel on that side" (indices run 0 .. n-1)
    after = np.where(mask, pos, none)
    after = np.flip(np.minimum.accumulate(np.flip(after, axis), axis=axis), axis)
    before = np.maximum.accumulate(np.where(mask, pos, -none), axis=axis)
    found = (after != none) & (before != -none)
    after -= before
    found &= after <= max_span
    return found


def enclosed_axes(mask: np.ndarray, spacing: Sequence[float], max_span_mm: float,
                  where: Optional[np.ndarray] = None) -> np.ndarray:
    """Number of axes (0-3) along which ``mask`` encloses each voxel within ``max_span_mm``.

    Args:
        mask: boolean 3D array (the enclosing structure, e.g. dense bone).
        spacing: voxel size per array axis in mm.
        max_span_mm: largest distance, centre to centre, between the enclosing ``mask`` voxels on the
            two sides of a voxel (a voxel of ``mask`` encloses itself: span 0).
        where: optional boolean array; only these voxels are answered (the others get 0), and only
            the box around them that the rays can reach is scanned.

    Returns:
        uint8 array of ``mask``'s shape.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3 or len(spacing) != 3:
        raise InputError(f"enclosed_axes needs a 3D mask and three spacings; got {mask.shape} and {spacing!r}")
    if not max_span_mm >= 0:
        raise InputError(f"max_span_mm must be >= 0; got {max_span_mm!r}")
    count = np.zeros(mask.shape, dtype=np.uint8)
    if where is None:
        box = tuple(slice(0, n) for n in mask.shape)
    else:
        box = mask_bounding_box(where, margin=[int(np.ceil(max_span_mm / float(s))) for s in spacing])
        if box is None:
            return count
    sub = mask[box]
    out = count[box]
    for axis in range(3):
        out += _enclosed_along(sub, axis, max_span_mm / float(spacing[axis]) + 1e-9)
    if where is not None:
        count &= np.where(where, np.uint8(3), np.uint8(0))
    return count
