"""Spacing-aware segmentation metrics, per organ: the columns of the paper's LiTS table.

Dice, Jaccard, volume overlap error (VOE = 1 − Jaccard), relative volume difference
(RVD = (|P| − |R|)/|R|, signed), and the average, maximum and RMS symmetric surface distances in mm
(ASSD, MSSD, RMSSD). Surfaces are the foreground voxels with a background 6-neighbour (the volume
border counts as background); distances are Euclidean between voxel centres with the grid's spacing.

Empty masks are explicit: both empty gives a perfect score (Dice 1, distances 0); exactly one empty
gives Dice 0 and infinite distances, with ``status`` saying which one is empty.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy import ndimage

from .organs import Organ, organ_table
from .volume import Volume

COLUMNS = ("dice", "jaccard", "voe", "rvd", "assd_mm", "mssd_mm", "rmssd_mm")


@dataclass(frozen=True)
class OrganScores:
    organ: str
    value: int
    dice: float
    jaccard: float
    voe: float
    rvd: float
    assd_mm: float
    mssd_mm: float
    rmssd_mm: float
    pred_ml: float
    ref_ml: float
    status: str  # "ok", "both empty", "prediction empty", "reference empty"


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(pred, ref).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)
    return mask & ~eroded


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``pred`` to the surface of ``ref`` and back.

    ``spacing`` is per array axis (k, j, i). Both masks must be non-empty.
    """
    both = pred | ref
    box = tuple(slice(max(int(idx.min()) - 1, 0), int(idx.max()) + 2) for idx in np.nonzero(both))
    pred, ref = pred[box], ref[box]
    sp, sr = _surface(pred), _surface(ref)
    to_ref = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return to_ref[sp], to_pred[sr]


def score_masks(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], organ: str = "",
                value: int = 0) -> OrganScores:
    """All metrics for one pair of boolean masks on the same grid (``spacing`` in array axis order)."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    n_p, n_r = int(pred.sum()), int(ref.sum())
    vols = dict(pred_ml=n_p * voxel_ml, ref_ml=n_r * voxel_ml)
    if n_p == 0 and n_r == 0:
        return OrganScores(organ, value, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, status="both empty", **vols)
    if n_p == 0 or n_r == 0:
        status = "prediction empty" if n_p == 0 else "reference empty"
        rvd = -1.0 if n_p == 0 else math.inf
        return OrganScores(organ, value, 0.0, 0.0, 1.0, rvd, math.inf, math.inf, math.inf, status=status, **vols)
    inter = int(np.logical_and(pred, ref).sum())
    jac = inter / (n_p + n_r - inter)
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    d = np.concatenate([d_pr, d_rp])
    return OrganScores(
        organ, value, dice=2.0 * inter / (n_p + n_r), jaccard=jac, voe=1.0 - jac, rvd=(n_p - n_r) / n_r,
        assd_mm=float(d.mean()), mssd_mm=float(d.max()), rmssd_mm=float(np.sqrt(np.mean(d ** 2))),
        status="ok", **vols,
    )


def evaluate_labels(pred: Volume, ref: Volume, organs: Optional[Iterable[Organ]] = None) -> list[OrganScores]:
    """Per-organ scores of a predicted label map against a reference on the same grid."""
    ref.require_same_grid(pred, what="prediction")
    organs = organ_table() if organs is None else tuple(organs)
    return [score_masks(pred.array == o.value, ref.array == o.value, ref.array_spacing, o.name, o.value)
            for o in organs]


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3f}"


def format_table(scores: Sequence[OrganScores]) -> str:
    """A fixed-width text table of the scores."""
    head = f"{'organ':<9}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'pred ml':>10}{'ref ml':>10}  status"
    lines = [head, "-" * len(head)]
    for s in scores:
        row = asdict(s)
        lines.append(f"{s.organ:<9}" + "".join(f"{_fmt(row[c]):>10}" for c in COLUMNS)
                     + f"{s.pred_ml:>10.1f}{s.ref_ml:>10.1f}  {s.status}")
    return "\n".join(lines)


def _jsonable(x):
    return None if isinstance(x, float) and (math.isinf(x) or math.isnan(x)) else x


def scores_to_json(scores: Sequence[OrganScores]) -> str:
    """JSON list of per-organ records; infinite distances become null (see ``status``)."""
    return json.dumps([{k: _jsonable(v) for k, v in asdict(s).items()} for s in scores], indent=2)


def scores_to_csv(scores: Sequence[OrganScores]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(scores[0]).keys()) if scores else ["organ"])
    writer.writeheader()
    for s in scores:
        writer.writerow(asdict(s))
    return buf.getvalue()
