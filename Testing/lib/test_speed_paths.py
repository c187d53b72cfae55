"""Issue 12 (speed of ``organseg autolabel``): every fast primitive against its slow reference on tiny
seeded phantoms (``speed_reference``: the code before the speed work, or scipy.ndimage)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from organseglib import morphology as M
from speed_reference import (block_mean_max_reference, fill_small_holes_per_slice_reference,
                             reconstruct_reference, remove_border_gas_per_slice_reference,
                             repeat_blocks_reference)


def _blobs(rng, shape, fraction=0.5, sigma=1.2):
    """Smooth random blobs: holes, border-touching pieces and thin bridges of all sizes."""
    field = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    return field > np.quantile(field, 1.0 - fraction)


@pytest.mark.parametrize("seed", range(6))
def test_repeat_blocks_equals_np_repeat(seed):
    rng = np.random.default_rng(seed)
    factors = tuple(int(f) for f in rng.integers(1, 5, 3))
    shape = tuple(int(n) for n in rng.integers(3, 23, 3))
    blocks = tuple(-(-n // f) + int(rng.integers(0, 2)) for n, f in zip(shape, factors))  # maybe one too many
    coarse = rng.random(blocks) > 0.5
    got = M.repeat_blocks(coarse, factors, shape)
    np.testing.assert_array_equal(got, repeat_blocks_reference(coarse, factors, shape))
    assert got.shape == shape


def test_repeat_blocks_hand_worked():
    coarse = np.array([[[1, 2]], [[3, 4]]], dtype=np.uint8)
    got = M.repeat_blocks(coarse, (2, 1, 3), (3, 1, 5))
    assert got[:, 0].tolist() == [[1, 1, 1, 2, 2], [1, 1, 1, 2, 2], [3, 3, 3, 4, 4]]


@pytest.mark.parametrize("seed", range(8))
def test_fill_small_holes_per_slice_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    mask = _blobs(rng, (4, 31, 27), fraction=float(rng.uniform(0.3, 0.8)))
    if seed % 2:
        mask[:, :, :3] = False  # a box that does not reach every edge
    for area in (0, 3, 12, 1e9):
        np.testing.assert_array_equal(M.fill_small_holes_per_slice(mask, area),
                                      fill_small_holes_per_slice_reference(mask, area))


def test_fill_small_holes_per_slice_hand_worked():
    m = np.zeros((1, 9, 9), bool)
    m[0, 1:8, 1:8] = True
    m[0, 2, 2] = False  # a 1-pixel hole
    m[0, 4:7, 4:7] = False  # a 9-pixel hole
    out = M.fill_small_holes_per_slice(m, 5)
    assert out[0, 2, 2] and not out[0, 5, 5]
    m[0, 0, 0] = True  # the box now touches the slice corner: same result
    assert np.array_equal(M.fill_small_holes_per_slice(m, 5)[0, 1:, 1:], out[0, 1:, 1:])


@pytest.mark.parametrize("seed", range(8))
def test_remove_border_gas_per_slice_equals_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (3, 29, 33)
    air = _blobs(rng, shape, fraction=float(rng.uniform(0.3, 0.7)), sigma=float(rng.uniform(0.6, 1.5)))
    hu = np.where(rng.random(shape) < 0.5, -1000.0, -800.0).astype(np.float32)
    hu[:, :, 16:] = -1000.0  # a region of pure gas: some components are gas, some not
    np.testing.assert_array_equal(M.remove_border_gas_per_slice(air, hu, -960.0),
                                  remove_border_gas_per_slice_reference(air, hu, -960.0))


def test_remove_border_gas_many_edge_components_take_the_bincount_path():
    """More than a few edge components (specks along the edge): the whole-slice count, same rule."""
    air = np.zeros((1, 20, 40), bool)
    air[0, 0, ::2] = True  # 20 separate specks on the top edge
    hu = np.full(air.shape, -1000.0, np.float32)
    hu[0, 0, ::4] = -500.0  # half of them lung-like
    out = M.remove_border_gas_per_slice(air, hu, -960.0)
    assert out[0, 0].tolist() == ((hu[0, 0] > -960) & air[0, 0]).tolist()
    np.testing.assert_array_equal(out, remove_border_gas_per_slice_reference(air, hu, -960.0))


@pytest.mark.parametrize("factors", [(1, 1, 1), (2, 3, 3), (3, 5, 5), (1, 4, 2)])
def test_block_mean_max_bit_for_bit(factors):
    """Slab-wise strided sums: the same float32 left fold per block as the whole-volume strided sums."""
    rng = np.random.default_rng(sum(factors))
    ct = rng.normal(40.0, 300.0, (13, 17, 23)).astype(np.float32)  # partial last blocks on every axis
    mean, peak = M.coarse.block_mean_max(ct, factors)
    ref_mean, ref_peak = block_mean_max_reference(ct, factors)
    assert mean.dtype == np.float32 and mean.shape == ref_mean.shape
    assert np.array_equal(mean, ref_mean) and np.array_equal(peak, ref_peak)


def test_block_mean_max_hand_worked():
    ct = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    mean, peak = M.coarse.block_mean_max(ct, (2, 2, 2))
    # block (0,0,0): voxels [0,1,3,4,9,10,12,13]; last blocks along j and i hold what is left
    assert mean[0, 0, 0] == np.mean([0, 1, 3, 4, 9, 10, 12, 13]) and peak[0, 0, 0] == 13
    assert mean[0, 1, 1] == np.mean([8, 17]) and peak[0, 1, 1] == 17


@pytest.mark.parametrize("seed", range(8))
def test_reconstruct_with_and_without_margin_equals_reference(seed):
    rng = np.random.default_rng(100 + seed)
    mask = _blobs(rng, (14, 19, 23), fraction=float(rng.uniform(0.2, 0.6)), sigma=float(rng.uniform(0.7, 1.6)))
    marker = np.zeros_like(mask)
    for _ in range(int(rng.integers(1, 7))):  # 1-6 marked points: the few-ids and the lookup-table paths
        marker[tuple(int(rng.integers(0, n)) for n in mask.shape)] = True
    for connectivity in (6, 26):
        ref = reconstruct_reference(marker, mask, connectivity)
        np.testing.assert_array_equal(M.reconstruct(marker, mask, connectivity), ref)
        for margin in ((0, 0, 0), (1, 2, 3), (5, 5, 5)):
            np.testing.assert_array_equal(M.reconstruct(marker, mask, connectivity, margin=margin), ref)


def test_reconstruct_margin_falls_back_when_a_component_leaves_the_box():
    """A bar marked at one end: the box around the mark cuts it, so the whole mask is labelled."""
    mask = np.zeros((5, 5, 40), bool)
    mask[2, 2, 1:39] = True
    mask[2, 2, 0] = False
    marker = np.zeros_like(mask)
    marker[2, 2, 2] = True
    out = M.reconstruct(marker, mask, margin=(1, 1, 1))
    assert out.sum() == 38 and out[2, 2, 38]


def test_component_statistics_match_cc3d():
    import cc3d

    rng = np.random.default_rng(7)
    labels = cc3d.connected_components(_blobs(rng, (9, 21, 17), 0.4), connectivity=26)
    ours = M.components.component_statistics(labels)
    theirs = cc3d.statistics(labels)
    np.testing.assert_array_equal(ours["voxel_counts"], theirs["voxel_counts"])
    for index in range(1, int(labels.max()) + 1):
        assert tuple(ours["bounding_boxes"][index]) == tuple(theirs["bounding_boxes"][index])


@pytest.mark.parametrize("ids", [[], [3], [1, 4], [2, 3, 5, 6, 7, 9]])
def test_select_labels(ids):
    labels = np.arange(60, dtype=np.uint32).reshape(3, 4, 5) % 10
    expected = np.isin(labels, ids) & (labels > 0)
    np.testing.assert_array_equal(M.components.select_labels(labels, np.array(ids, dtype=np.int64)), expected)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("always_by_parts", [False, True])
def test_erosion_by_parts_equals_erosion(seed, always_by_parts, monkeypatch):
    """Thick pockets (some cut by the array border), thin bridges and specks: same erosion, voxel for
    voxel (also with the parts forced where they would not save time)."""
    from organseglib.morphology import thick
    from organseglib.morphology.thick import erosion_by_parts

    if always_by_parts:
        monkeypatch.setattr(thick, "WORTH", float("inf"))

    rng = np.random.default_rng(200 + seed)
    shape = (int(rng.integers(12, 30)), int(rng.integers(20, 40)), int(rng.integers(20, 40)))
    mask = _blobs(rng, shape, fraction=float(rng.uniform(0.15, 0.6)), sigma=float(rng.uniform(1.0, 3.0)))
    spacing = (float(rng.uniform(0.6, 2.5)), float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.5, 1.0)))
    for radius in (0.0, 1.0, 2.5, 4.0, float(rng.uniform(1.5, 4.0))):
        np.testing.assert_array_equal(erosion_by_parts(mask, radius, spacing), M.erosion(mask, radius, spacing))


def test_erosion_by_parts_two_pockets_hand_worked():
    """Two separate thick boxes far apart: each eroded on its own box; a thin plate between them
    vanishes; a box cut by the array's face keeps its cut face."""
    from organseglib.morphology.thick import _blocks, erosion_by_parts

    spacing = (0.5, 0.5, 0.5)  # r = 2.5 mm: 5 voxels; blocks of 2 voxels, 1.63 mm left on their grid
    factors, left = _blocks(M.make_ball(2.5, spacing))
    assert factors == (2, 2, 2) and abs(left - (2.5 - np.sqrt(0.75))) < 1e-5
    mask = np.zeros((30, 80, 80), bool)
    mask[2:20, 5:25, 5:25] = True
    mask[0:14, 50:75, 50:75] = True  # touches the first slice
    mask[24:26, 30:45, 5:75] = True  # a plate two voxels (1 mm) thick
    got = erosion_by_parts(mask, 2.5, spacing)
    np.testing.assert_array_equal(got, M.erosion(mask, 2.5, spacing))
    assert got[7:15, 10:20, 10:20].all() and not got[2:7, :40, :40].any() and not got[20:].any()
    assert got[0, 60, 60] and not got[:, :, 76:].any()


@pytest.mark.parametrize("factors", [(1, 1, 1), (2, 3, 3), (3, 5, 5), (4, 1, 2)])
@pytest.mark.parametrize("any_", [True, False])
def test_pool_any_all_equals_reshape(factors, any_):
    """Block any/all against padding to whole blocks (False pads for any, True for all) and reducing."""
    from organseglib.morphology.coarse import _pool

    rng = np.random.default_rng(3)
    mask = rng.random((11, 13, 17)) < (0.3 if any_ else 0.9)
    blocks = tuple(-(-n // f) for n, f in zip(mask.shape, factors))
    padded = np.full(tuple(b * f for b, f in zip(blocks, factors)), not any_)
    padded[:11, :13, :17] = mask
    split = padded.reshape(blocks[0], factors[0], blocks[1], factors[1], blocks[2], factors[2])
    expected = split.any(axis=(1, 3, 5)) if any_ else split.all(axis=(1, 3, 5))
    np.testing.assert_array_equal(_pool(mask, factors, any_), expected)


@pytest.mark.parametrize("density", [0.01, 0.5])
def test_lookup_sparse_and_dense(density):
    rng = np.random.default_rng(11)
    labels = np.where(rng.random((6, 7, 8)) < density, rng.integers(1, 30, (6, 7, 8)), 0).astype(np.uint32)
    table = rng.random(30) < 0.5
    table[0] = False
    np.testing.assert_array_equal(M.components.lookup(table, labels), table[labels])
    table[0] = True  # background looked up too: the plain gather
    np.testing.assert_array_equal(M.components.lookup(table, labels), table[labels])
    np.testing.assert_array_equal(M.components.lookup(table, labels.transpose(2, 0, 1)), table[labels.transpose(2, 0, 1)])


def test_tune_for_one_command_in_a_child_process():
    """glibc: applied (True), numpy's huge-page advice off; the child then allocates, frees and reuses
    large arrays as before."""
    import subprocess
    import sys

    code = ("import numpy as np; from organseglib.memory import tune_for_one_command; ok = tune_for_one_command(); "
            "a = np.ones(50_000_000, bool); s1 = int(a.sum()); del a; b = np.zeros(50_000_000, bool); "
            "print(ok, s1, int(b.sum()), np._core.multiarray._set_madvise_hugepage(False))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:3] == ["50000000", "0"] and out[3] == "False"  # the switch was already off
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert out[0] == "True"


@pytest.mark.parametrize("seed", range(5))
def test_edt_erosion_direct_equals_scipy(seed):
    """The EDT erosion thresholds the mask's own distance transform (no complements): same as scipy's
    binary_erosion with outside = foreground, also for an all-True and an empty mask."""
    from morphology_reference import reference

    rng = np.random.default_rng(300 + seed)
    spacing = (float(rng.uniform(0.7, 2.0)), float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.5, 1.0)))
    ball = M.make_ball(float(rng.uniform(1.0, 3.0)), spacing)
    masks = [_blobs(rng, (12, 20, 18), 0.6, 2.0), np.ones((6, 7, 8), bool), np.zeros((6, 7, 8), bool)]
    for mask in masks:
        np.testing.assert_array_equal(M.erosion(mask, ball.radius_mm, spacing, method="edt"),
                                      reference("erosion")(mask, ball.array))
