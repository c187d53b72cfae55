"""PNG overlays: radiological orientation whatever axis order the file stores."""

from __future__ import annotations

import numpy as np

from organseglib.orientation import axis_codes, reorient
from organseglib.overlay import overlay_views, save_overlay_png


def test_a_ras_ordered_copy_is_drawn_exactly_like_the_lps_original(tiny_abdomen):
    ras_ct, _ = reorient(tiny_abdomen.ct, "RAS")
    ras_labels, _ = reorient(tiny_abdomen.labels, "RAS")
    assert axis_codes(ras_ct) == "RAS" and not np.array_equal(ras_ct.array, tiny_abdomen.ct.array)
    for original, copy in zip(overlay_views(tiny_abdomen.ct, tiny_abdomen.labels), overlay_views(ras_ct, ras_labels)):
        np.testing.assert_array_equal(original, copy)


def _tinted(view: np.ndarray) -> np.ndarray:
    """Pixels whose colour is not grey (a label is blended in)."""
    return ~(np.isclose(view[..., 0], view[..., 1]) & np.isclose(view[..., 1], view[..., 2]))


def _world(volume, axis_ijk: int) -> np.ndarray:
    """RAS coordinate ``axis_ijk`` (0 x, 1 y, 2 z) of every voxel of an axis-aligned grid, shaped like the array."""
    k, j, i = np.indices(volume.shape)
    m = volume.ijk_to_ras
    return m[axis_ijk, 0] * i + m[axis_ijk, 1] * j + m[axis_ijk, 2] * k + m[axis_ijk, 3]


def test_views_follow_the_radiological_convention_in_either_axis_order(tiny_abdomen):
    """Axial: the patient's right (RAS x > 0) on the image's left, anterior (RAS y > 0) up.
    Coronal: superior up. Checked with half-volume masks on the LPS phantom and its RAS copy."""
    ct = tiny_abdomen.ct
    for grid in (ct, reorient(ct, "RAS")[0]):
        centre = [np.median(_world(grid, a)) for a in range(3)]
        right = grid.with_array((_world(grid, 0) > centre[0]).astype(np.uint8))
        anterior = grid.with_array((_world(grid, 1) > centre[1]).astype(np.uint8))
        superior = grid.with_array((_world(grid, 2) > centre[2]).astype(np.uint8))
        mid = tuple(n // 2 for n in grid.shape)
        axial_right = _tinted(overlay_views(grid, right, index=mid)[0])
        axial_front = _tinted(overlay_views(grid, anterior, index=mid)[0])
        coronal_top = _tinted(overlay_views(grid, superior, index=mid)[1])
        w, h = axial_right.shape[1], axial_front.shape[0]
        assert np.nonzero(axial_right)[1].mean() < w / 2, axis_codes(grid)
        assert np.nonzero(axial_front)[0].mean() < h / 2, axis_codes(grid)
        assert np.nonzero(coronal_top)[0].mean() < coronal_top.shape[0] / 2, axis_codes(grid)


def test_index_is_given_on_the_files_grid(tiny_abdomen, tmp_path):
    ras_ct, _ = reorient(tiny_abdomen.ct, "RAS")
    k, j, i = (n // 3 for n in tiny_abdomen.ct.shape)
    # the same world point, as voxel indices of each grid
    ras_index = (k, ras_ct.shape[1] - 1 - j, ras_ct.shape[2] - 1 - i)
    for a, b in zip(overlay_views(tiny_abdomen.ct, index=(k, j, i)), overlay_views(ras_ct, index=ras_index)):
        np.testing.assert_array_equal(a, b)
    save_overlay_png(tmp_path / "x.png", ras_ct, title="ras")
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
