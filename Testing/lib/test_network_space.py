"""The one door into and out of the network's space (organseglib.network_space).

Tiny seeded phantoms in LPS and RAS array order, isotropic and anisotropic spacing: labels drawn on
the network grid come back onto exactly the native voxels they cover, and labels taken in with
their CT land on the network voxels they cover.
"""

from __future__ import annotations

import numpy as np
import pytest

from organseglib.errors import GeometryError, InputError
from organseglib.network_space import (NETWORK_ORIENTATION, NETWORK_SPACING_MM, enter_network_space)
from organseglib.orientation import axis_codes, reorient
from organseglib.volume import Grid, Volume

LPS = np.diag([-1.0, -1.0, 1.0])
RAS = np.eye(3)


def phantom(shape, spacing, direction, seed, cell):
    """A seeded CT whose bright boxes have faces on network-cell boundaries (``cell`` native voxels per
    3 mm along k, j, i), with a body of fat, and the box labels."""
    rng = np.random.default_rng(seed)
    K, J, I = shape
    ct = np.full(shape, -1000.0, np.float32)
    ct[:, 2 * cell[1]:J - 2 * cell[1], 2 * cell[2]:I - 2 * cell[2]] = -100.0
    labels = np.zeros(shape, np.uint8)
    for value in (1, 4):
        lo = [int(rng.integers(1, n // c - 4)) for n, c in zip(shape, cell)]
        size = [int(rng.integers(1, 4)) for _ in range(3)]
        box = tuple(slice(a * c, (a + s) * c) for a, s, c in zip(lo, size, cell))
        labels[box] = value
        ct[box] = 60.0 * value
    origin = tuple(rng.uniform(-50, 50, 3))
    vol = Volume.from_geometry(ct, spacing, origin=origin, direction=direction)
    return vol, vol.with_array(labels)


CASES = [  # spacing (i, j, k) mm; shape (K, J, I); native voxels per 3 mm cell (k, j, i)
    ((1.0, 1.0, 1.0), (45, 36, 39), (3, 3, 3)),
    ((0.75, 0.75, 1.5), (24, 48, 52), (2, 4, 4)),
    ((3.0, 3.0, 3.0), (14, 12, 13), (1, 1, 1)),  # already on the network grid: no resampling
]


@pytest.mark.parametrize("direction", [LPS, RAS], ids=["LPS", "RAS"])
@pytest.mark.parametrize("spacing, shape, cell", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_native_network_native_puts_labels_on_the_same_voxels(spacing, shape, cell, direction, seed):
    ct, labels = phantom(shape, spacing, direction, seed, cell)
    image, space = enter_network_space(ct)
    assert space.orientation == NETWORK_ORIENTATION == axis_codes(Volume.on_grid(image, space.grid))
    assert np.allclose(space.grid.spacing, NETWORK_SPACING_MM)
    on_network = space.labels_to_network(labels)
    assert on_network.shape == image.shape == space.grid.shape
    # the network sees the boxes where the labels say they are (brighter than the fat around them;
    # the anti-alias blur softens small boxes, so compare means)
    fat = image[(on_network == 0) & (image > -500)].mean()
    for value in (1, 4):
        assert image[on_network == value].mean() > fat + 50
    back = space.labels_to_native(on_network)
    assert back.same_grid(ct) and back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)


@pytest.mark.parametrize("direction", [LPS, RAS], ids=["LPS", "RAS"])
def test_lps_and_ras_files_of_one_patient_give_the_network_one_array(direction):
    ct, labels = phantom((24, 48, 52), (0.75, 0.75, 1.5), LPS, 3, (2, 4, 4))
    stored, _ = reorient(ct, axis_codes(Volume.from_geometry(np.zeros((1, 1, 1)), direction=direction)))
    a, space_a = enter_network_space(ct)
    b, space_b = enter_network_space(stored)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)
    assert space_a.grid.same_grid(space_b.grid)


def test_crop_to_the_body_box_with_margin_and_back():
    """Body: native voxels 9..35 (1 mm) along i → network voxels 3..11 (3 mm); a 6 mm margin adds two
    network voxels each side. Labels outside the crop come back as background."""
    shape = (45, 36, 45)
    ct = np.full(shape, -1000.0, np.float32)
    ct[:, :, 9:36] = 40.0
    vol = Volume.from_geometry(ct, (1.0, 1.0, 1.0), direction=LPS)
    body = ct > -500
    image, space = enter_network_space(vol, body=body, margin_mm=6.0)
    assert space.box == (slice(0, 15), slice(0, 12), slice(1, 14))
    assert image.shape == (15, 12, 13) and space.grid.shape == image.shape
    assert space.uncropped.shape == (15, 12, 15)
    # the cropped grid is the uncropped one moved by the box corner
    np.testing.assert_allclose(space.grid.ijk_to_ras_points([[0, 0, 0]]),
                               space.uncropped.ijk_to_ras_points([[1, 0, 0]]))
    back = space.labels_to_native(np.ones(image.shape, np.uint8))
    assert back.array[:, :, 3:42].all() and not back.array[:, :, :3].any() and not back.array[:, :, 42:].any()
    # no body found: the whole grid
    _, whole = enter_network_space(vol, body=np.zeros(shape, bool))
    assert whole.grid.same_grid(whole.uncropped)


def test_bad_input_is_refused_with_the_rule():
    vol = Volume.from_geometry(np.zeros((6, 6, 6), np.float32), (3.0, 3.0, 3.0))
    with pytest.raises(InputError, match="axis code"):
        enter_network_space(vol, orientation="LPX")
    with pytest.raises(InputError, match="margin_mm"):
        enter_network_space(vol, body=np.ones((6, 6, 6), bool), margin_mm=-1.0)
    with pytest.raises(GeometryError):
        enter_network_space(vol, body=np.ones((5, 6, 6), bool))
    image, space = enter_network_space(vol)
    with pytest.raises(GeometryError, match="shape"):
        space.labels_to_native(np.zeros((5, 6, 6), np.uint8))


def test_grid_crop_and_volume_grid_agree():
    vol = Volume.from_geometry(np.zeros((4, 5, 6)), spacing=(0.5, 2.0, 3.0), origin=(1, 2, 3), direction=LPS)
    g = vol.grid
    assert isinstance(g, Grid) and g.shape == (4, 5, 6) and g.same_grid(vol) and vol.same_grid(g)
    sub = g.cropped((slice(1, 3), slice(0, 5), slice(2, 6)))
    np.testing.assert_allclose(sub.origin, vol.ijk_to_ras_points([[2, 0, 1]])[0])
    with pytest.raises(GeometryError, match="inside"):
        g.cropped((slice(0, 9), slice(0, 5), slice(0, 6)))
    with pytest.raises(GeometryError, match="positive"):
        Grid((0, 1, 1), np.eye(4))


def test_a_body_finder_runs_on_the_network_grid_and_gives_the_same_box_as_the_native_mask():
    from organseglib.network_space import find_body_on_network_grid

    shape = (45, 36, 45)
    ct = np.full(shape, -1000.0, np.float32)
    ct[:, 6:30, 9:36] = 40.0
    vol = Volume.from_geometry(ct, (1.0, 1.0, 1.0), direction=RAS)
    seen = []

    def finder(network_ct):
        seen.append(network_ct.grid)
        return network_ct.array > -500

    _, by_finder = enter_network_space(vol, body=finder)
    _, by_mask = enter_network_space(vol, body=ct > -500)
    assert len(seen) == 1 and seen[0].same_grid(by_finder.uncropped)  # the whole reoriented 3 mm grid
    assert by_finder.box == by_mask.box
    _, exact = enter_network_space(vol, body=ct > -500, margin_mm=0.0)
    _, found = enter_network_space(vol, body=find_body_on_network_grid, margin_mm=0.0)
    assert [(s.start, s.stop) for s in exact.box[1:]] == [(2, 10), (3, 12)]  # 24 × 27 mm of body at 3 mm
    # the finder works on a 6 mm grid: the box edges within one network voxel of the exact ones
    for a, b in zip(found.box, exact.box):
        assert abs(a.start - b.start) <= 1 and abs(a.stop - b.stop) <= 1
