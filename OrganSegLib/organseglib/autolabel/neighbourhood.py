"""Sparse statistics of the 3×3×3 neighbourhood of chosen voxels (one gather per offset), for the
bone labeler's edge (``edge.py``) and its noise-speckle rule (``noise.py``)."""

from __future__ import annotations

import numpy as np

CUBE_27 = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=np.intp)
CUBE_26 = CUBE_27[np.any(CUBE_27 != 0, axis=1)]  # without the voxel itself


def densest_bone_neighbour(bone: np.ndarray, ct: np.ndarray, points: np.ndarray) -> np.ndarray:
    """HU of the densest ``bone`` voxel in the 3×3×3 neighbourhood of each of ``points`` (n, 3);
    -inf where there is none. Sparse: 26 gathers of the points."""
    best = np.full(len(points), -np.inf, dtype=np.float32)
    shape = np.array(bone.shape)
    for offset in CUBE_26:
        q = points + offset
        inside = np.all((q >= 0) & (q < shape), axis=1)
        q = q[inside]
        hit = bone[q[:, 0], q[:, 1], q[:, 2]]
        value = np.where(hit, ct[q[:, 0], q[:, 1], q[:, 2]].astype(np.float32), -np.inf)
        best[inside] = np.maximum(best[inside], value)
    return best


def neighbourhood_mean_sd(ct: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (HU) of the 3×3×3 neighbourhood of each voxel ``flat`` (indices into
    the C-ordered ``ct``, none on a face of the array). Sparse: 27 gathers, float32 sums (of 27 values:
    the variance keeps about 0.1 HU^2 of precision)."""
    ct = np.ascontiguousarray(ct)  # any dtype: no float copy of the whole volume
    strides = np.array([ct.shape[1] * ct.shape[2], ct.shape[2], 1])
    values = ct.reshape(-1)
    total = np.zeros(len(flat), dtype=np.float32)
    square = np.zeros(len(flat), dtype=np.float32)
    v = np.empty(len(flat), dtype=np.float32)
    for offset in CUBE_27:
        if values.dtype == np.float32:
            values.take(flat + int(offset @ strides), out=v)
        else:
            v[:] = values.take(flat + int(offset @ strides))
        total += v
        v *= v
        square += v
    mean = total / np.float32(27.0)
    return mean, np.sqrt(np.maximum(square / np.float32(27.0) - mean * mean, 0.0))


__all__ = ["CUBE_26", "CUBE_27", "densest_bone_neighbour", "neighbourhood_mean_sd"]
