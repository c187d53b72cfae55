"""Bad masks, geometry, models and messages (issue 19): each is refused with exit status 2, one line
naming what is wrong and the fix, nothing written and the inputs unchanged, or corrected as the
options say (docs/bad_inputs.md lists them all). Bad files: ``test_bad_inputs.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from organseglib.cli import main
from organseglib.errors import EXIT_WARNINGS
from organseglib.io import read_labels, write_labels, write_volume
from organseglib.volume import Volume
from refusals import ct_int16 as _ct_int16, refused


def _import_world(tmp_path, phantom, masks: dict):
    """A CT and a mask folder {file name: array} on its grid."""
    ct = write_volume(_ct_int16(phantom), tmp_path / "ct.nii.gz")
    folder = tmp_path / "masks"
    folder.mkdir()
    for name, array in masks.items():
        write_volume(phantom.labels.with_array(array), folder / name)
    return ct, folder


def _organ(phantom, value) -> np.ndarray:
    return (phantom.labels.array == value).astype(np.uint8)


# --- masks that are not 0/1 --------------------------------------------------------------------------
@pytest.mark.parametrize("kind, says", [
    ("probabilities", ["not binary", "0.02", "0.95", "none of them 0", "threshold"]),
    ("noisy 0/255", ["not binary", "21 distinct values", "0, 1, 2", "255"]),
    ("label map 1..5", ["not binary", "6 distinct values (0, 1, 2, 3, 4, 5)", "--mapping"]),
])
def test_a_mask_that_is_not_binary_is_refused_with_the_values_found(tmp_path, tiny_abdomen, capsys, kind, says):
    liver = _organ(tiny_abdomen, 1)
    array = {"probabilities": np.where(liver > 0, 0.95, 0.02).astype(np.float32),
             "noisy 0/255": np.where(liver > 0, 255, np.arange(liver.size).reshape(liver.shape) % 20).astype(np.uint8),
             "label map 1..5": tiny_abdomen.labels.array}[kind]
    ct, masks = _import_world(tmp_path, tiny_abdomen, {"liver.nii.gz": array})
    line = refused(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set"], "liver.nii.gz",
                   inputs=[ct, masks / "liver.nii.gz"])
    assert all(s in line for s in says), line
    assert not (tmp_path / "set").exists()


def test_a_label_map_is_imported_by_the_mapping_of_its_values(tmp_path, tiny_abdomen, capsys):
    ct, masks = _import_world(tmp_path, tiny_abdomen, {"labels.nii.gz": tiny_abdomen.labels.array,
                                                       "spleen.nii.gz": _organ(tiny_abdomen, 1) * 0})
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"labels": {"1": "liver", "2": "bladder", "3": "lungs", "4": "kidneys", "5": "bone"}}))
    assert main(["import-labels", str(masks), "--ct", str(ct), "-o", str(tmp_path / "set"), "--mapping",
                 str(mapping)]) == 0
    assert np.array_equal(read_labels(tmp_path / "set" / "labels-0.nii.gz").array, tiny_abdomen.labels.array)
    mapping.write_text(json.dumps({"labels": {"1": "liver", "2": "bladder"}}))  # values 3..5 left out
    line = refused(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set2", "--mapping", mapping],
                   "values 3, 4, 5", inputs=[ct])
    assert "does not name" in line


def test_overlapping_organ_masks_are_refused_unless_overlap_says_who_keeps_them(tmp_path, tiny_abdomen, capsys):
    liver, kidneys = _organ(tiny_abdomen, 1), _organ(tiny_abdomen, 4)
    over = kidneys | liver  # a kidney mask drawn over the whole liver: every liver voxel lost before
    ct, masks = _import_world(tmp_path, tiny_abdomen, {"liver.nii.gz": liver, "kidneys.nii.gz": over})
    line = refused(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set"], "overlap",
                   inputs=[ct, masks])
    assert f"'kidneys' and 'liver' overlap on {int(liver.sum())} voxels (i " in line and "--overlap first" in line
    report = tmp_path / "report.json"
    assert main(["import-labels", str(masks), "--ct", str(ct), "-o", str(tmp_path / "set"), "--overlap", "last",
                 "--report", str(report)]) == EXIT_WARNINGS  # done, with the overlap as a warning
    got = json.loads(report.read_text())["overlaps"]
    assert got[0]["masks"] == ["kidneys", "liver"] and got[0]["voxels"] == int(liver.sum()) and got[0]["kept"] == "liver"
    assert "overlap on" in capsys.readouterr().err
    assert np.array_equal(read_labels(tmp_path / "set" / "labels-0.nii.gz").array == 1, liver > 0)


@pytest.mark.parametrize("text, says", [
    ('{"Leber": "liver", "Leber": "kidneys"}', "gives 'Leber' twice"),
    ('{"Leber": "liver", "LEBER": "kidneys"}', "'Leber' and 'LEBER' name the same structure"),
    ('{"Leber": {"organ": "liver"}}', "entry 'Leber': the keys of a label map's entry are its voxel values"),
    ('{"Leber": 5}', "entry 'Leber' must be an organ text"),
    ('{"Leber": "kidneys:middle"}', "kidneys has no part 'middle'"),
    ('{"Leber": "livr"}', "did you mean 'liver'"),
])
def test_bad_mapping_files_are_refused_naming_the_entry(tmp_path, tiny_abdomen, capsys, text, says):
    ct, masks = _import_world(tmp_path, tiny_abdomen, {"Leber.nii.gz": _organ(tiny_abdomen, 1)})
    mapping = tmp_path / "map.json"
    mapping.write_text(text)
    line = refused(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set", "--mapping", mapping], says,
                   inputs=[ct, mapping])
    assert "got int 5" in line if text.endswith("5}") else True
    assert not (tmp_path / "set").exists()


@pytest.mark.parametrize("names, says", [
    (["livr.nii.gz"], "'livr' (did you mean 'liver'?)"),
    (["livr.nii.gz", "kidneys.nii.gz"], "'livr' (did you mean 'liver'?)"),  # the liver would silently be unknown
    (["kidneyz.nii.gz"], "did you mean 'kidney'"),
    (["vertebrae_L1.nii.gz", "spleen.nii.gz"], "annotates no organ: only parts of bone (vertebrae)"),
    (["volume-0.nii.gz", "labels-0.nii.gz"], "a training set's file"),
])
def test_names_that_annotate_nothing_or_are_misspelt_are_refused(tmp_path, tiny_abdomen, capsys, monkeypatch,
                                                                  names, says):
    ct, masks = _import_world(tmp_path, tiny_abdomen, {n: _organ(tiny_abdomen, 4) for n in names})
    monkeypatch.setattr("organseglib.io.read_ct", lambda *a, **k: pytest.fail("the CT was read before the names"))
    refused(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set"], says, inputs=[masks])
    assert not (tmp_path / "set").exists()


# --- geometry -----------------------------------------------------------------------------------------
def _ct_series(folder, positions, duplicate=None):
    import pydicom
    from dicom_series import phantom_hu, write_ct_series

    hu = phantom_hu((len(positions), 20, 24))
    write_ct_series(folder, hu, (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.0))
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.0, float(positions[int(ds.InstanceNumber) - 1])]
        ds.save_as(path)
    if duplicate:
        ds = pydicom.dcmread(sorted(folder.iterdir())[0])
        if duplicate == "new":
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / "copy.dcm")
    return folder


@pytest.mark.parametrize("positions, duplicate, says", [
    ([0, 1, 4, 6, 8, 10], None, "gaps between slices are uneven (1.00 to 3.00 mm, median 2.00"),
    ([0, 2, 4, 6, 8, 10], "same", "duplicated slices"),
    ([0, 2, 4, 6, 8, 10], "new", "duplicated slices"),
])
def test_a_dicom_series_that_is_no_regular_grid_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch,
                                                                              positions, duplicate, says):
    folder = _ct_series(tmp_path / "series", positions, duplicate)
    monkeypatch.setattr(sitk.ImageSeriesReader, "Execute", lambda self: pytest.fail("the series was read"))
    out = tmp_path / "labels.nii.gz"
    rc = main(["segment", str(folder), "-o", str(out), "--progress", "json"])
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and says in err[0], err
    assert json.loads(captured.out.strip().splitlines()[-1])["status"] == "error"
    assert not out.exists()


@pytest.mark.parametrize("spacing", [50.0, 0.01])
def test_voxel_sizes_no_ct_has_are_refused_with_the_reason(tmp_path, tiny_abdomen, capsys, monkeypatch, spacing):
    monkeypatch.setattr("organseglib.cohort.jobs.segment_ct_with_report",
                        lambda *a, **k: pytest.fail("segmentation started"))
    ct = write_volume(Volume(_ct_int16(tiny_abdomen).array, np.diag([spacing] * 3 + [1.0])), tmp_path / "ct.nii.gz")
    line = refused(capsys, ["segment", ct, "-o", tmp_path / "l.nii.gz", "--progress", "none"], "voxel size",
                   inputs=[ct], outputs=[tmp_path / "l.nii.gz"])
    assert "0.1-20 mm" in line and "memory" not in line


@pytest.mark.parametrize("extra, says", [
    (["--spacing", "0.05"], "--spacing) must be 0.1-20 mm"),
    (["--spacing", "3", "--crop", "1600", "1600", "1600"], "measures 4800 × 4800 × 4800 mm"),
    (["--spacing", "3", "--width", "1", "--crop", "400", "400", "400"], "needs at least"),
    (["--lr", "inf"], "(--lr) must be a finite number"),
    (["--lr", "10"], "(--lr) must be a finite number above 0 and at most 1"),
    (["--seed", "-1"], "(--seed) must be a whole number ≥ 0; got -1"),
    (["--threads", "-1"], "--threads must be a whole number ≥ 1"),
])
def test_train_settings_no_ct_or_machine_can_take_are_refused_before_the_data(tmp_path, capsys, monkeypatch,
                                                                              extra, says):
    monkeypatch.setattr("organseglib.training.dataset.load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    line = refused(capsys, ["train", "--data", "phantoms:1", "--out", tmp_path / "m", "--progress", "none", *extra],
                   says)
    assert "--device cpu" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["ct", "mask", "dicom folder"])
def test_a_fifo_is_refused_not_waited_on(tmp_path, tiny_abdomen, where):
    import os
    import subprocess
    import sys

    ct, masks = _import_world(tmp_path, tiny_abdomen, {})
    if where == "ct":
        ct = tmp_path / "fifo.nii.gz"
        os.mkfifo(ct)
        argv = ["autolabel", ct, "-o", tmp_path / "l.nii.gz", "--progress", "none"]
    elif where == "mask":
        os.mkfifo(masks / "liver.nii.gz")
        argv = ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set"]
    else:
        folder = _ct_series(tmp_path / "series", [0, 2, 4])
        os.mkfifo(folder / "stream.dcm")
        argv = ["autolabel", folder, "-o", tmp_path / "l.nii.gz", "--progress", "none"]
    proc = subprocess.run([sys.executable, "-m", "organseglib", *map(str, argv)], capture_output=True, text=True,
                          timeout=60)  # without the check: a hang, then TimeoutExpired
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


# --- models -------------------------------------------------------------------------------------------
def test_non_finite_weights_are_never_written_nor_loaded(tmp_path):
    import torch
    from broken_files import poison_package

    from organseglib.errors import ModelPackageError
    from organseglib.model_package import ModelCard, load_model_package, save_model_package
    from organseglib.network import build_network

    net, card = build_network(width=0.0625), ModelCard(name="m", width=0.0625)
    with torch.no_grad():
        next(net.parameters())[0] = float("nan")
    with pytest.raises(ModelPackageError, match="refusing to write .* NaN or infinite values"):
        save_model_package(tmp_path / "nan", net, card)
    assert list(tmp_path.iterdir()) == []
    package = save_model_package(tmp_path / "ok", build_network(width=0.0625), card)
    name = poison_package(package)  # damaged, then re-signed: the hash matches
    with pytest.raises(ModelPackageError, match=f"NaN or infinite values in 1 tensor \\(e.g. '{name}'"):
        load_model_package(package)


def test_a_checkpoint_with_non_finite_tensors_is_refused_on_resume(tmp_path, capsys, monkeypatch):
    from broken_files import poison_checkpoint

    argv = ["train", "--data", "phantoms:1", "--spacing", "6", "--crop", "16", "32", "32", "--width", "0.0625",
            "--batch-size", "1", "--iterations", "2", "--stop-after", "1", "--checkpoint-every", "1",
            "--val-fraction", "0", "--augment", "never", "--threads", "1", "--progress", "none",
            "--out", str(tmp_path / "m"), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    ckpt = tmp_path / "m.training" / "checkpoint.safetensors"
    name = poison_checkpoint(ckpt)
    capsys.readouterr()
    monkeypatch.setattr("organseglib.training.dataset.load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    line = refused(capsys, argv[:argv.index("--stop-after")] + argv[argv.index("--checkpoint-every"):], name,
                   inputs=[ckpt], outputs=[tmp_path / "m"])
    assert "is corrupt; pass --restart" in line


def test_a_manifest_naming_an_unknown_organ_fails_before_training_naming_the_case(tmp_path, tiny_abdomen, capsys,
                                                                                   monkeypatch):
    from organseglib.training_set import export_training_case

    export_training_case(tiny_abdomen.ct, tiny_abdomen.labels, tmp_path / "set", source="phantom")
    manifest = tmp_path / "set" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["cases"][0]["annotated_organs"] = ["liver", "kidneyz"]
    manifest.write_text(json.dumps(data))
    monkeypatch.setattr("organseglib.training.trainer.train", lambda *a, **k: pytest.fail("training started"))
    line = refused(capsys, ["train", "--data", tmp_path / "set", "--out", tmp_path / "m", "--spacing", "6",
                            "--progress", "none"], "case 0 (labels-0.nii.gz)", inputs=[manifest])
    assert "annotated_organs names unknown organ 'kidneyz'; did you mean 'kidneys'?" in line
    assert not (tmp_path / "m.training").exists()


# --- messages -----------------------------------------------------------------------------------------
def test_a_grid_that_differs_only_in_direction_says_so(tmp_path, tiny_abdomen, capsys):
    labels = tiny_abdomen.labels
    matrix = np.array(labels.ijk_to_ras)
    matrix[:3, :3] = matrix[:3, :3] @ np.diag([-1.0, -1.0, 1.0])  # same origin and spacing, other axes
    flipped = write_labels(Volume(labels.array, matrix), tmp_path / "pred.nii.gz")
    ref = write_labels(labels, tmp_path / "ref.nii.gz")
    line = refused(capsys, ["evaluate", flipped, ref], "only the direction differs", inputs=[flipped, ref])
    assert "vs" in line and line.count("origin") == 1  # named once, as agreeing
