"""The patient's body without the exam table, on a coarse grid (cheap and robust).

Computed once per run and shared by the auto-labelers (``organseglib.autolabel``); segmentation
crops the network's input to the same mask found on the network's grid
(``organseglib.network_space.find_body_on_network_grid``). Both labelers need to know what is inside the patient: the lung labeler to drop air outside the
body (paper III-B removes air connected to the edges of each axial slice), the bone labeler to keep
the exam table's dense shell out of the skeleton. Real tables touch the patient through a mattress
and enclose foam or air, so "air connected to the slice edge" is not enough on its own:

1. tissue = HU > ``tissue_hu`` on a grid subsampled to about ``coarse_mm``;
2. an opening by a ball of ``table_gap_mm`` cuts the thin shells and contacts of the table (and the
   scanner's outer rings); the largest remaining component is the body; dilating it back by the
   same ball inside the tissue restores its outline (this is "bridging" the table: whatever joined
   the body to the table through a thin contact is cut, whatever air the table encloses stays out);
3. ``hull``: the convex hull of the body in each axial slice. Lungs lie inside it even when the
   volume border cuts them (a cropped scan), which filling holes would not give.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from . import morphology
from .errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BodyParams:
    """Parameters of the body mask (this project's additions; the paper has none)."""

    tissue_hu: float = -500.0  # between fat (-100) and lung (-850): skin, muscle, fat, bone
    table_gap_mm: float = 6.0  # opening radius: table shells and mattress contacts are thinner
    coarse_mm: float = 3.0  # working voxel size; the masks are only used as coarse limits
    skin_mm: float = 3.0  # ``inner`` lies this far inside the body: a table touching the back stays out

    def __post_init__(self) -> None:
        if not -900.0 <= self.tissue_hu <= 0.0:
            raise InputError(f"tissue_hu must be between -900 and 0 HU; got {self.tissue_hu!r}")
        if not 0.0 <= self.table_gap_mm <= 30.0:
            raise InputError(f"table_gap_mm must be between 0 and 30 mm; got {self.table_gap_mm!r}")
        if not 0.0 <= self.skin_mm <= 20.0:
            raise InputError(f"skin_mm must be between 0 and 20 mm; got {self.skin_mm!r}")
        if not 0.5 <= self.coarse_mm <= 10.0:
            raise InputError(f"coarse_mm must be between 0.5 and 10 mm; got {self.coarse_mm!r}")


@dataclass(frozen=True)
class BodyMasks:
    """Full-resolution masks (nearest-neighbour from the coarse grid): ``body`` (the patient's tissue,
    table removed), ``inner`` (``body`` eroded by ``skin_mm``: where bone may be) and ``hull``
    (per-slice convex hull of the body: where lungs may be)."""

    body: np.ndarray
    inner: np.ndarray
    hull: np.ndarray


def _slice_hull(plane: np.ndarray) -> np.ndarray:
    """Convex hull of the True pixels of a 2D mask (pixel corners included)."""
    rows = np.flatnonzero(plane.any(axis=1))
    if rows.size == 0:
        return plane.copy()
    # the hull of a pixel set is the hull of each row's two extreme pixels
    first = plane[rows].argmax(axis=1)
    last = plane.shape[1] - 1 - plane[rows, ::-1].argmax(axis=1)
    pts = np.concatenate([np.stack([rows, first], 1), np.stack([rows, last], 1)]).astype(np.float64)
    corners = (pts[:, None, :] + np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])).reshape(-1, 2)
    try:
        hull = ConvexHull(corners)
    except QhullError:  # degenerate (a line of pixels): the mask is its own hull
        return plane.copy()
    eq = hull.equations  # a.x + b <= 0 inside
    r0, r1 = rows[0], rows[-1] + 1
    grid = np.indices((r1 - r0, plane.shape[1])).reshape(2, -1).T.astype(np.float64)
    grid[:, 0] += r0
    inside = np.all(grid @ eq[:, :2].T + eq[:, 2] <= 1e-9, axis=1)
    out = plane.copy()
    out[r0:r1] |= inside.reshape(r1 - r0, plane.shape[1])
    return out


def body_masks(ct: np.ndarray, spacing: tuple[float, float, float],
               params: Optional[BodyParams] = None) -> BodyMasks:
    """Body and per-slice hull masks for a CT array ``[k, j, i]`` in HU with ``spacing`` (k, j, i) mm.

    Raises:
        InputError: bad parameters.
    """
    params = params or BodyParams()
    strides = morphology.block_factors(spacing, params.coarse_mm)
    coarse_spacing = tuple(s * t for s, t in zip(spacing, strides))
    tissue = ct[tuple(slice(None, None, t) for t in strides)] > params.tissue_hu
    if params.table_gap_mm > 0:
        core = morphology.opening(tissue, params.table_gap_mm, coarse_spacing)
    else:
        core = tissue
    core, sizes = morphology.largest_components(core, 1)
    if not sizes:  # nothing thicker than the opening ball: fall back on the raw tissue
        core, sizes = morphology.largest_components(tissue, 1)
    if not sizes:
        log.warning("no tissue above %s HU: the volume looks empty", params.tissue_hu)
        empty = np.zeros(ct.shape, dtype=bool)
        return BodyMasks(empty, empty, empty)
    if params.table_gap_mm > 0:
        body = morphology.dilation(core, params.table_gap_mm, coarse_spacing) & tissue
        body = morphology.reconstruct(core, body)
    else:
        body = core
    hull = np.zeros_like(body)
    for k in range(body.shape[0]):
        if body[k].any():
            hull[k] = _slice_hull(body[k])
    # erosion with outside = foreground: a body cut by the volume border keeps its cut faces
    inner = morphology.erosion(body, params.skin_mm, coarse_spacing) if params.skin_mm > 0 else body
    return BodyMasks(*(morphology.repeat_blocks(m, strides, ct.shape) for m in (body, inner, hull)))
