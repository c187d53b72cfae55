"""Unsupervised training labels for lungs and bone (paper section III), with no human input.

>>> from organseglib.phantom import make_phantom
>>> from organseglib.autolabel import autolabel
>>> p = make_phantom(seed=0, region="chest", size="tiny")
>>> labels = autolabel(p.ct)
>>> sorted(int(v) for v in set(labels.array.ravel().tolist()))
[0, 3, 5]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from ..organs import organ_by_key, parse_organ_list
from ..progress import ProgressCallback, null_progress, scaled
from ..volume import Volume
from ..body import BodyMasks, BodyParams, body_masks
from .bone import BoneParams, BoneReport, label_bone
from .lungs import LungParams, LungReport, label_lungs
from .noise import NoiseParams

log = logging.getLogger(__name__)

SUPPORTED = ("lungs", "bone")


@dataclass(frozen=True)
class AutoLabelParams:
    """All parameters of the auto-labelers (defaults: the paper's, see each class, with this project's
    additions for real CT; ``AutoLabelParams.paper()`` gives the paper's labelers exactly)."""

    lungs: LungParams = field(default_factory=LungParams)
    bone: BoneParams = field(default_factory=BoneParams)
    body: BodyParams = field(default_factory=BodyParams)
    noise: NoiseParams = field(default_factory=NoiseParams)

    @classmethod
    def paper(cls) -> "AutoLabelParams":
        """The paper's lung and bone labelers exactly (III-B, III-C). The body mask still keeps the exam
        table's shell out of the bone, as the paper's "hard exterior of each bone" presumes."""
        return cls(lungs=LungParams.paper(), bone=BoneParams.paper())


def supported_organ_keys(organs: Union[str, Iterable[str]], what: str = "organs",
                         allow_empty: bool = False) -> tuple[str, ...]:
    """Keys of the auto-labelled organs named in ``organs`` (keys, names or values; repeats dropped).

    Raises:
        InputError: an organ the auto-labelers do not segment, an unknown name, or none (unless
            ``allow_empty``).
    """
    items = organs.split(",") if isinstance(organs, str) else list(organs)
    if allow_empty and not any(str(o).strip() for o in items):
        return ()
    keys = tuple(o.key for o in parse_organ_list(items))
    bad = [k for k in keys if k not in SUPPORTED]
    if bad:
        raise InputError(f"{what} must be among {SUPPORTED} (the organs the paper labels without supervision); "
                         f"got {bad!r}. Let the network (organseg segment) segment the others.")
    return keys


def autolabel_with_report(ct: Volume, organs: Union[str, Iterable[str]] = SUPPORTED,
                          ignore_mask: Optional[Volume | np.ndarray] = None,
                          params: Optional[AutoLabelParams] = None,
                          progress: Optional[ProgressCallback] = None,
                          body: Optional[BodyMasks] = None) -> tuple[Volume, dict]:
    """Like ``autolabel``, also returning a report: per organ its volume (``ml``), what the labeler
    found and rejected, and ``warnings`` (strings); ``report["warnings"]`` gathers them all as
    ``"organ: message"`` (a labeler that finds nothing, drops more than it keeps, or touches the
    volume border through a leak)."""
    from ..orientation import DEFAULT_AXIS_CODE, reorient

    params = params or AutoLabelParams()
    progress = progress or null_progress
    keys = supported_organ_keys(organs)
    ignore = None
    if ignore_mask is not None:
        if isinstance(ignore_mask, Volume):
            ct.require_same_grid(ignore_mask, what="ignore mask")
            ignore_mask = ignore_mask.array
        ignore = np.asarray(ignore_mask) != 0
        if ignore.shape != ct.shape:
            raise InputError(f"ignore_mask must have the CT's shape {ct.shape}; got {ignore.shape}")
    # The labelers work slice by slice on axial slices (array axis 0) with anterior/posterior along
    # axis 1: put any stored axis order (sagittal, coronal, RAS) into LPS first, exactly, and back
    # (no copy when the CT already is in that order, as ``segment_ct`` passes it).
    lps, back = reorient(ct, DEFAULT_AXIS_CODE)

    def to_lps(mask: np.ndarray) -> np.ndarray:
        if np.asarray(mask).shape != ct.shape:
            raise InputError(f"body masks must have the CT's shape {ct.shape}; got {np.asarray(mask).shape}")
        return reorient(ct.with_array(mask), DEFAULT_AXIS_CODE)[0].array

    if ignore is not None:
        ignore = to_lps(ignore)
    if body is not None:
        body = BodyMasks(*(to_lps(m) for m in (body.body, body.inner, body.hull)))
    labels, report = _autolabel_lps(lps, keys, ignore, params, progress, body)
    return back(lps.with_array(labels)), report


def _autolabel_lps(ct: Volume, keys: Sequence[str], ignore: Optional[np.ndarray], params: AutoLabelParams,
                   progress: ProgressCallback, body: Optional[BodyMasks] = None) -> tuple[np.ndarray, dict]:
    """The labelers on a CT whose arrays are in LPS order; returns the label array and the report."""
    array = np.asarray(ct.array, dtype=np.float32)
    spacing = ct.array_spacing
    if body is None:
        progress(0.0, "body mask")
        body = body_masks(array, spacing, params.body)
    labels = np.zeros(array.shape, dtype=np.uint8)
    report: dict = {}
    steps = {"lungs": (0.1, 0.5), "bone": (0.5, 1.0)} if len(keys) == 2 else {keys[0]: (0.1, 1.0)}

    def sub(name):
        return scaled(progress, *steps[name], name)

    if "lungs" in keys:
        mask, lung_report = label_lungs(array, spacing, body.hull, params.lungs, ignore, sub("lungs"),
                                        noise=params.noise)
        labels[mask] = organ_by_key("lungs").value
        report["lungs"] = {"ml": round(float(np.count_nonzero(mask)) * np.prod(spacing) / 1000.0, 1), **vars(lung_report)}
        ignore = mask if ignore is None else ignore | mask
    lungs = None
    if "lungs" in keys:
        lungs = labels == organ_by_key("lungs").value
    if "bone" in keys:
        mask, bone_report = label_bone(array, spacing, body.body, body.inner, params.bone, ignore, sub("bone"),
                                       noise=params.noise, lungs=lungs)
        labels[mask] = organ_by_key("bone").value
        report["bone"] = {"ml": round(float(np.count_nonzero(mask)) * np.prod(spacing) / 1000.0, 1), **vars(bone_report)}
    report["warnings"] = [f"{organ}: {w}" for organ, found in report.items() for w in found.get("warnings", [])]
    progress(1.0, "done")
    return labels, report


def autolabel(ct: Volume, organs: Union[str, Iterable[str]] = SUPPORTED,
              ignore_mask: Optional[Volume | np.ndarray] = None, params: Optional[AutoLabelParams] = None,
              progress: Optional[ProgressCallback] = None, body: Optional[BodyMasks] = None) -> Volume:
    """Label lungs (3) and bone (5) of a CT by morphology (paper III-B, III-C).

    Args:
        ct: CT in HU.
        organs: ``"lungs"``, ``"bone"``, both (a comma-separated string or a sequence).
        ignore_mask: voxels that must stay unlabelled (non-zero), e.g. labels already drawn; a Volume
            on the CT's grid or an array of its shape.
        params: parameters (defaults from the paper).
        progress: ``(fraction, message)`` callback.
        body: the body masks of this CT (``organseglib.body.body_masks`` with ``params.body``, arrays
            on the CT's grid) when the caller already has them; None: computed here.

    Returns:
        uint8 label Volume on the CT's grid (0 elsewhere and on ignored voxels).

    Raises:
        InputError: unknown organ, ignore mask on another grid.
    """
    labels, report = autolabel_with_report(ct, organs, ignore_mask, params, progress, body)
    for w in report["warnings"]:
        log.warning("%s", w)
    return labels


__all__ = ["AutoLabelParams", "BodyParams", "BoneParams", "BoneReport", "LungParams", "LungReport", "NoiseParams",
           "SUPPORTED", "autolabel", "autolabel_with_report", "supported_organ_keys"]
