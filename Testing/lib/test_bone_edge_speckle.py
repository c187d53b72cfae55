"""The bone labeler's partial-volume edge (``autolabel/edge.py``) and its noise-speckle rule
(``autolabel/noise.py``): hand-worked examples, and the sparse fast paths against scipy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from organseglib.autolabel.edge import needed_fraction, partial_volume_edge
from organseglib.autolabel.neighbourhood import densest_bone_neighbour, neighbourhood_mean_sd
from organseglib.autolabel.noise import noise_speckle
from organseglib.autolabel.spine import grow_into


def _slab(spacing, hu_next):
    """A 1000 HU bone slab (i < 4) in muscle (40 HU); the voxels at i = 4 read ``hu_next``."""
    ct = np.full((5, 5, 10), 40.0, dtype=np.float32)
    ct[:, :, :4] = 1000.0
    ct[:, :, 4] = hu_next
    bone = ct >= 200
    bone[:, :, 4] = False
    return ct, bone, np.ones(ct.shape, bool), spacing


def test_needed_fraction_is_half_less_the_halo_over_the_voxel():
    # 0.5 - 0.5 / 3 = 1/3 at 3 mm; below zero at 0.8 mm (every neighbour of >= floor_hu)
    assert needed_fraction((3.0, 3.0, 3.0), 0.5) == pytest.approx([1 / 3] * 3)
    assert needed_fraction((1.6, 0.8, 0.8), 0.5) == pytest.approx([0.1875, -0.125, -0.125])
    assert np.all(needed_fraction((3.0, 3.0, 3.0), float("inf")) == -np.inf)


@pytest.mark.parametrize("hu_next, spacing, added", [
    (136.0, (3.0, 3.0, 3.0), False),  # a tenth bone: (136 - 40) / (1000 - 40) = 0.10 < 1/3
    (400.0, (3.0, 3.0, 3.0), True),   # (400 - 40) / 960 = 0.375 >= 1/3
    (136.0, (3.0, 3.0, 0.8), True),   # the step is along i (0.8 mm): every voxel >= 100 HU
    (90.0, (3.0, 3.0, 0.8), False),   # below the floor
])
def test_edge_hand_worked(hu_next, spacing, added):
    ct, bone, allowed, sp = _slab(spacing, hu_next)
    out = partial_volume_edge(bone, ct, allowed, sp, steps=1, floor_hu=100.0, soft_hu=40.0, halo_mm=0.5)
    assert out[:, :, 4].all() == added and out[:, :, 4].any() == added
    assert not out[:, :, 5:].any() and (out[:, :, :4] == bone[:, :, :4]).all()
    assert bone[:, :, 4].sum() == 0  # the input is not modified


def test_edge_reads_the_fraction_against_the_local_bone():
    """Beside a barely dense cortex (250 HU) a 160 HU voxel is mostly bone ((160 - 40) / 210 = 0.57);
    beside 1000 HU cortex it is an eighth bone."""
    ct, bone, allowed, sp = _slab((3.0, 3.0, 3.0), 160.0)
    ct[:, :, :4] = np.where(np.arange(5)[:, None, None] < 3, 250.0, 1000.0)
    out = partial_volume_edge(bone, ct, allowed, sp)
    assert out[:2, :, 4].all()  # rows 0-1: their 3×3×3 neighbourhood holds only 250 HU bone
    assert not out[2:, :, 4].any()  # rows 2-4: it holds 1000 HU bone


def test_edge_with_an_infinite_halo_is_the_plain_step():
    rng = np.random.default_rng(0)
    ct = ndi.gaussian_filter(rng.normal(100.0, 300.0, (20, 24, 28)), 1.5).astype(np.float32) * 3
    bone = ct >= 200
    allowed = rng.random(ct.shape) > 0.1
    for steps in (1, 2):
        fast = partial_volume_edge(bone, ct, allowed, (3.0, 1.0, 0.7), steps, 100.0, 40.0, float("inf"))
        slow = grow_into(bone, (ct >= 100.0) & allowed, steps)
        assert np.array_equal(fast, slow)
    assert partial_volume_edge(bone, ct, allowed, (3.0, 3.0, 3.0)).sum() < slow.sum()


def test_densest_bone_neighbour_matches_scipy():
    rng = np.random.default_rng(1)
    ct = rng.normal(0.0, 300.0, (9, 10, 11)).astype(np.float32)
    bone = rng.random(ct.shape) > 0.7
    points = np.argwhere(rng.random(ct.shape) > 0.5)
    reference = ndi.maximum_filter(np.where(bone, ct, -np.inf), size=3, mode="constant", cval=-np.inf)
    # the point itself is not its own neighbour: a bone point's own HU must not count
    own = bone[tuple(points.T)]
    fast = densest_bone_neighbour(bone, ct, points)
    masked = np.where(bone, ct, -np.inf)
    for n, (k, j, i) in enumerate(points):
        box = masked[max(k - 1, 0):k + 2, max(j - 1, 0):j + 2, max(i - 1, 0):i + 2].copy()
        box[min(k, 1), min(j, 1), min(i, 1)] = -np.inf
        assert fast[n] == box.max()
    assert np.all(fast[~own] == reference[tuple(points[~own].T)])


def test_neighbourhood_mean_sd_matches_scipy():
    rng = np.random.default_rng(2)
    ct = rng.normal(50.0, 300.0, (6, 7, 8)).astype(np.float32)
    inner = np.zeros(ct.shape, bool)
    inner[1:-1, 1:-1, 1:-1] = rng.random((4, 5, 6)) > 0.3
    flat = np.flatnonzero(inner)
    mean, sd = neighbourhood_mean_sd(ct, flat)
    c = ct.astype(np.float64)
    ref_mean = ndi.uniform_filter(c, 3)[inner]
    ref_sd = np.sqrt(ndi.uniform_filter(c * c, 3)[inner] - ref_mean ** 2)
    assert np.allclose(mean, ref_mean, atol=1e-2) and np.allclose(sd, ref_sd, atol=1e-2)
    as_int = np.rint(ct).astype(np.int16)  # an int16 CT gives the same, without a float copy of it
    mean16, sd16 = neighbourhood_mean_sd(as_int, flat)
    c16 = as_int.astype(np.float64)
    m16 = ndi.uniform_filter(c16, 3)[inner]
    assert np.allclose(mean16, m16, atol=1e-2)
    assert np.allclose(sd16, np.sqrt(ndi.uniform_filter(c16 * c16, 3)[inner] - m16 ** 2), atol=1e-2)


def test_speckle_in_blood_below_the_threshold_but_not_bone():
    """Blood at 180 HU with 20 HU of noise: about one voxel in six crosses 200 HU, all speckle. A
    vertebral ring of 260 HU cortex around 120 HU marrow, in fat, is tissue (its spread is far above
    the noise) even where its neighbourhood averages below 200 HU."""
    rng = np.random.default_rng(3)
    ct = np.full((12, 40, 40), -100.0, dtype=np.float32)
    ct[:, 2:18, 2:18] = 180.0
    kk, jj, ii = np.indices(ct.shape)
    r = np.hypot(jj - 28, ii - 28)
    ct[(r <= 8)] = 120.0
    ct[(r > 6) & (r <= 8)] = 260.0
    ct += rng.normal(0.0, 20.0, ct.shape).astype(np.float32)
    dense = ct >= 200
    speckle = noise_speckle(ct, dense, 200.0, 300.0, 1.5, 20.0)
    blood = np.zeros(ct.shape, bool)
    blood[1:-1, 3:17, 3:17] = True  # away from the pool's own edge and the array's faces
    assert dense[blood].mean() > 0.1
    assert speckle[blood & dense].mean() > 0.95
    ring = (r > 6) & (r <= 8)
    assert speckle[ring & dense].mean() < 0.02
    assert not noise_speckle(ct, dense, 200.0, 300.0, 1.5, float("nan")).any()
    assert not (speckle & ~dense).any()
    assert not speckle[[0, -1]].any() and not speckle[:, :, [0, -1]].any()  # faces: never speckle
