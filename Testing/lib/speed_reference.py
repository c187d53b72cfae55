"""Slow references of the issue-12 fast paths: the library's code before the speed work, and
scipy.ndimage where it says the same. A test helper, not shipped with the library."""

from __future__ import annotations

from typing import Sequence

import cc3d
import numpy as np
import scipy.ndimage as ndi


def repeat_blocks_reference(coarse: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    out = coarse
    for axis, (f, n) in enumerate(zip(factors, shape)):
        if f > 1:
            out = np.repeat(out, f, axis=axis)
        out = out[(slice(None),) * axis + (slice(0, n),)]
    return out


def block_mean_max_reference(ct: np.ndarray, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """blood._block_mean_max before issue 12 (whole-volume strided slices)."""
    shape = tuple(-(-n // t) for n, t in zip(ct.shape, strides))
    total = np.zeros(shape, dtype=np.float32)
    count = np.zeros(shape, dtype=np.float32)
    peak = np.full(shape, -np.inf, dtype=np.float32)
    for offsets in np.ndindex(*strides):
        part = ct[tuple(slice(o, None, t) for o, t in zip(offsets, strides))]
        region = tuple(slice(0, n) for n in part.shape)
        total[region] += part
        count[region] += 1.0
        np.maximum(peak[region], part, out=peak[region])
    total /= count
    return total, peak


def fill_small_holes_per_slice_reference(mask: np.ndarray, max_area_px: float) -> np.ndarray:
    """scipy: per axial slice, the holes (background not 4-connected to the slice edge) of at most
    ``max_area_px`` pixels (4-connected) filled."""
    out = mask.copy()
    four = ndi.generate_binary_structure(2, 1)
    for k in range(mask.shape[0]):
        plane = mask[k]
        holes = ndi.binary_fill_holes(plane, structure=four) & ~plane
        labels, n = ndi.label(holes, structure=four)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = sizes <= max_area_px
        small[0] = False
        out[k] = plane | small[labels]
    return out


def remove_border_gas_per_slice_reference(mask: np.ndarray, values: np.ndarray, max_median: float) -> np.ndarray:
    """scipy: per axial slice, drop the 8-connected components touching the slice edge whose median
    value is below ``max_median`` (over half their pixels below it)."""
    out = mask.copy()
    eight = np.ones((3, 3), bool)
    for k in range(mask.shape[0]):
        labels, n = ndi.label(mask[k], structure=eight)
        edge = set(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).tolist()) - {0}
        for index in edge:
            mine = labels == index
            if 2 * int((values[k][mine] < max_median).sum()) > int(mine.sum()):
                out[k][mine] = False
    return out


def reconstruct_reference(marker: np.ndarray, mask: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """Components of ``mask`` touching ``marker``, by labelling the whole mask."""
    labels = cc3d.connected_components(np.ascontiguousarray(mask), connectivity=connectivity)
    keep = np.unique(labels[marker & mask])
    keep = keep[keep > 0]
    return np.isin(labels, keep)
