"""NumPy models of what the CUDA kernel computes, for the tests (and the texture-error figure of
benchmarks/bench_augment.py) on any machine; not shipped with ``cudaaugment``.

* ``philox4x32_10`` / ``voxel_normals``: the kernel's counter-based noise, bit for bit (the
  normals to float32 rounding), so the CUDA tests can compare the GPU noise exactly and the CPU
  tests can check its statistics without a GPU.
* ``texture_trilinear``: trilinear interpolation as the texture unit does it, with the
  interpolation weights rounded to 8 fractional bits (CUDA C Programming Guide, "Linear
  Filtering": the weights are stored in 9-bit fixed point with 8 fractional bits). With
  ``weight_bits=None`` it is exact software trilinear, equal to the kernel's software path.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 on arrays of counters.

    Args:
        counter: (..., 4) uint32 counters.
        key: (2,) uint32 key.

    Returns:
        (..., 4) uint32 outputs.
    """
    c = [np.asarray(counter[..., i], np.uint64) for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0 = _M0 * c[0]
        p1 = _M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + np.uint64(_W0)) & _MASK
        k1 = (k1 + np.uint64(_W1)) & _MASK
    return np.stack([x.astype(np.uint32) for x in c], axis=-1)


def voxel_normals(seed: int, count: int, start: int = 0) -> np.ndarray:
    """The kernel's standard normals for voxel indices ``start .. start + count - 1``.

    Args:
        seed: the example's noise seed (64 bits; low word is key 0, high word key 1).
        count: how many voxels.
        start: first linear (C-order) output index.

    Returns:
        (count,) float32 standard normals.
    """
    idx = np.arange(start, start + count, dtype=np.uint64)
    ctr = np.zeros((count, 4), np.uint32)
    ctr[:, 0] = (idx & _MASK).astype(np.uint32)
    ctr[:, 1] = (idx >> np.uint64(32)).astype(np.uint32)
    key = np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF], np.uint32)
    r = philox4x32_10(ctr, key)
    u1 = ((r[:, 0] >> np.uint32(8)) + np.uint32(1)).astype(np.float32) * np.float32(2.0**-24)
    u2 = (r[:, 1] >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    return (np.sqrt(-2.0 * np.log(u1.astype(np.float64)))
            * np.cos(2.0 * np.pi * u2.astype(np.float64))).astype(np.float32)


def texture_trilinear(image: np.ndarray, coords: np.ndarray, fill: float = 0.0,
                      weight_bits: Optional[int] = 8) -> np.ndarray:
    """Trilinear samples of ``image`` at voxel ``coords`` with the input extended by ``fill``.

    Args:
        image: (z, y, x) array.
        coords: (3, ...) sampling coordinates in axis order (voxel units).
        fill: value outside the input.
        weight_bits: fractional bits of the interpolation weights (8 for texture hardware), or
            None for exact (software) trilinear.

    Returns:
        float64 samples of shape ``coords.shape[1:]``.
    """
    image = np.asarray(image, np.float64)
    padded = np.pad(image, 1, mode="constant", constant_values=fill)
    shape = np.array(image.shape)
    p = np.asarray(coords, np.float64)
    base = np.floor(p)
    frac = p - base
    if weight_bits is not None:
        frac = np.round(frac * 2**weight_bits) / 2**weight_bits
    out = np.zeros(p.shape[1:])
    base = base.astype(np.int64) + 1  # index into the padded array
    for corner in range(8):
        offs = [(corner >> (2 - a)) & 1 for a in range(3)]
        idx = [np.clip(base[a] + offs[a], 0, shape[a] + 1) for a in range(3)]
        w = np.ones(p.shape[1:])
        for a in range(3):
            w = w * (frac[a] if offs[a] else 1 - frac[a])
        out += w * padded[idx[0], idx[1], idx[2]]
    return out
