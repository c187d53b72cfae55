"""The files the trials are given, made in the work folder from the real abdomen CT and its labels."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from organseglib.io import read_volume, write_volume

from .runner import TINY_TRAIN, organseg

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ct"


class Files:
    def __init__(self, work: Path):
        self.work = work
        self.ct = DATA / "abdomen_totalseg.nii.gz"
        self.labels_file = DATA / "abdomen_totalseg_labels.nii.gz"
        labels = read_volume(self.labels_file)
        self.labels = labels
        self.masks = work / "masks"
        self.masks.mkdir(parents=True)
        for name, value in (("liver", 1), ("urinary_bladder", 2), ("lungs", 3), ("kidneys", 4), ("bone", 5)):
            write_volume(labels.with_array((labels.array == value).astype(np.uint8)), self.masks / f"{name}.nii.gz")
        self.set = work / "set"  # a training set with one case (the abdomen, every organ)
        r = organseg("import-labels", self.masks, "--ct", self.ct, "-o", self.set)
        assert r.rc == 0, r.err

    def mask_folder(self, name: str, masks: dict) -> Path:
        """A folder of masks: {file name: array}."""
        folder = self.work / name
        folder.mkdir()
        for file, array in masks.items():
            write_volume(self.labels.with_array(array), folder / file)
        return folder

    def organ(self, value: int) -> np.ndarray:
        return (self.labels.array == value).astype(np.uint8)


def tiny_package(files: Files, name: str) -> Path:
    out = files.work / name
    r = organseg("train", "--data", "phantoms:1", "--out", out, "--iterations", "2", *TINY_TRAIN)
    assert r.rc == 0, r.err
    return out


def dicom_series(files: Files, name: str, positions_mm, duplicate: Optional[str] = None, fifo: bool = False) -> Path:
    """The abdomen's middle slices as a DICOM series at the given positions (mm along the axis)."""
    import pydicom
    from dicom_series import write_ct_series

    ct = read_volume(files.ct)
    k0 = ct.shape[0] // 2 - len(positions_mm) // 2
    hu = np.round(ct.array[k0:k0 + len(positions_mm)]).astype(np.int16)
    folder = files.work / name
    write_ct_series(folder, hu, (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 3.0), pixel_spacing=(3.0, 3.0))
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.0, float(positions_mm[int(ds.InstanceNumber) - 1])]
        ds.save_as(path)
    first = sorted(folder.iterdir())[0]
    if duplicate == "same":
        shutil.copy(first, folder / "copy.dcm")
    elif duplicate == "new":
        ds = pydicom.dcmread(first)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / "copy.dcm")
    if fifo:
        os.mkfifo(folder / "stream.dcm")
    return folder

