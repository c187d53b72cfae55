"""Shared helpers of the cudaaugment tests: backend table, tiny volumes, tie masks."""

from __future__ import annotations

import numpy as np
import pytest


def cuda_available() -> bool:
    """True when CuPy imports and sees a CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


CUDA_OK = cuda_available()
CUDA_REASON = "needs CuPy and an NVIDIA GPU (none here); the kernel still compiles with nvcc"
cuda_only = [pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)]

# Every backend present, each test run on all: scipy is the reference. "cupy-emulated" runs the
# cupy backend's Python side on a CPU stand-in for CuPy (see fake_cupy.py); use these with
# ``@pytest.mark.parametrize("backend", BACKENDS, indirect=True)`` (fixture in conftest.py).
BACKENDS = [pytest.param("scipy", id="scipy"), pytest.param("torch", id="torch"),
            pytest.param("cupy", id="cupy", marks=cuda_only),
            pytest.param("cupy-emulated", id="cupy-emulated")]
FAST_BACKENDS = BACKENDS[1:]


def to_numpy(x):
    """numpy view/copy of a numpy, torch or cupy array (None passes through)."""
    if x is None or isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def smooth_volume(shape, seed: int = 0, low: float = -1000.0, high: float = 1000.0) -> np.ndarray:
    """A CT-like float32 test volume: smooth blobs plus a sharp edge, values in [low, high]."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    v = (v - v.min()) / (np.ptp(v) + 1e-12)
    v[: shape[0] // 3] += 0.5  # a step edge along axis 0
    v = (v - v.min()) / np.ptp(v)
    return (low + (high - low) * v).astype(np.float32)


def label_volume(image: np.ndarray, classes: int = 5) -> np.ndarray:
    """uint8 labels 0..classes-1 by intensity quantiles of ``image``."""
    edges = np.quantile(image, np.linspace(0, 1, classes + 1)[1:-1])
    return np.digitize(image, edges).astype(np.uint8)


def sampling_coords(params) -> np.ndarray:
    """(3, *out_shape) float64 input coordinates of every output voxel (the convention)."""
    grid = np.indices(params.out_shape, dtype=np.float64).reshape(3, -1)
    p = params.matrix @ grid + params.offset[:, None]
    return p.reshape((3, *params.out_shape))


def tie_mask(params, eps: float = 1e-3) -> np.ndarray:
    """True where nearest-neighbour rounding is ambiguous (a coordinate near a half-integer)."""
    p = sampling_coords(params)
    frac = p - np.floor(p)
    return (np.abs(frac - 0.5) < eps).any(axis=0)
