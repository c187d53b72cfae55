"""Exact erosion by a ball, computed only around the parts of the mask thick enough to survive it.

The lung labeler erodes all the air inside the body by a 10 mm ball (paper III-B). That air spans the
body (noise specks in fat, the gaps along the arms), so the distance transform covers most of a CT,
while only the lungs, the airways and large bowel gas can hold the ball. Here:

1. a voxel survives the erosion only if the ball centred on it lies in the mask, hence also the cube
   inscribed in the ball, hence also the block of a grid of blocks no larger than that cube that holds
   the voxel (the block is within the cube centred on any of its voxels). So the erosion lies inside
   the blocks that are wholly mask (the partial last block of an axis counts what it has: outside the
   array is foreground for the erosion, as in ``operations.erosion``);
2. those blocks are grouped into connected parts (26-connected, on the small block grid); around each
   part the exact erosion is computed on the part's box grown by the ball's half-widths, and kept on
   the part's box (there the ball centred on a voxel lies inside the grown box, or beyond the array's
   border, so the result is exact; the grown box's own faces count as foreground only for voxels
   outside the part's box, which are not kept).

Every voxel of the erosion lies in some part's box, where it is computed exactly; so the union is the
erosion, voxel for voxel (``erosion_by_parts`` equals ``erosion``). When the parts' grown boxes
together are not much smaller than the mask's box, it is ``erosion`` itself.
"""

from __future__ import annotations

import math
from typing import Sequence

import cc3d
import numpy as np
import scipy.ndimage as ndi

from ..boxes import mask_bounding_box
from .ball import make_ball
from .coarse import _pool
from .operations import erosion

MAX_PARTS = 256  # more parts than this (a sieve of thick pockets): one erosion of the whole box
WORTH = 0.8  # by parts only when their grown boxes hold less than this fraction of the mask's box


def _cube_half(ball) -> tuple[int, ...]:
    """Half-widths of the largest axis-aligned cube (box) of offsets inside the ball, scaled alike."""
    r = ball.radius_mm
    half = [int(math.floor(r / (math.sqrt(3.0) * s))) for s in ball.spacing]
    centre = ball.half
    while True:  # shrink until the whole box of offsets is in the ball (round-off of the bound)
        box = tuple(slice(c - h, c + h + 1) for c, h in zip(centre, half))
        if ball.array[box].all() or not any(half):
            return tuple(half)
        half = [max(0, h - 1) for h in half]


def erosion_by_parts(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """``erosion(mask, radius_mm, spacing)`` (outside the array is foreground), computed around the
    thick parts of ``mask`` only (see the module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    ball = make_ball(radius_mm, tuple(float(s) for s in spacing))
    factors = tuple(h + 1 for h in _cube_half(ball))
    whole = mask_bounding_box(mask, ball.half)
    if whole is None or mask.ndim != 3 or all(f == 1 for f in factors):
        return erosion(mask, radius_mm, spacing)
    full = _pool(mask, factors, any_=False)  # blocks wholly in the mask
    labels, n = cc3d.connected_components(full, connectivity=26, return_N=True)
    out = np.zeros(mask.shape, dtype=bool)
    if n == 0:
        return out
    parts = [b for b in ndi.find_objects(labels) if b is not None]
    cores, works = [], []
    for coarse_box in parts:
        core = tuple(slice(b.start * f, min(n_, b.stop * f)) for b, f, n_ in zip(coarse_box, factors, mask.shape))
        cores.append(core)
        works.append(tuple(slice(max(0, c.start - h), min(n_, c.stop + h))
                           for c, h, n_ in zip(core, ball.half, mask.shape)))
    volume = sum(int(np.prod([s.stop - s.start for s in w])) for w in works)
    if len(parts) > MAX_PARTS or volume >= WORTH * int(np.prod([s.stop - s.start for s in whole])):
        return erosion(mask, radius_mm, spacing)
    for core, work in zip(cores, works):
        eroded = erosion(mask[work], radius_mm, spacing)
        inner = tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(core, work))
        out[core] |= eroded[inner]
    return out
