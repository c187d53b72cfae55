"""DICOM SEG output: organ labels as a DICOM Segmentation object that references its source CT series.

A radiology archive (PACS) stores segmentations as DICOM SEG; ``write_dicom_seg`` writes one with
``highdicom``: one segment per organ, named, coloured (CIELab from the organ table's RGB) and coded
with the table's SNOMED CT category and type (``Resources/organs.json``), algorithm type AUTOMATIC,
in a new series of the source study (same patient, study and frame of reference).

How a frame finds its slice: OrganSeg reads a DICOM folder with SimpleITK, whose array slice ``k``
is file ``k`` of GDCM's sorted list for the series (``series_files``). Frame data for slice ``k``
comes from ``labels.array[k]`` and highdicom references file ``k`` (its SOP Instance UID) and copies
that file's own Image Position (Patient): every frame lies exactly on its source slice, whatever
the orientation (oblique) and even when the slices are sheared (gantry tilt), where a regular grid
would not describe them. Before writing, the labels' grid is checked to be the grid OrganSeg reads
from that series, so labels from another scan are refused instead of referencing the wrong slices.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from .atomic import atomic_path, double_suffix
from .errors import GeometryError, InputError, MissingFileError, OutputPathError, UnsupportedFormatError
from .organs import Organ, check_label_values, organ_by_value, organ_for_segment
from .volume import Volume

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
DICOM_SEG_EXTENSIONS = (".dcm",)
SEGMENTATION_SERIES_OFFSET = 1000  # series number = source series number + this (a new series of the study)


def is_dicom_seg_path(path: PathLike) -> bool:
    """True for an output name that asks for a DICOM SEG (``.dcm``)."""
    return double_suffix(path) in DICOM_SEG_EXTENSIONS


def series_files(folder: PathLike) -> list[str]:
    """Files of the DICOM series OrganSeg reads from ``folder`` (the largest one, as ``io.read_volume``),
    in GDCM's order: file ``k`` is slice ``k`` of the volume read.

    Raises:
        MissingFileError: ``folder`` does not exist.
        UnsupportedFormatError: it is not a folder, or holds no DICOM series.
    """
    import SimpleITK as sitk

    p = Path(folder).expanduser()
    if not p.exists():
        raise MissingFileError(f"DICOM series folder {str(folder)!r} does not exist; check the path")
    if not p.is_dir():
        raise UnsupportedFormatError(
            f"{str(folder)!r} is a file, not a DICOM series folder: a DICOM SEG (.dcm) must reference the DICOM "
            "series it segments; pass the series folder as input, or write .nii.gz, .nrrd or .seg.nrrd")
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(p))
    if not series:
        raise UnsupportedFormatError(
            f"folder {str(folder)!r} holds no DICOM series: a DICOM SEG (.dcm) must reference the DICOM series it "
            "segments; pass a DICOM series folder, or write .nii.gz, .nrrd or .seg.nrrd")
    files = {sid: list(reader.GetGDCMSeriesFileNames(str(p), sid)) for sid in series}
    return files[max(files, key=lambda sid: len(files[sid]))]


def require_highdicom() -> None:
    """Raise ``UnsupportedFormatError`` when highdicom / pydicom are not installed."""
    import importlib.util

    missing = [name for name in ("pydicom", "highdicom") if importlib.util.find_spec(name) is None]
    if missing:
        raise UnsupportedFormatError(
            f"DICOM SEG output needs {' and '.join(missing)} (Python >= 3.10, e.g. Slicer >= 5.10): "
            "pip install 'highdicom>=0.28', or write .nii.gz, .nrrd or .seg.nrrd")


def check_dicom_seg_request(output: PathLike, source: PathLike) -> None:
    """Refuse a DICOM SEG output for an input that is not a DICOM series folder, or without
    highdicom (cheap: no pixel data is read). Call it before any heavy work.

    Raises:
        UnsupportedFormatError / MissingFileError: as ``series_files`` and ``require_highdicom``.
        OutputPathError: the output lies inside the source series folder (writing there changes the
            input: the next read of that folder would see one more file).
    """
    if is_dicom_seg_path(output):
        series_files(source)
        out_dir = Path(os.path.abspath(os.fspath(output))).parent.resolve()
        src_dir = Path(os.fspath(source)).resolve()
        if out_dir == src_dir or src_dir in out_dir.parents:
            raise OutputPathError(f"cannot write {str(output)!r}: it lies inside the source series folder "
                                  f"{str(source)!r}, and OrganSeg never changes its input; write the DICOM SEG "
                                  "next to the folder instead (e.g. -o series_seg.dcm)")
        require_highdicom()


def _source_datasets(files: list[str]) -> list:
    import pydicom

    datasets = []
    for name in files:
        ds = pydicom.dcmread(name, stop_before_pixels=True)
        # archives write an empty SpecificCharacterSet where they mean the default repertoire;
        # highdicom refuses the empty value
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet
        datasets.append(ds)
    return datasets


def _segment_description(number: int, organ: Organ):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from . import __version__

    def concept(code):
        scheme, value, meaning = code
        return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)

    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=organ.name,
        segmented_property_category=concept(organ.category),
        segmented_property_type=concept(organ.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="OrganSeg", family=codes.cid7162.ArtificialIntelligence, version=__version__),
        display_color=hd.color.CIELabColor.from_rgb(*organ.color_uint8),
    )


def _organs_to_write(labels: np.ndarray, organs: Optional[Iterable[Organ]]) -> list[Organ]:
    present = [organ_by_value(int(v)) for v in np.unique(labels) if v != 0]
    listed: list[Organ] = []
    for organ in list(organs or []) + present:
        if organ not in listed:
            listed.append(organ)
    return sorted(listed, key=lambda o: o.value)


def write_dicom_seg(labels: Volume, source_series_dir: PathLike, path: PathLike,
                    organs: Optional[Iterable[Organ]] = None, reference: Optional[Volume] = None,
                    series_description: str = "OrganSeg organs", overwrite: bool = True) -> Path:
    """Write ``labels`` as a DICOM SEG referencing the series in ``source_series_dir``, atomically.

    Args:
        labels: uint8 ``Volume`` of organ values on the series' grid (as ``io.read_ct`` reads it).
        source_series_dir: the DICOM series folder the labels were computed from.
        path: output file (``.dcm``).
        organs: segments to write even when empty; every organ present in ``labels`` is written.
        reference: the series as ``io.read_volume(source_series_dir)`` reads it, when the caller has
            it already (saves reading the pixel data again); only its grid is used.
        series_description: the SEG series' description.

    Returns:
        ``path``.

    Raises:
        UnsupportedFormatError: ``path`` does not end in ``.dcm``, or the folder holds no DICOM series.
        GeometryError: ``labels`` are not on the series' grid.
        LabelValueError: ``labels`` hold values outside the organ table.
    """
    require_highdicom()
    import highdicom as hd

    if not is_dicom_seg_path(path):
        raise UnsupportedFormatError(f"cannot write {str(path)!r} as DICOM SEG: name it *.dcm")
    files = series_files(source_series_dir)
    if reference is None:
        from .io import read_volume

        reference = read_volume(source_series_dir)
    if not reference.same_grid(labels, atol=1e-3) or reference.shape[0] != len(files):
        raise GeometryError(
            f"labels {labels!r} are not on the grid of DICOM series {str(source_series_dir)!r} ({reference!r}, "
            f"{len(files)} files); segment that series (organseg segment SERIES_DIR) or resample the labels onto it")
    check_label_values(labels.array, "labels to write")
    datasets = _source_datasets(files)
    rows, columns = int(datasets[0].Rows), int(datasets[0].Columns)
    if labels.shape[1:] != (rows, columns):
        raise GeometryError(f"labels have {labels.shape[1]} x {labels.shape[2]} pixels per slice but series "
                            f"{str(source_series_dir)!r} has {rows} x {columns}; they are not its labels")
    written = _organs_to_write(labels.array, organs)
    if not written:
        raise InputError("labels hold no organ and none was asked for: a DICOM SEG needs at least one segment; "
                         "pass organs=[...] to write empty segments")
    # segment numbers run 1..n in organ-value order; remap the label values to them
    lut = np.zeros(256, dtype=np.uint8)
    for number, organ in enumerate(written, start=1):
        lut[organ.value] = number
    frames = lut[labels.array.astype(np.uint8)]
    source_number = datasets[0].get("SeriesNumber")
    series_number = (int(source_number) if source_number not in (None, "") else 0) + SEGMENTATION_SERIES_OFFSET
    highdicom_log = logging.getLogger("highdicom")
    level = highdicom_log.level
    highdicom_log.setLevel(max(logging.WARNING, level))  # one INFO line per copied module otherwise
    try:
        seg = _segmentation(hd, datasets, frames, written, series_number, series_description)
    finally:
        highdicom_log.setLevel(level)
    with atomic_path(path, overwrite=overwrite) as tmp:
        seg.save_as(str(tmp))
    log.info("wrote DICOM SEG %s: %d segments (%s), %d frames, referencing %d slices of series %s", path,
             len(written), ", ".join(o.name for o in written), int(seg.NumberOfFrames), len(files),
             datasets[0].get("SeriesInstanceUID", "?"))
    return Path(path)


def _segmentation(hd, datasets, frames, written, series_number, series_description):
    with warnings.catch_warnings():  # highdicom warns about the source's patient-name style; not ours to fix
        warnings.simplefilter("ignore", UserWarning)
        return hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_segment_description(n, o) for n, o in enumerate(written, start=1)],
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="OrganSeg",
            manufacturer_model_name="organseglib",
            software_versions=_version(),
            device_serial_number="none",
            content_label="ORGANSEG",
            content_description="CT organ segmentation (liver, bladder, lungs, kidneys, bone)",
            series_description=series_description,
        )


def read_dicom_seg(path: PathLike, source_series_dir: PathLike, reference: Optional[Volume] = None) -> Volume:
    """Read a DICOM SEG of organs back as a CT-ORG label map on its source series' grid.

    Segments are matched to organs by SNOMED type code (then label); frames are placed by the
    source slice they reference. Where segments overlap, the higher organ value wins.

    Raises:
        InputError: the file is not a segmentation of that series, or holds a segment of no organ.
    """
    require_highdicom()
    import highdicom as hd
    import pydicom

    files = series_files(source_series_dir)
    if reference is None:
        from .io import read_volume

        reference = read_volume(source_series_dir)
    try:
        seg = hd.seg.segread(str(path))
    except (OSError, AttributeError, ValueError, pydicom.errors.InvalidDicomError) as exc:
        raise InputError(f"cannot read {str(path)!r} as a DICOM SEG ({exc}); pass a Segmentation Storage file") from None
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
    referenced = {item.ReferencedSOPInstanceUID for series in seg.get("ReferencedSeriesSequence", [])
                  for item in series.get("ReferencedInstanceSequence", [])}
    if not set(uids) <= referenced:
        raise InputError(f"{str(path)!r} does not reference the {len(uids)} slices of series {str(source_series_dir)!r} "
                         f"({len(set(uids) - referenced)} unreferenced); pass the series it was made from")
    out = np.zeros(reference.shape, dtype=np.uint8)
    for number in sorted(seg.get_segment_numbers(), key=lambda n: _organ_of(seg, n, path).value):
        organ = _organ_of(seg, number, path)
        try:
            mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[number],
                                                     combine_segments=True, relabel=False,
                                                     ignore_spatial_locations=True, assert_missing_frames_are_empty=True)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise InputError(f"{str(path)!r} does not segment series {str(source_series_dir)!r}: {exc}") from None
        out[mask > 0] = organ.value
    return reference.with_array(out)


def _organ_of(seg, number: int, path) -> Organ:
    """The organ of segment ``number``: by its type code, then its label (``organs.organ_for_segment``)."""
    description = seg.get_segment_description(number)
    organ = organ_for_segment(description.segment_label, description.segmented_property_type.value)
    if organ is None:
        raise InputError(f"{str(path)!r}: segment {number} ({description.segment_label!r}) is no organ of the "
                         "organ table (liver, bladder, lungs, kidneys, bone)")
    return organ


def _version() -> str:
    from . import __version__

    return __version__


__all__ = ["DICOM_SEG_EXTENSIONS", "check_dicom_seg_request", "is_dicom_seg_path", "read_dicom_seg",
           "require_highdicom", "series_files", "write_dicom_seg"]
