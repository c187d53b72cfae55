"""morphology.enclosed_axes against a voxel-by-voxel ray walk, and on hand-made shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organseglib.errors import InputError
from organseglib.morphology import enclosed_axes, enclosure_bits


def walk_reference(mask, spacing, max_span_mm, where=None):
    """Slow: from each voxel, walk both ways along each axis to the nearest mask voxel."""
    out = np.zeros(mask.shape, np.uint8)
    for idx in np.ndindex(mask.shape):
        if where is not None and not where[idx]:
            continue
        for axis in range(3):
            hits = []
            for step in (-1, 1):
                p = list(idx)
                while 0 <= p[axis] < mask.shape[axis] and not mask[tuple(p)]:
                    p[axis] += step
                hits.append(p[axis] if 0 <= p[axis] < mask.shape[axis] else None)
            if None not in hits and (hits[1] - hits[0]) * spacing[axis] <= max_span_mm + 1e-9:
                out[idx] += 1
    return out


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 7)] * 3), spacing=st.tuples(*[st.sampled_from([0.7, 1.0, 3.0])] * 3),
       span=st.sampled_from([0.0, 2.0, 3.5, 6.0, 50.0]), density=st.floats(0.0, 0.6), seed=st.integers(0, 999),
       use_where=st.booleans())
def test_equals_the_ray_walk(shape, spacing, span, density, seed, use_where):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    where = rng.random(shape) < 0.5 if use_where else None
    np.testing.assert_array_equal(enclosed_axes(mask, spacing, span, where),
                                  walk_reference(mask, spacing, span, where))


def test_marrow_in_a_tube_is_enclosed_and_the_gap_between_two_rods_is_not():
    mask = np.zeros((20, 20, 20), bool)
    z, y, x = np.indices(mask.shape)
    tube = ((y - 10) ** 2 + (x - 10) ** 2 >= 9) & ((y - 10) ** 2 + (x - 10) ** 2 <= 16)  # a cortex ring along z
    mask |= tube
    count = enclosed_axes(mask, (1.0, 1.0, 1.0), 12.0)
    assert count[10, 10, 10] == 2  # marrow: enclosed across y and x, open along z
    rods = np.zeros_like(mask)
    rods[5, 8:12, :] = rods[12, 8:12, :] = True  # two rods along x, 7 voxels apart in z
    count = enclosed_axes(rods, (1.0, 1.0, 1.0), 12.0)
    assert count[8, 10, 10] == 1  # between the rods: enclosed along z only
    assert enclosed_axes(rods, (1.0, 1.0, 1.0), 6.0)[8, 10, 10] == 0  # the rods are 7 mm apart
    assert enclosed_axes(rods, (2.0, 1.0, 1.0), 12.0)[8, 10, 10] == 0  # 14 mm at 2 mm slices


def test_where_limits_the_answer_and_an_empty_where_gives_zeros():
    mask = np.ones((4, 4, 4), bool)
    where = np.zeros_like(mask)
    assert not enclosed_axes(mask, (1, 1, 1), 5.0, where).any()
    where[1, 2, 3] = True
    got = enclosed_axes(mask, (1, 1, 1), 5.0, where)
    assert got[1, 2, 3] == 3 and got.sum() == 3


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 6)] * 3), faces=st.tuples(*[st.tuples(st.booleans(), st.booleans())] * 3),
       density=st.floats(0.0, 0.5), seed=st.integers(0, 999))
def test_closed_faces_count_as_mask_beyond_the_array(shape, faces, density, seed):
    """closed_faces: as if the array went on by one voxel of ``mask`` past each named face (the ray walk on
    the array padded by hand, cropped back)."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    where = rng.random(shape) < 0.6
    pad = [(int(lo), int(hi)) for lo, hi in faces]
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, shape))
    walked = walk_reference(np.pad(mask, pad, constant_values=True), (1.0, 1.0, 1.0), 3.0, np.pad(where, pad))[inner]
    np.testing.assert_array_equal(enclosed_axes(mask, (1.0, 1.0, 1.0), 3.0, where, closed_faces=faces), walked)
    bits = enclosure_bits(mask, (1.0, 1.0, 1.0), 3.0, where, closed_faces=faces)
    np.testing.assert_array_equal([(b & 1) + (b >> 1 & 1) + (b >> 2 & 1) for b in bits.ravel()], walked.ravel())


def test_closed_faces_need_a_pair_for_each_axis():
    with pytest.raises(InputError, match="closed_faces"):
        enclosed_axes(np.zeros((3, 3, 3), bool), (1, 1, 1), 2.0, closed_faces=((True, False),))


@pytest.mark.parametrize("args", [(np.zeros((3, 3), bool), (1, 1), 2.0), (np.zeros((3, 3, 3), bool), (1, 1, 1), -1.0),
                                  (np.zeros((3, 3, 3), bool), (1, 1, 1), float("nan"))])
def test_bad_arguments_are_refused(args):
    with pytest.raises(InputError):
        enclosed_axes(*args)
