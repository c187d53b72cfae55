"""Synthetic DICOM CT series written with pydicom (any orientation, optional gantry tilt), and the
check that a DICOM SEG's frames lie on their source slices with a label map's pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from organseglib.organs import organ_by_key


def rotation(degrees_about_s: float, degrees_about_r: float) -> np.ndarray:
    a, b = np.deg2rad(degrees_about_s), np.deg2rad(degrees_about_r)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ rz


def write_ct_series(folder: Path, hu: np.ndarray, row_direction: Sequence[float], column_direction: Sequence[float],
                    first_position: Sequence[float], slice_step: Sequence[float], pixel_spacing=(0.9, 0.8),
                    gantry_tilt: float = 0.0, order: Optional[Sequence[int]] = None, series_number: int = 7) -> list:
    """Write ``hu`` (K, rows, columns) as a CT series in ``folder`` (LPS patient coordinates).

    Slice ``k`` lies at ``first_position + k * slice_step``: a step along the plane normal makes a
    regular volume, a step with an in-plane part is a sheared (gantry-tilted) series.
    ``pixel_spacing`` is DICOM's (between rows, between columns). Files are written in ``order``
    (default shuffled names) so readers must sort by position. Returns the SOP Instance UIDs by k.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    count = hu.shape[0]
    names = list(order) if order is not None else list(np.random.default_rng(1).permutation(count))
    uids = []
    for k in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.Modality, ds.Manufacturer = "CT", "OrganSeg test phantom"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Test", "PHANTOM-1", "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20261127", "120000", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [float(v) for v in (*row_direction, *column_direction)]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(first_position) + k * np.asarray(slice_step)]
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = float(np.linalg.norm(slice_step))
        ds.GantryDetectorTilt = float(gantry_tilt)
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(hu[k].astype("<i2")).tobytes()
        pydicom.dcmwrite(folder / f"IM{names[k]:04d}.dcm", ds, enforce_file_format=True)
        uids.append(uid)
    return uids


def phantom_hu(shape=(6, 20, 24)) -> np.ndarray:
    hu = np.full(shape, -1000, np.int16)
    hu[:, 3:17, 3:21] = 40
    hu[:, 8:12, 10:14] = 700
    return hu


def phantom_labels(shape=(6, 20, 24)) -> np.ndarray:
    """Organs that differ from slice to slice (a frame on the wrong slice cannot match)."""
    labels = np.zeros(shape, np.uint8)
    for k in range(shape[0]):
        labels[k, 2:7, 2 + k:8 + k] = 1                      # liver moves along the columns
        labels[k, 12:15 + k % 3, 3:7] = 3 if k % 2 else 5     # lungs / bone alternate
    labels[0, 15:18, 18:22] = 2                               # bladder on the first slice only
    labels[-1, 9:11, 15:20] = 4                               # kidneys on the last slice only
    return labels


def check_seg_against_source(seg_path: Path, files: list, labels: np.ndarray, organs: list) -> int:
    import highdicom as hd
    import pydicom

    """Assert the SEG's segments are ``organs`` (table names, codes, colours) and every frame lies on
    its source slice with the label map's pixels; returns the number of frames."""
    seg = pydicom.dcmread(seg_path)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    by_uid = {s.SOPInstanceUID: k for k, s in enumerate(sources)}
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.PatientID == sources[0].PatientID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert seg.SeriesInstanceUID != sources[0].SeriesInstanceUID
    referenced = {item.ReferencedSOPInstanceUID
                  for series in seg.ReferencedSeriesSequence for item in series.ReferencedInstanceSequence}
    assert referenced == set(by_uid)
    number_to_organ = {}
    for item in seg.SegmentSequence:
        organ = organ_by_key(item.SegmentLabel)
        number_to_organ[int(item.SegmentNumber)] = organ
        category, kind = item.SegmentedPropertyCategoryCodeSequence[0], item.SegmentedPropertyTypeCodeSequence[0]
        assert (category.CodingSchemeDesignator, category.CodeValue, category.CodeMeaning) == organ.category
        assert (kind.CodingSchemeDesignator, kind.CodeValue, kind.CodeMeaning) == organ.type
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        rgb = hd.color.CIELabColor.from_dicom_value(list(item.RecommendedDisplayCIELabValue)).to_rgb()
        assert np.allclose(rgb, organ.color_uint8, atol=2), (organ.name, rgb)
    assert sorted(number_to_organ) == list(range(1, len(organs) + 1))
    assert [number_to_organ[n] for n in sorted(number_to_organ)] == sorted(organs, key=lambda o: o.value)

    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    seen = set()
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = by_uid[uid]
        assert np.allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
                           [float(v) for v in sources[k].ImagePositionPatient], atol=1e-4)
        organ = number_to_organ[int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        assert np.array_equal(pixels[index] > 0, labels[k] == organ.value), (organ.name, k)
        seen.add((organ.value, k))
    assert np.allclose([float(v) for v in seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
                        .ImageOrientationPatient], [float(v) for v in sources[0].ImageOrientationPatient], atol=1e-6)
    # every (organ, slice) holding voxels has its frame
    wanted = {(int(v), k) for k in range(labels.shape[0]) for v in np.unique(labels[k]) if v}
    assert wanted <= seen

    # highdicom's reader agrees: the segments, stacked in source-slice order, are the label map
    read = hd.seg.segread(seg_path)
    stacked = read.get_pixels_by_source_instance(
        source_sop_instance_uids=[s.SOPInstanceUID for s in sources], combine_segments=True, relabel=False)
    lut = np.zeros(max(number_to_organ) + 1, np.uint8)
    for number, organ in number_to_organ.items():
        lut[number] = organ.value
    assert np.array_equal(lut[stacked], labels)
    return int(seg.NumberOfFrames)
