"""Lung auto-labeler (paper III-B): the two largest air pockets inside the body.

Steps, with the paper's parameters in ``LungParams``:

1. air = HU <= -150 (the "thresholded image"), minus ignored voxels;
2. keep the air inside the body: the paper removes air connected to the x/y edges of each axial slice;
   here the body's per-slice convex hull with the exam table cut off (``body.py``) does that, and also
   keeps lungs that the volume border cuts (a cropped scan) and drops the air a table encloses;
3. erode by a 10 mm-diameter ball to cut thin connections (bronchi, gaps between body and arms);
4. take the largest components whose median HU is lung-like: pure gas (outside air, trachea, bowel
   gas; median below ``gas_median_hu``) is not lung, and a component smaller than ``min_lung_ml`` is
   noise. At most two are kept; one or none is reported with a warning, never replaced by air outside;
5. undo the erosion: the components of the air inside the body that touch the kept seeds, minus the
   neighbourhood of the rejected gas (so the trachea is not grown back through the bronchi);
6. fill holes: in 3D, then per axial slice up to ``max_hole_mm2`` (vessels, nodules).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import cc3d
import numpy as np

from .. import morphology
from ..errors import InputError
from ..progress import ProgressCallback, null_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LungParams:
    """Lung labeler parameters; defaults from the paper where it gives them."""

    air_hu: float = -150.0  # paper III-B: "removing all voxels greater than -150 HU"
    erosion_diameter_mm: float = 10.0  # paper III-B: "spherical structuring element with a diameter of 1 cm"
    max_lungs: int = 2  # paper III-B: "the two largest connected components"
    gas_median_hu: float = -960.0  # ours: outside air / bowel gas ~ -1000 HU, lung parenchyma -900..-700
    min_lung_ml: float = 5.0  # ours: smaller eroded pockets are not lungs (measured after erosion)
    max_hole_mm2: float = 1000.0  # ours: per-slice holes filled up to ~35 mm across (vessels, nodules)

    def __post_init__(self) -> None:
        if not -900.0 <= self.air_hu <= 0.0:
            raise InputError(f"air_hu must be between -900 and 0 HU; got {self.air_hu!r}")
        if not 0.0 <= self.erosion_diameter_mm <= 50.0:
            raise InputError(f"erosion_diameter_mm must be between 0 and 50 mm; got {self.erosion_diameter_mm!r}")
        if self.max_lungs not in (1, 2):
            raise InputError(f"max_lungs must be 1 or 2; got {self.max_lungs!r}")
        if not -1100.0 <= self.gas_median_hu <= self.air_hu:
            raise InputError(f"gas_median_hu must be between -1100 HU and air_hu; got {self.gas_median_hu!r}")
        if self.min_lung_ml < 0 or self.max_hole_mm2 < 0:
            raise InputError(f"min_lung_ml and max_hole_mm2 must be >= 0; got {self.min_lung_ml!r}, "
                             f"{self.max_hole_mm2!r}")


@dataclass
class LungReport:
    """What the labeler found: kept and rejected candidates (volumes in mL, median HU)."""

    lungs: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _candidates(seeds: np.ndarray, ct: np.ndarray, voxel_ml: float, limit: int = 12):
    """Components of ``seeds`` largest first, with volume (mL), median HU and bounding box."""
    labels, n = cc3d.connected_components(seeds, connectivity=26, return_N=True)
    if n == 0:
        return labels, []
    stats = cc3d.statistics(labels)
    sizes = np.asarray(stats["voxel_counts"])
    order = np.argsort(sizes[1:], kind="stable")[::-1][:limit] + 1
    out = []
    for index in order:
        box = stats["bounding_boxes"][index]
        sub = labels[box] == index
        out.append({"label": int(index), "ml": float(sizes[index] * voxel_ml),
                    "median_hu": float(np.median(ct[box][sub])), "box": box})
    return labels, out


def label_lungs(ct: np.ndarray, spacing: tuple[float, float, float], inside: np.ndarray,
                params: Optional[LungParams] = None, ignore: Optional[np.ndarray] = None,
                progress: Optional[ProgressCallback] = None) -> tuple[np.ndarray, LungReport]:
    """Lung mask of a CT array ``[k, j, i]`` in HU.

    Args:
        ct: HU array.
        spacing: voxel size (k, j, i) in mm.
        inside: where the body is (``BodyMasks.hull``).
        params: labeler parameters.
        ignore: voxels that must stay unlabelled (labels already drawn).
        progress: ``(fraction, message)`` callback.

    Returns:
        ``(mask, report)``.
    """
    params = params or LungParams()
    progress = progress or null_progress
    report = LungReport()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    air = ct <= params.air_hu
    if ignore is not None:
        air &= ~ignore
    # paper III-B: air connected to the x/y edges of an axial slice is outside the body; pure gas only,
    # so that a lung cut by the edge of a cropped field of view stays
    air = morphology.remove_border_gas_per_slice(air, ct, max_median=params.gas_median_hu)
    air &= inside
    radius = params.erosion_diameter_mm / 2.0
    progress(0.1, "erode air")
    seeds = morphology.erosion(air, radius, spacing)
    progress(0.5, "select lungs")
    labels, cands = _candidates(seeds, ct, voxel_ml)
    del seeds
    kept, rejected = [], []
    for c in cands:
        if c["median_hu"] < params.gas_median_hu:
            c["why"] = f"pure gas (median {c['median_hu']:.0f} HU < {params.gas_median_hu:.0f})"
        elif c["ml"] < params.min_lung_ml:
            c["why"] = f"too small ({c['ml']:.1f} mL < {params.min_lung_ml} mL)"
        elif len(kept) >= params.max_lungs:
            c["why"] = f"not among the {params.max_lungs} largest"
        else:
            kept.append(c)
            continue
        rejected.append(c)
    report.lungs = [{"ml": round(c["ml"], 1), "median_hu": round(c["median_hu"])} for c in kept]
    report.rejected = [{"ml": round(c["ml"], 1), "median_hu": round(c["median_hu"]), "why": c["why"]}
                       for c in rejected if c["ml"] >= params.min_lung_ml]
    if not kept:
        msg = "no lungs found (no lung-like air pocket inside the body); the lung label is empty"
        log.warning(msg)
        report.warnings.append(msg)
        return np.zeros(ct.shape, dtype=bool), report
    if len(kept) < params.max_lungs:
        msg = f"found {len(kept)} lung of the {params.max_lungs} expected"
        log.warning(msg)
        report.warnings.append(msg)
    keep_ids = np.zeros(int(labels.max()) + 1, dtype=bool)
    keep_ids[[c["label"] for c in kept]] = True
    marker = keep_ids[labels]
    gas_ids = np.zeros_like(keep_ids)
    gas_ids[[c["label"] for c in rejected if c["median_hu"] < params.gas_median_hu]] = True
    gas = gas_ids[labels] if gas_ids.any() else None
    del labels
    progress(0.6, "undo erosion")
    if gas is not None:  # keep the trachea and bowel gas from growing back through thin connections
        air &= ~morphology.dilation(gas, radius, spacing) | marker
        del gas
    lungs = morphology.reconstruct(marker, air)
    progress(0.8, "fill holes")
    lungs = morphology.fill_holes(lungs)
    area_px = params.max_hole_mm2 / (spacing[1] * spacing[2])
    lungs = morphology.fill_small_holes_per_slice(lungs, area_px)
    if ignore is not None:
        lungs &= ~ignore
    ends = {0: (lungs[0], lungs[-1]), 1: (lungs[:, 0], lungs[:, -1]), 2: (lungs[:, :, 0], lungs[:, :, -1])}
    touching = [a for a, faces in ends.items() if faces[0].any() or faces[1].any()]
    if touching:
        log.info("the lungs touch the volume border along array axes %s (a cropped scan?)", touching)
    progress(1.0, "lungs done")
    return lungs, report
