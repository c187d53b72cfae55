"""``organseg segment SERIES_DIR -o out.dcm``: a DICOM SEG for a DICOM series; refused early otherwise."""

from __future__ import annotations

import sys

import pytest

pydicom = pytest.importorskip("pydicom", reason="DICOM SEG needs pydicom")
pytest.importorskip("highdicom", reason="DICOM SEG needs highdicom")

from shared_data import shared_file  # noqa: E402
from dicom_series import check_seg_against_source, phantom_hu, write_ct_series  # noqa: E402

from organseglib.cli import main  # noqa: E402
from organseglib.dicom_seg import series_files  # noqa: E402
from organseglib.io import read_labels, read_volume, write_volume  # noqa: E402
from organseglib.organs import organ_table  # noqa: E402


@pytest.mark.slow
def test_segment_real_dicom_series_writes_a_dicom_seg_matching_the_label_map(tmp_path, tiny_model, capsys):
    folder = shared_file("dicom/ct3slice")
    common = ["--model", str(tiny_model), "--device", "cpu", "--progress", "none"]
    rc_dcm = main(["segment", str(folder), "-o", str(tmp_path / "organs.dcm"), *common])
    rc_nii = main(["segment", str(folder), "-o", str(tmp_path / "organs.nii.gz"), *common])
    ct = read_volume(folder)
    labels = read_labels(tmp_path / "organs.nii.gz", reference=ct).array
    assert labels.any(), "the hybrid run found nothing to compare (lungs/bone expected on this chest slab)"
    # written either way; exit 3 (completed with warnings) when an organ asked for is empty (docs/bad_inputs.md)
    missing = {o.value for o in organ_table()} - set(labels.reshape(-1).tolist())
    assert rc_dcm == rc_nii == (3 if missing else 0)
    # every organ asked for (all five by default) is a segment, even an empty one
    frames = check_seg_against_source(tmp_path / "organs.dcm", series_files(folder), labels, list(organ_table()))
    assert frames >= 3
    assert f"wrote {tmp_path / 'organs.dcm'}" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["nifti", "missing", "empty_folder", "no_highdicom", "inside_the_series"])
def test_dcm_output_without_a_dicom_series_is_refused_before_any_work(tmp_path, tiny_abdomen, monkeypatch,
                                                                     capsys, case):
    import organseglib.cohort.jobs as scan_jobs
    import organseglib.commands.segment as segment_command

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(segment_command, "read_ct", no_work)
    monkeypatch.setattr(scan_jobs, "segment_ct_with_report", no_work)
    if case == "nifti":
        source = write_volume(tiny_abdomen.ct, tmp_path / "ct.nii.gz")
        message = "is a file, not a DICOM series folder"
    elif case == "missing":
        source, message = tmp_path / "no-such-series", "does not exist"
    elif case == "empty_folder":
        source = tmp_path / "series"
        source.mkdir()
        (source / "notes.txt").write_text("not DICOM")
        message = "holds no DICOM series"
    elif case == "inside_the_series":  # -o SERIES/x.dcm would add a file to the input series
        source = tmp_path / "series"
        write_ct_series(source, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
        message = "inside the source series folder"
    else:  # a good series, but a Python without highdicom (Slicer 5.8's Python 3.9)
        source = tmp_path / "series"
        write_ct_series(source, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
        monkeypatch.setitem(sys.modules, "highdicom", None)
        message = "DICOM SEG output needs highdicom"
    out = (source if case == "inside_the_series" else tmp_path) / "organs.dcm"
    assert main(["segment", str(source), "-o", str(out), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(out.parent.glob(".organs.dcm*"))


def test_unknown_output_extension_names_dcm(tmp_path, capsys):
    assert main(["segment", str(tmp_path), "-o", str(tmp_path / "x.png"), "--progress", "none"]) == 2
    assert ".dcm (DICOM SEG, for a DICOM series input)" in capsys.readouterr().err
