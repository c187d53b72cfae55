"""Reading and writing CT and labels: geometry round trips (oblique too), real files, bad input."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from shared_data import shared_file
from organseglib.errors import (GeometryError, InputError, LabelValueError, MissingFileError, NotCTError,
                                OutputExistsError, UnsupportedFormatError)
from organseglib.io import read_ct, read_labels, read_volume, write_labels, write_volume
from organseglib.atomic import atomic_path, check_not_input
from test_volume_organs import rotation
from organseglib.volume import Volume


def oblique_labels():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 6, size=(7, 9, 11)).astype(np.uint8)
    return Volume.from_geometry(arr, spacing=(0.7, 0.9, 2.5), origin=(-12.5, 33.25, 101.0),
                                direction=rotation(25, -12))


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd", ".mha", ".seg.nrrd"])
def test_labels_round_trip_with_oblique_direction(tmp_path, ext):
    labels = oblique_labels()
    path = write_labels(labels, tmp_path / f"labels{ext}")
    back = read_labels(path)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.array.dtype == np.uint8
    np.testing.assert_allclose(back.ijk_to_ras, labels.ijk_to_ras, atol=1e-4)  # NIfTI stores float32


def test_seg_nrrd_has_names_colours_terminology(tmp_path):
    import slicerio

    labels = oblique_labels()
    write_labels(labels, tmp_path / "s.seg.nrrd")
    seg = slicerio.read_segmentation(str(tmp_path / "s.seg.nrrd"))
    by_name = {s["name"]: s for s in seg["segments"]}
    assert set(by_name) == {"Liver", "Bladder", "Lungs", "Kidneys", "Bone"}
    assert by_name["Lungs"]["labelValue"] == 3
    assert by_name["Bone"]["terminology"]["type"] == ["SCT", "272673000", "Bone"]
    np.testing.assert_allclose(by_name["Liver"]["color"], [0.867, 0.510, 0.396], atol=1e-3)
    # slicerio indexes voxels [i, j, k]
    np.testing.assert_array_equal(seg["voxels"], labels.array.transpose(2, 1, 0))


def test_lps_is_converted_to_ras_once(tmp_path):
    img = sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16) - 1000)
    img.SetOrigin((10.0, 20.0, 30.0))  # LPS
    img.SetSpacing((1.0, 2.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / "a.nrrd"))
    v = read_volume(tmp_path / "a.nrrd")
    np.testing.assert_allclose(v.origin, (-10.0, -20.0, 30.0))
    np.testing.assert_allclose(v.direction, np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(v.spacing, (1.0, 2.0, 3.0))
    assert v.shape == (3, 4, 5)


@pytest.mark.parametrize("name", ["ct/abdomen_totalseg.nii.gz", "ct/chest_lung1.nrrd", "ct/chest_cropped_totalseg.nii.gz"])
def test_real_ct_round_trip(tmp_path, name):
    ct = read_ct(shared_file(name))
    assert ct.array.dtype == np.float32 and ct.array.min() < -900
    out = write_volume(ct, tmp_path / "copy.nrrd")
    back = read_ct(out)
    np.testing.assert_array_equal(back.array, ct.array)
    np.testing.assert_allclose(back.ijk_to_ras, ct.ijk_to_ras, atol=1e-5)


def test_real_dicom_series_and_its_label_share_a_grid():
    ct = read_ct(shared_file("dicom/ct3slice"))
    assert ct.shape == (3, 512, 512)
    np.testing.assert_allclose(ct.spacing[:2], (0.810547, 0.810547), atol=1e-4)
    liver = read_labels(shared_file("dicom/ct3slice_liver_seg.nrrd"), reference=ct)
    assert set(np.unique(liver.array)) == {0, 1}
    # the hand-drawn liver lies on liver-like HU
    assert 20 < float(np.median(ct.array[liver.array == 1])) < 200


def test_real_labels_read_with_reference():
    ct = read_ct(shared_file("ct/abdomen_totalseg.nii.gz"))
    labels = read_labels(shared_file("ct/abdomen_totalseg_labels.nii.gz"), reference=ct)
    assert set(np.unique(labels.array)) == {0, 1, 2, 3, 4, 5}


# --- bad input -----------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        read_ct(tmp_path / "nope.nii.gz")


def test_unknown_extension(tmp_path):
    (tmp_path / "scan.jpg").write_bytes(b"xx")
    with pytest.raises(UnsupportedFormatError, match=r"'\.jpg' is not one of"):
        read_ct(tmp_path / "scan.jpg")
    with pytest.raises(UnsupportedFormatError):
        write_labels(oblique_labels(), tmp_path / "out.png")


def test_folder_without_dicom(tmp_path):
    with pytest.raises(UnsupportedFormatError, match="no DICOM series"):
        read_ct(tmp_path)


def test_corrupt_file(tmp_path):
    good = write_volume(Volume.from_geometry(np.zeros((4, 4, 4), np.int16) - 1000), tmp_path / "a.nii.gz")
    data = Path(good).read_bytes()
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="bad.nii.gz"):
        read_ct(bad)


def test_2d_and_4d_images_are_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.int16)), str(tmp_path / "flat.nrrd"))
    with pytest.raises(GeometryError, match="2D image.*single slice"):
        read_ct(tmp_path / "flat.nrrd")
    img4 = sitk.JoinSeries([sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16))] * 2)
    sitk.WriteImage(img4, str(tmp_path / "t.nii.gz"))
    with pytest.raises(GeometryError, match="4D"):
        read_ct(tmp_path / "t.nii.gz")


def test_zero_spacing_is_refused(tmp_path):
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 2 2\n"
              "space directions: (0,0,0) (0,1,0) (0,0,1)\nkinds: domain domain domain\nendian: little\n"
              "encoding: raw\nspace origin: (0,0,0)\n\n")
    (tmp_path / "z.nrrd").write_bytes(header.encode() + np.zeros(8, "<i2").tobytes())
    with pytest.raises(InputError, match="z.nrrd"):
        read_ct(tmp_path / "z.nrrd")


def _write_ct(tmp_path, array, name="x.nrrd"):
    return write_volume(Volume.from_geometry(array), tmp_path / name)


def test_nan_voxels(tmp_path, tiny_abdomen):
    a = tiny_abdomen.ct.array.copy()
    a[0, 0, :3] = np.nan
    with pytest.raises(NotCTError, match="NaN"):
        read_ct(_write_ct(tmp_path, a, "nan.nrrd"))  # ITK's NIfTI reader turns NaN into 0


def test_mr_range_image_is_not_ct(tmp_path):
    mr = np.random.default_rng(0).uniform(0, 1500, size=(10, 12, 14)).astype(np.float32)
    with pytest.raises(NotCTError, match="Hounsfield"):
        read_ct(_write_ct(tmp_path, mr))


def test_unscaled_ct_gets_the_fix(tmp_path, tiny_abdomen):
    raw = (tiny_abdomen.ct.array + 1024).astype(np.uint16)
    with pytest.raises(NotCTError, match="Subtract 1024"):
        read_ct(_write_ct(tmp_path, raw))


def test_real_phantom_passes_the_ct_check(tmp_path, tiny_abdomen):
    read_ct(_write_ct(tmp_path, tiny_abdomen.ct.array))


def test_unknown_label_values(tmp_path):
    arr = np.zeros((3, 3, 3), np.uint8)
    arr[1, 1, 1] = 6
    write_volume(Volume.from_geometry(arr), tmp_path / "l.nii.gz")
    with pytest.raises(LabelValueError, match=r"\[6\].*brain"):
        read_labels(tmp_path / "l.nii.gz")
    write_volume(Volume.from_geometry(np.full((3, 3, 3), 0.5, np.float32)), tmp_path / "p.nii.gz")
    with pytest.raises(LabelValueError, match="whole numbers"):
        read_labels(tmp_path / "p.nii.gz")


def test_labels_on_another_grid_are_refused(tmp_path):
    labels = oblique_labels()
    write_labels(labels, tmp_path / "l.nrrd")
    other = Volume.from_geometry(np.zeros(labels.shape), spacing=(1, 1, 1))
    with pytest.raises(GeometryError, match="not on the CT's grid"):
        read_labels(tmp_path / "l.nrrd", reference=other)


# --- atomic output -------------------------------------------------------------------------------
def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_outputs_never_overwrite_inputs(tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="also an input"):
        check_not_input(tmp_path / "sub" / ".." / "ct.nii.gz", [tmp_path / "ct.nii.gz"])
    with pytest.raises(OutputExistsError, match="exists"):
        write_labels(oblique_labels(), tmp_path / "ct.nii.gz", overwrite=False)
