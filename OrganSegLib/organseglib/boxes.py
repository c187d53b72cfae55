"""Axis-aligned boxes of array indices: the smallest box around a mask.

A neutral home for a helper that morphology (work on an organ's box only), the sliding window and
the network space (crop to the body) all need, so none of them imports another for it.

>>> import numpy as np
>>> m = np.zeros((4, 5, 6), bool); m[1:3, 2, 3:5] = True
>>> mask_bounding_box(m)
(slice(1, 3, None), slice(2, 3, None), slice(3, 5, None))
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Box = tuple[slice, slice, slice]


def mask_bounding_box(mask: np.ndarray, margin: Sequence[int] | None = None) -> Box | None:
    """Smallest box holding every True voxel, grown by ``margin`` voxels per axis (default none) and
    clipped to the array; None when the mask is empty. Any number of dimensions."""
    if not mask.any():
        return None
    margin = (0,) * mask.ndim if margin is None else margin
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        lo = max(0, int(hit[0]) - int(margin[axis]))
        hi = min(mask.shape[axis], int(hit[-1]) + 1 + int(margin[axis]))
        box.append(slice(lo, hi))
    return tuple(box)  # type: ignore[return-value]


__all__ = ["Box", "mask_bounding_box"]
