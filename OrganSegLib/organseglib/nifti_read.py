"""NIfTI voxel data read once with numpy, geometry from SimpleITK's header reader (issue 12: speed).

``io.read_volume`` used to read a NIfTI three times: ``file_checks.check_nifti`` streamed the whole
file (to find truncation, a damaged gzip stream and NaN voxels), SimpleITK read it again, and
``GetArrayFromImage`` copied SimpleITK's buffer into numpy (on a 512x512x305 float32 ``.nii``:
0.1 + 0.5 + 0.7 s; a ``.nii.gz`` was decompressed twice). Here the data is read once:

* a raw ``.nii``: its length is checked against the header, then ``np.fromfile`` reads the voxels;
* a ``.nii.gz``: the gzip stream is decompressed once, chunk by chunk, to its end marker (zlib checks
  each member's CRC-32, as ``check_nifti`` does) straight into the array;
* float voxels: NaN or infinite ones found by the array's minimum and maximum (NaN and inf propagate
  into them), counted only when present; the error is ``check_nifti``'s.

The geometry (spacing, origin, direction) comes from ``sitk.ImageFileReader.ReadImageInformation``,
the header alone, so it is SimpleITK's, exactly as before. NIfTI stores voxels with i fastest, which
is numpy's C order for a ``[k, j, i]`` array: the array equals ``GetArrayFromImage``'s.

Only the plain case takes this path: a single-file 3D scalar image of a native-order numeric type with no
intensity scaling (``scl_slope`` 0 or 1, ``scl_inter`` 0) and a ``vox_offset`` past the header, on
which SimpleITK agrees (3 dimensions, one component, the same size and voxel type). Anything else
(``None`` from ``read_nifti``) goes through ``check_nifti`` and SimpleITK as before.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from .file_checks import NiftiHeader, gzip_chunks, nonfinite_error, read_nifti_header, truncated_error


def _scaling(raw: bytes, header: NiftiHeader) -> tuple[float, float]:
    """``(scl_slope, scl_inter)`` of the header."""
    if header.version == 1:
        return struct.unpack(header.byte_order + "ff", raw[112:120])
    return struct.unpack(header.byte_order + "dd", raw[176:192])


def _raw_vox_offset(raw: bytes, header: NiftiHeader) -> float:
    if header.version == 1:
        return struct.unpack(header.byte_order + "f", raw[108:112])[0]
    return float(struct.unpack(header.byte_order + "q", raw[168:176])[0])


def plain_header(raw: bytes, header: NiftiHeader) -> bool:
    """True when the header describes voxels this module reads exactly as SimpleITK does."""
    dtype = header.dtype
    if not header.single_file or len(header.dims) != 3 or dtype is None or dtype.kind not in "iuf":
        return False
    if not dtype.isnative:  # a big-endian file: SimpleITK swaps it
        return False
    if header.datatype in (128, 2304):  # RGB / RGBA: several components per voxel
        return False
    if header.bitpix != 8 * dtype.itemsize:
        return False
    slope, inter = _scaling(raw, header)
    if slope not in (0.0, 1.0) or inter != 0.0:
        return False
    return _raw_vox_offset(raw, header) == header.vox_offset  # vox_offset 0 etc.: leave it to SimpleITK


def _data_from_gzip(path: Path, header: NiftiHeader, source: str) -> np.ndarray:
    """The voxel bytes of a ``.nii.gz``, decompressed once to the stream's end (CRC checked)."""
    out = np.empty(header.data_bytes, dtype=np.uint8)
    start, stop = header.vox_offset, header.vox_offset + header.data_bytes
    seen = 0
    for chunk in gzip_chunks(path, source):
        lo, hi = max(start, seen), min(stop, seen + len(chunk))
        if hi > lo:
            out[lo - start:hi - start] = np.frombuffer(chunk, dtype=np.uint8, count=hi - lo, offset=lo - seen)
        seen += len(chunk)
    have = max(0, seen - start)
    if have < header.data_bytes:
        raise truncated_error(source, header, have)
    return out


def read_nifti(path: Path, source: Optional[str] = None):
    """The NIfTI at ``path`` as ``(array [k, j, i], SimpleITK header reader)``, or
    None when it is not the plain case (see the module docstring): then use ``check_nifti`` and
    SimpleITK.

    Raises:
        InputError: not NIfTI, corrupt or truncated (``check_nifti``'s messages).
        GeometryError: zero, negative or NaN spacing.
        NotCTError: NaN or infinite voxels.
    """
    p = Path(path)
    source = repr(str(source or path))
    gz = p.name.lower().endswith(".gz")
    raw, header = read_nifti_header(p, source)
    if not plain_header(raw, header):
        return None
    info = sitk.ImageFileReader()
    info.SetFileName(str(p))
    try:
        info.ReadImageInformation()
    except RuntimeError:
        return None  # SimpleITK's own reader gives the error message
    dtype = header.dtype
    try:
        itk_dtype = sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], info.GetPixelID())).dtype
    except (RuntimeError, TypeError, ValueError):
        return None
    if (info.GetDimension() != 3 or info.GetNumberOfComponents() != 1
            or tuple(int(n) for n in info.GetSize()) != tuple(header.dims) or np.dtype(itk_dtype) != dtype):
        return None
    if gz:
        data = _data_from_gzip(p, header, source).view(dtype)
    else:
        have = p.stat().st_size - header.vox_offset
        if have < header.data_bytes:
            raise truncated_error(source, header, max(0, have))
        data = np.fromfile(p, dtype=dtype, count=header.voxels, offset=header.vox_offset)
    if dtype.kind == "f" and data.size:
        lo, hi = np.minimum.reduce(data), np.maximum.reduce(data)  # NaN and inf propagate into these
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise nonfinite_error(source, int(data.size - np.count_nonzero(np.isfinite(data))))
    return data.reshape(tuple(reversed(header.dims))), info
