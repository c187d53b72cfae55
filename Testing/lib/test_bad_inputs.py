"""Bad input files: each is refused with exit status 2, one line naming the file and the fix, no
traceback, no output and the input unchanged (docs/bad_inputs.md lists them all). Masks, geometry,
models and messages (issue 19): ``test_bad_masks_geometry_models.py``.

The files are made in tmp_path from the tiny phantom, or by cutting/patching a copy of a real scan.
"""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from organseglib import io as oio
from organseglib.cli import main
from organseglib.ct_checks import summarize_intensities
from organseglib.errors import GeometryError, InputError, LabelValueError, NotCTError
from organseglib.file_checks import check_nifti, parse_nifti_header
from organseglib.io import read_labels, read_volume, write_labels, write_volume
from organseglib.volume import Volume
from refusals import ct_int16 as _ct_int16, refused
from shared_data import shared_file

PIXDIM_X = 80  # byte offset of pixdim[1] in a NIfTI-1 header


@pytest.fixture
def ct_nii(tmp_path, tiny_abdomen):
    """A valid int16 NIfTI CT (compressed) and its raw twin."""
    gz = write_volume(_ct_int16(tiny_abdomen), tmp_path / "ct.nii.gz")
    raw = tmp_path / "ct.nii"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    return gz, raw


# --- truncated files -----------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_nii_gz_is_refused_not_read_as_zeros(tmp_path, ct_nii, capsys, fraction):
    gz, _ = ct_nii
    cut = tmp_path / "cut.nii.gz"
    data = gz.read_bytes()
    cut.write_bytes(data[:int(len(data) * fraction)])
    line = refused(capsys, ["autolabel", cut, "-o", tmp_path / "labels.nii.gz", "--progress", "none"], cut,
                   inputs=[cut], outputs=[tmp_path / "labels.nii.gz"])
    assert "truncated" in line and "copy it again" in line


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_real_scan_is_refused(tmp_path, fraction):
    data = shared_file("ct/abdomen_totalseg.nii.gz").read_bytes()
    cut = tmp_path / "abdomen.nii.gz"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(InputError, match="truncated"):
        read_volume(cut)


def test_raw_nii_cut_short_names_the_truncation(tmp_path, ct_nii, capsys):
    _, raw = ct_nii
    data = raw.read_bytes()
    raw.write_bytes(data[:len(data) // 2])
    line = refused(capsys, ["info", raw], raw, inputs=[raw])
    assert "truncated" in line and "50.0 %" in line and "rescale" not in line


def test_complete_files_pass_and_keep_their_voxels(ct_nii, tiny_abdomen):
    gz, raw = ct_nii
    for path in (gz, raw):
        header = check_nifti(path)
        assert header.dims == tiny_abdomen.ct.shape[::-1] and header.dtype == np.dtype("<i2")
        np.testing.assert_array_equal(read_volume(path).array, _ct_int16(tiny_abdomen).array)


def test_multi_member_gzip_is_read_to_its_end(tmp_path, ct_nii):
    """A stream of two gzip members (``cat a.gz b.gz``) is complete: its trailer counts only the last."""
    _, raw = ct_nii
    data = raw.read_bytes()
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    check_nifti(two)
    two.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:-10]))
    with pytest.raises(InputError, match="truncated"):
        check_nifti(two)


def test_header_claiming_1024_cubed_is_refused_before_anything_is_allocated(tmp_path, ct_nii, capsys, monkeypatch):
    _, raw = ct_nii
    header = bytearray(raw.read_bytes()[:352])
    header[40:56] = struct.pack("<8h", 3, 1024, 1024, 1024, 1, 1, 1, 1)
    header[70:74] = struct.pack("<hh", 8, 32)  # int32: 4 GiB declared
    big_gz, big_raw = tmp_path / "big.nii.gz", tmp_path / "big.nii"
    big_gz.write_bytes(gzip.compress(bytes(header) + b"\0" * 128))
    big_raw.write_bytes(bytes(header) + b"\0" * 128)

    def never(*args, **kwargs):
        raise AssertionError("SimpleITK was asked to read (and allocate) the image")

    monkeypatch.setattr(oio.sitk, "ReadImage", never)
    for path in (big_gz, big_raw):
        line = refused(capsys, ["info", path], path, inputs=[path])
        assert "1024×1024×1024 int32" in line and "4.0 GiB" in line and "128 bytes" in line


def test_not_nifti_and_broken_headers():
    with pytest.raises(InputError, match="not a NIfTI file"):
        parse_nifti_header(b"\0" * 348, "x.nii")
    with pytest.raises(InputError, match="ends inside its NIfTI header"):
        parse_nifti_header(b"\0" * 20, "x.nii")
    raw = bytearray(348)
    raw[:4] = struct.pack("<i", 348)
    raw[40:56] = struct.pack("<8h", 3, 10, 0, 10, 1, 1, 1, 1)
    with pytest.raises(InputError, match="dimensions"):
        parse_nifti_header(bytes(raw), "x.nii")


# --- NaN / Inf ------------------------------------------------------------------------------------
def _nan_padded(tiny_abdomen) -> Volume:
    array = tiny_abdomen.ct.array.astype(np.float32).copy()
    array[:, :, :8] = np.nan  # outside the field of view
    array[0, 0, 10] = np.inf
    return tiny_abdomen.ct.with_array(array)


@pytest.mark.parametrize("name", ["nan.nii.gz", "nan.nii", "nan.nrrd"])
def test_nan_voxels_are_refused_not_read_as_0_hu(tmp_path, tiny_abdomen, capsys, name):
    path = write_volume(_nan_padded(tiny_abdomen), tmp_path / name)
    out = tmp_path / "labels.nii.gz"
    line = refused(capsys, ["segment", path, "-o", out, "--progress", "none"], path, inputs=[path], outputs=[out])
    assert "NaN or infinite" in line and "−1000 HU" in line
    expected = 60 * 70 * 8 + 1
    assert f"{expected} " in line


def test_all_nan_reference_is_refused_by_evaluate(tmp_path, tiny_abdomen, capsys):
    pred = write_labels(tiny_abdomen.labels, tmp_path / "pred.nii.gz")
    ref = write_volume(tiny_abdomen.ct.with_array(np.full(tiny_abdomen.ct.shape, np.nan, np.float32)),
                       tmp_path / "ref.nii.gz")
    line = refused(capsys, ["evaluate", pred, ref, "--csv", tmp_path / "s.csv"], ref, inputs=[pred, ref],
                   outputs=[tmp_path / "s.csv"])
    assert "NaN" in line
    with pytest.raises(NotCTError):
        read_labels(ref)


def test_float_nifti_without_nan_passes(tmp_path, tiny_abdomen):
    path = write_volume(tiny_abdomen.ct, tmp_path / "f.nii.gz")
    np.testing.assert_array_equal(read_volume(path).array, tiny_abdomen.ct.array)


# --- spacing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, -2.0, float("nan")])
@pytest.mark.parametrize("compressed", [False, True])
def test_zero_negative_or_nan_spacing_in_nifti_is_refused(tmp_path, ct_nii, capsys, value, compressed):
    _, raw = ct_nii
    data = bytearray(raw.read_bytes())
    data[PIXDIM_X:PIXDIM_X + 4] = struct.pack("<f", value)
    path = tmp_path / ("bad.nii.gz" if compressed else "bad.nii")
    path.write_bytes(gzip.compress(bytes(data)) if compressed else bytes(data))
    out = tmp_path / "labels.nii.gz"
    line = refused(capsys, ["autolabel", path, "-o", out, "--progress", "none"], path, inputs=[path], outputs=[out])
    assert "pixdim" in line and "not positive" in line
    with pytest.raises(GeometryError):
        read_volume(path)


# --- DICOM series of two slice sizes -------------------------------------------------------------
def _dicom_series(folder, sizes):
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, n in enumerate(sizes):
        sl = sitk.GetImageFromArray(np.full((1, n, n), -1000 if k % 2 else 40, np.int16))
        for tag, value in (("0020|000e", "1.2.826.0.1.3680043.2.1125.1.42"), ("0020|000d", "1.2.3.4"),
                           ("0008|0060", "CT"), ("0020|0032", f"0\\0\\{2.0 * k}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0020|0013", str(k + 1)), ("0008|0018", f"1.2.3.4.5.{k}"), ("0028|0030", "1\\1")):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{k}.dcm"))
        writer.Execute(sl)
    return folder


def test_dicom_series_with_two_slice_sizes_is_one_line_and_a_json_record(tmp_path, capsys):
    folder = _dicom_series(tmp_path / "series", [32, 32, 32, 24])
    out = tmp_path / "labels.nii.gz"
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    assert main(["segment", str(folder), "-o", str(out), "--progress", "json"]) == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in captured.err
    assert "2 sizes: 32×32 (3 files), 24×24 (1 file)" in err[0] and str(folder) in err[0]
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["status"] == "error" and "2 sizes" in record["message"]
    assert not out.exists() and sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before


# --- a CT given as labels --------------------------------------------------------------------------
def test_ct_given_as_labels_gets_a_short_message(tmp_path, tiny_abdomen, capsys):
    labels = write_labels(tiny_abdomen.labels, tmp_path / "labels.nii.gz")
    ct = write_volume(_ct_int16(tiny_abdomen), tmp_path / "ct.nii.gz")
    line = refused(capsys, ["evaluate", labels, ct], ct, inputs=[labels, ct])
    n = len(np.unique(_ct_int16(tiny_abdomen).array))
    assert n > 100 and len(line) < 500
    assert f"{n} distinct values" in line and "not a label map" in line
    with pytest.raises(LabelValueError, match="values \\[7\\] outside"):  # a few stray values: all listed
        from organseglib.organs import check_label_values

        check_label_values(np.array([0, 1, 7]), "x")


# --- info statistics ------------------------------------------------------------------------------
def test_info_statistics_are_exact_not_sampled(tmp_path, capsys):
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 400, size=(160, 160, 160)).astype(np.int16)  # 4.1 M voxels
    array[17, 33, 51] = 2976  # one voxel a strided subsample skips
    array[1, 2, 3] = -1024
    path = write_volume(Volume(array, np.diag([0.7, 0.7, 2.5, 1.0])), tmp_path / "ct.nrrd")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    p01, p50, p99 = np.percentile(array, [1, 50, 99])
    assert info["intensity"] == {"min": -1024.0, "p01": p01, "median": p50, "p99": p99, "max": 2976.0}
    s = summarize_intensities(array.astype(np.float32), exact=True)  # float path: np.percentile
    assert (s.minimum, s.p01, s.p50, s.p99, s.maximum) == (-1024, p01, p50, p99, 2976)
    assert s.air_fraction == np.count_nonzero(array <= -500) / array.size


@pytest.mark.parametrize("name, compress", [("ct.nrrd", True), ("ct.nrrd", False), ("ct.mha", True),
                                            ("ct.mha", False)])
def test_truncated_nrrd_and_mha_are_refused(tmp_path, tiny_abdomen, capsys, name, compress):
    """Compressed: by their readers (the stream ends early); raw: by the size check, before reading."""
    path = tmp_path / name
    sitk.WriteImage(sitk.GetImageFromArray(_ct_int16(tiny_abdomen).array), str(path), compress)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])
    line = refused(capsys, ["info", path], path, inputs=[path])
    assert ("corrupt, truncated" if compress else "truncated or its header is wrong") in line
    assert "No such file" not in line


_HUGE_HEADERS = {
    "raw.nrrd": b"NRRD0004\ntype: int\ndimension: 3\nsizes: 1024 1024 1024\nspacings: 1 1 1\nencoding: raw\n"
                b"endian: little\n\n",
    "gzip.nrrd": b"NRRD0004\ntype: int\ndimension: 3\nsizes: 1024 1024 1024\nspacings: 1 1 1\nencoding: gzip\n"
                 b"endian: little\n\n",
    "raw.mha": b"ObjectType = Image\nNDims = 3\nDimSize = 1024 1024 1024\nElementType = MET_INT\n"
               b"ElementSpacing = 1 1 1\nElementDataFile = LOCAL\n",
    "gzip.mha": b"ObjectType = Image\nNDims = 3\nDimSize = 1024 1024 1024\nElementType = MET_INT\n"
                b"ElementSpacing = 1 1 1\nCompressedData = True\nCompressedDataSize = 151\nElementDataFile = LOCAL\n",
}


@pytest.mark.parametrize("name", sorted(_HUGE_HEADERS))
def test_nrrd_and_mha_headers_claiming_1024_cubed_are_refused_before_reading(tmp_path, capsys, monkeypatch, name):
    """Their readers would allocate 4 GiB first (a raw NRRD: 4.4 GB resident, 24 s) and fail after."""
    path = tmp_path / name
    data = gzip.compress(b"\0" * 128) if name.startswith("gzip") else b"\0" * 128
    path.write_bytes(_HUGE_HEADERS[name] + data)
    monkeypatch.setattr(oio.sitk, "ReadImage", lambda *a, **k: pytest.fail("SimpleITK read the voxel data"))
    line = refused(capsys, ["info", path], path, inputs=[path])
    assert "declares 4.0 GiB of voxel data" in line


def test_raw_nrrd_cut_short_says_how_much_is_there(tmp_path, tiny_abdomen, capsys):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(_ct_int16(tiny_abdomen).array), str(path), False)
    header = path.read_bytes().index(b"\n\n") + 2
    data = path.read_bytes()
    path.write_bytes(data[:header + (len(data) - header) // 4])
    assert "(25.0 %)" in refused(capsys, ["info", path], path, inputs=[path])


def test_vox_offset_0_does_not_make_the_header_voxels(tmp_path, tiny_abdomen):
    """Some writers leave vox_offset 0: the data still starts after the header, never inside it
    (header bytes scanned as float data would look like NaN)."""
    path = write_volume(tiny_abdomen.ct, tmp_path / "f.nii")
    data = bytearray(path.read_bytes())
    data[108:112] = struct.pack("<f", 0.0)
    data[148:152] = struct.pack("<f", float("nan"))  # a NaN-looking float in the header (description field)
    path.write_bytes(bytes(data))
    assert check_nifti(path).vox_offset == 352


@pytest.mark.parametrize("where", [0.5, 0.98])
def test_damaged_nii_gz_is_refused_not_read_as_garbage(tmp_path, where):
    """16 flipped bytes (the trailer intact): SimpleITK reads the scan with 684 064 (middle) or 1 464
    (near the end) wrong voxels and no word; the gzip CRC says it is damaged."""
    data = bytearray(shared_file("ct/abdomen_totalseg.nii.gz").read_bytes())
    pos = int(len(data) * where)
    data[pos:pos + 16] = bytes(b ^ 0xFF for b in data[pos:pos + 16])
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="gzip data is corrupt.*copy it again"):
        read_volume(path)
