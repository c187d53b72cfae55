"""Reading and writing CT volumes and label maps, with geometry converted from LPS to RAS once.

Formats: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``, ``.mhd``) and a
DICOM series folder through SimpleITK; Slicer segmentation files (``.seg.nrrd``) through slicerio, with
segment names, colours and terminology from the organ table. Every write is atomic.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from .atomic import atomic_path, double_suffix
from .ct_checks import ct_problems, grid_problem, nonfinite_problem
from .errors import GeometryError, InputError, LabelValueError, MissingFileError, NotCTError, UnsupportedFormatError
from .file_checks import check_declared_size, check_nifti
from .nifti_read import read_nifti
from .series_geometry import check_regular_files, check_series
from .organs import Organ, check_label_values, organ_by_value, organ_for_segment, organ_table
from .volume import Volume

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
IMAGE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".seg.nrrd")


# --- SimpleITK <-> Volume ---------------------------------------------------------------------------
def volume_from_sitk(image: sitk.Image, source: str = "image") -> Volume:
    """Convert a 3D SimpleITK image (LPS) to a ``Volume`` (RAS, array [k, j, i])."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise GeometryError(
            f"{source}: has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector "
            "image); OrganSeg needs a single-channel CT"
        )
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3:
        raise GeometryError(
            f"{source}: is a {dim}D image of size {image.GetSize()}; OrganSeg needs one 3D CT volume. "
            + ("Export the series as a 3D volume, not a single slice." if dim == 2 else
               "Split the 4D series (time or channels) and pass one 3D volume.")
        )
    return Volume(sitk.GetArrayFromImage(image), _ijk_to_ras(image, source))


def _ijk_to_ras(image, source: str) -> np.ndarray:
    """The IJK->RAS matrix of a 3D SimpleITK image or header reader (its geometry is LPS)."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    if np.any(~np.isfinite(spacing)) or np.any(spacing <= 0):
        raise GeometryError(
            f"{source}: voxel spacing {tuple(spacing)} mm is not positive; fix the header (NIfTI pixdim, NRRD "
            "space directions, DICOM PixelSpacing/slice positions)"
        )
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[None, :]
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Convert a ``Volume`` to a SimpleITK image with LPS geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    lps = LPS_TO_RAS @ volume.ijk_to_ras
    spacing = np.asarray(volume.spacing)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing[None, :]).reshape(-1)))
    return image


# --- reading ----------------------------------------------------------------------------------------
def _existing(path: PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingFileError(f"{what} {str(path)!r} does not exist; check the path")
    if not (p.is_file() or p.is_dir()):
        raise InputError(f"{what} {str(path)!r} is not a regular file (a FIFO, device or socket): reading it could "
                         "wait for ever; pass the image file itself")
    return p


def _read_dicom_folder(folder: Path) -> sitk.Image:
    check_regular_files(folder)  # GDCM opens every file of the folder: a FIFO would hang it
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise UnsupportedFormatError(
            f"folder {str(folder)!r} holds no DICOM series; pass a DICOM series folder or a "
            f"file ending in one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    files_by_series = {sid: reader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series}
    chosen = max(files_by_series, key=lambda sid: len(files_by_series[sid]))
    if len(series) > 1:
        log.warning("%s holds %d DICOM series; reading the largest (%s, %d files)", folder, len(series),
                    chosen, len(files_by_series[chosen]))
    check_series(folder, files_by_series[chosen])  # duplicated slices, uneven gaps: refused, never assumed
    reader.SetFileNames(files_by_series[chosen])
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(_dicom_problem(folder, files_by_series[chosen], exc)) from None


def _dicom_problem(folder: Path, files: Sequence[str], exc: Exception) -> str:
    """One line on why a DICOM series could not be read as one volume (its geometry was checked before)."""
    last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
    return (f"DICOM folder {str(folder)!r}: its {len(files)} files cannot be read as one volume ({last[:200]}); "
            "check the series (mixed sizes, orientations or missing files) and export it again")


def read_volume(path: PathLike) -> Volume:
    """Read a 3D image (NIfTI, NRRD, MetaImage or a DICOM series folder) as a RAS ``Volume``.

    Raises:
        MissingFileError: the path does not exist.
        UnsupportedFormatError: an extension no reader handles, or a folder with no DICOM series.
        GeometryError: not a single-channel 3D image, or non-positive spacing.
        NotCTError: NaN or infinite voxels (NIfTI's are found in the file: SimpleITK reads them as 0).
        InputError: the file exists but cannot be read (corrupt, truncated, fewer voxels than its header
            declares), or a DICOM series whose slices do not make one volume.
    """
    p = _existing(path, "image")
    if p.is_dir():
        image = _read_dicom_folder(p)
    else:
        ext = double_suffix(p)
        if ext == ".seg.nrrd":
            raise UnsupportedFormatError(
                f"{str(path)!r} is a Slicer segmentation; read it with read_labels, not as an image"
            )
        if ext not in IMAGE_EXTENSIONS:
            raise UnsupportedFormatError(
                f"cannot read {str(path)!r}: extension {ext or '(none)'!r} is not one of "
                f"{', '.join(IMAGE_EXTENSIONS)} (or a DICOM series folder). Convert it, e.g. in 3D Slicer"
            )
        if ext in (".nii", ".nii.gz"):
            # the plain case read once with numpy (same checks, geometry from SimpleITK's header reader)
            fast = read_nifti(p, source=str(path))
            if fast is not None:
                array, info = fast
                return Volume(array, _ijk_to_ras(info, str(path)))
            check_nifti(p, source=str(path))  # truncation, NaN, zero spacing: SimpleITK is silent on them
        elif ext in (".nrrd", ".mha"):  # their readers allocate the declared size before finding it missing
            check_declared_size(p, _declared_bytes(p, str(path)), source=str(path))
        try:
            image = sitk.ReadImage(str(p))
        except RuntimeError as exc:
            raise InputError(f"cannot read {str(path)!r}: the file is corrupt, truncated or not a valid "
                             f"{ext} file ({_itk_reason(exc)}); copy it again from its source") from None
    volume = volume_from_sitk(image, source=str(path))
    nonfinite = nonfinite_problem(volume.array)
    if nonfinite:
        raise NotCTError(f"{str(path)!r}: {nonfinite}")
    return volume


def _declared_bytes(path: Path, source: str) -> int:
    """Voxel data a header declares (read without the data)."""
    info = sitk.ImageFileReader()
    info.SetFileName(str(path))
    try:
        info.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read {source!r}: its header is corrupt or it is not a valid "
                         f"{double_suffix(path)} file ({_itk_reason(exc)})") from None
    per_voxel = np.dtype(sitk.GetArrayViewFromImage(sitk.Image([1] * info.GetDimension(), info.GetPixelID(),
                                                                 info.GetNumberOfComponents())).dtype).itemsize
    return int(np.prod([int(n) for n in info.GetSize()], dtype=object)) * per_voxel * info.GetNumberOfComponents()


def _itk_reason(exc: Exception) -> str:
    """The informative line of an ITK exception (MetaImage's "No such file or directory" for a file that
    exists means its data ended early)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    last = lines[-1]
    if "No such file or directory" in last:
        return "its voxel data ends early"
    return last[:200]


def read_ct(path: PathLike, check: bool = True) -> Volume:
    """Read a CT as float32 Hounsfield units; with ``check`` refuse images that do not look like CT.

    Raises:
        NotCTError: non-finite voxels or intensities that are not CT in HU (message says why and the fix).
        and everything ``read_volume`` raises.
    """
    volume = read_volume(path)
    if check:
        problem = grid_problem(volume.spacing, volume.shape[::-1])
        if problem:
            raise GeometryError(f"{str(path)!r}: {problem}")
        problems = ct_problems(volume.array)
        if problems:
            raise NotCTError(f"{str(path)!r}: {problems[0]}")
    return volume.with_array(volume.array.astype(np.float32, copy=False))


def _labels_array(array: np.ndarray, source: str) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
            raise LabelValueError(f"{source}: label maps must hold whole numbers; found fractional or NaN "
                                  "values (is this a probability map or a CT?)")
    elif not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise LabelValueError(f"{source}: voxel type {array.dtype} cannot hold label values")
    check_label_values(array, source)
    return array.astype(np.uint8)


def _organ_for_segment(segment: dict) -> Optional[Organ]:
    """``organs.organ_for_segment`` of a slicerio segment (its terminology dict and name)."""
    term = segment.get("terminology") or {}
    type_code = (term.get("type") or [None, None])[1] if term else None
    return organ_for_segment(segment.get("name"), type_code)


def _read_seg_nrrd(path: Path) -> Volume:
    import slicerio

    try:
        seg = slicerio.read_segmentation(str(path))
    except Exception as exc:  # slicerio/pynrrd raise several types for bad headers
        raise InputError(f"cannot read Slicer segmentation {str(path)!r}: {exc}") from None
    voxels = np.asarray(seg["voxels"])
    layers = voxels if voxels.ndim == 4 else voxels[None]
    out = np.zeros(layers.shape[1:], dtype=np.uint8)
    unknown = []
    for segment in seg.get("segments", []):
        organ = _organ_for_segment(segment)
        if organ is None:
            unknown.append(segment.get("name", segment.get("id")))
            continue
        layer = layers[int(segment.get("layer", 0))]
        out[layer == int(segment["labelValue"])] = organ.value
    if unknown:
        raise LabelValueError(
            f"{str(path)!r}: segments {unknown} match no organ of the table (by terminology or name); rename "
            f"them to one of {[o.name for o in organ_table()]} or remove them"
        )
    ijk_to_ras = LPS_TO_RAS @ np.asarray(seg["ijkToLPS"], dtype=np.float64)
    # slicerio returns voxels indexed [i, j, k]; Volume arrays are [k, j, i].
    return Volume(np.ascontiguousarray(out.transpose(2, 1, 0)), ijk_to_ras)


def read_labels(path: PathLike, reference: Optional[Volume] = None) -> Volume:
    """Read a label map (CT-ORG values) or a Slicer ``.seg.nrrd`` as a uint8 ``Volume``.

    Args:
        path: label file.
        reference: when given, the labels must lie on this grid (same shape and matrix).

    Raises:
        LabelValueError: values outside the organ table, or segments naming no known organ.
        GeometryError: ``reference`` given and the grids differ.
    """
    p = _existing(path, "label file")
    if double_suffix(p) == ".seg.nrrd":
        labels = _read_seg_nrrd(p)
    else:
        volume = read_volume(p)
        labels = volume.with_array(_labels_array(volume.array, str(path)))
    if reference is not None:
        reference.require_same_grid(labels, what=f"labels {str(path)!r}")
    return labels


# --- writing ----------------------------------------------------------------------------------------
def _check_extension(path: PathLike, allowed: Sequence[str]) -> str:
    ext = double_suffix(path)
    if ext not in allowed:
        raise UnsupportedFormatError(
            f"cannot write {str(path)!r}: extension {ext or '(none)'!r} is not one of {', '.join(allowed)}"
        )
    return ext


def write_volume(volume: Volume, path: PathLike, overwrite: bool = True) -> Path:
    """Write any ``Volume`` (CT or labels) as NIfTI, NRRD or MetaImage, atomically."""
    _check_extension(path, (".nii", ".nii.gz", ".nrrd", ".mha"))
    with atomic_path(path, overwrite=overwrite) as tmp:
        sitk.WriteImage(volume_to_sitk(volume), str(tmp), True)
    return Path(path)


def _seg_nrrd_dict(labels: Volume, organs: Iterable[Organ]) -> dict:
    segments = []
    for organ in organs:
        segments.append({
            "id": f"Segment_{organ.key}",
            "name": organ.name,
            "labelValue": organ.value,
            "layer": 0,
            "color": list(organ.color),
            "terminology": {
                "contextName": organ.terminology_context,
                "category": list(organ.category),
                "type": list(organ.type),
                "anatomicContextName": organ.anatomic_context,
            },
        })
    return {
        "voxels": np.ascontiguousarray(labels.array.transpose(2, 1, 0)),  # slicerio wants [i, j, k]
        "ijkToLPS": LPS_TO_RAS @ labels.ijk_to_ras,
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "segments": segments,
    }


def write_labels(labels: Volume, path: PathLike, organs: Optional[Iterable[Organ]] = None,
                 overwrite: bool = True) -> Path:
    """Write a label map atomically as ``.nii.gz``/``.nii``/``.nrrd``/``.mha`` or a Slicer ``.seg.nrrd``.

    Args:
        labels: uint8 ``Volume`` with organ-table values.
        path: output file; its extension picks the format.
        organs: for ``.seg.nrrd``, segments to write even when empty (a listed organ with no voxels
            becomes an empty segment); every organ present in ``labels`` is written in any case.
    """
    ext = _check_extension(path, LABEL_EXTENSIONS)
    check_label_values(labels.array, "labels to write")
    labels = labels.with_array(labels.array.astype(np.uint8, copy=False))
    if ext != ".seg.nrrd":
        return write_volume(labels, path, overwrite=overwrite)
    import slicerio

    present = [organ_by_value(int(v)) for v in np.unique(labels.array) if v != 0]
    # the listed organs first (once each), then every other organ present: no labelled voxel is
    # left without a segment (it would be dropped when the file is read back)
    listed: list[Organ] = []
    for organ in list(organs or []) + present:
        if organ not in listed:
            listed.append(organ)
    with atomic_path(path, overwrite=overwrite) as tmp:
        slicerio.write_segmentation(str(tmp), _seg_nrrd_dict(labels, listed))
    return Path(path)
