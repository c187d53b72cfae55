"""Exact erosion by a ball, computed only around the parts of the mask thick enough to survive it.

The lung labeler erodes all the air inside the body by a 10 mm ball (paper III-B). That air spans the
body (noise specks in fat, the air along the back and the arms), so the distance transform covers
most of a CT, while only the lungs, the airways and large bowel gas can hold the ball. Here:

1. the array is cut into blocks of about a third of the radius; a block is "full" when all its voxels
   are in the mask (outside the array counts as mask, as for ``operations.erosion``: the partial last
   block of an axis counts what it has). If the ball centred on a voxel ``x`` lies in the mask, every
   block whose centre is within ``r - D`` of the centre of ``x``'s block is full (``D``: the block's
   diagonal, centre to farthest voxel twice: each of its voxels is then within ``r`` of ``x``). So the
   erosion lies inside the blocks that survive the erosion of the full blocks, on the block grid, by
   a ball of radius ``r - D`` (slightly less, against round-off): a cheap superset;
2. those blocks are grouped into connected parts (26-connected, on the block grid); around each part
   the exact erosion is computed on the part's box grown by the ball's half-widths, and kept on the
   part's box (there the ball centred on a voxel lies inside the grown box, or beyond the array's
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


def _blocks(ball) -> tuple[tuple[int, ...], float]:
    """Block factors (about a third of the radius along each axis) and the radius left on the block
    grid, ``r - D`` (shrunk by 1e-6 against round-off; negative: no block fits)."""
    factors = tuple(max(1, int(round(ball.radius_mm / (3.0 * s)))) for s in ball.spacing)
    diagonal = math.sqrt(sum(((f - 1) * s) ** 2 for f, s in zip(factors, ball.spacing)))
    return factors, (ball.radius_mm - diagonal) * (1.0 - 1e-6)


def erosion_by_parts(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """``erosion(mask, radius_mm, spacing)`` (outside the array is foreground), computed around the
    thick parts of ``mask`` only (see the module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    ball = make_ball(radius_mm, tuple(float(s) for s in spacing))
    factors, left = _blocks(ball)
    whole = mask_bounding_box(mask, ball.half)
    if whole is None or mask.ndim != 3 or all(f == 1 for f in factors) or left < 0:
        return erosion(mask, radius_mm, spacing)
    full = _pool(mask, factors, any_=False)  # blocks wholly in the mask
    if left > 0:
        full = erosion(full, left, tuple(float(s) * f for s, f in zip(spacing, factors)))
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
