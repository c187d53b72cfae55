"""Resampling to 3 mm and back: the anti-alias σ, exact geometry, and no half-voxel shift."""

import numpy as np
import pytest

from shared_data import shared_file
from organseglib.errors import InputError
from organseglib.resample import (antialias_sigma, grid_with_spacing, resample_ct, resample_labels_to_grid,
                                  resample_to_grid)
from organseglib.volume import Volume
from test_volume_organs import rotation


def test_antialias_sigma_matches_the_paper():
    # σ_k = max(r/u_k − 1, 0)/3: 0.8 mm -> 3 mm gives (3.75 − 1)/3; finer target or equal gives 0
    np.testing.assert_allclose(antialias_sigma([0.8, 1.5, 3.0, 5.0], [3.0] * 4), [2.75 / 3, 1.0 / 3, 0.0, 0.0])


def test_grid_keeps_direction_and_centre_and_covers_the_field_of_view():
    d = rotation(20, 5)
    v = Volume.from_geometry(np.zeros((30, 40, 50)), spacing=(0.8, 0.8, 1.5), origin=(5, -7, 11), direction=d)
    g = grid_with_spacing(v, 3.0)
    np.testing.assert_allclose(g.spacing, (3.0, 3.0, 3.0))
    np.testing.assert_allclose(g.direction, d, atol=1e-12)
    assert g.shape == (15, 11, 14)  # ceil(30*1.5/3), ceil(40*0.8/3), ceil(50*0.8/3)
    centre = lambda vol: vol.ijk_to_ras_points([(np.asarray(vol.shape[::-1]) - 1) / 2.0])[0]
    np.testing.assert_allclose(centre(g), centre(v), atol=1e-9)
    with pytest.raises(InputError, match="positive"):
        grid_with_spacing(v, 0.0)


def test_linear_ramp_is_reproduced_exactly_on_an_oblique_grid():
    # a CT that is linear in RAS stays linear after anti-alias + linear interpolation (away from the
    # border), so every 3 mm voxel must hold the ramp's value at its own RAS centre
    d = rotation(-35, 15)
    v = Volume.from_geometry(np.zeros((40, 44, 48), np.float32), spacing=(0.9, 1.1, 1.5),
                             origin=(3, 4, 5), direction=d)
    K, J, I = v.shape
    ijk = np.stack(np.meshgrid(np.arange(I), np.arange(J), np.arange(K), indexing="ij"), -1).reshape(-1, 3)
    ras = v.ijk_to_ras_points(ijk)
    coef = np.array([0.7, -1.3, 2.1])
    v = v.with_array((ras @ coef).reshape(I, J, K).transpose(2, 1, 0).astype(np.float32))
    out, mapping = resample_ct(v, 3.0, fill_hu=np.nan)
    k, j, i = np.nonzero(np.ones(out.shape, bool))
    pts = out.ijk_to_ras_points(np.stack([i, j, k], -1))
    expected = (pts @ coef).reshape(out.shape)
    inner = np.zeros(out.shape, bool)
    inner[3:-3, 3:-3, 3:-3] = True  # away from the border, where 'nearest' padding of the blur bends the ramp
    np.testing.assert_allclose(out.array[inner], expected[inner], atol=2e-3)
    assert mapping.native.same_grid(v) and mapping.network.same_grid(out)


def test_labels_round_trip_3mm_without_half_voxel_shift():
    # native 1 mm grid of 30 voxels; the 3 mm grid has 10 voxels, voxel n centred on native voxel 3n+1.
    native = Volume.from_geometry(np.zeros((30, 30, 30), np.uint8), spacing=(1, 1, 1), origin=(-4, 2, 9))
    coarse = grid_with_spacing(native, 3.0)
    np.testing.assert_allclose(coarse.origin, native.ijk_to_ras_points([[1, 1, 1]])[0])
    blocks = np.zeros(coarse.shape, np.uint8)
    blocks[2:5, 3:7, 1:2] = 3
    blocks[6, 6, 6] = 5
    back = resample_labels_to_grid(Volume.on_grid(blocks, coarse), native)
    expected = np.repeat(np.repeat(np.repeat(blocks, 3, 0), 3, 1), 3, 2)
    np.testing.assert_array_equal(back.array, expected)  # a half-voxel shift would move every edge
    again = resample_labels_to_grid(back, coarse)
    np.testing.assert_array_equal(again.array, blocks)


def test_labels_outside_the_source_are_background():
    src = Volume.from_geometry(np.full((4, 4, 4), 5, np.uint8), spacing=(1, 1, 1))
    target = Volume.from_geometry(np.zeros((4, 4, 4), np.uint8), spacing=(1, 1, 1), origin=(2, 0, 0))
    out = resample_labels_to_grid(src, target)
    assert out.array.dtype == np.uint8
    np.testing.assert_array_equal(out.array[:, :, :2], 5)
    np.testing.assert_array_equal(out.array[:, :, 2:], 0)


def test_identity_resampling_is_exact():
    v = Volume.from_geometry(np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32), spacing=(2, 2, 2))
    np.testing.assert_allclose(resample_to_grid(v, v, order=1).array, v.array, atol=1e-6)


@pytest.mark.slow
def test_real_scan_to_3mm_and_back():
    from organseglib.io import read_ct

    ct = read_ct(shared_file("ct/chest_lung1.nrrd"))
    out, mapping = resample_ct(ct, 3.0)
    assert out.shape == (80, 98, 98)
    body = out.with_array((out.array > -500).astype(np.uint8))
    back = mapping.labels_to_native(body)
    assert back.same_grid(ct)
    agreement = np.mean((ct.array > -500) == (back.array > 0))
    assert agreement > 0.95


def test_labels_back_to_native_reach_the_first_and_last_slices():
    # 30 native voxels of 0.8 mm: the 3 mm grid's first centre lies 1.1 mm inside the native field of
    # view, so native voxel 0 is outside the network voxel centres (scipy's constant mode gives 0)
    ct = Volume.from_geometry(np.zeros((30, 30, 30), np.float32), spacing=(0.8, 0.8, 0.8))
    out, mapping = resample_ct(ct, 3.0)
    back = mapping.labels_to_native(out.with_array(np.full(out.shape, 4, np.uint8)))
    assert back.same_grid(ct) and np.all(back.array == 4)


@pytest.mark.parametrize("spacing, target, n", [(3.0, 3.0, 20), (0.8, 0.8, 375), (1.5, 3.0, 40)])
def test_float32_rounded_spacing_keeps_the_grid_size_and_the_voxels(spacing, target, n):
    """A spacing stored as float32 (3 mm -> 3.0000002 as some writers round it, 0.8 -> 0.80000001)
    is the target's: the grid keeps its size (not one voxel more) and a CT already there is untouched."""
    from organseglib.resample import is_identity_map

    u = float(np.nextafter(np.float32(spacing), np.float32(np.inf)))  # float32 rounding upwards
    assert u > spacing
    v = Volume.from_geometry(np.zeros((n, 4, 4), np.float32), spacing=(spacing, spacing, u))  # k axis rounded
    g = grid_with_spacing(v, target)
    assert g.shape[0] == round(n * spacing / target)
    if spacing == target:
        assert g.shape == v.shape and is_identity_map(v, g)
        v.array[:] = np.arange(n, dtype=np.float32)[:, None, None]
        out, mapping = resample_ct(v, target)
        assert mapping.identity and np.array_equal(out.array, v.array)
    # a real half-voxel shift or a 1 % different spacing is still not the identity
    w = Volume.from_geometry(np.zeros((n, 4, 4), np.float32), spacing=(spacing, spacing, spacing * 1.01))
    assert not is_identity_map(w, grid_with_spacing(w, (spacing, spacing, spacing * 1.01 * (1 + 1e-3))))
