"""Importing per-structure masks (IRCAD, TotalSegmentator, mapping file) and the partial-label data path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from organseglib.errors import GeometryError, InputError
from organseglib.io import read_labels, write_labels, write_volume
from organseglib.label_import import (ImportConfig, annotated_organs, classify_name, import_case, import_masks,
                                      list_masks)
from organseglib.training.batches import annotated_mask, plain_batch
from organseglib.training.dataset import find_cases, load_case
from organseglib.training.trainer import TrainConfig, train
from organseglib.training_set import read_manifest
from organseglib.volume import Volume
from shared_data import shared_file

SHAPE = (8, 10, 12)


def _ct():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    a = np.full(SHAPE, 40.0, np.float32)
    a[:, :2] = -1000.0  # some air, so it reads as CT
    a[:, -1] = 700.0
    return Volume(a, affine)


def _mask(ct, box):
    a = np.zeros(SHAPE, np.uint8)
    a[box] = 1
    return ct.with_array(a)


def _write_masks(folder, ct, boxes):
    folder.mkdir(parents=True, exist_ok=True)
    for name, box in boxes.items():
        write_volume(_mask(ct, box), folder / f"{name}.nii.gz")


@pytest.mark.parametrize("name, expected", [
    ("liver.nii.gz", ("liver", "whole")), ("leftkidney", ("kidneys", "left")),
    ("kidney_right.nii.gz", ("kidneys", "right")), ("urinary_bladder.nii.gz", ("bladder", "whole")),
    ("lung_middle_lobe_right.nii.gz", ("lungs", "middle_right")), ("vertebrae_L3.nii.gz", ("bone", "vertebrae")),
    ("rib_left_11.nii.gz", ("bone", "ribs")), ("hip_right", ("bone", "pelvis")), ("sacrum", ("bone", "pelvis")),
    ("tumor", ("background", "")), ("spleen.nii.gz", ("background", "")), ("portalvein", ("background", "")),
    ("kidney_cyst_left.nii.gz", ("background", "")),
])
def test_builtin_names(name, expected):
    assert classify_name(name) == expected


def test_annotated_rules():
    assert annotated_organs({"kidneys": {"left"}}) == ()  # one kidney is not both
    assert annotated_organs({"kidneys": {"left", "right"}, "liver": {"whole"}}) == ("liver", "kidneys")
    lobes = {"upper_left", "lower_left", "upper_right", "middle_right"}
    assert annotated_organs({"lungs": lobes}) == ()  # right lower lobe missing
    assert annotated_organs({"lungs": lobes | {"lower_right"}}) == ("lungs",)
    assert annotated_organs({"lungs": {"left", "upper_right", "middle_right", "lower_right"}}) == ("lungs",)
    # only vertebrae: bone must not be claimed annotated everywhere
    assert annotated_organs({"bone": {"vertebrae"}}) == ()
    assert annotated_organs({"bone": {"vertebrae"}}, ImportConfig(required_bone_groups=("vertebrae",))) == ("bone",)
    # a TotalSegmentator v1 `total` folder (no sternum, no skull) annotates bone by default
    v1 = {"vertebrae", "ribs", "pelvis", "femur", "humerus", "scapula", "clavicula"}
    assert annotated_organs({"bone": v1}) == ("bone",)
    assert annotated_organs({"bone": v1 - {"ribs"}}) == ()
    with pytest.raises(InputError, match="bone group"):
        ImportConfig(required_bone_groups=("vertebra",))


def test_ircad_style_folder_with_overlap_and_non_organs(tmp_path):
    ct = _ct()
    _write_masks(tmp_path / "m", ct, {
        "liver": np.s_[2:6, 2:6, 2:6], "leftkidney": np.s_[2:4, 6:8, 8:10], "rightkidney": np.s_[4:6, 6:8, 1:3],
        "tumor": np.s_[5:8, 2:4, 2:4],         # overlaps the liver: never overwrites it
        "spleen": np.s_[0:2, 0:2, 0:2],
    })
    # a bone mask overlapping the liver by one voxel row: refused unless --overlap says who keeps it
    write_volume(_mask(ct, np.s_[2:3, 2:10, 4:8]), tmp_path / "m" / "bone.nii.gz")
    with pytest.raises(InputError, match=r"'bone' and 'liver' overlap on 8 voxels \(i 4-5, j 2-5, k 2-2\)"):
        import_masks(tmp_path / "m", ct)
    first = import_masks(tmp_path / "m", ct, ImportConfig(overlap="first"))  # bone.nii.gz is listed first
    assert first.labels.array[2, 3, 5] == 5 and first.overlaps[0]["kept"] == "bone"
    got = import_masks(tmp_path / "m", ct, ImportConfig(overlap="last"))
    a = got.labels.array
    assert got.annotated == ("liver", "kidneys", "bone")
    assert a[3, 3, 3] == 1 and a[5, 3, 3] == 1  # liver, also under the tumor
    assert a[6, 3, 3] == 0 and a[0, 0, 0] == 0  # tumor and spleen are background
    assert a[3, 7, 9] == 4 and a[5, 7, 2] == 4
    assert a[2, 8, 5] == 5 and a[2, 3, 5] == 1
    # bone [2, 2:10, 4:8] ∩ liver [2:6, 2:6, 2:6] = 1 × 4 (j 2..5) × 2 (i 4, 5) voxels, kept as liver
    assert got.overlaps == [{"masks": ["bone", "liver"], "voxels": 1 * 4 * 2, "box_ijk": [[4, 5], [2, 5], [2, 2]],
                             "kept": "liver"}]
    assert got.structures["tumor"] == "background"


def test_totalsegmentator_partial_bone_is_unknown(tmp_path):
    ct = _ct()
    _write_masks(tmp_path / "ts", ct, {"liver": np.s_[1:3, 1:3, 1:3], "vertebrae_L1": np.s_[4:6, 4:6, 4:6],
                                       "kidney_left": np.s_[6:8, 1:3, 1:3]})
    got = import_masks(tmp_path / "ts", ct)
    assert got.annotated == ("liver",)
    assert got.partial == {"bone": ["vertebrae"], "kidneys": ["left"]}
    assert set(np.unique(got.labels.array)) == {0, 1}  # unannotated organs written as 0


def test_mapping_file_and_geometry_check(tmp_path):
    ct = _ct()
    _write_masks(tmp_path / "x", ct, {"Leber": np.s_[1:3, 1:3, 1:3], "blase": np.s_[5:7, 5:7, 5:7]})
    cfg = ImportConfig(mapping={"leber": "liver", "Blase": "bladder"})
    got = import_masks(tmp_path / "x", ct, cfg)
    assert got.annotated == ("liver", "bladder") and got.labels.array[6, 6, 6] == 2
    other = Volume(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    write_volume(other, tmp_path / "x" / "liver.nii.gz")
    with pytest.raises(GeometryError, match="resample"):
        import_masks(tmp_path / "x", ct, cfg)
    with pytest.raises(InputError, match="holds no mask"):
        (tmp_path / "empty").mkdir()
        list_masks(tmp_path / "empty")


def test_import_case_writes_manifest_and_training_path_carries_annotation(tmp_path):
    ct = _ct()
    write_volume(ct, tmp_path / "ct.nii.gz")
    _write_masks(tmp_path / "m", ct, {"liver": np.s_[2:6, 2:6, 2:6]})
    entry, _ = import_case(tmp_path / "m", tmp_path / "ct.nii.gz", tmp_path / "set")
    assert entry.annotated_organs == ("liver",)
    assert (tmp_path / "set" / "volume-0.nii.gz").read_bytes() == (tmp_path / "ct.nii.gz").read_bytes()
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["cases"][0]["annotated_organs"] == ["liver"]
    ref, _ = import_case(tmp_path / "m", tmp_path / "ct.nii.gz", tmp_path / "set", ct_mode="reference")
    assert ref.volume == str((tmp_path / "ct.nii.gz").resolve()) and ref.id == 1
    assert [c.annotated_organs for c in read_manifest(tmp_path / "set")] == [("liver",), ("liver",)]
    files = find_cases(tmp_path / "set")
    assert files[1].volume == (tmp_path / "ct.nii.gz").resolve()
    case = load_case(files[0], spacing_mm=4.0, cache_dir=tmp_path / "cache")
    assert case.annotated == ("liver",)
    assert load_case(files[0], spacing_mm=4.0, cache_dir=tmp_path / "cache").annotated == ("liver",)  # cached
    mask = annotated_mask([case])
    assert mask.tolist() == [[True, True, False, False, False, False]]
    batch = plain_batch([case], 2, (8, 8, 8), np.random.default_rng(0), torch.device("cpu"))
    x, y = batch
    assert batch.annotated.shape == (2, 6) and not bool(batch.annotated[:, 3].any())
    cfg = TrainConfig(iterations=2, augment="never", batch_size=2, crop_shape=(8, 8, 8), width=0.0625,
                      validate_every=10, checkpoint_every=10)
    result = train(cfg, [case], [], tmp_path / "run", resume=False)
    assert np.isfinite(result.state.history["train"]).all()


def test_legacy_cases_annotate_everything():
    from organseglib.training.dataset import phantom_cases

    assert annotated_mask(phantom_cases([0], spacing_mm=8.0)) is None


@pytest.mark.slow
def test_real_ircad_masks_import(tmp_path):
    masks = shared_file("ircad1_07/masks")
    from organseglib.io import read_ct

    ct = read_ct(shared_file("ircad1_07/ct.nii.gz"))
    got = import_masks(masks, ct)
    assert got.annotated == ("liver", "lungs", "kidneys", "bone")  # no bladder mask: unknown
    ml = float(np.prod(ct.spacing)) / 1000.0
    volumes = {v: float((got.labels.array == v).sum()) * ml for v in (1, 3, 4, 5)}
    assert 1200 < volumes[1] < 2500 and 200 < volumes[4] < 400  # liver; both kidneys (287 mL per the issue)
    assert got.structures["tumor"] == "background" and got.structures["spleen"] == "background"


def test_import_labels_command(tmp_path, capsys):
    from organseglib.cli import main

    ct = _ct()
    write_volume(ct, tmp_path / "ct.nii.gz")
    _write_masks(tmp_path / "m", ct, {"liver": np.s_[2:6, 2:6, 2:6], "vertebrae_L1": np.s_[0:2, 4:6, 4:6]})
    (tmp_path / "map.json").write_text('{"vertebrae_L1": "bone:vertebrae"}')
    rc = main(["import-labels", str(tmp_path / "m"), "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "set"),
               "--bone-groups", "vertebrae", "--report", str(tmp_path / "r.json")])
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["annotated_organs"] == ["liver", "bone"] and report["case"]["id"] == 0
    labels = read_labels(tmp_path / "set" / "labels-0.nii.gz")
    assert labels.array[1, 5, 5] == 5
    assert main(["import-labels", "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "set")]) == 2


@pytest.mark.slow
def test_unlabelled_ct_becomes_a_lungs_and_bone_case(tmp_path, tiny_chest):
    from organseglib.label_import import autolabel_case

    write_volume(tiny_chest.ct, tmp_path / "ct.nii.gz")
    entry, report = autolabel_case(tmp_path / "ct.nii.gz", tmp_path / "set")
    assert entry.annotated_organs == ("lungs", "bone") and set(report) == {"lungs", "bone", "warnings"}
    labels = read_labels(tmp_path / "set" / entry.labels)
    assert set(np.unique(labels.array).tolist()) <= {0, 3, 5}
    truth = tiny_chest.labels.array == 3
    got = labels.array == 3
    assert 2 * (truth & got).sum() / (truth.sum() + got.sum()) > 0.9  # the lung auto-labeler on a phantom
    assert annotated_mask([load_case(find_cases(tmp_path / "set")[0], 6.0, tmp_path / "c")]).tolist() == \
        [[True, False, False, True, False, True]]


def test_validation_loss_ignores_unannotated_organs():
    from organseglib.losses import segmentation_loss
    from organseglib.network import build_network, window_hu
    from organseglib.training.dataset import TrainingCase
    from organseglib.training.validation import validate

    torch.manual_seed(0)
    net = build_network(width=0.0625).eval()
    labels = np.zeros((8, 16, 16), np.uint8)
    labels[2:6, 4:12, 4:12] = 1
    image = np.where(labels > 0, 60.0, -1000.0).astype(np.float32)
    partial = TrainingCase("p", image, labels, 3.0, ("liver",))
    full = TrainingCase("f", image, labels, 3.0)
    with torch.no_grad():
        logits = net(torch.from_numpy(window_hu(image)[None, None]))
    y = torch.from_numpy(labels[None].astype(np.int64))
    ann = torch.tensor([[True, True, False, False, False, False]])
    got = validate(net, [partial], "iou", (8, 16, 16), torch.device("cpu"))["loss"]
    assert got == pytest.approx(float(segmentation_loss("iou", logits, y, ann)), rel=1e-5)
    assert validate(net, [full], "iou", (8, 16, 16), torch.device("cpu"))["loss"] == pytest.approx(
        float(segmentation_loss("iou", logits, y)), rel=1e-5)


def test_dicom_series_folder_as_a_mask(tmp_path):
    """IRCAD ships MASKS_DICOM/<organ>/ series: a sub-folder is read as one DICOM mask."""
    from dicom_series import write_ct_series

    from organseglib.io import read_volume

    mask = np.zeros((4, 20, 24), np.int16)
    mask[1:3, 5:12, 6:15] = 255  # a DICOM mask stores 0 and one value
    write_ct_series(tmp_path / "masks" / "liver", mask, (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.0))
    grid = read_volume(tmp_path / "masks" / "liver")
    ct = grid.with_array(np.where(grid.array > 0, 60.0, -1000.0).astype(np.float32))
    got = import_masks(tmp_path / "masks", ct)
    assert got.annotated == ("liver",)
    assert (got.labels.array == 1).sum() == (mask != 0).sum() == 2 * 7 * 9


def test_import_labels_checks_report_and_output_before_any_work(tmp_path, capsys):
    from organseglib.cli import main

    ct = _ct()
    write_volume(ct, tmp_path / "ct.nii.gz")
    _write_masks(tmp_path / "m", ct, {"liver": np.s_[2:6, 2:6, 2:6]})
    base = ["import-labels", str(tmp_path / "m"), "--ct", str(tmp_path / "ct.nii.gz")]
    # the report's folder does not exist: exited 2 but had written volume-0, labels-0 and manifest.json
    assert main(base + ["-o", str(tmp_path / "set"), "--report", str(tmp_path / "nodir" / "report.json")]) == 2
    assert "nodir" in capsys.readouterr().err and not (tmp_path / "set").exists()
    (tmp_path / "afile").write_text("x")  # the output folder is a file
    assert main(base + ["-o", str(tmp_path / "afile"), "--report", str(tmp_path / "r.json")]) == 2
    assert not (tmp_path / "r.json").exists()
    # a report inside the (new) output folder is fine, but never over the manifest
    assert main(base + ["-o", str(tmp_path / "set2"), "--report", str(tmp_path / "set2" / "manifest.json")]) == 2
    assert not (tmp_path / "set2" / "labels-0.nii.gz").exists()
    assert main(base + ["-o", str(tmp_path / "set3"), "--report", str(tmp_path / "set3" / "r.json")]) == 0
    assert json.loads((tmp_path / "set3" / "r.json").read_text())["warnings"] == []


def test_import_labels_warnings_go_to_stderr_exit_3_and_the_report(tmp_path, capsys):
    from organseglib.cli import main

    ct = _ct()
    write_volume(ct, tmp_path / "ct.nii.gz")
    _write_masks(tmp_path / "m", ct, {"liver": np.s_[2:6, 2:6, 2:6], "rib_left_3": np.s_[0:2, 4:6, 4:6]})
    rc = main(["import-labels", str(tmp_path / "m"), "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "set"),
               "--report", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert rc == 3 and "warning:" not in out and "only ribs" not in out  # was: "warning: ..." on stdout and exit 0
    assert "organseg import-labels: warning: bone: only ribs present" in err
    assert json.loads((tmp_path / "r.json").read_text())["warnings"][0].startswith("bone: only ribs present")


def test_import_labels_autolabel_warnings_and_numpy_report(tmp_path, capsys, monkeypatch):
    from organseglib.cli import main
    from organseglib.commands import import_labels
    from organseglib.training_set import ManifestEntry

    entry = ManifestEntry(0, "volume-0.nii.gz", "labels-0.nii.gz", "autolabel", "2026-01-01", (), ("lungs", "bone"))
    found = {"lungs": {"ml": np.float32(1.5), "box": np.array([1, 2])}, "warnings": ["bone: not found (0 voxels)"]}
    monkeypatch.setattr(import_labels, "autolabel_case", lambda *a, **k: (entry, found))
    rc = main(["import-labels", "--autolabel", "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "set"),
               "--report", str(tmp_path / "r.json")])
    assert rc == 3  # the --autolabel path's warnings were dropped (exit 0)
    assert "organseg import-labels: warning: bone: not found (0 voxels)" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["warnings"] == ["bone: not found (0 voxels)"]
    assert report["autolabel"]["lungs"] == {"ml": 1.5, "box": [1, 2]}  # numpy values as plain JSON, not str


def test_import_case_checks_the_ct_and_reads_it_once(tmp_path, monkeypatch):
    import organseglib.io as io_mod
    from organseglib.errors import NotCTError

    ct = _ct()
    write_volume(ct, tmp_path / "ct.nrrd")  # not .nii.gz: converted into the set
    _write_masks(tmp_path / "m", ct, {"liver": np.s_[2:6, 2:6, 2:6]})
    calls = []
    real = io_mod.read_volume
    monkeypatch.setattr(io_mod, "read_volume", lambda path, *a, **k: (calls.append(str(path)), real(path, *a, **k))[1])
    entry, _ = import_case(tmp_path / "m", tmp_path / "ct.nrrd", tmp_path / "set")
    assert [c for c in calls if c.endswith("ct.nrrd")] == [str(tmp_path / "ct.nrrd")]  # was read three times
    assert np.array_equal(real(tmp_path / "set" / entry.volume).array, ct.array)
    write_volume(ct.with_array(np.full(SHAPE, 0.5, np.float32)), tmp_path / "notct.nii.gz")  # a normalised image
    with pytest.raises(NotCTError):
        import_case(tmp_path / "m", tmp_path / "notct.nii.gz", tmp_path / "set4")
    assert not (tmp_path / "set4").exists()


def test_keep_structures_writes_the_spleen_and_vessels_beside_the_labels(tmp_path, capsys):
    """import-labels --keep-structures: spleen and vessel masks become structures-N.nii.gz (values of
    EXTRA_STRUCTURES, the artery winning where it overlaps a vein), part of the case the loader reads,
    a name of the set's own that --report may not take; with --autolabel it is refused."""
    from organseglib.cli import main
    from organseglib.extra_structures import EXTRA_STRUCTURES

    ct = _ct()
    masks = tmp_path / "masks"
    _write_masks(masks, ct, {"liver": np.s_[2:6, 3:7, 2:6], "leftkidney": np.s_[2:4, 3:5, 8:10],
                             "rightkidney": np.s_[4:6, 3:5, 8:10], "spleen": np.s_[5:7, 6:9, 6:9],
                             "venoussystem": np.s_[1:3, 2:9, 10:11], "artery": np.s_[2:3, 2:9, 10:12]})
    write_volume(ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "set"
    assert main(["import-labels", str(masks), "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(out),
                 "--keep-structures", "--report", str(tmp_path / "r.json")]) == 0
    assert "keeps spleen, venous, artery" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["kept_structures"] == ["spleen", "venous", "artery"]
    kept = read_labels(out / "structures-0.nii.gz").array
    assert (kept == EXTRA_STRUCTURES["spleen"]).sum() == 2 * 3 * 3
    assert kept[2, 5, 10] == EXTRA_STRUCTURES["artery"] and kept[1, 5, 10] == EXTRA_STRUCTURES["venous"]
    (case,) = find_cases(out)
    assert case.structures == out / "structures-0.nii.gz"
    loaded = load_case(case, cache_dir=tmp_path / "cache")
    assert loaded.structures is not None and loaded.structures.shape == loaded.labels.shape
    assert set(np.unique(loaded.structures)) <= {0, *EXTRA_STRUCTURES.values()}
    assert main(["import-labels", str(masks), "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(out),
                 "--report", str(out / "structures-0.nii.gz")]) == 2
    assert "uses for its own files" in capsys.readouterr().err
    assert main(["import-labels", "--autolabel", "--ct", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "s2"),
                 "--keep-structures"]) == 2
    assert "--keep-structures" in capsys.readouterr().err


def test_a_structure_mask_that_is_not_binary_is_refused(tmp_path):
    ct = _ct()
    masks = tmp_path / "masks"
    _write_masks(masks, ct, {"liver": np.s_[2:6, 3:7, 2:6]})
    spleen = np.zeros(SHAPE, np.float32)
    spleen[5:7, 6:9, 6:9] = 0.7
    spleen[5:7, 6:9, 9:10] = 0.2
    write_volume(ct.with_array(spleen), masks / "spleen.nii.gz")
    write_volume(ct, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="not binary"):
        import_case(masks, tmp_path / "ct.nii.gz", tmp_path / "set", keep_structures=True)
    assert not (tmp_path / "set" / "structures-0.nii.gz").exists()
