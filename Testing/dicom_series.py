"""Write small synthetic DICOM CT series with pydicom (any orientation, optional gantry tilt) for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


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
