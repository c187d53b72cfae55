"""A DICOM series is read as a volume only when its slices make one regular grid; checked from the
slice headers (no pixel data) before the series is read.

SimpleITK's series reader assumes what it should check (ITK 5.4):

* slices at uneven gaps (−128.69, −127.69, −124.69 mm: a missing slice, or two reconstructions in one
  series) are read as a uniform grid with the mean gap, with only a console warning: every volume
  and every position along the scan is then wrong (lungs 111.9 mL instead of 56.3 mL, issue 19);
* duplicated slices (one position twice, same or new SOP UID) make GDCM give up sorting: the
  files are stacked in directory order, with a spacing from the first pair;
* slices of different sizes fail deep inside ITK.

``check_series`` refuses each of these with one line that names the files or positions. OrganSeg
refuses uneven spacing rather than resampling it: the labels of a DICOM series are written back as a
DICOM SEG whose frames reference the source slices one to one, which a resampled grid would not have;
and uneven gaps most often mean slices lost in transfer, which interpolation would hide. To use such
a series anyway, resample it onto a regular grid first (3D Slicer does so on loading with "acquisition
geometry regularization") and pass the result.

A gap is uneven when it differs from the median gap by more than ``GAP_TOLERANCE`` (10 %): rounding of
positions in the headers stays far below it (0.001 mm), a missing slice doubles a gap (100 %).
Slices closer than ``DUPLICATE_MM`` are one position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .errors import GeometryError, InputError

PathLike = Union[str, "os.PathLike[str]"]
GAP_TOLERANCE = 0.10
DUPLICATE_MM = 0.01


@dataclass(frozen=True)
class SliceHeader:
    path: str
    size: tuple  # (columns, rows)
    origin: tuple  # LPS mm of the first pixel
    normal: tuple  # unit normal of the slice plane (row × column direction)


def read_slice_headers(files: Sequence[str]) -> list[SliceHeader]:
    """The geometry of each slice file (headers only); files whose header cannot be read are left out
    (the series reader reports them)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    out = []
    for name in files:
        reader.SetFileName(str(name))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        direction = np.asarray(reader.GetDirection(), dtype=np.float64)
        dim = reader.GetDimension()
        direction = direction.reshape(dim, dim)
        if dim < 3:
            continue
        out.append(SliceHeader(str(name), tuple(reader.GetSize()[:2]), tuple(reader.GetOrigin()[:3]),
                               tuple(direction[:, 2])))
    return out


def _names(headers: Sequence[SliceHeader], limit: int = 2) -> str:
    return " and ".join(repr(Path(h.path).name) for h in headers[:limit])


def check_series(folder: PathLike, files: Sequence[str]) -> None:
    """Refuse a series whose slices do not make one regular grid (module docstring).

    Raises:
        InputError: slices of different sizes or orientations.
        GeometryError: duplicated slices, or uneven gaps between slices.
    """
    headers = read_slice_headers(files)
    where = f"DICOM folder {str(folder)!r}"
    sizes: dict[tuple, int] = {}
    for h in headers:
        sizes[h.size] = sizes.get(h.size, 0) + 1
    if len(sizes) > 1:
        found = ", ".join(f"{i}×{j} ({n} file{'s' if n > 1 else ''})"
                          for (i, j), n in sorted(sizes.items(), key=lambda kv: -kv[1]))
        raise InputError(f"{where}: one series holds slices of {len(sizes)} sizes: {found}; a volume needs one size. "
                         "Move the odd slices (scout, reformat) out of the folder or export the series again")
    if len(headers) < 2:
        return
    normal = np.asarray(headers[0].normal)
    if any(np.linalg.norm(np.asarray(h.normal) - normal) > 1e-3 for h in headers):
        raise InputError(f"{where}: the slices lie in planes of different orientations; a volume needs one. Move "
                         "the odd slices (scout, reformat) out of the folder or export the series again")
    position = np.array([float(np.dot(h.origin, normal)) for h in headers])
    order = np.argsort(position, kind="stable")
    position, ordered = position[order], [headers[i] for i in order]
    gaps = np.diff(position)
    same = np.flatnonzero(gaps < DUPLICATE_MM)
    if same.size:
        k = int(same[0])
        raise GeometryError(
            f"{where}: {same.size} slice{'s repeat' if same.size > 1 else ' repeats'} a position another slice has (e.g. "
            f"{_names(ordered[k:k + 2])} both at {position[k]:.2f} mm): the series holds duplicated slices (copied in "
            "twice, or two reconstructions under one series UID); remove the duplicates and try again")
    median = float(np.median(gaps))
    off = np.flatnonzero(np.abs(gaps - median) > GAP_TOLERANCE * median)
    if off.size:
        k = int(off[0])
        raise GeometryError(
            f"{where}: the gaps between slices are uneven ({gaps.min():.2f} to {gaps.max():.2f} mm, median {median:.2f}; "
            f"e.g. {gaps[k]:.2f} mm between {position[k]:.2f} and {position[k + 1]:.2f} mm, files "
            f"{_names(ordered[k:k + 2])}): slices are missing or the series mixes reconstructions, and OrganSeg does "
            "not assume a regular grid. Export the complete series again, or resample it onto a regular grid first "
            "(3D Slicer: acquisition geometry regularization) and pass that")


def check_regular_files(folder: PathLike) -> None:
    """Refuse a folder holding a FIFO, device or socket: a DICOM scan would open it and wait for ever.

    Raises:
        InputError: naming the first such entry.
    """
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_symlink() and not os.path.exists(entry.path):
                continue  # a broken link: skipped by the scan, nothing to wait for
            if not (entry.is_file() or entry.is_dir()):
                raise InputError(f"DICOM folder {str(folder)!r} holds {entry.name!r}, which is not a regular file (a "
                                 "FIFO, device or socket): reading it could wait for ever; move it out of the folder")
