"""The structuring element: a ball given by its radius in mm on an anisotropic grid.

On a grid with spacing ``(s_k, s_j, s_i)`` mm the ball of radius ``r`` mm is the ellipsoid of voxel
offsets ``n`` with ``|n|_mm^2 = sum_a (n_a s_a)^2 <= r^2``. Offsets whose squared length lies within a
relative ``1e-9`` of ``r^2`` are inside, so that e.g. ``r = 2 * 0.8`` mm on a 0.8 mm grid reaches two
voxels whatever the binary round-off of 1.6. Every method in this package (scipy.ndimage, FFT, EDT)
uses this one set of offsets, which is what makes their results identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..errors import InputError

# Offsets with |n|^2 <= r^2 (1 + REL_TOL) belong to the ball (see module docstring).
REL_TOL = 1e-9


def check_spacing(spacing: Sequence[float], ndim: int = 3) -> tuple[float, ...]:
    """Validate a voxel spacing in mm, one positive finite number per array axis.

    Raises:
        InputError: wrong length, non-finite or non-positive values.
    """
    try:
        values = tuple(float(s) for s in spacing)
    except TypeError as exc:
        raise InputError(f"spacing must be a sequence of {ndim} numbers in mm; got {spacing!r}") from exc
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise InputError(
            f"spacing must be {ndim} positive finite numbers in mm (array axis order, e.g. "
            f"Volume.array_spacing); got {spacing!r}"
        )
    return values


def check_radius(radius_mm: float) -> float:
    """Validate a ball radius in mm (zero allowed: the ball is one voxel).

    Raises:
        InputError: negative, non-finite or absurdly large (> 1 m) radius.
    """
    try:
        r = float(radius_mm)
    except (TypeError, ValueError) as exc:
        raise InputError(f"radius_mm must be a number of millimetres; got {radius_mm!r}") from exc
    if not math.isfinite(r) or r < 0 or r > 1000:
        raise InputError(f"radius_mm must be between 0 and 1000 mm; got {radius_mm!r}")
    return r


@dataclass(frozen=True)
class Ball:
    """A ball of ``radius_mm`` on a grid of ``spacing`` mm.

    Attributes:
        array: boolean structuring element of shape ``2 * half + 1``, symmetric about its centre.
        half: half-widths in voxels along each array axis.
        threshold_sq: a squared distance in mm^2 strictly between the largest squared length of an
            offset inside the ball and the smallest outside it (the middle of that gap), for
            distance-transform methods.
        rel_gap: that gap divided by ``r^2`` (0 for a one-voxel ball): how much round-off a
            distance transform may make before it could flip a voxel.
    """

    radius_mm: float
    spacing: tuple[float, ...]
    array: np.ndarray
    half: tuple[int, ...]
    threshold_sq: float
    rel_gap: float

    @property
    def size(self) -> int:
        """Number of voxels in the ball."""
        return int(self.array.sum())


def _squared_lengths(half: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    grids = [((np.arange(-h, h + 1, dtype=np.float64) * s) ** 2) for h, s in zip(half, spacing)]
    total = grids[0].reshape((-1,) + (1,) * (len(grids) - 1))
    for axis, g in enumerate(grids[1:], start=1):
        shape = [1] * len(grids)
        shape[axis] = -1
        total = total + g.reshape(shape)
    return total


@lru_cache(maxsize=64)
def _make_ball(radius_mm: float, spacing: tuple[float, ...]) -> Ball:
    limit = radius_mm * radius_mm * (1.0 + REL_TOL)
    half = tuple(int(math.floor(math.sqrt(limit) / s)) for s in spacing)
    # one more shell on every axis to find the nearest offset outside the ball
    d2 = _squared_lengths([h + 1 for h in half], spacing)
    inside = d2 <= limit
    max_in = float(d2[inside].max())
    min_out = float(d2[~inside].min())
    core = tuple(slice(1, -1) for _ in half)
    array = inside[core].copy()
    array.setflags(write=False)
    gap = min_out - max_in
    scale = radius_mm * radius_mm if radius_mm * radius_mm > 0 else min(spacing) ** 2
    return Ball(radius_mm, spacing, array, half, max_in + gap / 2.0, gap / scale)


def make_ball(radius_mm: float, spacing: Sequence[float]) -> Ball:
    """The ball of ``radius_mm`` mm on a grid of ``spacing`` mm (array axis order).

    Args:
        radius_mm: radius in mm (half the diameter the paper quotes).
        spacing: voxel size in mm per array axis, e.g. ``Volume.array_spacing``.

    Raises:
        InputError: bad radius or spacing.
    """
    spacing = check_spacing(spacing, ndim=len(tuple(spacing)) if hasattr(spacing, "__len__") else 3)
    return _make_ball(check_radius(radius_mm), spacing)
