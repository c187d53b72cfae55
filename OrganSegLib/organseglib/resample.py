"""Resampling to the network's 3 mm grid and back, as in the paper (section V).

Down: a Gaussian anti-alias filter with σ_k = max(r/u_k − 1, 0)/3 voxels of the input grid on each
axis k (r the target spacing, u_k the input spacing), then linear interpolation. Up: label maps go
back to the native grid by nearest neighbour.

Grids share one convention: a voxel index is the voxel's centre. The 3 mm grid keeps the input's
direction and the centre of its field of view, and covers the whole field of view; ``GridMapping``
records both grids so predictions land back on exactly the original voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
from scipy import ndimage

from .errors import InputError
from .volume import Volume

NETWORK_SPACING_MM = 3.0  # paper, section V: every CT is resampled to 3 mm isotropic voxels


def _as_spacing(spacing_mm: Union[float, Sequence[float]]) -> np.ndarray:
    r = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise InputError(f"target spacing must be positive mm; got {spacing_mm!r}")
    return r


def antialias_sigma(input_spacing: Sequence[float], target_spacing: Sequence[float]) -> np.ndarray:
    """σ_k = max(r/u_k − 1, 0)/3 in input voxels (same axis order as the arguments)."""
    u = np.asarray(input_spacing, dtype=np.float64)
    r = np.asarray(target_spacing, dtype=np.float64)
    return np.maximum(r / u - 1.0, 0.0) / 3.0


def grid_with_spacing(volume: Volume, spacing_mm: Union[float, Sequence[float]]) -> Volume:
    """An empty grid (uint8) with the given spacing (i, j, k order or one number), the same direction and
    the same field-of-view centre as ``volume``, covering its whole field of view."""
    r = _as_spacing(spacing_mm)
    u = np.asarray(volume.spacing)
    n = np.asarray(volume.shape[::-1], dtype=np.float64)  # i, j, k
    n_new = np.maximum(np.ceil(n * u / r - 1e-6), 1).astype(int)
    # centre of the field of view in input index coordinates, and the new grid's first voxel there
    first = (n - 1) / 2.0 - (n_new - 1) / 2.0 * (r / u)
    matrix = np.eye(4)
    matrix[:3, :3] = volume.direction * r[None, :]
    matrix[:3, 3] = volume.ijk_to_ras[:3, :3] @ first + volume.ijk_to_ras[:3, 3]
    return Volume(np.zeros(tuple(n_new[::-1]), dtype=np.uint8), matrix)


def _index_map(source: Volume, target: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset (array axis order k, j, i) mapping target array indices to source indices."""
    m = source.ras_to_ijk @ target.ijk_to_ras  # target ijk -> source ijk
    flip = np.eye(4)[[2, 1, 0, 3]]
    m_kji = flip @ m @ flip
    return m_kji[:3, :3], m_kji[:3, 3]


def resample_to_grid(volume: Volume, target: Volume, order: int = 1, fill: float = 0.0) -> Volume:
    """Sample ``volume`` at the voxel centres of ``target`` (any shape, direction or spacing).

    ``order`` 1 is linear (images), 0 nearest neighbour (labels); points outside get ``fill``.
    """
    matrix, offset = _index_map(volume, target)
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9):
        matrix = np.diag(matrix)  # axis-aligned: scipy's faster separable path
    dtype = volume.array.dtype if order == 0 else np.float32
    out = ndimage.affine_transform(
        volume.array if order == 0 else volume.array.astype(np.float32, copy=False),
        matrix, offset=offset, output_shape=target.shape, order=order, mode="constant", cval=fill,
        output=dtype, prefilter=False,
    )
    return Volume(out, target.ijk_to_ras)


@dataclass(frozen=True)
class GridMapping:
    """The native grid of a CT and the network grid it was resampled to."""

    native: Volume   # empty (uint8) volume with the native shape and matrix
    network: Volume  # empty (uint8) volume with the network grid

    def labels_to_native(self, labels: Volume) -> Volume:
        """Nearest-neighbour labels from the network grid back onto the native voxels."""
        self.network.require_same_grid(labels, what="labels on the network grid")
        return resample_labels_to_grid(labels, self.native)


def resample_ct(ct: Volume, spacing_mm: Union[float, Sequence[float]] = NETWORK_SPACING_MM,
                fill_hu: float = -1000.0) -> tuple[Volume, GridMapping]:
    """Anti-alias and linearly resample a CT to ``spacing_mm``; return it with the grid mapping.

    Args:
        ct: CT in HU on its native grid.
        spacing_mm: target spacing (one number for isotropic, or i, j, k).
        fill_hu: value for points of the new grid outside the native field of view (air).
    """
    target = grid_with_spacing(ct, spacing_mm)
    sigma = antialias_sigma(ct.array_spacing, np.asarray(target.array_spacing))
    image = ct.array.astype(np.float32, copy=True)
    if np.any(sigma > 0):
        ndimage.gaussian_filter(image, sigma=sigma, output=image, mode="nearest", truncate=3.0)
    out = resample_to_grid(Volume(image, ct.ijk_to_ras), target, order=1, fill=fill_hu)
    native = Volume(np.broadcast_to(np.uint8(0), ct.shape), ct.ijk_to_ras)
    return out, GridMapping(native=native, network=target)


def resample_labels_to_grid(labels: Volume, target: Volume) -> Volume:
    """Nearest-neighbour resampling of a label map onto ``target``'s voxel centres (0 outside)."""
    return resample_to_grid(labels, target, order=0, fill=0)
