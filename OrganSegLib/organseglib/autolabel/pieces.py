"""Step 3 of the bone labeler (``bone.py``): which dense components are bone.

The paper keeps the largest 26-connected component of the dense voxels. Ours (``BoneParams.keep_pieces``,
``piece_*``) also keeps every other piece that looks like bone: at least ``piece_min_ml`` and a 90th
percentile of ``piece_p90_hu``, and on a contrast scan ``piece_above_blood_hu`` above the blood's level
(or the skeleton's own 90th percentile less ``piece_below_skeleton_hu``); a piece lying mostly along a
blood pool is its wall or rim, never bone. A piece below that density is still bone when it lies where
the spine is and its cortex encloses marrow (``piece_marrow_*``, issue 21): a vertebra that a field of
view cut off its ribs, whose thin cortex does not beat the contrast level.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from .. import morphology
from .blood import BloodPools
from .frame import depth_front_to_back, offset_from_midline_mm

log = logging.getLogger(__name__)


def select_pieces(dense: np.ndarray, ct: np.ndarray, voxel_ml: float, params,
                   pools: BloodPools, spacing: tuple[float, float, float],
                   body: Optional[np.ndarray] = None) -> tuple[np.ndarray, int, int]:
    """Step 3: ``(skeleton, kept voxels, pieces kept besides the largest)``. ``body``: the body mask, whose
    frame (``frame.py``) places the vertebra rule (``piece_marrow_*``).

    The paper keeps the largest component. With blood pools, a component lying mostly along a pool
    (``piece_pool_fraction`` of its voxels within ``piece_pool_mm``) is the pool's calcified wall,
    its partial-volume rim or streaming contrast, never bone, even when it is the largest."""
    labels, sizes = morphology.label(dense)
    if sizes.size <= 1 or sizes.max() == 0:
        return np.zeros(dense.shape, dtype=bool), 0, 0
    order = np.argsort(sizes, kind="stable")[::-1]
    order = order[sizes[order] > 0]
    near = None
    if pools.level_hu is not None and params.piece_pool_fraction < 1.0:
        near = morphology.dilation_on_grid(pools.mask, params.piece_pool_mm, spacing, params.grid_mm)
    stats = morphology.components.component_statistics(labels, sizes) if (params.keep_pieces or near is not None) else None
    need = params.piece_p90_hu
    if pools.level_hu is not None:
        need = max(need, pools.level_hu + params.piece_above_blood_hu)
    min_vox = max(params.piece_min_ml / voxel_ml, 1.0)
    keep = np.zeros(sizes.size, dtype=bool)
    cache: list = []

    def frame() -> tuple:  # the body frame, computed once if a piece needs it
        if not cache:
            cache.append((depth_front_to_back(body), offset_from_midline_mm(body, spacing[2]), params))
        return cache[0]

    largest = None
    for index in order:
        if largest is not None and (not params.keep_pieces or sizes[index] < min_vox):
            break
        box = stats["bounding_boxes"][index] if stats is not None else None
        mine = labels[box] == index if box is not None else None
        if near is not None and float(near[box][mine].mean()) > params.piece_pool_fraction:
            continue  # a blood pool's wall or rim
        if largest is None:
            largest = index  # the paper's skeleton: the largest (that is not a pool's wall)
            keep[index] = True
            if pools.level_hu is not None and params.keep_pieces and np.isfinite(params.piece_below_skeleton_hu):
                # a piece need not be brighter than the patient's own skeleton (thick slices, thin or
                # osteoporotic cortex: bone barely above the contrast level + piece_above_blood_hu)
                own = float(np.percentile(ct[box][mine], 90)) - params.piece_below_skeleton_hu
                need = max(params.piece_p90_hu, min(need, own))
            continue
        if float(np.percentile(ct[box][mine], 90)) >= need:
            keep[index] = True
        elif params.piece_marrow_share <= 1.0 and sizes[index] * voxel_ml >= params.piece_marrow_min_ml \
                and body is not None and _in_spine_zone(mine, box, frame()):
            share = enclosed_marrow(mine, ct[box], spacing, params, _faces_on_the_border(box, dense.shape))
            log.debug("piece of %.1f mL below %.0f HU: enclosed marrow %.2f of its volume", sizes[index] * voxel_ml,
                      need, share)
            if share >= params.piece_marrow_share:
                keep[index] = True  # cortex round marrow: a bone however faint (a vertebra cut off its ribs)
    if largest is None:
        return np.zeros(dense.shape, dtype=bool), 0, 0
    skeleton = morphology.components.lookup(keep, labels)  # keep[labels], sparse
    return skeleton, int(sizes[keep].sum()), int(keep.sum()) - 1


def _in_spine_zone(piece: np.ndarray, box: tuple, frame: tuple) -> bool:
    """Whether a piece's median voxel lies where the spine is (``_spine_zone``'s limits of the disc rule:
    within ``disc_half_width_mm`` of the midline, at least ``disc_dorsal`` deep); ``frame`` is
    ``(depth, offset, params)``."""
    depth, offset, params = frame
    points = np.argwhere(piece) + [b.start for b in box]
    d = depth[points[:, 0], points[:, 1]]
    o = offset[points[:, 0], points[:, 2]]
    if not (np.isfinite(d).any() and np.isfinite(o).any()):
        return False
    return bool(np.nanmedian(np.abs(o)) <= params.disc_half_width_mm and np.nanmedian(d) >= params.disc_dorsal)


def _faces_on_the_border(box: tuple, shape: tuple) -> tuple:
    """For each axis, whether the box reaches the volume's first and last slice: ``((lo, hi), ...)``."""
    return tuple((b.start == 0, b.stop == n) for b, n in zip(box, shape))


def enclosed_marrow(piece: np.ndarray, ct: np.ndarray, spacing, params, border=None) -> float:
    """Volume of marrow-density voxels (``tau1_hu`` to ``tau2_hu``) that the dense ``piece`` encloses
    along two axes or three within ``enclosure_mm``, as a share of the piece's volume (on its box).

    ``border``: for each axis, whether the box's first and last slice are the volume's (``((lo, hi),
    ...)``); a face of the field of view counts as cortex there, as the canal rule counts the first and
    last slice (``spine.py``): what lies beyond it is unknown, and a vertebra the border cuts open keeps
    the marrow between its cortex and the cut (issue 21: ``chest_cropped_totalseg`` cut at row 100 kept
    78 % of its vertebral bone, the lowest vertebra, cut by two faces, none)."""
    marrow = ~piece & (ct >= params.tau1_hu) & (ct < params.tau2_hu)
    if not marrow.any():
        return 0.0
    enclosed = morphology.enclosed_axes(piece, spacing, params.enclosure_mm, where=marrow, closed_faces=border) >= 2
    return float(np.count_nonzero(enclosed)) / max(float(np.count_nonzero(piece)), 1.0)


__all__ = ["enclosed_marrow", "select_pieces"]
