"""Vertebrae on a crop border (issue 21, item 3): a vertebra cut off its ribs by the field of view is a
piece of the skeleton; on a contrast scan it must beat the blood's contrast level, which its thin
cortex does not, unless its cortex encloses marrow (``BoneParams.piece_marrow_*``)."""

import dataclasses

import numpy as np
import pytest

from organseglib.autolabel import AutoLabelParams, autolabel_with_report
from organseglib.autolabel.bone import BoneParams
from organseglib.autolabel.pieces import enclosed_marrow
from organseglib.volume import Volume

BONE = 5
WITHOUT = AutoLabelParams(bone=BoneParams(piece_marrow_share=float("inf")))


def test_enclosed_marrow_share_hand_worked():
    """A hollow box of cortex, 1 voxel thick, 6 voxels outside: its 4^3 = 64 voxels of marrow are
    enclosed along all three axes; the shell is 216 - 64 = 152 voxels: a share of 64 / 152."""
    ct = np.full((10, 10, 10), -90.0, np.float32)
    piece = np.zeros(ct.shape, bool)
    piece[2:8, 2:8, 2:8] = True
    piece[3:7, 3:7, 3:7] = False
    ct[piece] = 600.0
    ct[3:7, 3:7, 3:7] = 150.0
    share = enclosed_marrow(piece, ct, (1.0, 1.0, 1.0), BoneParams())
    assert share == pytest.approx(64 / 152)
    ct[3:7, 3:7, 3:7] = -90.0  # fat inside: below tau1, not marrow
    assert enclosed_marrow(piece, ct, (1.0, 1.0, 1.0), BoneParams()) == 0.0


def test_the_field_of_views_faces_close_a_vertebra_they_cut():
    """The same hollow box cut open by two faces of the volume (its first slice along k and along j
    removed, the box at the volume's corner): its marrow is enclosed along i only, no marrow by the
    two-axes rule; with the faces it touches counted as cortex (``border``), all of it again. A face the
    box does not touch closes nothing."""
    ct = np.full((8, 8, 10), -90.0, np.float32)
    piece = np.zeros(ct.shape, bool)
    piece[0:5, 0:5, 2:8] = True  # the box [-1:5, -1:5, 2:8]: its faces k = -1 and j = -1 beyond the view
    piece[0:4, 0:4, 3:7] = False
    ct[piece] = 600.0
    ct[0:4, 0:4, 3:7] = 150.0
    params, spacing = BoneParams(), (1.0, 1.0, 1.0)
    assert enclosed_marrow(piece, ct, spacing, params) == 0.0
    both = ((True, False), (True, False), (False, False))
    assert enclosed_marrow(piece, ct, spacing, params, both) == pytest.approx(64 / piece.sum())
    far = ((False, True), (False, True), (False, False))  # the opposite faces: nothing closed
    assert enclosed_marrow(piece, ct, spacing, params, far) == 0.0


def _crop_behind(ct: Volume, stop: int) -> Volume:
    """The CT (LPS order) cut by a posterior border at row ``stop`` (rows ``j >= stop`` out of view)."""
    return Volume(np.ascontiguousarray(ct.array[:, :stop]), ct.ijk_to_ras)


@pytest.fixture(scope="module")
def chest():
    from shared_data import shared_file
    from organseglib.io import read_ct
    from organseglib.orientation import reorient

    ct = reorient(read_ct(shared_file("ct/chest_cropped_totalseg.nii.gz")), "LPS")[0]
    full, _ = autolabel_with_report(ct, "bone")
    K, J, I = ct.shape
    half = int(round(20.0 / ct.array_spacing[2]))
    zone = np.zeros(ct.shape, bool)
    zone[:, 90:, I // 2 - half:I // 2 + half] = True  # behind the heart, within 20 mm of the midline
    return ct, (full.array == BONE) & zone


@pytest.mark.slow
@pytest.mark.parametrize("stop", [100, 104, 108])
def test_vertebral_bodies_cut_by_the_posterior_border_stay_bone(chest, stop, record_property):
    """chest_cropped_totalseg (contrast, 1.5 mm) with its posterior border moved into the vertebral
    bodies (the back of each body in view, the arches out): measured 91.1 / 92.7 / 94.7 % of the uncropped
    scan's vertebral bone kept, 0 % before the vertebra rule (the spine, cut off its ribs, was a piece
    below the blood's contrast level + 150 HU), and 78.3 % at row 100 before the faces of the field of
    view closed the marrow (the lowest vertebra, cut by the first slice too, was dropped)."""
    ct, vertebrae = chest
    cut = _crop_behind(ct, stop)
    in_view = vertebrae[:, :stop]
    labels, report = autolabel_with_report(cut, "bone")
    kept = float((labels.array == BONE)[in_view].mean())
    record_property("vertebra_kept", round(kept, 3))
    assert kept >= 0.90
    before, _ = autolabel_with_report(cut, "bone", params=WITHOUT)
    assert float((before.array == BONE)[in_view].mean()) < 0.5


def _contrast_scene():
    """Axial stack (LPS, 1.5 mm): a body of fat, an aorta of 480 HU blood (a pool: the contrast level),
    a sternum-like plate of 900 HU in front (the largest piece), and two faint vertebra-like boxes
    (450 HU cortex round 150 HU marrow): one on the midline at the back, one 80 mm to the side."""
    shape = (40, 100, 120)
    ct = np.full(shape, -1000.0, np.float32)
    k, j, i = np.indices(shape)
    body = ((j - 50) / 46.0) ** 2 + ((i - 60) / 56.0) ** 2 <= 1.0
    ct[body] = -90.0
    ct[((j - 55) / 8.0) ** 2 + ((i - 52) / 8.0) ** 2 <= 1.0] = 480.0  # the aorta
    ct[:, 10:16, 45:75] = 900.0  # the sternum
    boxes = {}
    for name, centre in (("spine", 60), ("side", 60 + 53)):
        box = (slice(5, 35), slice(70, 86), slice(centre - 8, centre + 8))
        ct[box] = 450.0
        ct[5:35, 72:84, centre - 6:centre + 6] = 150.0
        boxes[name] = np.zeros(shape, bool)
        boxes[name][box] = True
    boxes["side"] &= body
    return Volume.from_geometry(ct, (1.5, 1.5, 1.5), direction=np.diag([-1.0, -1.0, 1.0])), boxes


@pytest.mark.slow
def test_a_faint_vertebra_on_a_contrast_scan_is_kept_by_its_marrow():
    ct, boxes = _contrast_scene()
    labels, report = autolabel_with_report(ct, "bone")
    assert report["bone"]["blood_level_hu"] is not None  # the aorta set the level the pieces must beat
    bone = labels.array == BONE
    assert bone[boxes["spine"]].mean() >= 0.9  # cortex round marrow, where the spine is
    assert not bone[boxes["side"]].any()  # the same box off the spine zone: the p90 rule as before
    without, _ = autolabel_with_report(ct, "bone", params=WITHOUT)
    assert not (without.array == BONE)[boxes["spine"]].any()
