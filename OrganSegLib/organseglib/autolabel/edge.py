"""The bone's partial-volume edge (step 8 of ``bone.py``): which voxels just outside the 200 HU
contour a reader would draw as bone.

A voxel on the bone's surface holds some bone and some soft tissue; its HU lies between the two, in
proportion. A reader (or a model trained on readers' masks) follows the *visible* edge, which the
scanner's blur puts about ``halo_mm`` outside the bone's true surface. In one dimension, a voxel of
width ``s`` whose near fraction ``f`` is bone has its centre ``(0.5 - f) s`` outside the surface, so it
is drawn when ``f >= 0.5 - halo_mm / s``. At 0.8 mm with a halo of 0.5 mm the bound is below zero:
every neighbour of at least ``floor_hu`` is drawn. At 3 mm only a neighbour a third bone or more is:
a 3 mm voxel a tenth cortex reads about 100 HU and is not bone.

The fraction is estimated from the voxel's HU between soft tissue (``soft_hu``) and the densest bone
voxel in its 3×3×3 neighbourhood, so a neighbour of a thin, barely dense cortex (an osteoporotic
vertebra, whose surface voxels read 150-200 HU) counts as mostly bone, and one beside dense cortex
(1000 HU) does not.

Measured on the voxels the old rule (every 6-neighbour of >= 100 HU) added, by estimated fraction:
the hand-drawn ircad1_07 mask (0.78 × 0.78 × 1.6 mm) holds 81-82 % of those at 0.1-0.3; the
abdomen_totalseg reference (3 mm) 33-39 % at 0.1-0.3 and 55-88 % from 0.3; exact-truth phantoms
(3 mm) none below 0.3.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..boxes import mask_bounding_box
from .neighbourhood import densest_bone_neighbour

def needed_fraction(spacing: Sequence[float], halo_mm: float) -> np.ndarray:
    """Per axis, the bone fraction a neighbour along that axis needs: ``0.5 - halo_mm / spacing``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 - float(halo_mm) / np.asarray(spacing, dtype=float)


def partial_volume_edge(bone: np.ndarray, ct: np.ndarray, allowed: np.ndarray, spacing: Sequence[float],
                        steps: int = 1, floor_hu: float = 100.0, soft_hu: float = 40.0,
                        halo_mm: float = 0.5) -> np.ndarray:
    """``bone`` grown by ``steps`` 6-neighbour steps into the ``allowed`` voxels of at least
    ``floor_hu`` whose estimated bone fraction reaches ``0.5 - halo_mm / spacing`` along the axis of
    the step (``halo_mm = inf``: every such voxel). Works on the bone's bounding box; returns a new
    mask."""
    box = mask_bounding_box(bone, margin=[steps] * 3)
    if box is None or steps <= 0:
        return bone
    need = needed_fraction(spacing, halo_mm)
    sub, c, ok = bone[box].copy(), ct[box], allowed[box] & (ct[box] >= floor_hu)
    for _ in range(steps):
        add = np.zeros_like(sub)
        checked = []  # (need, neighbours along that axis) for the axes that need a fraction
        for axis in range(3):
            near = np.zeros_like(sub)
            a = [slice(None)] * 3
            b = [slice(None)] * 3
            a[axis], b[axis] = slice(1, None), slice(None, -1)
            near[tuple(a)] |= sub[tuple(b)]
            near[tuple(b)] |= sub[tuple(a)]
            near &= ok
            near &= ~sub
            if need[axis] <= 0:
                add |= near
            else:
                checked.append((need[axis], near))
        check = np.zeros_like(sub)
        for _, near in checked:
            check |= near
        check &= ~add
        if check.any():
            points = np.argwhere(check)
            where = tuple(points.T)
            hu = c[where].astype(np.float32)
            dense = densest_bone_neighbour(sub, c, points)
            fraction = (hu - soft_hu) / np.maximum(dense - soft_hu, 1.0)
            # the step's axis: the smallest need among the axes along which a bone voxel touches it
            need_here = np.full(len(points), np.inf)
            for axis_need, near in checked:
                need_here = np.where(near[where], np.minimum(need_here, axis_need), need_here)
            keep = points[fraction >= need_here]
            add[keep[:, 0], keep[:, 1], keep[:, 2]] = True
        sub |= add
    out = bone.copy()
    out[box] = sub
    return out


__all__ = ["needed_fraction", "partial_volume_edge"]
