"""Resampling a CT onto another grid (the network's, section V of the paper) and labels back.

Down: a Gaussian anti-alias filter with σ_k = max(r/u_k − 1, 0)/3 voxels of the input grid on each
axis k (r the target spacing, u_k the input spacing), then linear interpolation. Up: label maps go
back to the native grid by nearest neighbour.

Grids share one convention: a voxel index is the voxel's centre. The 3 mm grid keeps the input's
direction and the centre of its field of view, and covers the whole field of view; ``GridMapping``
records both grids so predictions land back on exactly the original voxels. The network's spacing
and the trip into its grid and back are ``organseglib.network_space``'s; this module is the tool.

Fast path: when one grid's axes are parallel to the other's (always the case for the 3 mm grid, which
keeps the input's direction) the whole of "anti-alias, then linear" is one small matrix per axis
(target voxels × source voxels), and the resampling three matrix products, on numpy or on a torch
device. Each product is one 2-D matrix product (GEMM) over the whole volume, with the axis it
contracts moved to the front first: one large product runs well with any number of BLAS threads,
where a batch of ~300 small ones (one per slice) ran 50-100× slower with two OpenBLAS threads than
with one. A grid that already is the target (same shape and matrix) is copied, not resampled. Each matrix is scipy's own 1D operator, read off by transforming the identity, so edges,
padding and out-of-bounds points agree with the scipy path; the results differ by float rounding
only (tested against ``scipy.ndimage``). Nearest-neighbour label maps are three index gathers.
Oblique maps go through ``scipy.ndimage.affine_transform``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
from scipy import ndimage

from .errors import InputError
from .volume import Grid, Volume

GridLike = Union[Grid, Volume]  # anything with ``shape`` and ``ijk_to_ras``


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


def grid_with_spacing(volume: GridLike, spacing_mm: Union[float, Sequence[float]]) -> Grid:
    """The grid with the given spacing (i, j, k order or one number), the same direction and
    the same field-of-view centre as ``volume``, covering its whole field of view."""
    r = _as_spacing(spacing_mm)
    u = np.asarray(volume.spacing)
    n = np.asarray(volume.shape[::-1], dtype=np.float64)  # i, j, k
    # a scan whose spacing is the target's up to float32 rounding (3.0000002 mm) keeps its size
    n_new = np.maximum(np.ceil(n * u / r - IDENTITY_TOLERANCE_VOXELS), 1).astype(int)
    # centre of the field of view in input index coordinates, and the new grid's first voxel there
    first = (n - 1) / 2.0 - (n_new - 1) / 2.0 * (r / u)
    matrix = np.eye(4)
    matrix[:3, :3] = volume.direction * r[None, :]
    matrix[:3, 3] = volume.ijk_to_ras[:3, :3] @ first + volume.ijk_to_ras[:3, 3]
    return Grid(tuple(int(v) for v in n_new[::-1]), matrix)  # type: ignore[arg-type]


def _index_map(source: GridLike, target: GridLike) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset (array axis order k, j, i) mapping target array indices to source indices."""
    m = np.linalg.inv(source.ijk_to_ras) @ target.ijk_to_ras  # target ijk -> source ijk
    flip = np.eye(4)[[2, 1, 0, 3]]
    m_kji = flip @ m @ flip
    return m_kji[:3, :3], m_kji[:3, 3]


def _axis_aligned(matrix: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9))


# Largest displacement (in voxels, anywhere on the grid) still treated as "the same voxels": spacings
# stored as float32 (3.0000002 mm for 3 mm, relative error ~6e-8) drift by n × 6e-8 voxels across n
# voxels, far below this; a linear interpolation weight of 1e-4 changes a HU value by < 0.1 HU.
IDENTITY_TOLERANCE_VOXELS = 1e-4


def is_identity_map(source: GridLike, target: GridLike) -> bool:
    """True when ``target``'s voxel centres are ``source``'s own (same shape; no voxel centre moves
    by more than ``IDENTITY_TOLERANCE_VOXELS`` anywhere on the grid): resampling would return the
    voxels unchanged, to float rounding."""
    if tuple(source.shape) != tuple(target.shape):
        return False
    matrix, offset = _index_map(source, target)
    extent = np.maximum(np.asarray(target.shape, dtype=np.float64) - 1, 0)  # k, j, i
    drift = np.abs(matrix - np.eye(3)) @ extent + np.abs(offset)  # the largest displacement, per axis
    return bool(np.all(drift <= IDENTITY_TOLERANCE_VOXELS))


def linear_operator(n: int, scale: float, offset: float, m: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's linear sampling of a length-``n`` signal at ``scale * t + offset``, t = 0..m-1.

    Returns ``(L, outside)``: ``L`` (m × n, float64) with ``L @ x`` what
    ``ndimage.affine_transform(x, scale, offset, order=1, mode="constant", prefilter=False)`` gives
    at the points inside the signal, and ``outside`` (m,) flagging the points scipy fills with cval.
    Read off scipy by transforming the identity, so the two cannot disagree on edges.
    """
    rows = ndimage.affine_transform(np.eye(n), [1.0, scale], offset=[0.0, offset], output_shape=(n, m),
                                    order=1, mode="constant", cval=0.0, prefilter=False)
    flags = ndimage.affine_transform(np.zeros((1, n)), [1.0, scale], offset=[0.0, offset], output_shape=(1, m),
                                     order=1, mode="constant", cval=1.0, prefilter=False)[0]
    return rows.T, flags == 1.0


def nearest_index(n: int, scale: float, offset: float, m: int) -> np.ndarray:
    """scipy's nearest-neighbour choice (order 0, mode "constant") of a length-``n`` signal at
    ``scale * t + offset``: the source index for each t, or ``n`` where scipy fills with cval."""
    picked = ndimage.affine_transform(np.arange(n, dtype=np.float64)[None, :], [1.0, scale], offset=[0.0, offset],
                                      output_shape=(1, m), order=0, mode="constant", cval=-1.0,
                                      prefilter=False)[0]
    return np.where(picked < 0, n, np.rint(picked)).astype(np.intp)


def gaussian_operator(n: int, sigma: float, truncate: float = 3.0) -> np.ndarray:
    """``G`` (n × n) with ``G @ x == ndimage.gaussian_filter1d(x, sigma, mode="nearest", truncate=truncate)``."""
    if sigma <= 1e-15:  # scipy's gaussian_filter skips such axes
        return np.eye(n)
    return ndimage.gaussian_filter1d(np.eye(n), sigma, axis=0, mode="nearest", truncate=truncate)


def _to_device(array: np.ndarray, device: Optional[Any]):
    if device is None:
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _contract_first_axis(x, op, device: Optional[Any]):
    """``op`` (m × n) applied along the first axis of ``x`` (n, a, b) as one 2-D product: (m, a, b)."""
    n, a, b = x.shape
    return (_to_device(op, device) @ x.reshape(n, a * b)).reshape(op.shape[0], a, b)


def apply_separable(image: np.ndarray, operators: Sequence[np.ndarray], device: Optional[Any] = None) -> np.ndarray:
    """``image`` [K, J, I] multiplied by one matrix per axis (m_a × n_a), in float32; on ``device``
    (a torch device) when given, else with numpy. The last axis (the longest run in memory, and on a
    CT the largest reduction) is contracted first. Each axis is one 2-D matrix product (GEMM) over
    the whole volume: the axis it contracts is moved to the front (one transposed copy of the
    intermediate), never a batch of small per-slice products."""
    a_k, a_j, a_i = (np.asarray(op, dtype=np.float32) for op in operators)
    k, j, i = image.shape
    x = _to_device(np.asarray(image, dtype=np.float32), device)
    tf32 = None
    if device is not None:
        import torch

        tf32 = torch.backends.cuda.matmul.allow_tf32  # TF32 would cost ~10 bits of precision
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        mi, mj, mk = a_i.shape[0], a_j.shape[0], a_k.shape[0]
        y = x.reshape(k * j, i) @ _to_device(a_i.T.copy(), device)                   # (K·J, mi)
        y = _front(y.reshape(k, j, mi), (1, 0, 2), device)                            # (J, K, mi)
        y = _contract_first_axis(y, a_j, device)                                      # (mj, K, mi)
        y = _front(y, (1, 0, 2), device)                                              # (K, mj, mi)
        y = _contract_first_axis(y, a_k, device)                                      # (mk, mj, mi)
        return y if device is None else y.cpu().numpy()
    finally:
        if tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32


def _front(x, axes: tuple[int, int, int], device: Optional[Any]):
    """``x`` with its axes permuted, as a contiguous array (numpy or torch)."""
    if device is None:
        return np.ascontiguousarray(x.transpose(axes))
    return x.permute(*axes).contiguous()


def _linear_separable(array: np.ndarray, scales: Sequence[float], offsets: Sequence[float],
                      target_shape: Sequence[int], fill: float, sigma: Sequence[float] = (0.0, 0.0, 0.0),
                      device: Optional[Any] = None) -> np.ndarray:
    """Linear sampling at ``scales * t + offsets`` per axis, after a Gaussian blur of ``sigma`` (input
    voxels per axis; 0: none), as one matrix per axis; points outside the input get ``fill``."""
    ops = [linear_operator(n, sc, off, m) for n, sc, off, m in zip(array.shape, scales, offsets, target_shape)]
    mats = [op[0] @ gaussian_operator(n, sd) for op, n, sd in zip(ops, array.shape, sigma)]
    out = apply_separable(array, mats, device)
    fk, fj, fi = (op[1] for op in ops)
    out[fk[:, None, None] | fj[None, :, None] | fi[None, None, :]] = fill
    return out


def resample_to_grid(volume: Volume, target: GridLike, order: int = 1, fill: float = 0.0) -> Volume:
    """Sample ``volume`` at the voxel centres of ``target`` (any shape, direction or spacing).

    ``order`` 1 is linear (images, float32), 0 nearest neighbour (labels, same dtype); points outside
    get ``fill``. Axis-aligned maps take the separable fast path, oblique ones
    ``scipy.ndimage.affine_transform``.
    """
    matrix, offset = _index_map(volume, target)
    if order not in (0, 1):
        raise InputError(f"order must be 0 (nearest) or 1 (linear); got {order!r}")
    if _axis_aligned(matrix):
        scales = np.diag(matrix)
        if order == 0:
            padded = np.pad(volume.array, [(0, 1)] * 3, constant_values=fill)  # index n: outside
            out = padded
            for axis, (n, sc, off, m) in enumerate(zip(volume.shape, scales, offset, target.shape)):
                out = out.take(nearest_index(n, sc, off, m), axis=axis)
            return Volume(np.ascontiguousarray(out, dtype=volume.array.dtype), target.ijk_to_ras)
        return Volume(_linear_separable(volume.array, scales, offset, target.shape, fill), target.ijk_to_ras)
    dtype = volume.array.dtype if order == 0 else np.float32
    out = ndimage.affine_transform(
        volume.array if order == 0 else volume.array.astype(np.float32, copy=False),
        matrix, offset=offset, output_shape=target.shape, order=order, mode="constant", cval=fill,
        output=dtype, prefilter=False,
    )
    return Volume(out, target.ijk_to_ras)


@dataclass(frozen=True)
class GridMapping:
    """The native grid of a CT and the grid it was resampled to (see ``organseglib.network_space``
    for the whole trip into the network's grid and back)."""

    native: Grid
    network: Grid

    @property
    def identity(self) -> bool:
        """True when both grids are the same voxels (nothing was resampled)."""
        return is_identity_map(self.native, self.network)

    def labels_to_native(self, labels: Volume) -> Volume:
        """Nearest-neighbour labels from the network grid back onto the native voxels.

        The network grid covers the native field of view, so its outermost native voxels lie up to
        half a network voxel beyond the outermost network voxel centres; scipy's ``mode="constant"``
        (which ``resample_labels_to_grid`` follows) calls those points outside and gives 0, which
        would drop the labels of the first and last native slices. Padding the network labels by one
        replicated voxel on every side keeps those points inside; the result is the exact
        nearest-neighbour map either way.
        """
        self.network.require_same_grid(labels, what="labels on the network grid")
        if self.identity:
            return Volume(np.array(labels.array), self.native.ijk_to_ras)
        matrix = np.array(labels.ijk_to_ras, dtype=np.float64)
        matrix[:3, 3] -= matrix[:3, :3] @ np.ones(3)  # index -1 becomes index 0
        padded = Volume(np.pad(labels.array, 1, mode="edge"), matrix)
        return resample_labels_to_grid(padded, self.native)

    def labels_to_network(self, labels: Volume) -> Volume:
        """Nearest-neighbour labels from the native grid onto the network grid (training labels)."""
        self.native.require_same_grid(labels, what="labels")
        if self.identity:
            return Volume(np.array(labels.array), self.network.ijk_to_ras)
        return resample_labels_to_grid(labels, self.network)


def resample_ct(ct: Volume, spacing_mm: Union[float, Sequence[float]], fill_hu: float = -1000.0,
                device: Optional[Any] = None) -> tuple[Volume, GridMapping]:
    """Anti-alias and linearly resample a CT to ``spacing_mm``; return it with the grid mapping.

    A CT already on that grid (same shape, matrix to ``IDENTITY_TOLERANCE_VOXELS``) is returned as
    a float32 copy without resampling: the anti-alias σ is 0 and every sample is a voxel centre.

    Args:
        ct: CT in HU on its native grid.
        spacing_mm: target spacing (one number for isotropic, or i, j, k).
        fill_hu: value for points of the new grid outside the native field of view (air).
        device: a torch device (e.g. ``"cuda"``) for the matrix products; None: numpy on the CPU.
    """
    target = grid_with_spacing(ct, spacing_mm)
    mapping = GridMapping(native=ct.grid, network=target)
    if mapping.identity:
        return Volume(np.array(ct.array, dtype=np.float32), target.ijk_to_ras), mapping
    sigma = antialias_sigma(ct.array_spacing, np.asarray(target.array_spacing))
    matrix, offset = _index_map(ct, target)
    if _axis_aligned(matrix):  # the blur and the sampling folded into one matrix per axis
        out = _linear_separable(ct.array, np.diag(matrix), offset, target.shape, fill_hu, sigma, device)
        return Volume(out, target.ijk_to_ras), mapping
    image = ct.array.astype(np.float32, copy=True)
    if np.any(sigma > 0):
        ndimage.gaussian_filter(image, sigma=sigma, output=image, mode="nearest", truncate=3.0)
    return resample_to_grid(Volume(image, ct.ijk_to_ras), target, order=1, fill=fill_hu), mapping


def resample_labels_to_grid(labels: Volume, target: GridLike) -> Volume:
    """Nearest-neighbour resampling of a label map onto ``target``'s voxel centres (0 outside)."""
    return resample_to_grid(labels, target, order=0, fill=0)
