"""Pure helpers of sliding-window inference: where tiles go, how they are weighted, what to crop.

The paper covers a scan "by partially-overlapping sub-regions, averaging predictions where overlap
occurs" (section V-A). Tiles are placed independently on each axis (``tile_starts``) and visited in
z-major order (``tile_grid``), which lets the stitcher finish the slices below the next row of tiles
before it starts that row (``organseglib.inference``).

>>> tile_starts(10, 4, 0.25)   # 3 tiles cover 10 voxels with at least 1 voxel (25 %) of overlap
(0, 3, 6)
>>> tile_starts(3, 4, 0.25)    # smaller than a tile: one tile, the volume is padded
(0,)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .boxes import Box
from .errors import InputError


def tile_starts(size: int, tile: int, overlap: float) -> tuple[int, ...]:
    """Start indices of tiles of length ``tile`` covering ``0..size`` on one axis.

    Tiles lie inside ``[0, max(size, tile))``, the first starts at 0, the last ends at ``size`` (when
    ``size >= tile``), and consecutive tiles share at least ``min(ceil(overlap * tile), tile - 1)``
    voxels; the starts are spread evenly, so the overlaps differ by at most one voxel.

    Args:
        size: length of the axis (voxels, ≥ 1).
        tile: tile length (voxels, ≥ 1).
        overlap: requested overlap as a fraction of the tile, in ``[0, 1)``.

    Raises:
        InputError: a size below 1 or an overlap outside ``[0, 1)``.
    """
    if size < 1 or tile < 1:
        raise InputError(f"axis and tile sizes must be at least 1 voxel; got size={size!r}, tile={tile!r}")
    if not 0.0 <= overlap < 1.0:
        raise InputError(f"overlap must be a fraction in [0, 1) of the tile; got {overlap!r} (0.25 is 25 %)")
    if size <= tile:
        return (0,)
    step = max(1, tile - math.ceil(overlap * tile))  # largest step keeping the requested overlap
    count = math.ceil((size - tile) / step) + 1
    # evenly spread: consecutive gaps are floor or ceil of (size - tile)/(count - 1) <= step
    return tuple(int(round(n * (size - tile) / (count - 1))) for n in range(count))


def fitted_tile(shape: Sequence[int], tile: Sequence[int], multiple: int = 8) -> tuple[int, int, int]:
    """The tile shape actually used: the model's tile, shrunk on any axis where the volume is smaller
    to the volume's size rounded up to ``multiple`` (the network's input granularity)."""
    return tuple(min(int(t), multiple * math.ceil(int(s) / multiple)) for s, t in zip(shape, tile))  # type: ignore[return-value]


def tile_grid(shape: Sequence[int], tile: Sequence[int], overlap: float) -> list[Box]:
    """Tiles covering a (padded) volume of ``shape``, in z-major order (k, then j, then i)."""
    starts = [tile_starts(int(s), int(t), overlap) for s, t in zip(shape, tile)]
    return [(slice(k, k + tile[0]), slice(j, j + tile[1]), slice(i, i + tile[2]))
            for k in starts[0] for j in starts[1] for i in starts[2]]


def tile_weights(tile: Sequence[int], mode: str = "uniform", sigma_fraction: float = 0.125) -> np.ndarray:
    """Per-voxel weight of a tile's prediction when tiles are averaged.

    ``"uniform"`` (the paper's plain average, the default) gives ones; ``"gaussian"`` gives a Gaussian
    centred on the tile with σ = ``sigma_fraction`` × tile on each axis (nnU-Net's choice), scaled to a
    maximum of 1 and bounded below by 1e-3 so every voxel keeps a positive weight.

    Raises:
        InputError: unknown mode or a non-positive ``sigma_fraction``.
    """
    shape = tuple(int(t) for t in tile)
    if mode == "uniform":
        return np.ones(shape, dtype=np.float32)
    if mode != "gaussian":
        raise InputError(f"tile weighting must be 'uniform' or 'gaussian'; got {mode!r}")
    if not sigma_fraction > 0:
        raise InputError(f"sigma_fraction must be positive; got {sigma_fraction!r}")
    axes = []
    for n in shape:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        axes.append(np.exp(-0.5 * (x / (sigma_fraction * n)) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return np.maximum(w / w.max(), 1e-3).astype(np.float32)


def pad_to(array: np.ndarray, shape: Sequence[int], value: float) -> np.ndarray:
    """``array`` padded at the high end of each axis to at least ``shape`` with ``value``."""
    pad = [(0, max(0, int(s) - n)) for s, n in zip(shape, array.shape)]
    if not any(p[1] for p in pad):
        return array
    return np.pad(array, pad, mode="constant", constant_values=value)


__all__ = ["Box", "fitted_tile", "pad_to", "tile_grid", "tile_starts", "tile_weights"]
