"""Checks that an image file holds what its header declares, made before a reader allocates anything.

SimpleITK's NIfTI reader is silent where it should not be (ITK 5.4):

* a ``.nii.gz`` cut short is read with the missing voxels as zeros, a raw ``.nii`` cut short with
  whatever memory held;
* NaN and infinite voxels come back as 0 (0 HU is soft tissue: a NaN-padded field of view becomes
  "organ");
* a voxel spacing (``pixdim``) of zero, negative or NaN is read as 1 mm;
* a header declaring 1024³ voxels is allocated (gigabytes) before the missing data is noticed;
* a ``.nii.gz`` with damaged bytes (its CRC no longer matches) is read as garbage.

``check_nifti`` parses the header itself (NIfTI-1 and NIfTI-2, either byte order) and checks the
data against it: the raw file's length, or the gzip stream decompressed chunk by chunk (never whole in
memory) to its end marker, with zlib checking each member's CRC-32 (SimpleITK reads a damaged stream
as garbage too), and for float data every voxel for NaN/Inf. NRRD and MetaImage readers refuse short data themselves, but only after
allocating what the header declares (a 1024³ NRRD header: 4.4 GB and 24 s), so ``check_declared_size``
first compares the declared size with what a single-file ``.nrrd``/``.mha`` can hold.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .errors import GeometryError, InputError, NotCTError

# NIfTI datatype code -> numpy dtype (the ones a CT or label file can hold)
_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
           1280: "u8", 32: "c8", 1792: "c16", 128: "u1", 2304: "u1"}
_CHUNK = 1 << 22  # 4 MiB of compressed input per step


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI header that say how much data follows and on what grid."""

    version: int
    byte_order: str  # "<" or ">"
    dims: tuple  # dim[1..dim[0]]
    datatype: int
    bitpix: int
    pixdim: tuple  # pixdim[1..dim[0]] (mm for the spatial axes)
    vox_offset: int
    single_file: bool  # data in the same file (not the "ni1" header of a .hdr/.img pair)

    @property
    def voxels(self) -> int:
        return int(np.prod([int(d) for d in self.dims], dtype=object))

    @property
    def data_bytes(self) -> int:
        return self.voxels * self.bitpix // 8

    @property
    def dtype(self) -> Optional[np.dtype]:
        code = _DTYPES.get(self.datatype)
        return None if code is None else np.dtype(self.byte_order + code)

    def describe(self) -> str:
        name = self.dtype.name if self.dtype is not None else f"datatype {self.datatype}"
        return f"{'×'.join(str(d) for d in self.dims)} {name} voxels ({_size(self.data_bytes)})"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def parse_nifti_header(raw: bytes, source: str) -> NiftiHeader:
    """Parse the first bytes of a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header.

    Raises:
        InputError: not a NIfTI header, or dimensions/datatype that cannot describe an image.
    """
    if len(raw) < 348:
        raise InputError(f"{source}: the file ends inside its NIfTI header ({len(raw)} bytes); it is truncated or "
                         "not NIfTI: copy it again from its source")
    for order in ("<", ">"):
        size = struct.unpack(order + "i", raw[:4])[0]
        if size in (348, 540):
            break
    else:
        raise InputError(f"{source}: not a NIfTI file (header size field {struct.unpack('<i', raw[:4])[0]}, "
                         "expected 348 or 540); check the file and its extension")
    if size == 348:
        dims = struct.unpack(order + "8h", raw[40:56])
        datatype, bitpix = struct.unpack(order + "hh", raw[70:74])
        pixdim = struct.unpack(order + "8f", raw[76:108])
        vox_offset = struct.unpack(order + "f", raw[108:112])[0]
        magic = raw[344:348]
        version = 1
    else:
        if len(raw) < 540:
            raise InputError(f"{source}: the file ends inside its NIfTI-2 header; it is truncated: copy it again")
        datatype, bitpix = struct.unpack(order + "hh", raw[12:16])
        dims = struct.unpack(order + "8q", raw[16:80])
        pixdim = struct.unpack(order + "8d", raw[104:168])
        vox_offset = struct.unpack(order + "q", raw[168:176])[0]
        magic = raw[4:8]
        version = 2
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or any(int(d) < 1 for d in dims[1:ndim + 1]):
        raise InputError(f"{source}: NIfTI header dimensions {list(dims[:ndim + 1] if 0 <= ndim <= 7 else dims)} "
                         "are invalid (dim[0] must be 1..7 and each size ≥ 1); the header is corrupt")
    if bitpix <= 0 or bitpix % 8:
        raise InputError(f"{source}: NIfTI header bitpix {bitpix} is invalid; the header is corrupt")
    if not np.isfinite(vox_offset):
        raise InputError(f"{source}: NIfTI vox_offset {vox_offset} is not a number; the header is corrupt")
    single_file = magic not in (b"ni1\x00", b"ni2\x00")  # "ni1": a .hdr whose data is in a separate .img
    # the data of a single file never starts inside the header (some writers leave vox_offset 0)
    offset = max(int(vox_offset), 352 if version == 1 else 544) if single_file else int(vox_offset)
    return NiftiHeader(version=version, byte_order=order, dims=tuple(int(d) for d in dims[1:ndim + 1]),
                       datatype=int(datatype), bitpix=int(bitpix), pixdim=tuple(float(p) for p in pixdim[1:ndim + 1]),
                       vox_offset=offset, single_file=single_file)


def check_spacing(header: NiftiHeader, source: str) -> None:
    spatial = header.pixdim[:3]
    if not all(np.isfinite(s) and s > 0 for s in spatial):
        raise GeometryError(
            f"{source}: voxel spacing (NIfTI pixdim[1..3]) {tuple(round(s, 6) for s in spatial)} mm is not positive; "
            "a reader would take it as 1 mm and every volume would be wrong. Fix the header's pixdim (e.g. "
            "with nibabel: img.header.set_zooms(...)) or re-export the scan")


def gzip_chunks(path: Path, source: str) -> Iterator[bytes]:
    """Decompressed bytes of every gzip member, in bounded pieces, refusing a stream cut short.

    Bytes after the first member that are not gzip (padding some writers add) end the stream, as
    zlib's ``gzread`` (what ITK uses) treats them."""
    members = 0
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    started = False  # the current member has taken input
    with open(path, "rb") as fh:
        while True:
            data = fh.read(_CHUNK)
            if not data:
                break
            while True:
                started = started or bool(data)
                try:
                    out = d.decompress(data, _CHUNK)
                except zlib.error as exc:
                    if members:
                        return
                    raise InputError(f"{source}: the gzip data is corrupt ({exc}); the file is damaged: copy it "
                                     "again from its source") from None
                if out:
                    yield out
                if d.eof:
                    members += 1
                    data, d, started = d.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS), False
                    if not data:
                        break
                    continue
                data = d.unconsumed_tail
                if not data and len(out) < _CHUNK:
                    break
    if started or not members:
        raise InputError(f"{source}: the gzip stream ends before its end marker: the file is truncated "
                         "(an interrupted copy or download?); copy it again from its source")


def _count_data(chunks: Iterator[bytes], header: NiftiHeader, source: str) -> int:
    """Bytes of voxel data in the stream (after ``vox_offset``), checking float data for NaN/Inf."""
    dtype = header.dtype
    floats = dtype is not None and dtype.kind in "fc"
    seen = 0  # bytes of the whole stream
    pending = b""
    nonfinite = 0
    end = header.vox_offset + header.data_bytes
    for chunk in chunks:
        start, stop = max(0, header.vox_offset - seen), max(0, end - seen)
        seen += len(chunk)
        if not floats or start >= min(len(chunk), stop):
            continue
        data = memoryview(chunk)[start:stop]
        if pending:  # the voxel split across the previous chunk's end
            data = memoryview(pending + data.tobytes())
        usable = len(data) - len(data) % dtype.itemsize
        values = np.frombuffer(data[:usable], dtype=dtype)
        nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
        pending = data[usable:].tobytes()
    if nonfinite:
        raise nonfinite_error(source, nonfinite)
    return max(0, seen - header.vox_offset)


def nonfinite_error(source: str, count: int) -> NotCTError:
    """The error for ``count`` NaN or infinite voxels in the file ``source`` (already quoted)."""
    return NotCTError(f"{source}: {count} voxels are NaN or infinite (SimpleITK would silently read them "
                      "as 0, soft tissue in a CT); replace them (in a CT with −1000 HU outside the field of view) "
                      "and save again")


def _raw_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                return
            yield chunk


def read_nifti_header(path: Path, source: str) -> tuple[bytes, NiftiHeader]:
    """The first 540 bytes of a ``.nii`` / ``.nii.gz`` (decompressed) and their parsed, spacing-checked
    header; ``source`` is the name quoted in errors.

    Raises:
        InputError: unreadable, corrupt or not NIfTI. GeometryError: zero, negative or NaN spacing.
    """
    gz = Path(path).name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            raw = fh.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{source}: cannot read the NIfTI header ({exc}); the file is corrupt or not "
                         f"{'gzip-compressed ' if gz else ''}NIfTI") from None
    header = parse_nifti_header(raw, source)
    check_spacing(header, source)
    return raw, header


def check_nifti(path: os.PathLike | str, source: Optional[str] = None) -> NiftiHeader:
    """Check a ``.nii`` / ``.nii.gz`` file against its own header before it is read.

    Reads the header, then verifies that the file holds all the voxel data the header declares
    (without allocating it), that the spacing is positive, and that float voxels are finite.

    Raises:
        InputError: not NIfTI, corrupt or truncated (the message says how much is missing).
        GeometryError: zero, negative or NaN spacing.
        NotCTError: NaN or infinite voxels.
    """
    p = Path(path)
    source = repr(str(source or path))
    gz = p.name.lower().endswith(".gz")
    _, header = read_nifti_header(p, source)
    if not header.single_file:  # a .hdr/.img pair: the data is elsewhere
        return header
    expected = header.vox_offset + header.data_bytes
    floats = header.dtype is not None and header.dtype.kind in "fc"
    if not gz:
        have = p.stat().st_size
        if have < expected:
            raise truncated_error(source, header, max(0, have - header.vox_offset))
        if floats:
            _count_data(_raw_chunks(p), header, source)
        return header
    # the whole stream, to its end marker and CRC: SimpleITK reads a cut stream as zeros and a damaged one
    # (bit rot, a bad copy) as garbage without a word
    have = _count_data(gzip_chunks(p, source), header, source)
    if have < header.data_bytes:
        raise truncated_error(source, header, have)
    return header


def truncated_error(source: str, header: NiftiHeader, have: int) -> InputError:
    return InputError(
        f"{source}: the header declares {header.describe()} but the file holds only {_size(have)} of voxel data "
        f"({100 * have / max(header.data_bytes, 1):.1f} %): it is truncated (an interrupted copy or download?) or "
        "its header is wrong; copy it again from its source")


# --- NRRD and MetaImage: declared size against the file ---------------------------------------------
_GZIP_MAX_RATIO = 1032  # deflate cannot compress better than about 1032:1


def _nrrd_layout(head: bytes) -> Optional[tuple[int, str]]:
    """(header length, encoding) of a single-file NRRD, None when the data is in another file."""
    end = head.find(b"\n\n")
    if end < 0:
        return None
    encoding, detached = "raw", False
    for line in head[:end].decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "encoding":
            encoding = value.strip().lower()
        elif key in ("data file", "datafile"):
            detached = True
    return None if detached else (end + 2, {"gz": "gzip"}.get(encoding, encoding))


def _mha_layout(head: bytes) -> Optional[tuple[int, str]]:
    """(header length, encoding) of a single-file MetaImage, None when the data is in another file."""
    compressed, offset = False, 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        key, _, value = raw.decode("latin-1").partition("=")
        key, value = key.strip(), value.strip()
        if key == "CompressedData":
            compressed = value.lower() == "true"
        if key == "ElementDataFile":
            return (offset, "gzip" if compressed else "raw") if value == "LOCAL" else None
    return None


def check_declared_size(path: os.PathLike | str, declared_bytes: int, source: Optional[str] = None) -> None:
    """Refuse a single-file ``.nrrd``/``.mha`` too small for the voxel data its header declares, before a
    reader allocates it: raw data must all be there, gzip data cannot shrink more than ~1032:1.

    Raises:
        InputError: the file cannot hold the declared data.
    """
    p = Path(path)
    source = repr(str(source or path))
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)
    layout = _nrrd_layout(head) if p.name.lower().endswith(".nrrd") else _mha_layout(head)
    if layout is None:
        return
    header_bytes, encoding = layout
    have = p.stat().st_size - header_bytes
    if encoding == "raw" and have < declared_bytes:
        raise InputError(f"{source}: the header declares {_size(declared_bytes)} of voxel data but the file holds "
                         f"only {_size(max(have, 0))} ({100 * max(have, 0) / max(declared_bytes, 1):.1f} %): it is "
                         "truncated or its header is wrong; copy it again from its source")
    if encoding == "gzip" and have * _GZIP_MAX_RATIO < declared_bytes:
        raise InputError(f"{source}: the header declares {_size(declared_bytes)} of voxel data but the file holds "
                         f"only {_size(max(have, 0))} of compressed data, more than gzip can pack into it: it is "
                         "truncated or its header is wrong; copy it again from its source")
