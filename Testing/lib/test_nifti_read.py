"""The NIfTI data read once with numpy (``organseglib.nifti_read``) against SimpleITK's reader (issue 12)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from organseglib.errors import InputError, NotCTError
from organseglib.io import read_ct, read_volume, volume_from_sitk
from organseglib.nifti_read import read_nifti
from shared_data import shared_file


def _image(dtype, seed=0, shape=(5, 6, 7)):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        arr = rng.normal(-200, 400, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(max(info.min, -1024), min(info.max, 3000), shape, endpoint=True).astype(dtype)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.8, 2.5))
    img.SetOrigin((-12.5, 30.0, 7.25))
    # an oblique direction (rotation about z by 30 degrees, then the k axis flipped)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, -1.0))
    return img


def _reference(path):
    """What read_volume returned before: SimpleITK's reader and a copy of its buffer."""
    return volume_from_sitk(sitk.ReadImage(str(path)), source=str(path))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_fast_read_equals_simpleitk(tmp_path, suffix, dtype):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(_image(dtype), str(path), suffix.endswith(".gz"))
    fast = read_nifti(path)
    assert fast is not None, "a plain NIfTI must take the fast path"
    ref = _reference(path)
    got = read_volume(path)
    assert got.array.dtype == ref.array.dtype and got.array.shape == ref.array.shape
    np.testing.assert_array_equal(got.array, ref.array)
    np.testing.assert_array_equal(got.ijk_to_ras, ref.ijk_to_ras)
    assert got.array.flags.writeable and got.array.flags.c_contiguous


def _patch(path, offset, fmt, value):
    data = bytearray(path.read_bytes())
    data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))


def test_scaled_intensities_fall_back_to_simpleitk(tmp_path):
    """scl_slope 2, scl_inter -1024: SimpleITK rescales; the fast path declines and the result is SimpleITK's."""
    path = tmp_path / "scaled.nii"
    sitk.WriteImage(_image(np.int16), str(path), False)
    _patch(path, 112, "<f", 2.0)
    _patch(path, 116, "<f", -1024.0)
    assert read_nifti(path) is None
    ref = _reference(path)
    got = read_volume(path)
    np.testing.assert_array_equal(got.array, ref.array)
    assert float(got.array.min()) < -1000  # the scaling was applied


def test_four_d_with_one_frame_falls_back(tmp_path):
    arr = _image(np.int16)
    img = sitk.JoinSeries([arr])  # 4D, one frame
    path = tmp_path / "four.nii"
    sitk.WriteImage(img, str(path), False)
    assert read_nifti(path) is None
    assert read_volume(path).array.shape == (5, 6, 7)


def test_nan_voxels_and_truncation_are_refused(tmp_path):
    arr = sitk.GetArrayFromImage(_image(np.float32))
    arr[1, 2, 3] = np.nan
    arr[4, 5, 6] = np.inf
    img = sitk.GetImageFromArray(arr)
    for suffix in (".nii", ".nii.gz"):
        path = tmp_path / f"nan{suffix}"
        sitk.WriteImage(img, str(path), suffix.endswith(".gz"))
        with pytest.raises(NotCTError, match="2 voxels are NaN or infinite"):
            read_volume(path)
    path = tmp_path / "cut.nii"
    sitk.WriteImage(_image(np.float32), str(path), False)
    data = path.read_bytes()
    path.write_bytes(data[:352 + (len(data) - 352) // 2])
    with pytest.raises(InputError, match=r"truncated.*|.*50\.0 %"):
        read_volume(path)
    gz = tmp_path / "cut.nii.gz"
    gz.write_bytes(gzip.compress(data)[:-200])
    with pytest.raises(InputError, match="truncated"):
        read_volume(gz)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ircad1_07/ct.nii.gz", "ct/abdomen_totalseg.nii.gz", "ct/chest_cropped_totalseg.nii.gz"])
def test_real_scans_read_as_simpleitk_reads_them(name):
    path = shared_file(name)
    ref = _reference(path)
    got = read_ct(path)
    np.testing.assert_array_equal(got.array, ref.array.astype(np.float32))
    np.testing.assert_array_equal(got.ijk_to_ras, ref.ijk_to_ras)
