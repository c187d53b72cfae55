"""Morphology engine: every fast method equals scipy.ndimage with the same ball and border rules."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from organseglib import morphology as M
from organseglib.errors import InputError
from organseglib.morphology import edt as edt_mod
from organseglib.morphology.fft import ScipyFFT, TorchFFT
from morphology_reference import reference  # the slow reference (Testing/lib)

FAST = ["fft", "fft-torch", "edt", "auto"]
OPS = ["dilation", "erosion", "closing", "opening"]


def _op(name):
    return getattr(M, name)


# --- the ball ------------------------------------------------------------------------------------
def test_ball_hand_worked_sizes():
    assert M.make_ball(1.0, (1, 1, 1)).size == 7  # centre + 6 faces
    assert M.make_ball(1.5, (1, 1, 1)).size == 19  # + 12 edges; corners at sqrt(3) > 1.5
    assert M.make_ball(0.0, (1, 1, 1)).size == 1
    b = M.make_ball(2.0, (2.0, 1.0, 1.0))  # anisotropic: one slice either way, two voxels in-plane
    assert b.half == (1, 2, 2) and b.array.shape == (3, 5, 5)
    assert b.array[0].sum() == 1 and b.array[1].sum() == 13


def test_ball_includes_offsets_exactly_on_the_sphere():
    # 1.6 mm on a 0.8 mm grid reaches two voxels although 2 * 0.8 != 1.6 in binary
    b = M.make_ball(1.6, (0.8, 0.8, 0.8))
    assert b.half == (2, 2, 2) and b.array[2, 2, 0] and b.array[0, 2, 2]


def test_ball_threshold_lies_in_the_gap():
    b = M.make_ball(12.5, (1.5, 0.8, 0.8))
    k, j, i = np.indices(np.array(b.half) * 2 + 1)
    d2 = ((k - b.half[0]) * 1.5) ** 2 + ((j - b.half[1]) * 0.8) ** 2 + ((i - b.half[2]) * 0.8) ** 2
    assert d2[b.array].max() < b.threshold_sq < 12.5 ** 2 * 1.01
    assert np.array_equal(b.array, b.array[::-1, ::-1, ::-1])  # symmetric: convolution = correlation
    assert b.rel_gap > 0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "x", 5000.0])
def test_bad_radius_is_refused(bad):
    with pytest.raises(InputError, match="radius_mm"):
        M.dilation(np.ones((3, 3, 3), bool), bad, (1, 1, 1))


def test_bad_spacing_and_method_are_refused():
    with pytest.raises(InputError, match="spacing"):
        M.dilation(np.ones((3, 3, 3), bool), 1.0, (1, 0, 1))
    with pytest.raises(InputError, match="spacing"):
        M.dilation(np.ones((3, 3, 3), bool), 1.0, (1, 1))
    with pytest.raises(InputError, match="method"):
        M.dilation(np.ones((3, 3, 3), bool), 1.0, (1, 1, 1), method="magic")


# --- exactness on a table of cases ---------------------------------------------------------------
def _case(kind: str, shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    if kind == "random":
        m = rng.random(shape) > 0.85
    elif kind == "border":  # objects cut by every face
        m[0, :, : shape[2] // 2] = True
        m[:, -1, :] = rng.random((shape[0], shape[2])) > 0.3
        m[shape[0] // 2:, :, 0] = True
    elif kind == "blob-with-holes":
        k, j, i = np.indices(shape)
        c = np.array(shape) / 2
        m = ((k - c[0]) ** 2 + (j - c[1]) ** 2 + (i - c[2]) ** 2) < (min(shape) / 2.5) ** 2
        m &= rng.random(shape) > 0.1
    elif kind == "single":
        m[0, 0, 0] = True
    elif kind == "full":
        m[:] = True
    return m


CASES = [
    # kind, shape (k, j, i), spacing (k, j, i) mm, radius mm
    ("random", (9, 11, 13), (1.0, 1.0, 1.0), 1.0),
    ("random", (12, 16, 16), (1.5, 0.8, 0.8), 2.5),
    ("border", (10, 14, 12), (2.5, 0.7, 0.9), 3.0),
    ("border", (8, 20, 20), (5.0, 0.6, 0.6), 5.0),
    ("blob-with-holes", (14, 18, 18), (1.5, 0.8, 0.8), 2.0),
    ("blob-with-holes", (12, 12, 12), (1.0, 1.0, 1.0), 3.5),
    ("single", (7, 9, 9), (1.2, 0.9, 0.9), 2.7),
    ("full", (6, 7, 8), (1.0, 1.0, 1.0), 2.0),
    ("random", (1, 20, 20), (1.0, 1.0, 1.0), 2.0),  # one slice
    ("random", (10, 10), (0.5, 0.9), 2.0),  # 2D
]


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("kind,shape,spacing,radius", CASES)
def test_fast_methods_equal_scipy(kind, shape, spacing, radius, op, method):
    mask = _case(kind, shape, seed=len(shape) + int(radius * 10))
    ball = M.make_ball(radius, spacing)
    expected = reference(op)(mask, ball.array)
    got = _op(op)(mask, radius, spacing, method=method)
    assert got.dtype == bool and got.shape == mask.shape
    assert np.array_equal(got, expected), f"{(~(got == expected)).sum()} voxels differ"


def test_reference_border_rules_hand_worked():
    mask = np.ones((5, 5, 5), bool)
    assert M.erosion(mask, 1.0, (1, 1, 1)).all()  # outside is foreground for erosion
    corner = np.zeros((5, 5, 5), bool)
    corner[0, 0, 0] = True
    d = M.dilation(corner, 1.0, (1, 1, 1))
    assert d.sum() == 4  # the corner and its 3 in-volume face neighbours
    # a slab on the first slice survives a closing (structures near the first slice are not erased)
    slab = np.zeros((10, 12, 12), bool)
    slab[0, 3:9, 3:9] = True
    assert np.array_equal(M.closing(slab, 3.0, (1, 1, 1)) & slab, slab)


def test_empty_mask_gives_empty_results():
    empty = np.zeros((6, 6, 6), bool)
    for op in OPS:
        for method in FAST:
            assert not _op(op)(empty, 2.0, (1, 1, 1), method=method).any()


# --- property tests on small random volumes -----------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 8), st.integers(1, 10), st.integers(1, 10)),
    spacing=st.tuples(*[st.sampled_from([0.5, 0.7, 0.8, 1.0, 1.5, 2.5, 3.0])] * 3),
    radius=st.floats(0.0, 6.0),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    op=st.sampled_from(OPS),
    method=st.sampled_from(["fft", "edt", "auto"]),
)
def test_property_fast_equals_scipy(shape, spacing, radius, density, seed, op, method):
    mask = np.random.default_rng(seed).random(shape) < density
    ball = M.make_ball(radius, spacing)
    got = _op(op)(mask, radius, spacing, method=method)
    assert np.array_equal(got, reference(op)(mask, ball.array))
    if op == "closing":
        assert np.all(got[mask])  # extensive
    if op == "opening":
        assert not np.any(got & ~mask)  # anti-extensive


# --- round-off: a large ball must not flip a voxel ----------------------------------------------
def test_large_ball_counts_are_integers_and_methods_agree():
    rng = np.random.default_rng(7)
    shape, spacing, radius = (40, 64, 64), (1.5, 0.8, 0.8), 12.5  # the bone closing's ball
    mask = rng.random(shape) > 0.5
    ball = M.make_ball(radius, spacing)
    assert ball.size > 8000
    counts = ScipyFFT().counts(mask, ball)
    assert np.abs(counts - np.rint(counts)).max() < 1e-6  # far below the 0.5 threshold margin
    torch_counts = TorchFFT("cpu").counts(mask, ball)
    assert np.abs(torch_counts - np.rint(torch_counts)).max() < 1e-6
    # exact integer count at a hand-checked voxel: the centre sees the whole ball
    centre = tuple(n // 2 for n in shape)
    window = mask[tuple(slice(c - h, c + h + 1) for c, h in zip(centre, ball.half))]
    assert round(counts[centre]) == int((window & ball.array).sum())
    # three independent exact methods agree voxel for voxel
    sparse = rng.random(shape) > 0.995
    a = M.closing(sparse, radius, spacing, method="fft")
    b = M.closing(sparse, radius, spacing, method="fft-torch")
    c = M.closing(sparse, radius, spacing, method="edt")
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("op", ["dilation", "erosion"])  # closing/opening compose them (table above)
def test_large_ball_equals_scipy_voxel_for_voxel(op):
    # the bone closing's 25 mm ball (8537 voxels) on the clinical grid: every fast path equals scipy
    # voxel for voxel; with thousands of counts per voxel, a float32 round-off error would flip some
    rng = np.random.default_rng(11)
    shape, spacing, radius = (16, 34, 34), (1.5, 0.8, 0.8), 12.5
    mask = rng.random(shape) > (0.995 if op in ("dilation", "closing") else 0.02)
    expected = reference(op)(mask, M.make_ball(radius, spacing).array)
    for method in ("fft", "fft-torch", "edt"):
        got = _op(op)(mask, radius, spacing, method=method)
        assert np.array_equal(got, expected), f"{method}: {(got != expected).sum()} voxels differ"


def test_large_closing_keeps_structures_on_the_first_and_last_slices():
    slab = np.zeros((12, 40, 40), bool)
    slab[0, 5:35, 5:10] = slab[0, 5:35, 30:35] = True  # two bars 20 px (16 mm) apart on slice 0
    slab[-1, 10:30, 10:30] = True
    closed = M.closing(slab, 12.5, (1.5, 0.8, 0.8))
    assert closed[slab].all()  # nothing near the first or last slice is erased
    assert closed[0, 20, 10:30].all()  # and the 16 mm gap between the bars is bridged


def test_edt_declines_when_round_off_is_not_provably_safe(monkeypatch):
    ball = M.make_ball(3.0, (1.0, 1.0, 1.0))
    monkeypatch.setattr(edt_mod, "FLOAT32_MIN_GAP", 10.0)
    monkeypatch.setattr(edt_mod, "FLOAT64_MIN_GAP", 10.0)
    assert not edt_mod.safe(ball)
    mask = _case("random", (8, 9, 10), 3)
    assert np.array_equal(M.dilation(mask, 3.0, (1, 1, 1), method="edt"),
                          reference("dilation")(mask, ball.array))


@pytest.mark.parametrize("backend", ["edt-package", "scipy-float64"])
def test_both_edt_backends_equal_scipy_on_the_bone_ball(backend, monkeypatch):
    # the seung-lab ``edt`` package (float32, a dependency) and scipy's float64 fallback
    if backend == "edt-package":
        assert edt_mod._edt is not None, "the edt package is a dependency of organseglib; pip install edt"
    else:
        monkeypatch.setattr(edt_mod, "_edt", None)
    rng = np.random.default_rng(5)
    shape, spacing, radius = (14, 30, 32), (1.5, 0.8, 0.8), 12.5
    mask = rng.random(shape) > 0.993
    ball = M.make_ball(radius, spacing)
    assert edt_mod.safe(ball)
    got = edt_mod.EDT().dilate(mask, ball)
    assert np.array_equal(got, reference("dilation")(mask, ball.array))


def test_choose_method_prefers_scipy_for_tiny_balls_and_fast_paths_for_big_ones():
    assert M.choose_method((50, 50, 50), M.make_ball(1.0, (1, 1, 1))) == "direct"
    assert M.choose_method((300, 512, 512), M.make_ball(12.5, (1.5, 0.8, 0.8))) in ("fft", "edt")


# --- components ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_reconstruct_equals_scipy_label_reference(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((12, 30, 28), bool)
    if seed:  # seed 0: an empty mask
        mask[2:10, 3:25, 4:22] = rng.random((8, 22, 18)) > 0.55  # many components, away from the border
    marker = rng.random(mask.shape) > (0.999 if seed % 2 else 0.97)  # markers inside and outside the mask
    labels, _ = ndi.label(mask, structure=np.ones((3, 3, 3)))
    hit = np.unique(labels[marker & mask])
    expected = np.isin(labels, hit[hit > 0])
    assert np.array_equal(M.reconstruct(marker, mask), expected)


def test_largest_components_and_reconstruct():
    m = np.zeros((5, 20, 20), bool)
    m[1:4, 1:4, 1:4] = True  # 27
    m[1:4, 10:15, 10:15] = True  # 75
    m[0, 18, 18] = True  # 1
    kept, sizes = M.largest_components(m, 2)
    assert sizes == [75, 27] and kept.sum() == 102 and not kept[0, 18, 18]
    marker = np.zeros_like(m)
    marker[2, 12, 12] = True
    assert M.reconstruct(marker, m).sum() == 75
    with pytest.raises(InputError):
        M.largest_components(m, 0)


def test_fill_small_holes_per_slice_leaves_big_holes_open():
    m = np.zeros((2, 30, 30), bool)
    m[:, 2:28, 2:28] = True
    m[:, 4:6, 4:6] = False  # small hole: 4 px
    m[:, 10:25, 10:25] = False  # big hole: 225 px
    out = M.fill_small_holes_per_slice(m, max_area_px=10)
    assert out[:, 4:6, 4:6].all() and not out[:, 10:25, 10:25].any()
    assert np.array_equal(M.fill_holes_per_slice(m), ndi.binary_fill_holes(m[0])[None].repeat(2, 0))


def test_remove_border_gas_keeps_cut_lungs():
    air = np.zeros((1, 20, 20), bool)
    hu = np.full(air.shape, 40.0)
    air[0, :, :3] = True  # outside air on the left edge
    hu[0, :, :3] = -1000
    air[0, 5:15, 15:] = True  # lung cut by the right edge
    hu[0, 5:15, 15:] = -850
    hu[0, 0, :3] = 300  # a partial-volume rim pulls the outside air's mean up, not its median
    hu[0, 1, :3] = -300
    assert hu[0, :, :3].mean() > -960
    out = M.remove_border_gas_per_slice(air, hu, max_median=-960)
    assert not out[0, :, :3].any() and out[0, 5:15, 15:].all()
    assert not M.remove_border_connected_per_slice(air).any()


def test_fill_holes_keeps_background_on_the_array_faces():
    # fill_voids alone fills the background voxel at (0, 0, 2), which lies on two faces of the array
    m = np.random.default_rng(4).random((2, 4, 5)) < 0.75
    assert not m[0, 0, 2]
    np.testing.assert_array_equal(M.fill_holes(m), ndi.binary_fill_holes(m))


@settings(max_examples=150, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 9)] * 3), density=st.floats(0.0, 0.9), seed=st.integers(0, 9999),
       box=st.booleans())
def test_fill_holes_equals_scipy(shape, density, seed, box):
    """fill_holes (fill_voids on the mask's bounding box) against scipy's 6-connected reference."""
    rng = np.random.default_rng(seed)
    m = rng.random(shape) < density
    if box and min(shape) >= 5:  # a closed shell inside the array: its inside is a cavity
        m[:] = False
        m[1:-1, 1:-1, 1:-1] = True
        m[2:-2, 2:-2, 2:-2] = rng.random(tuple(n - 4 for n in shape)) < density
    np.testing.assert_array_equal(M.fill_holes(m), ndi.binary_fill_holes(m))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_count_values_equals_numpy_unique(dtype):
    rng = np.random.default_rng(11)
    labels = rng.choice([0, 1, 3, 5], p=[0.7, 0.1, 0.15, 0.05], size=(9, 17, 13)).astype(dtype)
    values, counts = np.unique(labels, return_counts=True)
    assert M.count_values(labels) == {int(v): int(c) for v, c in zip(values, counts)}
    assert M.count_values(np.zeros((2, 2, 2), np.uint8)) == {0: 8}
    assert M.count_values(np.asfortranarray(labels)) == M.count_values(labels)
