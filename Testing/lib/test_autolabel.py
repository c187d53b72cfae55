"""Lung and bone auto-labelers (paper III-B, III-C) on seeded phantoms with exact truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organseglib.autolabel import AutoLabelParams, BoneParams, LungParams, autolabel, autolabel_with_report
from organseglib.errors import InputError
from organseglib.phantom import make_phantom
from organseglib.volume import Volume

LUNGS, BONE, KIDNEYS = 3, 5, 4


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture(scope="module", params=[("chest", 0, False), ("abdomen", 1, True), ("chest", 2, True)],
                ids=lambda p: f"{p[0]}-seed{p[1]}{'-contrast' if p[2] else ''}")
def labelled(request):
    region, seed, contrast = request.param
    p = make_phantom(seed=seed, region=region, size="small", contrast=contrast, table=True)
    labels, report = autolabel_with_report(p.ct)
    return p, labels, report


def test_lungs_match_truth(labelled):
    p, labels, report = labelled
    assert dice(labels.array == LUNGS, p.labels.array == LUNGS) >= 0.95
    assert len(report["lungs"]["lungs"]) == 2 and not report["lungs"]["warnings"]


def test_bone_matches_truth(labelled):
    # issue 3's goal. Measured 0.93-0.96 with the soft-tissue guard; the paper's labeler alone gives
    # 0.83-0.88 here, its closing bridging the muscle between ribs and beside the spine.
    p, labels, report = labelled
    truth = p.labels.array == BONE
    got = labels.array == BONE
    assert dice(got, truth) >= 0.90
    assert got[truth].mean() >= 0.90  # what is missed: a rib cut by the volume border, cut off the skeleton
    assert report["bone"]["soft_tissue_ml"] > 0


def test_soft_tissue_guard_drops_muscle_between_rods_and_keeps_marrow():
    """Two dense rods 12 mm apart with muscle between them (bridged by the 25 mm closing) and a
    hollow dense tube filled with muscle-density marrow: the guard drops the bridge only."""
    from organseglib.autolabel.bone import label_bone

    shape, sp = (40, 40, 60), (1.5, 1.5, 1.5)
    ct = np.full(shape, 45.0, np.float32)  # muscle
    k, j, i = np.indices(shape)
    rods = ((np.abs(k - 14) <= 2) | (np.abs(k - 26) <= 2)) & (np.abs(j - 10) <= 2) & (i >= 5) & (i < 55)
    r2 = (k - 20) ** 2 + (j - 28) ** 2
    tube = (r2 <= 36) & (i >= 5) & (i < 55)
    marrow = (r2 <= 16) & (i >= 5) & (i < 55)
    bar = (np.abs(k - 20) <= 8) & (j >= 10) & (j <= 24) & (np.abs(i - 30) <= 2)  # joins rods and tube
    ct[rods | tube | bar] = 900.0
    ct[marrow] = 60.0
    body = np.ones(shape, bool)
    guarded, report = label_bone(ct, sp, body)
    paper, _ = label_bone(ct, sp, body, params=BoneParams(soft_hu=0.0))
    between = (k > 17) & (k < 23) & (np.abs(j - 10) <= 1) & (i >= 10) & (i < 25)
    assert paper[between].all() and not guarded[between].any()
    assert guarded[marrow].all() and paper[marrow].all()
    assert report.soft_tissue_ml > 0


def test_soft_tissue_guard_off_gives_the_papers_labeler(labelled):
    p, labels, _ = labelled
    # the guard alone: the spinal canal and costal cartilage rules (which read the bone they start
    # from) switched off on both sides
    alone = dict(canal=False, cartilage=False)
    paper = autolabel(p.ct, organs="bone", params=AutoLabelParams(bone=BoneParams(soft_hu=0.0, **alone))).array == BONE
    guarded = autolabel(p.ct, organs="bone", params=AutoLabelParams(bone=BoneParams(**alone))).array == BONE
    truth = p.labels.array == BONE
    assert guarded.sum() < paper.sum() and not np.any(guarded & ~paper)  # the guard only removes voxels
    assert dice(paper, truth) < dice(guarded, truth)


def test_table_contrast_and_organs_are_not_bone(labelled):
    p, labels, _ = labelled
    got = labels.array
    m = p.ct.ijk_to_ras
    y = m[1, 1] * np.arange(got.shape[1]) + m[1, 3]
    # the phantom's sacrum rests on the table: the voxel row at the contact is half bone, half table
    below_table_top = (y < p.anatomy.table_y - p.ct.spacing[1] - 1.0)[None, :, None]
    assert not np.any((got > 0) & below_table_top)
    kidneys = p.labels.array == KIDNEYS
    if kidneys.any():
        assert (got[kidneys] == BONE).mean() < 0.02
    assert set(np.unique(got).tolist()) <= {0, LUNGS, BONE}


def test_bone_and_lungs_never_overlap_the_ignore_mask():
    p = make_phantom(seed=4, region="chest", size="tiny")
    ignore = np.zeros(p.ct.shape, np.uint8)
    ignore[:, :, : p.ct.shape[2] // 2] = 1  # half the patient already labelled
    labels = autolabel(p.ct, ignore_mask=p.ct.with_array(ignore))
    assert not np.any(labels.array[ignore == 1])
    assert np.any(labels.array[:, :, p.ct.shape[2] // 2:] == LUNGS)


def test_one_lung_is_found_with_a_warning():
    p = make_phantom(seed=2, region="chest", size="small")
    ct = p.ct.array.copy()
    truth = p.labels.array == LUNGS
    x = (p.ct.ijk_to_ras[0, 0] * np.arange(ct.shape[2]) + p.ct.ijk_to_ras[0, 3])[None, None, :]
    collapsed = truth & (x > 0)
    ct[collapsed] = 40.0  # one lung replaced by soft tissue
    labels, report = autolabel_with_report(p.ct.with_array(ct), organs="lungs")
    assert dice(labels.array == LUNGS, truth & ~collapsed) >= 0.95
    assert "found 1 lung" in report["lungs"]["warnings"][0]


def test_pelvis_only_scan_has_no_lungs_and_no_bowel_gas_labelled():
    p = make_phantom(seed=3, region="abdomen", size="small")
    first_lung_slice = int(np.nonzero((p.labels.array == LUNGS).any(axis=(1, 2)))[0].min())
    pelvis = Volume(p.ct.array[: first_lung_slice - 10], p.ct.ijk_to_ras)
    labels, report = autolabel_with_report(pelvis)
    assert not np.any(labels.array == LUNGS)
    assert "no lungs found" in report["lungs"]["warnings"][0]
    assert any("pure gas" in r["why"] for r in report["lungs"]["rejected"])  # the bowel gas
    assert np.any(labels.array == BONE)


def test_cropped_phantom_lungs_cut_by_the_border_are_found():
    p = make_phantom(seed=1, region="chest", size="small", cropped=True)
    labels = autolabel(p.ct, organs=["lungs"])
    lungs = labels.array == LUNGS
    truth = p.labels.array == LUNGS
    assert dice(lungs, truth) >= 0.95
    faces = [(axis, end) for axis in range(3) for end in (0, -1) if truth.take(end, axis=axis).any()]
    assert faces, "the cropped phantom should cut the lungs"
    for axis, end in faces:  # every face that cuts the true lungs cuts the labelled ones
        assert lungs.take(end, axis=axis).any()


def test_no_body_at_all_gives_empty_labels_with_warnings():
    air = Volume.from_geometry(np.full((10, 20, 20), -1000.0, np.float32), (2.0, 2.0, 2.0))
    labels, report = autolabel_with_report(air)
    assert not labels.array.any()
    assert report["lungs"]["warnings"] and report["bone"]["warnings"]


def test_parameters_are_the_papers_and_validated():
    lp, bp = LungParams(), BoneParams()
    assert (lp.air_hu, lp.erosion_diameter_mm, lp.max_lungs) == (-150.0, 10.0, 2)
    assert (bp.tau1_hu, bp.tau2_hu, bp.closing_diameter_mm) == (0.0, 200.0, 25.0)
    with pytest.raises(InputError, match="tau1_hu"):
        BoneParams(tau1_hu=300.0)
    with pytest.raises(InputError, match="soft_hu"):
        BoneParams(soft_hu=250.0)
    with pytest.raises(InputError, match="enclosure_mm"):
        BoneParams(enclosure_mm=0.0)
    with pytest.raises(InputError, match="max_lungs"):
        LungParams(max_lungs=3)
    with pytest.raises(InputError, match="organs"):
        autolabel(make_phantom(seed=0, region="chest", size="tiny").ct, organs="liver")
    assert isinstance(AutoLabelParams().lungs, LungParams)


def test_organ_subset_labels_only_those(tiny_chest):
    bone_only = autolabel(tiny_chest.ct, organs="bone").array
    assert set(np.unique(bone_only).tolist()) == {0, BONE}


def test_cli_writes_labels_in_each_format(tmp_path, tiny_chest):
    from organseglib.cli import main
    from organseglib.io import read_labels, write_volume

    ct_path = tmp_path / "ct.nii.gz"
    write_volume(tiny_chest.ct, ct_path)
    expected = autolabel(tiny_chest.ct).array
    for name in ("labels.nii.gz", "labels.nrrd", "labels.seg.nrrd"):
        out = tmp_path / name
        rc = main(["autolabel", str(ct_path), "-o", str(out), "--progress", "none",
                   "--report", str(tmp_path / "report.json")])
        assert rc == 0
        got = read_labels(out, reference=tiny_chest.ct).array
        assert np.array_equal(got, expected)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["lungs"]["ml"] > 0 and report["bone"]["ml"] > 0
    assert main(["autolabel", str(ct_path), "-o", str(tmp_path / "x.nii.gz"), "--organs", "liver",
                 "--progress", "none"]) == 2
    assert main(["autolabel", str(ct_path), "-o", str(ct_path), "--progress", "none"]) == 2


def test_cli_keeps_the_ignored_labels_in_every_format(tmp_path, tiny_abdomen):
    """Labels passed with --ignore (here the liver and the truth's lungs) are copied to the output,
    and a .seg.nrrd gives them segments, even with --organs bone."""
    from organseglib.cli import main
    from organseglib.io import read_labels, write_labels, write_volume

    ct_path, drawn_path = tmp_path / "ct.nii.gz", tmp_path / "drawn.nii.gz"
    write_volume(tiny_abdomen.ct, ct_path)
    truth = tiny_abdomen.labels.array
    drawn = np.where(np.isin(truth, [1, LUNGS]), truth, 0).astype(np.uint8)
    assert (drawn == 1).any()
    write_labels(tiny_abdomen.labels.with_array(drawn), drawn_path)
    for name in ("out.nii.gz", "out.seg.nrrd"):
        out = tmp_path / name
        assert main(["autolabel", str(ct_path), "-o", str(out), "--organs", "bone,bone", "--ignore", str(drawn_path),
                     "--progress", "none"]) == 0
        got = read_labels(out, reference=tiny_abdomen.ct).array
        assert np.array_equal(got[drawn > 0], drawn[drawn > 0]), name
        assert (got == BONE).any()


@pytest.mark.parametrize("code", ["RAS", "ASL", "SLP"])
def test_the_stored_axis_order_does_not_change_the_labels(code):
    """A scan stored sagittally, coronally or RAS-ordered gets the same labels, voxel for voxel, as
    the same scan stored axially in LPS order (the labelers work on axial slices)."""
    from organseglib.orientation import reorient

    p = make_phantom(seed=4, region="both", size="tiny", table=True)
    expected = autolabel(p.ct).array
    stored, undo = reorient(p.ct, code)
    ignore = np.zeros(p.ct.shape, bool)
    ignore[:, :, : p.ct.shape[2] // 4] = True
    stored_ignore = reorient(p.ct.with_array(ignore.astype(np.uint8)), code)[0]
    got = autolabel(stored).array
    assert got.shape == stored.shape
    assert np.array_equal(undo(stored.with_array(got)).array, expected)
    got_ignoring = autolabel(stored, ignore_mask=stored_ignore)
    assert np.array_equal(undo(got_ignoring).array, autolabel(p.ct, ignore_mask=ignore).array)
