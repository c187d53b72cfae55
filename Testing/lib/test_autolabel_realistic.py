"""Auto-labelers on phantoms with real-CT confounders painted in (issue 12): contrast-filled blood
pools, low-dose correlated noise, a field of view cutting the lungs, bowel gas; exact truth. Also the
paper's exact labelers (``paper()``), the report's warnings, the coarse-grid morphology and the
noise estimate."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import scipy.ndimage as ndi

from organseglib import morphology
from organseglib.autolabel import AutoLabelParams, BoneParams, LungParams, NoiseParams, autolabel_with_report
from organseglib.autolabel.noise import noise_sd, smoothed_if_noisy
from organseglib.errors import InputError
from organseglib.phantom import make_phantom
from morphology_reference import reference  # the slow scipy reference (Testing/lib)
from realistic_ct import add_low_dose_noise, crop_in_plane, paint_blood_pools, paint_bowel_gas

LUNGS, BONE = 3, 5


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture(scope="module")
def chest():
    return make_phantom(seed=2, region="chest", size="small", table=True)


@pytest.mark.slow
def test_contrast_blood_pools_are_not_bone(chest):
    """Heart (450 HU) and an aorta (520 HU) leaning on the spine: the paper's largest component takes
    them in; ours reads them as blood (median, thickness, no cortical rim) and keeps them out."""
    ct, pools = paint_blood_pools(chest.ct, chest.labels)
    truth = chest.labels.array == BONE
    ml = float(np.prod(ct.spacing)) / 1000.0
    labels, report = autolabel_with_report(ct, "bone")
    paper, _ = autolabel_with_report(ct, "bone", params=AutoLabelParams.paper())
    ours_d, paper_d = dice(labels.array == BONE, truth), dice(paper.array == BONE, truth)
    # measured 0.974 (ours; 0.938 with the edge step of every voxel >= 100 HU, which at 3 mm adds a
    # voxel a tenth cortex; 0.925 before the fixture's aorta was kept straight) and 0.821 (paper)
    assert ours_d >= 0.95 and ours_d >= paper_d + 0.05
    assert 400 <= report["bone"]["blood_level_hu"] <= 560  # the contrast level read off the pools
    assert report["bone"]["blood_pool_ml"] >= 0.8 * pools.sum() * ml
    assert float((labels.array == BONE)[pools].sum()) * ml <= 30.0
    # the heart full of contrast blood, the sternum in front of it, is no contrast bladder (issue 21's
    # urinary rules took it for one, 455 mL, when no lung label said it lies in a chest)
    assert report["bone"]["bladder_ml"] == 0


def test_painted_aorta_is_a_straight_column(chest):
    """The fixture's aorta leans on the vertebral bodies on every slice, also at a disc (whose label is
    background): it once jumped back into the disc space there, a 520 HU blob inside the spine."""
    _, pools = paint_blood_pools(chest.ct, chest.labels)
    rows = [np.flatnonzero(pools[k].any(axis=1)) for k in range(pools.shape[0])]
    fronts = {int(r.max()) for r in rows if r.size and r.max() > pools.shape[1] // 2}
    assert len(fronts) == 1


@pytest.mark.slow
def test_portal_phase_blood_speckle_is_not_bone():
    """Portal venous patient phantom: aorta and left ventricle at about 180 HU with 20 HU of noise, so
    a voxel in four or five crosses tau2; the specks join and touch the spine, and the closing used to
    fill the whole blood pool (330 mL of bone in the aorta and heart, Dice 0.891). ``despeckle`` reads
    them as noise: measured 0.954."""
    p = make_phantom(seed=1, region="both", size="small", realism="patient", contrast=True, phase="portal")
    truth = p.labels.array == BONE
    labels, report = autolabel_with_report(p.ct, "bone")
    off, _ = autolabel_with_report(p.ct, "bone", params=AutoLabelParams(bone=BoneParams(despeckle=False)))
    assert dice(labels.array == BONE, truth) >= 0.95
    assert dice(off.array == BONE, truth) < dice(labels.array == BONE, truth) - 0.03
    assert report["bone"]["speckle_ml"] > 10.0


@pytest.mark.slow
def test_arterial_phase_patient_phantom_keeps_the_ribs():
    """Patient-like phantom in the arterial phase: blood at 513 HU, every rib a separate piece whose
    90th percentile (638-640 HU) is below the contrast level + 150 HU; they are as dense as the spine
    (640 HU), so they are kept (``piece_below_skeleton_hu``). Measured bone Dice 0.973 (0.846 with
    the rule off: all ribs dropped)."""
    p = make_phantom(seed=3, region="both", size="small", realism="patient", contrast=True, phase="arterial")
    truth = p.labels.array == BONE
    labels, report = autolabel_with_report(p.ct, "bone")
    bone = labels.array == BONE
    assert report["bone"]["blood_level_hu"] is not None and report["bone"]["pieces"] >= 10
    assert dice(bone, truth) >= 0.95 and bone[truth].mean() >= 0.95
    off, _ = autolabel_with_report(p.ct, "bone", params=AutoLabelParams(bone=BoneParams(
        piece_below_skeleton_hu=float("inf"))))
    assert dice(off.array == BONE, truth) < dice(bone, truth) - 0.05


@pytest.mark.slow
def test_low_dose_noise_does_not_leak_the_lungs(chest):
    """Correlated noise of 80 HU: fat crosses -150 HU in a third of its voxels. The paper's labeler
    leaks through it into the whole body; ours thresholds a smoothed CT and stays in the lungs."""
    noisy = add_low_dose_noise(chest.ct, 80.0, seed=2)
    truth = chest.labels.array == LUNGS
    far = ndi.distance_transform_edt(~truth, sampling=noisy.array_spacing) > 10.0
    ml = float(np.prod(noisy.spacing)) / 1000.0
    labels, report = autolabel_with_report(noisy, "lungs")
    paper, _ = autolabel_with_report(noisy, "lungs", params=AutoLabelParams.paper())
    lungs = labels.array == LUNGS
    assert dice(lungs, truth) >= 0.93  # measured 0.952
    assert float((lungs & far).sum()) * ml <= 1.0  # nothing > 10 mm from lung (measured 0.16 mL)
    assert 60 <= report["lungs"]["noise_sd_hu"] <= 100
    assert float(((paper.array == LUNGS) & far).sum()) * ml > 1000  # the leak the issue describes


@pytest.mark.slow
def test_field_of_view_cutting_the_lungs_keeps_the_border_tissue(chest):
    ct = crop_in_plane(chest.ct, 35, 105)
    truth = crop_in_plane(chest.labels, 35, 105).array == LUNGS
    assert truth[:, :, 0].any() and truth[:, :, -1].any()  # both lungs are cut
    labels, report = autolabel_with_report(ct, "lungs")
    lungs = labels.array == LUNGS
    assert dice(lungs, truth) >= 0.98  # measured 0.998
    border = np.zeros(truth.shape, bool)
    border[:, :, [0, -1]] = True
    assert lungs[truth & border].mean() >= 0.97  # the cut faces are labelled
    assert not any("leak" in w for w in report["warnings"])  # lung density on the border: no leak


@pytest.mark.slow
def test_bowel_gas_is_not_lung():
    p = make_phantom(seed=4, region="both", size="small", table=True)
    ct = paint_bowel_gas(p.ct, p.labels, count=6, radius_mm=15.0, seed=1)
    truth = p.labels.array == LUNGS
    labels, report = autolabel_with_report(ct, "lungs")
    lungs = labels.array == LUNGS
    gas = (ct.array < -500) & (p.ct.array > -200)  # the painted pockets: soft tissue before
    assert gas.sum() * np.prod(ct.spacing) / 1000.0 > 30
    assert dice(lungs, truth) >= 0.97
    assert not (lungs & gas).any()
    assert len(report["lungs"]["lungs"]) == 2


def test_paper_presets_switch_every_addition_off():
    lp, bp = LungParams.paper(), BoneParams.paper()
    assert (lp.air_hu, lp.erosion_diameter_mm, lp.max_lungs) == (-150.0, 10.0, 2)
    assert lp.gas_median_hu is None and lp.border_rule == "all" and not lp.body_hull and not lp.smooth
    assert lp.max_hole_mm2 == 0 and lp.min_lung_ml == 0 and lp.grid_mm == 0
    assert (bp.tau1_hu, bp.tau2_hu, bp.closing_diameter_mm) == (0.0, 200.0, 25.0)
    assert bp.soft_hu <= bp.tau1_hu and bp.blood_core_mm == 0 and not bp.keep_pieces
    assert bp.edge_voxels == 0 and bp.grid_mm == 0 and not bp.smooth and bp.max_hole_mm2 == float("inf")
    assert not bp.despeckle and not bp.urinary.any and bp.piece_marrow_share == float("inf")
    both = AutoLabelParams.paper()
    assert both.lungs == lp and both.bone == bp
    for bad in (dict(border_rule="edge"), dict(grid_mm=-1.0), dict(leak_hu=50.0)):
        with pytest.raises(InputError):
            LungParams(**bad)
    for bad in (dict(blood_rim_cortex=2.0), dict(piece_min_ml=-1.0), dict(edge_voxels=5), dict(grid_mm=9.0),
                dict(edge_halo_mm=-1.0), dict(edge_soft_hu=150.0), dict(speckle_below_hu=150.0), dict(speckle_sd=0.0)):
        with pytest.raises(InputError):
            BoneParams(**bad)
    with pytest.raises(InputError):
        NoiseParams(sigma_mm=-1.0)


def _paper_bone_reference(ct: np.ndarray, body: np.ndarray, spacing) -> np.ndarray:
    """Paper III-C step by step with scipy.ndimage: tau2, largest component, closing, tau1, holes."""
    dense = (ct >= 200) & body
    lab, n = ndi.label(dense, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    skel = lab == int(np.argmax(sizes))
    ball = morphology.make_ball(12.5, spacing).array
    closed = reference("closing")(skel, ball)
    bone = closed & (ct >= 0) & body
    return np.stack([ndi.binary_fill_holes(s) for s in bone]) & body


def test_paper_bone_preset_equals_the_papers_steps():
    from organseglib.body import body_masks
    from organseglib.autolabel.bone import label_bone

    p = make_phantom(seed=0, region="chest", size="tiny", table=False)
    ct = np.asarray(p.ct.array, np.float32)
    sp = p.ct.array_spacing
    body = body_masks(ct, sp)
    got, _ = label_bone(ct, sp, body.body, None, BoneParams.paper())
    want = _paper_bone_reference(ct, body.body, sp)
    assert got.any() and np.array_equal(got, want)


def test_paper_lung_preset_equals_the_papers_steps():
    from organseglib.autolabel.lungs import label_lungs

    p = make_phantom(seed=0, region="chest", size="tiny", table=False)
    ct = np.asarray(p.ct.array, np.float32)
    sp = p.ct.array_spacing
    got, _ = label_lungs(ct, sp, np.ones(ct.shape, bool), LungParams.paper())
    air = ct <= -150
    seeds = reference("erosion")(air, morphology.make_ball(5.0, sp).array)
    seeds = morphology.remove_border_connected_per_slice(seeds)
    two, _ = morphology.largest_components(seeds, 2)
    want = morphology.reconstruct(two, air)
    assert got.any() and np.array_equal(got, want)


def test_report_warns_when_bone_drops_more_than_it_keeps():
    """A small dense rod (the 'skeleton') and a big contrast-like block without cortex: the block is
    dropped and the report says that more was dropped than kept."""
    from organseglib.autolabel.bone import label_bone

    ct = np.full((30, 60, 60), 40.0, np.float32)
    ct[2:28, 4:16, 4:16] = 900.0  # a dense bar: the skeleton (30 mL)
    ct[5:25, 20:32, 20:32] = 230.0  # two enhancing organs, plateaus just above tau2 (23 mL each)
    ct[5:25, 40:52, 40:52] = 230.0
    body = np.ones(ct.shape, bool)
    bone, report = label_bone(ct, (2.0, 2.0, 2.0), body, params=BoneParams(blood_core_mm=0.0))
    assert report.dropped_ml > report.skeleton_ml
    assert any("dropped more" in w for w in report.warnings)
    assert not bone[15, 26, 26] and bone[15, 10, 10]


def test_report_warns_about_a_leak_at_the_border():
    from organseglib.autolabel.lungs import _check_border, LungReport

    ct = np.full((10, 20, 20), -120.0, np.float32)  # fat
    lungs = np.zeros(ct.shape, bool)
    lungs[0, 5:15, 5:15] = True  # the label reaches the first slice in fat
    report = LungReport()
    _check_border(lungs, ct, LungParams(), report)
    assert report.warnings and "leaked" in report.warnings[0]
    ct[:] = -820.0  # lung density there: a cropped scan, no warning
    report = LungReport()
    _check_border(lungs, ct, LungParams(), report)
    assert not report.warnings


def test_top_level_warnings_gather_each_organs(caplog):
    air = make_phantom(seed=0, region="chest", size="tiny").ct
    air = air.with_array(np.full(air.shape, -1000.0, np.float32))
    from organseglib.autolabel import autolabel

    with caplog.at_level(logging.WARNING, logger="organseglib.autolabel"):
        autolabel(air)
    labels, report = autolabel_with_report(air)
    assert any(w.startswith("lungs: no lungs found") for w in report["warnings"])
    assert any(w.startswith("bone: no bone found") for w in report["warnings"])
    assert "no lungs found" in caplog.text  # autolabel() logs them


def test_cli_prints_warnings_and_puts_them_in_the_report(tmp_path, capsys):
    from organseglib.cli import main
    from organseglib.io import write_volume

    ct = make_phantom(seed=0, region="chest", size="tiny").ct
    _, jj, ii = np.indices(ct.shape)
    water = ((jj - ct.shape[1] / 2) ** 2 + (ii - ct.shape[2] / 2) ** 2) <= (ct.shape[1] / 3) ** 2
    ct = ct.with_array(np.where(water, 40.0, -1000.0).astype(np.float32))  # a body with no air and no bone
    path = tmp_path / "water.nii.gz"
    write_volume(ct, path)
    rc = main(["autolabel", str(path), "-o", str(tmp_path / "l.nii.gz"), "--report", str(tmp_path / "r.json"),
               "--progress", "none"])
    assert rc == 3  # the exit status of a result with warnings (organseglib.result_warnings)
    report = json.loads((tmp_path / "r.json").read_text())
    assert any("no lungs found" in w for w in report["warnings"])
    err = capsys.readouterr().err
    assert "warning: bone: no bone found" in err and "warning: lungs: no lungs found" in err


@pytest.mark.parametrize("grid_mm", [1.0, 2.0])
def test_coarse_grid_morphology_brackets_the_exact_result(grid_mm):
    rng = np.random.default_rng(3)
    mask = ndi.gaussian_filter(rng.standard_normal((24, 40, 36)), 2.0) > 0.15
    sp = (1.0, 0.5, 0.5)
    exact_d = morphology.dilation(mask, 3.0, sp)
    coarse_d = morphology.dilation_on_grid(mask, 3.0, sp, grid_mm)
    assert (coarse_d >= exact_d).all()  # a superset, larger by about a block
    assert morphology.dilation(exact_d, 3.5 * grid_mm, sp)[coarse_d].all()
    assert (morphology.erosion_on_grid(mask, 2.0, sp, grid_mm) <= morphology.erosion(mask, 2.0, sp)).all()
    coarse_e = morphology.erosion_on_grid(mask, 2.0, sp, grid_mm)
    assert (coarse_e <= mask).all()
    closed = morphology.closing_on_grid(mask, 3.0, sp, grid_mm)
    exact_c = morphology.closing(mask, 3.0, sp)
    assert (closed >= mask).all() and closed.sum() >= 0.9 * exact_c.sum()
    assert morphology.dilation(exact_c, 3.0 * grid_mm, sp)[closed].all()  # blockier by a block or two
    # a grid no coarser than the voxels is the exact operation
    assert np.array_equal(morphology.closing_on_grid(mask, 3.0, sp, 0.0), exact_c)


def test_noise_estimate_and_smoothing():
    rng = np.random.default_rng(0)
    ct = np.full((20, 64, 64), 40.0, np.float32) + rng.standard_normal((20, 64, 64)).astype(np.float32) * 70
    sd = noise_sd(ct, (1.0, 1.0, 1.0))
    assert 60 <= sd <= 80
    out, sd2 = smoothed_if_noisy(ct, (1.0, 1.0, 1.0), NoiseParams())
    assert sd2 == sd and out.std() < 20
    quiet = np.full((20, 64, 64), 40.0, np.float32) + rng.standard_normal((20, 64, 64)).astype(np.float32) * 15
    same, _ = smoothed_if_noisy(quiet, (1.0, 1.0, 1.0), NoiseParams())
    assert same is quiet  # diagnostic noise: the CT itself, untouched
