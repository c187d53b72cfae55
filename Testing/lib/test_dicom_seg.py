"""DICOM SEG output (issue 13): every frame lands on its source slice, with the label map's pixels.

Read back twice: at the DICOM level with pydicom (each frame's referenced SOP Instance UID and
Image Position (Patient) against the source files) and through highdicom's own reader. Series: the
real 3-slice CT of ../shared/data/dicom/ct3slice with its hand-drawn liver, and synthetic series
written with pydicom in tmp_path: axial, oblique, and gantry-tilted (sheared slices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="DICOM SEG needs pydicom (pip install pydicom)")
hd = pytest.importorskip("highdicom", reason="DICOM SEG needs highdicom (pip install highdicom)")

from dicom_series import (check_seg_against_source, phantom_hu, phantom_labels, rotation,  # noqa: E402
                          write_ct_series)  # (Testing/ is on sys.path)
from shared_data import shared_file  # noqa: E402

from organseglib.dicom_seg import read_dicom_seg, series_files, write_dicom_seg  # noqa: E402
from organseglib.errors import GeometryError, InputError, LabelValueError, UnsupportedFormatError  # noqa: E402
from organseglib.io import LPS_TO_RAS, read_labels, read_volume  # noqa: E402
from organseglib.organs import organ_by_key, organ_by_value  # noqa: E402

TILT = np.deg2rad(15.0)
GEOMETRIES = {
    # row direction, column direction, step between slices (mm, LPS)
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, 2.5)),
    "oblique": (rotation(20, 10)[:, 0], rotation(20, 10)[:, 1], 2.5 * rotation(20, 10)[:, 2]),
    # the table moves along z while the image plane is tilted 15 degrees: sheared slices
    "gantry_tilt": ((1, 0, 0), (0, np.cos(TILT), -np.sin(TILT)), (0, 0, 2.5)),
}


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_synthetic_series_frames_land_on_their_source_slices(tmp_path, geometry):
    row, column, step = GEOMETRIES[geometry]
    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), row, column, (10.0, -20.0, 30.0), step,
                    gantry_tilt=15.0 if geometry == "gantry_tilt" else 0.0)
    ct = read_volume(folder)
    files = series_files(folder)
    assert len(files) == 6
    labels = phantom_labels()
    out = tmp_path / "organs.dcm"
    write_dicom_seg(ct.with_array(labels), folder, out)  # reads the series' grid itself
    present = [organ_by_value(v) for v in (1, 2, 3, 4, 5)]
    frames = check_seg_against_source(out, files, labels, present)
    assert frames == int(sum(np.any(labels[k] == v) for k in range(6) for v in range(1, 6)))
    if geometry != "gantry_tilt":
        # a regular series: the frames' positions are also the labels' slice origins in OrganSeg's grid
        lps = LPS_TO_RAS @ ct.ijk_to_ras
        for k, name in enumerate(files):
            position = [float(v) for v in pydicom.dcmread(name, stop_before_pixels=True).ImagePositionPatient]
            assert np.allclose(position, lps[:3, 3] + k * lps[:3, 2], atol=1e-3)
    assert not list(tmp_path.glob(".*part*")), "temporary files left behind"
    back = read_dicom_seg(out, folder)  # and organseglib reads it back onto the same grid
    assert back.same_grid(ct) and np.array_equal(back.array, labels)


def test_listed_organs_are_written_even_when_empty(tmp_path):
    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
    ct = read_volume(folder)
    labels = np.zeros(ct.shape, np.uint8)
    labels[2, 4:8, 4:8] = 1
    out = tmp_path / "liver_and_kidneys.dcm"
    write_dicom_seg(ct.with_array(labels), folder, out, organs=[organ_by_key("kidneys")], reference=ct)
    check_seg_against_source(out, series_files(folder), labels, [organ_by_key("liver"), organ_by_key("kidneys")])
    with pytest.raises(InputError, match="no organ"):
        write_dicom_seg(ct.with_array(np.zeros(ct.shape, np.uint8)), folder, tmp_path / "none.dcm", reference=ct)
    assert not (tmp_path / "none.dcm").exists()


def test_labels_not_on_the_series_grid_or_bad_values_are_refused(tmp_path):
    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
    ct = read_volume(folder)
    labels = phantom_labels()
    shifted = ct.with_array(labels)
    matrix = shifted.ijk_to_ras.copy()
    matrix[2, 3] += 2.5  # one slice off
    from organseglib.volume import Volume

    with pytest.raises(GeometryError, match="not on the grid of DICOM series"):
        write_dicom_seg(Volume(labels, matrix), folder, tmp_path / "off.dcm")
    with pytest.raises(GeometryError, match="not on the grid"):
        write_dicom_seg(Volume(labels[:5], ct.ijk_to_ras), folder, tmp_path / "short.dcm", reference=ct)
    bad = labels.copy()
    bad[0, 0, 0] = 9
    with pytest.raises(LabelValueError):
        write_dicom_seg(ct.with_array(bad), folder, tmp_path / "bad.dcm", reference=ct)
    with pytest.raises(UnsupportedFormatError, match=r"\*\.dcm"):
        write_dicom_seg(ct.with_array(labels), folder, tmp_path / "x.nii.gz", reference=ct)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnsupportedFormatError, match="holds no DICOM series"):
        write_dicom_seg(ct.with_array(labels), empty, tmp_path / "x.dcm", reference=ct)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "series"]


def test_an_existing_seg_is_replaced_atomically_and_kept_when_asked(tmp_path):
    from organseglib.errors import OutputExistsError

    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
    ct = read_volume(folder)
    out = tmp_path / "organs.dcm"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        write_dicom_seg(ct.with_array(phantom_labels()), folder, out, reference=ct, overwrite=False)
    assert out.read_bytes() == b"old"
    write_dicom_seg(ct.with_array(phantom_labels()), folder, out, reference=ct)
    assert pydicom.dcmread(out).Modality == "SEG"


def test_real_ct3slice_liver_label_as_dicom_seg(tmp_path):
    """The real 3-slice CT (dcmqi test data) with its hand-drawn liver: frames on the right slices."""
    folder = shared_file("dicom/ct3slice")
    ct = read_volume(folder)
    liver = read_labels(shared_file("dicom/ct3slice_liver_seg.nrrd"), reference=ct)
    assert set(np.unique(liver.array).tolist()) == {0, 1} and liver.array.sum() > 1000
    labels = liver.array.copy()
    labels[:, :40, :] = np.where(labels[:, :40, :] == 0, 5, labels[:, :40, :])  # a second organ band
    out = tmp_path / "ct3slice_seg.dcm"
    write_dicom_seg(ct.with_array(labels), folder, out, reference=ct)
    files = series_files(folder)
    assert [Path(f).name for f in files] == ["03.dcm", "02.dcm", "01.dcm"]  # sorted by position, not name
    assert check_seg_against_source(out, files, labels, [organ_by_key("liver"), organ_by_key("bone")]) == 6


def test_read_dicom_seg_refuses_a_seg_of_another_series_and_non_seg_files(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        write_ct_series(folder, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
    ct = read_volume(first)
    out = tmp_path / "first.dcm"
    write_dicom_seg(ct.with_array(phantom_labels()), first, out, reference=ct)
    with pytest.raises(InputError, match="does not reference the 6 slices"):
        read_dicom_seg(out, second)
    with pytest.raises(InputError, match="cannot read .* as a DICOM SEG"):
        read_dicom_seg(series_files(first)[0], first)


def test_an_output_inside_the_source_series_folder_is_refused(tmp_path):
    """``segment SERIES -o SERIES/x.dcm`` would change the input folder (one more file in the series)."""
    from organseglib.dicom_seg import check_dicom_seg_request
    from organseglib.errors import OutputPathError

    folder = tmp_path / "series"
    write_ct_series(folder, phantom_hu(), (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 2.5))
    before = sorted(p.name for p in folder.iterdir())
    for inside in (folder / "x.dcm", folder / "sub" / "x.dcm"):
        with pytest.raises(OutputPathError, match="inside the source series folder"):
            check_dicom_seg_request(inside, folder)
    check_dicom_seg_request(tmp_path / "x.dcm", folder)  # next to it: fine
    assert sorted(p.name for p in folder.iterdir()) == before
