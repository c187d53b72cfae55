"""The hybrid's merge by evidence (issue 21): pieces where the auto-labels and the network disagree go
to the label their shape and the network's probabilities support; probabilities read at native voxels."""

import numpy as np
import pytest

from organseglib.evidence_merge import MergeRules, NetworkEvidence, Reassignment, merge_by_evidence
from organseglib.volume import Volume

BONE, LUNGS, LIVER, KIDNEYS = 5, 3, 1, 4
SPACING = (2.0, 2.0, 2.0)
VOXEL_ML = 8.0 / 1000.0


class FakeEvidence:
    """Probabilities given per organ value as full arrays (the native grid itself)."""

    def __init__(self, **by_value):
        self.by_value = {int(k[1:]): v for k, v in by_value.items()}

    def probability(self, value, box):
        p = self.by_value.get(int(value))
        return None if p is None else p[tuple(box)].astype(np.float32)


def _scene(shape=(40, 40, 40)):
    ct = np.full(shape, -90.0, np.float32)  # fat
    return ct, np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)


def _kidney_and_rib():
    """A homogeneous 205 HU block (a nephrographic kidney) that the bone labeler took for bone, and a
    rib (800 HU cortex around 200 HU marrow) beside it; the network calls both kidney (p 0.9)."""
    ct, network, auto = _scene()
    kidney = np.zeros(ct.shape, bool)
    kidney[8:28, 8:22, 8:20] = True
    ct[kidney] = 205.0
    rib = np.zeros(ct.shape, bool)
    rib[8:28, 24:32, 8:16] = True
    marrow = np.zeros(ct.shape, bool)
    marrow[8:28, 26:30, 10:14] = True
    ct[rib] = 800.0
    ct[marrow] = 200.0
    network[kidney | rib] = KIDNEYS
    network[8:28, 22:24, 8:20] = KIDNEYS  # the network's kidney reaches over the rib
    auto[kidney | rib] = BONE
    p = np.where(network == KIDNEYS, 0.9, 0.05)
    return ct, network, auto, kidney, rib, FakeEvidence(v4=p)


def test_a_kidney_the_network_found_survives_the_bone_that_covered_it():
    ct, network, auto, kidney, rib, evidence = _kidney_and_rib()
    out, moved = merge_by_evidence(network, auto, ct, SPACING, evidence)
    assert (out[kidney] == KIDNEYS).all()  # homogeneous, no cortical shell: the network's kidney
    assert (out[rib] == BONE).all()  # cortex round marrow: bone, whatever the network says
    assert len(moved) == 1 and moved[0].from_organ == "bone" and moved[0].to_organ == "kidneys"
    assert moved[0].ml == pytest.approx(kidney.sum() * VOXEL_ML, abs=0.05)
    assert "no cortical shell" in moved[0].why and "p=0.90" in moved[0].why
    assert moved[0].to_json() == {"from": "bone", "to": "kidneys", "ml": moved[0].ml, "why": moved[0].why}
    # the paper's precedence (no evidence): bone everywhere the auto-labeler said so
    plain, none = merge_by_evidence(network, auto, ct, SPACING, None)
    assert (plain[kidney] == BONE).all() and none == []


def test_the_network_must_call_most_of_the_piece_its_organ():
    ct, network, auto, kidney, rib, _ = _kidney_and_rib()
    unsure = FakeEvidence(v4=np.where(network == KIDNEYS, 0.45, 0.05))
    out, moved = merge_by_evidence(network, auto, ct, SPACING, unsure)
    assert (out[kidney] == BONE).all() and moved == []


def test_small_pieces_follow_the_auto_labels():
    ct, network, auto, kidney, rib, evidence = _kidney_and_rib()
    rules = MergeRules(min_piece_ml=kidney.sum() * VOXEL_ML + 0.1)
    assert MergeRules().min_piece_ml < kidney.sum() * VOXEL_ML
    out, moved = merge_by_evidence(network, auto, ct, SPACING, evidence, rules)
    assert (out[kidney] == BONE).all() and moved == []


def test_a_contrast_sac_is_densest_inside_not_on_its_shell():
    """Contrast urine (700 HU) in a bladder the network found: its outer layer is partial volume,
    below its inside; a cortex is above its marrow."""
    ct, network, auto = _scene()
    sac = np.zeros(ct.shape, bool)
    sac[10:30, 10:30, 10:30] = True
    ct[sac] = 700.0
    ct[10:30, 10:30, 10] = ct[10:30, 10:30, 29] = 350.0  # partial-volume faces
    network[sac] = 2
    auto[sac] = BONE
    out, moved = merge_by_evidence(network, auto, ct, SPACING, FakeEvidence(v2=np.where(sac, 0.8, 0.0)))
    assert (out[sac] == 2).all() and moved[0].to_organ == "bladder"


def test_lungs_against_the_liver_at_the_dome():
    """A lung-labelled piece of soft tissue the network calls liver goes to the liver; an aerated one stays."""
    ct, network, auto = _scene()
    dome = np.zeros(ct.shape, bool)
    dome[5:12, 10:30, 10:30] = True
    aerated = np.zeros(ct.shape, bool)
    aerated[20:30, 10:30, 10:30] = True
    ct[dome], ct[aerated] = 60.0, -820.0
    network[dome | aerated] = LIVER
    auto[dome | aerated] = LUNGS
    out, moved = merge_by_evidence(network, auto, ct, SPACING,
                                   FakeEvidence(v1=np.where(network == LIVER, 0.8, 0.0)))
    assert (out[dome] == LIVER).all() and (out[aerated] == LUNGS).all()
    assert [(m.from_organ, m.to_organ) for m in moved] == [("lungs", "liver")] and "not aerated" in moved[0].why


def test_merge_rules_are_checked():
    from organseglib.errors import InputError

    with pytest.raises(InputError, match="organ_probability"):
        MergeRules(organ_probability=1.5)
    with pytest.raises(InputError, match="shell_mm"):
        MergeRules(shell_mm=0.0)


@pytest.mark.parametrize("direction, spacing, shape", [
    (np.diag([-1.0, -1.0, 1.0]), (0.8, 0.8, 1.6), (30, 50, 44)),
    (np.eye(3), (1.5, 1.5, 1.5), (26, 24, 28)),
    (np.array([[0, 1.0, 0], [1.0, 0, 0], [0, 0, -1.0]]), (0.7, 0.9, 2.5), (14, 40, 36)),
], ids=["LPS", "RAS", "permuted"])
def test_probabilities_at_native_voxels_are_labels_to_native(direction, spacing, shape):
    """The fast path (three index vectors, a box at a time) against the reference: every channel's
    probability, and so its argmax, lands where ``labels_to_native`` puts the network's labels."""
    from organseglib.network_space import enter_network_space

    rng = np.random.default_rng(3)
    ct = Volume.from_geometry(rng.normal(0, 100, shape).astype(np.float32), spacing, direction=direction)
    body = np.zeros(shape, bool)
    body[2:-2, 3:-3, 2:-5] = True
    image, space = enter_network_space(ct, 3.0, body=ct.with_array(body), margin_mm=0.0)
    probs = rng.integers(0, 256, size=(3, *image.shape)).astype(np.uint8)
    evidence = NetworkEvidence(probs, (0, 1, 4), space)
    whole = tuple(slice(0, n) for n in shape)
    for c, value in enumerate((0, 1, 4)):
        got = evidence.probability(value, whole)
        expected = space.labels_to_native(probs[c]).array.astype(np.float32) / 255.0
        np.testing.assert_array_equal(got, expected)
    box = (slice(3, 9), slice(5, 17), slice(4, 11))
    np.testing.assert_array_equal(evidence.probability(4, box), evidence.probability(4, whole)[box])
    assert evidence.probability(2, box) is None  # no output for the bladder


def test_stitched_probabilities_give_the_same_labels_as_the_slabs():
    from organseglib.inference import stitch_probabilities, stitch_slabs, stitch_whole

    rng = np.random.default_rng(0)
    image = rng.normal(0, 300, (40, 20, 22)).astype(np.float32)

    def predict(tile):
        logits = np.stack([tile / 300.0, -tile / 200.0, np.sin(tile / 50.0)])
        e = np.exp(logits - logits.max(axis=0))
        return (e / e.sum(axis=0)).astype(np.float32)

    channels, probs = stitch_probabilities(image, predict, (16, 16, 16), 3, 0.25)
    np.testing.assert_array_equal(channels, stitch_slabs(image, predict, (16, 16, 16), 3, 0.25))
    whole = stitch_whole(image, predict, (16, 16, 16), 3, 0.25)
    assert probs.dtype == np.uint8 and probs.shape == (3, *image.shape)
    assert np.abs(probs / 255.0 - whole).max() <= 0.5 / 255.0 + 1e-6


@pytest.mark.slow
def test_the_hybrid_reports_what_it_gave_back_to_the_network():
    """``segment_ct_with_report`` (hybrid; a fake network calling 120-170 HU kidney): the bone labeler's
    closing fills the enhancing organ (150 HU) between two ribs (700 HU plates 18 mm apart), as the
    paper's labeler does; the merge gives that fill back to the network's kidney and reports it, and
    the ribs stay bone."""
    from organseglib.autolabel import autolabel
    from organseglib.segment import SegmentConfig, segment_ct_with_report
    from test_segment import fake

    shape = (50, 70, 70)
    ct = np.full(shape, -1000.0, np.float32)
    yy, xx = np.mgrid[0:70, 0:70]
    ct[:, ((yy - 35) / 32.0) ** 2 + ((xx - 35) / 32.0) ** 2 <= 1.0] = -90.0  # a body of fat
    ct[8:42, 15:55, 12:58] = 150.0  # the organ
    ribs = np.zeros(shape, bool)
    ribs[12:15, 25:45, 20:50] = ribs[27:30, 25:45, 20:50] = True
    ct[ribs] = 700.0
    between = np.zeros(shape, bool)
    between[16:26, 27:43, 23:47] = True
    vol = Volume.from_geometry(ct, (1.5, 1.5, 1.5))
    assert (autolabel(vol, "bone").array[between] == BONE).all()  # the closing's fill
    moved: list = []
    labels, warnings = segment_ct_with_report(vol, fake([(4, 120, 170)], spacing_mm=3.0),
                                              SegmentConfig(organs=("kidneys", "bone"), clean=False), device="cpu",
                                              reassignments=moved)
    out = labels.array
    assert (out[between] == KIDNEYS).all() and (out[ribs] == BONE).all()
    assert moved and all(isinstance(m, Reassignment) and (m.from_organ, m.to_organ) == ("bone", "kidneys")
                         for m in moved)
    assert sum(m.ml for m in moved) >= between.sum() * 1.5 ** 3 / 1000.0
    assert all("no cortical shell" in m.why for m in moved)


def test_segment_puts_each_reassignment_in_the_report_and_the_done_record(tmp_path, tiny_abdomen, monkeypatch, capsys):
    """``organseg segment``: the hybrid's reassignments go into ``--report`` JSON and the done record (a
    valid progress record; the Slicer status line shows it: Testing/slicer/test_workflows.py)."""
    import json

    import organseglib.cohort.jobs as scan_jobs
    from organseglib.cli import main
    from organseglib.io import write_volume
    from organseglib.progress import check_record, parse_record

    ct = write_volume(tiny_abdomen.ct, tmp_path / "ct.nii.gz")
    piece = Reassignment("bone", "kidneys", 12.5, "network kidneys p=0.88; no cortical shell")

    def fake_segment(volume, *args, reassignments=None, **kwargs):
        out = np.zeros(volume.shape, np.uint8)
        out[2:6, 2:6, 2:6] = 5
        reassignments.append(piece)
        return volume.with_array(out), []

    monkeypatch.setattr(scan_jobs, "segment_ct_with_report", fake_segment)  # where the command's scan job calls it
    report = tmp_path / "report.json"
    main(["segment", str(ct), "-o", str(tmp_path / "out.nii.gz"), "--organs", "bone", "--report", str(report),
          "--progress", "json"])
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    check_record(final)
    assert final["reassignments"] == [piece.to_json()]
    assert json.loads(report.read_text())["reassignments"] == [piece.to_json()]
    assert parse_record(final).fields["reassignments"][0]["to"] == "kidneys"


def _kidney_dice(labels, reference):
    a, b = labels == KIDNEYS, reference == KIDNEYS
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ircad1_07", "ircad1_07 excretory", "abdomen_totalseg"])
def test_real_scans_the_hybrid_keeps_the_networks_kidneys(case, record_property):
    """The shipped default model on the real labelled scans: hybrid kidney Dice at least the network's
    alone (both paths give the network the same input), at most 2 % of the reference kidney voxels
    bone, bone Dice kept. Measured with the model before issue 22 (hybrid / network only / hybrid before issue 21):
    ircad1_07 0.768 / 0.767 / 0.768; with excreted contrast in its collecting systems (the kidney masks'
    sinus at 900 HU) 0.755 / 0.752 / 0.699 (9.3 % of the kidney bone before); abdomen_totalseg 0.582 /
    0.582 / 0.582."""
    import scipy.ndimage as ndi

    from shared_data import shared_file
    from organseglib.io import read_ct, read_labels
    from organseglib.segment import SegmentConfig, segment_ct_with_report

    if case.startswith("ircad1_07"):
        ct = read_ct(shared_file("ircad1_07/ct.nii.gz"))
        reference = np.zeros(ct.shape, np.uint8)
        for organ, value in (("leftkidney", KIDNEYS), ("rightkidney", KIDNEYS), ("bone", BONE)):
            reference[read_labels(shared_file(f"ircad1_07/masks/{organ}.nii.gz"), reference=ct).array > 0] = value
        if case.endswith("excretory"):
            a = ct.array.astype(np.float32)
            sinus = ndi.binary_erosion(reference == KIDNEYS, iterations=3) & (a < 100)
            ct = ct.with_array(np.where(sinus, a + 900.0 - np.median(a[sinus]), a).astype(np.float32))
    else:
        ct = read_ct(shared_file("ct/abdomen_totalseg.nii.gz"))
        reference = read_labels(shared_file("ct/abdomen_totalseg_labels.nii.gz"), reference=ct).array
    moved: list = []
    hybrid, _ = segment_ct_with_report(ct, None, SegmentConfig(), "cpu", reassignments=moved)
    network, _ = segment_ct_with_report(ct, None, SegmentConfig(autolabel_organs=()), "cpu")
    h, n = _kidney_dice(hybrid.array, reference), _kidney_dice(network.array, reference)
    record_property("kidney_dice_hybrid_network", (round(h, 3), round(n, 3)))
    # until both paths cropped the network's input alike, the hybrid tiled another box and lost 0.002 here
    # (ircad1_07 with excreted contrast 0.778 / 0.780, every differing voxel background in the other)
    assert h >= n
    assert (hybrid.array[reference == KIDNEYS] == BONE).mean() <= 0.02
    bone = hybrid.array == BONE
    assert 2.0 * float((bone & (reference == BONE)).sum()) / float(bone.sum() + (reference == BONE).sum()) >= 0.89
    assert all(m.ml >= MergeRules().min_piece_ml for m in moved)
