"""The contrast-filled bladder is not bone (ours, issue 21): a midline sac of contrast urine above the
pubis, thick, or a layer under urine with a level top. The rules and their parameters are described
in ``urinary``'s docstring (``bladder_*`` of ``UrinaryParams``)."""

from __future__ import annotations

from typing import Optional

import cc3d
import numpy as np
import scipy.ndimage as ndi

from .coarse_ct import CoarseCT
from .urinary_params import UrinaryParams
from .urinary_shapes import IN_PLANE, centre_frame, grow, judge, thick_parts


def find_contrast_bladder(coarse: CoarseCT, body: np.ndarray, candidates: np.ndarray, params: UrinaryParams,
                          found: list) -> np.ndarray:
    """Block mask of contrast urine in a midline sac among the dense ``candidates`` blocks: a thick sac
    of contrast, or a layer under urine."""
    out = np.zeros(candidates.shape, dtype=bool)
    contrast = candidates & (coarse.mean >= params.bladder_min_hu)

    frame_depth, frame_offset = coarse.frame(body)

    def place(points) -> tuple[float, float, bool]:
        depth, offset = centre_frame(coarse, body, points)
        return depth, offset, bool(offset <= params.bladder_half_width_mm
                                   and params.bladder_min_depth <= depth <= params.bladder_max_depth
                                   and _pubis_below(points, depth) and not _lungs_beside(points))

    def _lungs_beside(points) -> bool:
        """Aerated tissue of ``bladder_lungs_beside_ml`` or more on both sides of the midline within the
        sac's slices: lungs, so the sac is the heart (the sternum in front passes for a pubis)."""
        k0, k1 = int(points[:, 0].min()), int(points[:, 0].max()) + 1
        inside = ndi.binary_fill_holes(coarse.subsample(body)[k0:k1], structure=IN_PLANE)  # the body has no lungs
        air = inside & (coarse.mean[k0:k1] <= params.bladder_lung_hu)
        with np.errstate(invalid="ignore"):
            sides = [air & (side(frame_offset[k0:k1], 0.0))[:, None, :] for side in (np.less, np.greater)]
        return min(float(m.sum()) for m in sides) * coarse.voxel_ml >= params.bladder_lungs_beside_ml

    def _pubis_below(points, depth) -> bool:
        """Bone (a block maximum of ``bladder_pubis_hu``) on the midline, in front of the sac's centre,
        from ``bladder_pubis_mm`` below its lowest block to a little above it: the pubic symphysis."""
        cs = coarse.spacing
        k0 = int(points[:, 0].min())
        lo, hi = max(0, k0 - int(np.ceil(params.bladder_pubis_mm / cs[0]))), k0 + int(np.ceil(20.0 / cs[0])) + 1
        bright = coarse.max[lo:hi] >= params.bladder_pubis_hu
        with np.errstate(invalid="ignore"):
            mid = np.abs(frame_offset[lo:hi]) <= params.bladder_pubis_half_width_mm  # [k, i]
            front = frame_depth[lo:hi] <= depth  # [k, j]
        return bool((bright & mid[:, None, :] & front[:, :, None]).any())

    for big, core, region, median, enclosed in thick_parts(contrast, params.bladder_core_mm, coarse,
                                                            params.kidney_shell_hu, params.kidney_shell_mm):
        ml = float(region.sum()) * coarse.voxel_ml
        if ml < params.bladder_min_ml:
            continue
        depth, offset, inside = place(np.argwhere(core) + [b.start for b in big])
        height, across, side = _extents_mm(region, coarse.spacing)
        width = max(across, side)
        rim = grow(region, 1) & ~region
        fused = float(np.mean(coarse.mean[big][rim] >= params.bladder_wall_max_hu)) if rim.any() else 0.0
        item = {"what": "bladder (contrast sac)", "ml": round(ml, 1), "median_hu": round(median),
                "depth": round(depth, 2), "offset_mm": round(offset), "enclosed": round(enclosed, 3),
                "height_per_width": round(height / width, 2), "dense_wall": round(fused, 3)}
        judge(item, [(inside, "place"), (enclosed <= params.kidney_shell, "cortical shell"),
                      (height <= params.bladder_max_elongation * width, "a tube (a vessel), not a sac"),
                      (fused <= params.bladder_dense_wall, "part of something dense (bone)")], found)
        if item["taken"]:
            out[big] |= region
    urine = (coarse.mean >= params.bladder_urine_hu[0]) & (coarse.mean < params.bladder_urine_hu[1]) & coarse.allowed
    excreting = any(f["what"] == "kidney" and f["taken"] for f in found)
    labels, n = cc3d.connected_components(contrast & ~out, connectivity=26, return_N=True)
    stats = cc3d.statistics(labels) if n else None
    for index in range(1, n + 1):
        ml = float(stats["voxel_counts"][index]) * coarse.voxel_ml
        if ml < params.bladder_min_ml:
            continue
        box = stats["bounding_boxes"][index]
        big = tuple(slice(max(0, b.start - 2), min(m, b.stop + 2)) for b, m in zip(box, contrast.shape))
        piece = labels[big] == index
        under = _under_urine(piece, urine[big])
        if not under.any():
            continue  # no urine in front of it: not a layer
        if under.sum() < 0.6 * piece.any(axis=1).sum():
            # joined to something with no urine in front of it (the ureters entering the bladder): the
            # candidate layer is the columns under urine whose front lies at their median level. Only
            # where a kidney was found (ureters full of contrast leave a kidney, as in find_ureters): in
            # a chest such columns cut through the great vessels
            if not excreting:
                continue
            front = np.argmax(piece, axis=1)
            level_j = np.median(front[under])
            piece &= (under & (np.abs(front - level_j) * coarse.spacing[1] <= params.bladder_level_mm))[:, None, :]
            ml = float(piece.sum()) * coarse.voxel_ml
            if ml < params.bladder_min_ml:
                continue
            under &= piece.any(axis=1)  # the columns kept (whole columns: their fronts are unchanged)
        level = _level(piece, under, coarse.spacing)
        if level is None:
            continue  # too small to read a level from
        depth, offset, inside = place(np.argwhere(piece) + [b.start for b in big])
        item = {"what": "bladder (layer)", "ml": round(ml, 1), "depth": round(depth, 2), "offset_mm": round(offset),
                "level_mm": round(level, 1)}
        # a level is a horizontal sheet, wider than it is tall: a vessel running down the body (the aorta
        # full of contrast) has an anterior wall at one depth in every slice too
        height, _, width = _extents_mm(piece, coarse.spacing)
        item["height_per_width"] = round(height / width, 2)
        judge(item, [(inside, "place"), (level <= params.bladder_level_mm, "no level"),
                      (depth <= params.bladder_layer_max_depth, "behind the bladder (rectum, sacrum, spine)"),
                      (height <= params.bladder_max_elongation * width, "a tube (a vessel), not a level")], found)
        if item["taken"]:
            out[big] |= piece
    return out


def _under_urine(piece: np.ndarray, urine: np.ndarray) -> np.ndarray:
    """The columns ``[k, i]`` of ``piece`` with urine one or two blocks in front of its anterior boundary
    (LPS: ``j`` grows to the back; the block next to contrast may read partial volume)."""
    cols = piece.any(axis=1)
    front = np.argmax(piece, axis=1)  # first j of the piece in each (k, i) column
    k, i = np.nonzero(cols)
    j = front[k, i]
    ahead = np.zeros(len(k), dtype=bool)
    for d in (1, 2):
        jj = j - d
        ok = jj >= 0
        ahead[ok] |= urine[k[ok], jj[ok], i[ok]]
    out = np.zeros(cols.shape, dtype=bool)
    out[k[ahead], i[ahead]] = True
    return out


def _extents_mm(mask: np.ndarray, spacing) -> tuple[float, float, float]:
    """The extent of ``mask`` along each axis (k, j, i), mm."""
    spans = (np.flatnonzero(mask.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1)))
    return tuple(float(n[-1] - n[0] + 1) * float(s) for n, s in zip(spans, spacing))


def _level(piece: np.ndarray, under: np.ndarray, cs) -> Optional[float]:
    """The spread (sd, mm) of the anterior boundary of ``piece`` over ``under``, its columns (k, i) with
    urine just in front (``_under_urine``; the caller has checked that they are most of its columns);
    None for a piece of fewer than 4 columns."""
    if np.count_nonzero(piece.any(axis=1)) < 4:
        return None
    front = np.argmax(piece, axis=1)
    return float(np.std(front[under]) * cs[1])


__all__ = ["find_contrast_bladder"]
