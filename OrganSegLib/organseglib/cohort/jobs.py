"""One scan's work, the unit of a cohort and of the single-file commands: segment or auto-label a CT,
measure what was found, write the labels.

``segment_scan`` / ``autolabel_scan`` compute a ``ScanResult`` (labels, volumes in mL, warnings, the
command's report) without writing anything; ``write_segment_labels`` / ``write_autolabel_labels`` write
it (atomically). ``organseg segment CT -o OUT`` and ``organseg autolabel`` call these for their one
scan; a cohort (``organseglib.cohort``) calls them for each scan through a ``SegmentTask`` or an
``AutolabelTask``, which also hold what is loaded once for the whole cohort (the model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..jsonable import jsonable
from ..morphology import count_values
from ..organs import organ_by_key, organ_by_value, parse_organ_list
from ..plausibility import check_plausibility
from ..progress import ProgressCallback
from ..segment import segment_ct_with_report
from ..volume import Volume

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ScanResult:
    """What one scan gave.

    Attributes:
        labels: uint8 labels on the CT's grid.
        volumes_ml: ``{organ key: mL}`` of the organs found (0.1 mL).
        warnings: one line each (plausibility, the auto-labelers'); empty when all is well.
        report: the command's report (``--report`` JSON) without the output path and the seconds.
        record: more fields for the command's JSON done record (segment: its ``plausibility`` and the
            hybrid's ``reassignments``).
        reassignments: the hybrid's reassignments (``evidence_merge.Reassignment``; segment only).
    """

    labels: Volume
    volumes_ml: dict
    warnings: tuple = ()
    report: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    reassignments: tuple = ()


def label_volumes(labels: Volume) -> dict:
    """``{organ key: mL}`` of every organ value in ``labels`` (one pass over the voxels)."""
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    counts = count_values(labels.array)
    return {organ_by_value(v).key: round(float(c) * voxel_ml, 1) for v, c in sorted(counts.items()) if v}


# --- segment ----------------------------------------------------------------------------------------
def segment_scan(ct: Volume, model: Any, config, device: Any, progress: Optional[ProgressCallback] = None,
                 model_note: Optional[dict] = None) -> ScanResult:
    """Segment ``ct`` (``segment.segment_ct_with_report``) and check the result's plausibility.

    Args:
        model: a package folder or name, or a ``(network, card)`` pair loaded once for many scans.
        config: a ``segment.SegmentConfig``.
        model_note: ``{"model": name, "model_licence": terms}`` for the report (empty: no network).
    """
    moved: list = []  # the hybrid's reassignments (organseglib.evidence_merge)
    labels, auto_warnings = segment_ct_with_report(ct, model, config, device, progress, reassignments=moved)
    reassigned = [m.to_json() for m in moved]
    # plausibility owns the empty/missing-organ warnings (never a silent success, issue 11 item 6);
    # the auto-labelers add theirs (a labeler that drops more than it keeps, a leak to the border)
    check = check_plausibility(labels, tuple(config.organs), ct=ct)  # with the CT: the liver's density too
    warnings = list(check.warnings) + list(auto_warnings)
    volumes = label_volumes(labels)
    report = {"volumes_ml": volumes, **(model_note or {}), **check.to_json(), "reassignments": reassigned,
              "ok": not warnings, "warnings": warnings}
    return ScanResult(labels, volumes, tuple(warnings), report,
                      {"plausibility": check.to_json(), "reassignments": reassigned}, tuple(moved))


def segment_organs(config) -> list:
    """The organs a segmentation with ``config`` writes (segments listed even when empty)."""
    return [organ_by_value(v) for v in sorted(organ_by_key(k).value for k in config.organs)]


def write_segment_labels(result: ScanResult, output: PathLike, source: PathLike, ct: Volume, config) -> None:
    """Write the labels as ``.nii.gz``/``.nrrd``/``.seg.nrrd``, or as a DICOM SEG (``.dcm``) referencing
    the DICOM series folder ``source``."""
    from ..dicom_seg import is_dicom_seg_path, write_dicom_seg
    from ..io import write_labels

    if is_dicom_seg_path(output):
        write_dicom_seg(result.labels, source, output, organs=segment_organs(config), reference=ct)
    else:
        write_labels(result.labels, output, organs=segment_organs(config))


# --- autolabel --------------------------------------------------------------------------------------
def autolabel_scan(ct: Volume, organs: Any, ignore: Optional[Volume] = None,
                   progress: Optional[ProgressCallback] = None) -> ScanResult:
    """Lungs and/or bone by morphology (``autolabel.autolabel_with_report``); ``ignore``: labels already
    drawn on the same grid, left as they are and copied into the result."""
    from ..autolabel import autolabel_with_report

    labels, report = autolabel_with_report(ct, organs, ignore_mask=ignore, progress=progress)
    if ignore is not None:  # keep the labels already drawn
        keep = ignore.array != 0
        labels = labels.with_array(labels.array.copy())
        labels.array[keep] = ignore.array[keep]
    report = json.loads(json.dumps(report, default=jsonable))  # numpy values -> plain JSON
    volumes = {k: float(v["ml"]) for k, v in report.items() if isinstance(v, dict)}
    return ScanResult(labels, volumes, tuple(report.get("warnings", [])), report)  # "organ: message" each


def write_autolabel_labels(result: ScanResult, output: PathLike, organs: Any) -> None:
    from ..io import write_labels

    write_labels(result.labels, output, organs=parse_organ_list(organs))


# --- the two tasks a cohort runs --------------------------------------------------------------------
class SegmentTask:
    """``organseg segment`` for each scan of a cohort: the model is loaded once, in ``prepare``.

    Args:
        model: package folder or name (None: the default model), or a ``(network, card)`` pair.
        config: a ``segment.SegmentConfig`` (default: ``SegmentConfig()``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    """

    stage = "segment"
    formats = {"nii.gz": ".nii.gz", "seg.nrrd": ".seg.nrrd", "dcm": ".dcm"}
    default_format = "nii.gz"

    def __init__(self, model: Any = None, config=None, device: Any = "auto") -> None:
        from ..segment import SegmentConfig

        self.model, self.config, self.device = model, config or SegmentConfig(), device
        self.model_note: dict = {}
        self.model_path: Optional[Path] = None

    def check(self) -> None:
        """Fail fast (before any scan is read) on a bad device or model name."""
        from ..devices import parse_device, resolve_device
        from ..model_package import resolve_model

        if self.config.network_organs:
            resolve_device(parse_device(self.device))
            if not isinstance(self.model, tuple):
                self.model_path = resolve_model(self.model)

    def prepare(self) -> None:
        """Load the model once for every scan (nothing to load when the auto-labelers do all)."""
        from ..model_package import load_model_package

        from ..devices import parse_device, resolve_device

        self.check()
        if self.config.network_organs:
            if not isinstance(self.model, tuple):
                self.model = load_model_package(self.model_path, device="cpu")
            # on its device once, before scans run side by side (each predictor would move it again)
            self.model = (self.model[0].to(resolve_device(parse_device(self.device))), self.model[1])
            card = self.model[1]
            self.model_note = {"model": card.name, "model_licence": card.weights_licence}

    def compute(self, ct: Volume, progress: Optional[ProgressCallback] = None) -> ScanResult:
        return segment_scan(ct, self.model, self.config, self.device, progress, self.model_note)

    def write(self, result: ScanResult, output: Path, source: Path, ct: Volume) -> None:
        write_segment_labels(result, output, source, ct, self.config)


class AutolabelTask:
    """``organseg autolabel`` for each scan of a cohort (no model: morphology, paper section III)."""

    stage = "autolabel"
    formats = {"nii.gz": ".nii.gz", "seg.nrrd": ".seg.nrrd", "nrrd": ".nrrd"}
    default_format = "nii.gz"
    model_note: dict = {}
    model_path = None

    def __init__(self, organs: Any = ("lungs", "bone")) -> None:
        from ..autolabel import supported_organ_keys

        self.organs = supported_organ_keys(organs)

    def check(self) -> None:
        pass

    def prepare(self) -> None:
        pass

    def compute(self, ct: Volume, progress: Optional[ProgressCallback] = None) -> ScanResult:
        return autolabel_scan(ct, self.organs, progress=progress)

    def write(self, result: ScanResult, output: Path, source: Path, ct: Volume) -> None:
        write_autolabel_labels(result, output, self.organs)


__all__ = ["AutolabelTask", "ScanResult", "SegmentTask", "autolabel_scan", "label_volumes", "segment_organs",
           "segment_scan", "write_autolabel_labels", "write_segment_labels"]
