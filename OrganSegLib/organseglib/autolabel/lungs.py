"""Lung auto-labeler (paper III-B): the two largest air pockets inside the body.

Steps, with the paper's parameters in ``LungParams`` (``LungParams.paper()`` is the paper's labeler
exactly; each addition of ours is a named parameter):

1. air = HU <= -150 (the "thresholded image"), minus ignored voxels; on a noisy (low-dose) CT the
   threshold reads a lightly smoothed CT (``smooth``, ``noise.py``): fat at -100 HU with 80 HU of
   noise would otherwise pass as air in a third of its voxels and carry the label through the body;
   on the smoothed CT the threshold is -300 HU (``smoothed_air_hu``), where the smoothed lung edge
   crosses what the unsmoothed one crosses at -150 HU (not a band of fat around the lungs);
2. keep the air inside the body: the paper removes air connected to the x/y edges of each axial
   slice (``border_rule="all"``); ours removes only edge air that is pure gas (``"gas"``), and bounds
   the lungs by the body's per-slice convex hull with the exam table cut off (``body_hull``,
   ``body.py``): a lung that a cropped field of view cuts stays, the air a table encloses goes;
3. erode by a 10 mm-diameter ball to cut thin connections (bronchi, gaps between body and arms);
4. take the largest components; ours: pure gas (outside air, trachea, bowel gas; median below
   ``gas_median_hu``) is not lung, and a component smaller than ``min_lung_ml`` is noise. At most two
   are kept; one or none is reported with a warning, never replaced by air outside;
5. undo the erosion: the components of the air that touch the kept seeds (the paper), minus (ours)
   a band of the erosion's radius around the rejected gas, so that neither the trachea and main
   bronchi nor the rim of colon or stomach gas grow back through thin connections. The airways are
   left out of the lung label: they are gas, not lung parenchyma;
6. ours: fill holes, in 3D, then per axial slice up to ``max_hole_mm2`` (vessels, nodules);
7. ours: a lung label on the volume border in fat-density voxels (median above ``leak_hu``) is
   reported as a leak (a warning); at lung density it is a cropped scan (logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import cc3d
import numpy as np

from .. import morphology
from ..boxes import mask_bounding_box
from ..morphology.thick import erosion_by_parts
from ..errors import InputError
from ..progress import ProgressCallback, null_progress
from .noise import NoiseParams, smoothed_if_noisy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LungParams:
    """Lung labeler parameters; defaults from the paper where it gives them, ours marked.
    ``LungParams.paper()`` is the paper's labeler exactly."""

    air_hu: float = -150.0  # paper III-B: "removing all voxels greater than -150 HU"
    erosion_diameter_mm: float = 10.0  # paper III-B: "spherical structuring element with a diameter of 1 cm"
    max_lungs: int = 2  # paper III-B: "the two largest connected components"
    # ours: pure gas (outside air, trachea, bowel gas ~ -1000 HU) is not lung (parenchyma -900..-700);
    # None: no test (the paper)
    gas_median_hu: Optional[float] = -960.0
    min_lung_ml: float = 5.0  # ours: smaller eroded pockets are not lungs (measured after erosion)
    max_hole_mm2: float = 1000.0  # ours: per-slice holes filled up to ~35 mm across (vessels, nodules); 0: none
    # ours: air on the slice edge is outside the body only when it is pure gas ("gas"; a lung cut by a
    # cropped field of view stays), and the body's per-slice hull bounds the lungs; the paper removes
    # every edge-connected air pocket of the eroded image ("all")
    border_rule: str = "gas"
    body_hull: bool = True
    smooth: bool = True  # ours: thresholds read a smoothed CT when the noise is high (noise.py)
    # ours (issue 21): the threshold on that smoothed CT. Smoothing by sigma spreads the lung's edge, and
    # -150 HU is crossed ~1.5 sigma out in the fat (-100 HU) beyond it: a band of fat one or two voxels
    # thick all round the lungs (+190 and +280 mL on chest_lung1/chest_lung2 with low-dose noise, Dice
    # 0.969 / 0.966 against their clean label). On the smoothed step -300 HU is crossed where -150 HU is
    # on the unsmoothed one (a 0.7 mm scanner blur; within 0.2 mm against fat, 0.3 mm against muscle)
    smoothed_air_hu: float = -300.0
    # ours: the band around rejected gas (trachea, bowel gas) is dilated on blocks of about this size
    # (morphology.coarse, a superset of the exact band; 0: exact on the native grid)
    grid_mm: float = 1.6
    leak_hu: float = -300.0  # ours: lung voxels on the volume border with a median above this (fat, -100..-200 HU; lung partial volume at a 5 mm dome reads -500) are a leak (warned)

    @classmethod
    def paper(cls) -> "LungParams":
        """The paper's labeler exactly (III-B): threshold, erode, drop edge-connected air, two largest,
        reconstruct."""
        return cls(gas_median_hu=None, min_lung_ml=0.0, max_hole_mm2=0.0, border_rule="all", body_hull=False,
                   smooth=False, grid_mm=0.0)

    def __post_init__(self) -> None:
        if not (-900.0 <= self.air_hu <= 0.0 and -900.0 <= self.smoothed_air_hu <= 0.0):
            raise InputError(f"air_hu and smoothed_air_hu must be between -900 and 0 HU; got {self.air_hu!r}, "
                             f"{self.smoothed_air_hu!r}")
        if not 0.0 <= self.erosion_diameter_mm <= 50.0:
            raise InputError(f"erosion_diameter_mm must be between 0 and 50 mm; got {self.erosion_diameter_mm!r}")
        if self.max_lungs not in (1, 2):
            raise InputError(f"max_lungs must be 1 or 2; got {self.max_lungs!r}")
        if self.gas_median_hu is not None and not -1100.0 <= self.gas_median_hu <= self.air_hu:
            raise InputError(f"gas_median_hu must be None or between -1100 HU and air_hu; got {self.gas_median_hu!r}")
        if self.min_lung_ml < 0 or self.max_hole_mm2 < 0:
            raise InputError(f"min_lung_ml and max_hole_mm2 must be >= 0; got {self.min_lung_ml!r}, "
                             f"{self.max_hole_mm2!r}")
        if self.border_rule not in ("gas", "all"):
            raise InputError(f"border_rule must be 'gas' (ours) or 'all' (the paper); got {self.border_rule!r}")
        if not 0.0 <= self.grid_mm <= 5.0:
            raise InputError(f"grid_mm must be between 0 (exact) and 5 mm; got {self.grid_mm!r}")
        if not -1000.0 <= self.leak_hu <= 0.0:
            raise InputError(f"leak_hu must be between -1000 and 0 HU; got {self.leak_hu!r}")


@dataclass
class LungReport:
    """What the labeler found: kept and rejected candidates (volumes in mL, median HU)."""

    lungs: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    noise_sd_hu: Optional[float] = None
    warnings: list = field(default_factory=list)


def _candidates(seeds: np.ndarray, ct: np.ndarray, voxel_ml: float, limit: int = 12):
    """Components of ``seeds`` largest first, with volume (mL), median HU and bounding box (in
    ``seeds``' array; pass the seeds' box and the CT's same box)."""
    labels, n = cc3d.connected_components(np.ascontiguousarray(seeds), connectivity=26, return_N=True)
    if n == 0:
        return labels, []
    stats = morphology.components.component_statistics(labels)
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
                progress: Optional[ProgressCallback] = None,
                noise: Optional[NoiseParams] = None) -> tuple[np.ndarray, LungReport]:
    """Lung mask of a CT array ``[k, j, i]`` in HU.

    Args:
        ct: HU array.
        spacing: voxel size (k, j, i) in mm.
        inside: where the body is (``BodyMasks.hull``; unused when ``params.body_hull`` is False).
        params: labeler parameters.
        ignore: voxels that must stay unlabelled (labels already drawn).
        progress: ``(fraction, message)`` callback.
        noise: when to smooth before thresholding (``params.smooth``; default ``NoiseParams()``).

    Returns:
        ``(mask, report)``.
    """
    params = params or LungParams()
    progress = progress or null_progress
    report = LungReport()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    thr, air_hu = ct, params.air_hu
    if params.smooth:
        thr, sd = smoothed_if_noisy(ct, spacing, noise or NoiseParams())
        report.noise_sd_hu = None if not np.isfinite(sd) else round(sd, 1)
        if thr is not ct:  # the smoothed lung edge crosses air_hu in the fat beyond it: see smoothed_air_hu
            air_hu = params.smoothed_air_hu
    air = thr <= air_hu
    del thr
    if ignore is not None:
        air &= ~ignore
    if params.border_rule == "gas":
        # paper III-B removes air connected to the x/y edges of an axial slice (outside the body);
        # pure gas only, so that a lung cut by the edge of a cropped field of view stays
        gas_hu = params.gas_median_hu if params.gas_median_hu is not None else -960.0
        air = morphology.remove_border_gas_per_slice(air, ct, max_median=gas_hu)
    # the body's hull bounds the seeds (what is selected as lung), not the regrowth: a lung cut by a
    # cropped field of view reaches past the hull of the tissue around it (measured: 220 mL of lung
    # at -800 HU on chest_cropped_totalseg), and grows back there from its seed
    grow = air
    if params.body_hull:
        air = air & inside
    radius = params.erosion_diameter_mm / 2.0
    progress(0.1, "erode air")
    # exact: on a coarser grid the thin gas of the main bronchi can vanish from the seeds, and then
    # no band keeps the two lungs from joining through the trachea (measured on chest_lung2)
    seeds = erosion_by_parts(air, radius, spacing)  # = morphology.erosion, on the thick parts only
    del air
    if params.border_rule == "all":  # the paper's order: erode, then drop what touches a slice edge
        seeds = morphology.remove_border_connected_per_slice(seeds)
    progress(0.5, "select lungs")
    # the seeds' box only (the eroded air: lungs, airways, bowel gas), not the whole CT
    seed_box = mask_bounding_box(seeds) or tuple(slice(0, 0) for _ in seeds.shape)
    labels, cands = _candidates(seeds[seed_box], ct[seed_box], voxel_ml)
    del seeds
    kept, rejected = [], []
    for c in cands:
        if params.gas_median_hu is not None and c["median_hu"] < params.gas_median_hu:
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
                       for c in rejected if c["ml"] >= max(params.min_lung_ml, 1.0)]
    if not kept:
        _warn(report, "no lungs found (no lung-like air pocket inside the body); the lung label is empty")
        return np.zeros(ct.shape, dtype=bool), report
    if len(kept) < params.max_lungs:
        _warn(report, f"found {len(kept)} lung of the {params.max_lungs} expected")
    lung_like = sum(c["ml"] for c in rejected if "gas" not in c["why"])
    if lung_like > sum(c["ml"] for c in kept):
        _warn(report, f"the lung labeler dropped more lung-like air ({lung_like:.0f} mL, eroded) than it kept "
                      f"({sum(c['ml'] for c in kept):.0f} mL); check the lung label")
    marker = np.zeros(ct.shape, dtype=bool)
    marker[seed_box] = morphology.components.select_labels(labels, np.array([c["label"] for c in kept]))
    gas_ids = np.array([c["label"] for c in rejected if "gas" in c["why"]], dtype=np.int64)
    gas = None
    if gas_ids.size:
        gas = np.zeros(ct.shape, dtype=bool)
        gas[seed_box] = morphology.components.select_labels(labels, gas_ids)
    del labels
    progress(0.6, "undo erosion")
    if gas is not None:  # keep the trachea and bowel gas from growing back through thin connections
        grow &= ~morphology.dilation_on_grid(gas, radius, spacing, params.grid_mm) | marker
        del gas
    # the lungs grow back about the erosion's radius beyond their seeds: label that box first (exact,
    # see morphology.reconstruct), not all the air of the CT
    reach = [int(np.ceil(2.0 * params.erosion_diameter_mm / float(s))) + 2 for s in spacing]
    lungs = morphology.reconstruct(marker, grow, margin=reach)
    del grow, marker
    progress(0.8, "fill holes")
    if params.max_hole_mm2 > 0:
        lungs = morphology.fill_holes(lungs)
        area_px = params.max_hole_mm2 / (spacing[1] * spacing[2])
        lungs = morphology.fill_small_holes_per_slice(lungs, area_px)
    if ignore is not None:
        lungs &= ~ignore
    _check_border(lungs, ct, params, report)
    progress(1.0, "lungs done")
    return lungs, report


def _warn(report: LungReport, msg: str) -> None:
    log.debug(msg)  # the caller logs the report's warnings (autolabel, organseg autolabel)
    report.warnings.append(msg)


def _check_border(lungs: np.ndarray, ct: np.ndarray, params: LungParams, report: LungReport) -> None:
    """Lungs on the volume border: a cropped scan (lung density there: info) or a leak (fat: warning)."""
    faces = {(0, 0): lungs[0], (0, -1): lungs[-1], (1, 0): lungs[:, 0], (1, -1): lungs[:, -1],
             (2, 0): lungs[:, :, 0], (2, -1): lungs[:, :, -1]}
    touching = [key for key, face in faces.items() if face.any()]
    if not touching:
        return
    values = np.concatenate([ct.take(end, axis=axis)[faces[(axis, end)]] for axis, end in touching])
    median = float(np.median(values))
    axes = sorted({axis for axis, _ in touching})
    if median > params.leak_hu:
        _warn(report, f"the lung label touches the volume border (array axes {axes}) in voxels of median "
                      f"{median:.0f} HU, denser than lung (> {params.leak_hu:.0f} HU): it probably leaked into fat "
                      "or soft tissue; check the lung label")
    else:
        log.info("the lungs touch the volume border along array axes %s at a median %.0f HU (a cropped scan)",
                 axes, median)
