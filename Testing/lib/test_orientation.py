"""Exact reorientation: every voxel keeps its value and world position; the undo is exact."""

import itertools

import numpy as np
import pytest

from organseglib.errors import GeometryError, InputError
from organseglib.orientation import axis_codes, reorient
from organseglib.volume import Volume


def rotation(degrees, axis):
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    a, b = [n for n in range(3) if n != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


DIRECTIONS = {
    "RAS": np.eye(3),
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "coronal RSP": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),   # i → R, j → S, k → P
    "PIL": np.array([[0, 0, -1.0], [-1, 0, 0], [0, -1, 0]]),           # every axis permuted and flipped
    "oblique 12°": rotation(12, 2) @ np.diag([-1.0, 1.0, -1.0]),
}


def volume(direction):
    rng = np.random.default_rng(0)
    return Volume.from_geometry(rng.normal(size=(4, 5, 6)), (0.7, 0.9, 2.5), origin=(10.0, -20.0, 30.0),
                                direction=direction)


@pytest.mark.parametrize("name", DIRECTIONS)
@pytest.mark.parametrize("code", ["LPS", "RAS", "SAL"])
def test_every_voxel_keeps_its_value_and_world_position(name, code):
    vol = volume(DIRECTIONS[name])
    out, undo = reorient(vol, code)
    if "oblique" not in name:
        assert axis_codes(out) == code
    assert sorted(out.spacing) == pytest.approx(sorted(vol.spacing))
    k, j, i = np.meshgrid(*[np.arange(n) for n in out.shape], indexing="ij")
    ijk1 = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    ras = out.ijk_to_ras @ ijk1
    src = np.linalg.solve(vol.ijk_to_ras, ras)[:3]
    assert np.allclose(src, np.round(src), atol=1e-6)                 # lands on original voxel centres
    si, sj, sk = np.round(src).astype(int)
    assert np.array_equal(vol.array[sk, sj, si], out.array.ravel())  # with the same values
    back = undo(out)
    assert back.same_grid(vol) and np.array_equal(back.array, vol.array)


def test_axis_codes_and_errors():
    assert [axis_codes(volume(d)) for d in DIRECTIONS.values()] == ["RAS", "LPS", "RSP", "PIL", "LAI"]
    with pytest.raises(InputError, match="three letters"):
        reorient(volume(np.eye(3)), "LPA")
    out, undo = reorient(volume(np.eye(3)), "LPS")
    with pytest.raises(GeometryError, match="not on the reoriented grid"):
        undo(volume(np.eye(3)))


def test_all_48_axis_orders_round_trip():
    vol = volume(np.eye(3))
    for perm in itertools.permutations("RAS"):
        for signs in itertools.product([0, 1], repeat=3):
            code = "".join({"R": "RL", "A": "AP", "S": "SI"}[c][s] for c, s in zip(perm, signs))
            out, undo = reorient(vol, code)
            assert axis_codes(out) == code and np.array_equal(undo(out).array, vol.array)
