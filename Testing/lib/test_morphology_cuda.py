"""The torch.fft morphology path on a CUDA GPU equals scipy.ndimage voxel for voxel.

The same table of cases as the CPU exactness tests (test_morphology.py: anisotropic spacings,
objects cut by the border, a single voxel, a full volume, one slice, 2D), run with
``method="fft-torch", device="cuda"``, plus the bone closing's 25 mm ball (12.5 mm radius,
8537 voxels) at 0.8 x 0.8 x 1.5 mm on volumes large enough that a round-off error in cuFFT's
float64 transforms would flip voxels. The expected masks come from scipy.ndimage
(``morphology_reference.reference``), never from another FFT path. Skipped, with the reason, without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organseglib import morphology as M
from organseglib.morphology.fft import ScipyFFT, TorchFFT
from morphology_reference import reference  # the slow reference (Testing/lib)
from test_morphology import CASES, OPS, _case  # the CPU table (Testing/lib is on sys.path)


def _cuda_status() -> tuple[bool, str]:
    try:
        import torch
    except ImportError as exc:  # torch is an optional dependency of organseglib
        return False, f"needs torch with CUDA (torch is not installed: {exc})"
    if not torch.cuda.is_available():
        return False, (f"needs an NVIDIA GPU visible to torch (torch {torch.__version__}: "
                       f"torch.cuda.is_available() is False)")
    return True, ""


CUDA_OK, CUDA_REASON = _cuda_status()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)]

BONE_SPACING = (1.5, 0.8, 0.8)  # (k, j, i) mm: 0.8 x 0.8 mm in-plane, 1.5 mm slices
BONE_RADIUS = 12.5  # the bone closing's 25 mm diameter ball


def _cuda(op: str, mask: np.ndarray, radius: float, spacing) -> np.ndarray:
    return getattr(M, op)(mask, radius, spacing, method="fft-torch", device="cuda")


def _check(op: str, mask: np.ndarray, radius: float, spacing) -> None:
    expected = reference(op)(mask, M.make_ball(radius, spacing).array)
    got = _cuda(op, mask, radius, spacing)
    assert isinstance(got, np.ndarray) and got.dtype == bool and got.shape == mask.shape
    diff = got != expected
    assert not diff.any(), (f"{op}: {int(diff.sum())} voxels differ from scipy.ndimage "
                            f"(first at {tuple(int(v) for v in np.argwhere(diff)[0])})")


def test_counts_are_computed_on_the_gpu_in_float64():
    # not a silent CPU fallback: the counts tensor lives on the GPU, in float64, and equals scipy.fft's
    rng = np.random.default_rng(3)
    mask = rng.random((20, 40, 40)) > 0.9
    ball = M.make_ball(BONE_RADIUS, BONE_SPACING)
    backend = TorchFFT("cuda")
    counts = backend._counts(mask, ball)
    assert counts.device.type == "cuda" and str(counts.dtype) == "torch.float64"
    host = counts.cpu().numpy()
    assert np.abs(host - np.rint(host)).max() < 1e-6  # integers up to round-off
    np.testing.assert_allclose(host, ScipyFFT().counts(mask, ball), atol=1e-6, rtol=0)
    # hand-checked voxel: the centre's ball lies inside the volume, its count is the mask in the ball
    centre = (10, 20, 20)
    window = mask[tuple(slice(c - h, c + h + 1) for c, h in zip(centre, ball.half))]
    assert window.shape == ball.array.shape
    assert round(float(host[centre])) == int((window & ball.array).sum())


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("kind,shape,spacing,radius", CASES)
def test_cuda_fft_equals_scipy_on_the_cpu_table(kind, shape, spacing, radius, op):
    mask = _case(kind, shape, seed=len(shape) + int(radius * 10))  # the CPU test's seed
    _check(op, mask, radius, spacing)


# the bone closing's ball on bigger volumes: sparse and dense masks, objects cut by the borders
LARGE = [
    ("sparse", (40, 72, 72), 0.995),
    ("dense", (40, 72, 72), 0.45),
    ("border", (36, 64, 80), None),
]


def _large(kind: str, shape, density, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind != "border":
        return rng.random(shape) > density
    m = np.zeros(shape, bool)
    m[0, 5:40, 10:20] = True  # a bar on the first slice, 30 px (24 mm) from the next one
    m[0, 5:40, 50:60] = True
    m[-1, 20:60, 20:60] = rng.random((40, 40)) > 0.3  # a ragged slab on the last slice
    m[:, -1, :] = rng.random((shape[0], shape[2])) > 0.5  # a noisy face on the j border
    m[10:30, 25:35, 0:3] = True  # a block against the i = 0 face
    return m


@pytest.mark.parametrize("op", ["dilation", "erosion", "closing"])
@pytest.mark.parametrize("case", range(len(LARGE)), ids=[c[0] for c in LARGE])
def test_cuda_bone_ball_equals_scipy_voxel_for_voxel(case, op):
    kind, shape, density = LARGE[case]
    mask = _large(kind, shape, density, seed=10 * case + OPS.index(op))
    ball = M.make_ball(BONE_RADIUS, BONE_SPACING)
    assert ball.size == 8537 and ball.half == (8, 15, 15)
    _check(op, mask, BONE_RADIUS, BONE_SPACING)


def test_cuda_closing_of_a_large_ball_object_equals_scipy():
    # one large ball-shaped object (a 60 mm sphere with a 20 mm cut and small holes) against the k
    # border: the closing bridges the cut, fills the holes and keeps the cut face on slice 0
    shape = (44, 100, 100)
    k, j, i = np.indices(shape)
    d2 = ((k - 10) * 1.5) ** 2 + ((j - 50) * 0.8) ** 2 + ((i - 50) * 0.8) ** 2
    mask = d2 <= 30.0 ** 2
    mask[:, 45:50, :] = False  # a 4 mm slot through the whole object
    mask &= np.random.default_rng(9).random(shape) > 0.05
    assert mask[0].any()
    _check("closing", mask, BONE_RADIUS, BONE_SPACING)
    closed = _cuda("closing", mask, BONE_RADIUS, BONE_SPACING)
    assert closed[mask].all() and closed[10, 47, 50]  # extensive, and the slot is bridged


def test_cuda_kernel_cache_is_reused_across_the_closing_steps():
    # closing = dilation then erosion on the same cropped shape: both steps share one cached kernel
    # spectrum on the GPU, and the result still equals scipy (a stale kernel would flip voxels)
    rng = np.random.default_rng(21)
    mask = rng.random((24, 48, 48)) > 0.99
    ball = M.make_ball(BONE_RADIUS, BONE_SPACING)
    backend, cache = TorchFFT("cuda"), {}
    dil = backend.dilate(mask, ball, cache)
    ero = ~backend.dilate(~dil, ball, cache)
    assert len(cache) == 1 and next(iter(cache.values())).device.type == "cuda"
    assert np.array_equal(dil, reference("dilation")(mask, ball.array))
    assert np.array_equal(ero, reference("erosion")(dil, ball.array))


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 8), st.integers(1, 12), st.integers(1, 12)),
    spacing=st.tuples(*[st.sampled_from([0.5, 0.7, 0.8, 1.0, 1.5, 2.5, 3.0])] * 3),
    radius=st.floats(0.0, 6.0),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    op=st.sampled_from(OPS),
)
def test_property_cuda_fft_equals_scipy(shape, spacing, radius, density, seed, op):
    mask = np.random.default_rng(seed).random(shape) < density
    _check(op, mask, radius, spacing)
