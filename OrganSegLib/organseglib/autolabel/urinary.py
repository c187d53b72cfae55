"""Urinary contrast is not bone: kidneys, ureters and a contrast-filled bladder (ours, issue 21).

In the nephrographic phase of a CT urogram the renal parenchyma reads 150-250 HU, and in the
excretory phase the calyces, renal pelvis, ureters and bladder hold contrast of 500-1500 HU
(``phantom/hu_table.py``: Yuh, Caoili, Silverman). By HU alone all of that is bone (paper III-C:
>= 200 HU): a dense piece of it is kept as a bony piece, an enhancing kidney near a rib joins the
skeleton, and an enhancing kidney taken for a "blood pool" sets the contrast level every bony piece
must beat. These rules tell each structure from bone by what it is, on blocks of about 3 mm
(``coarse_ct.py``), and return the voxels the bone labeler leaves out:

* **kidneys** (``kidney_*``, before the blood pools): a thick region of enhancing parenchyma
  (``kidney_min_hu`` to ``kidney_max_hu`` as lightly smoothed block means, a core left after an erosion
  by ``kidney_core_mm``) beside the spine in the back part of the body (``kidney_offset_mm``,
  ``kidney_dorsal``), of a kidney's volume (``kidney_min_ml`` to ``kidney_max_ml``), *without a cortical
  shell* (at most ``kidney_shell`` of its core enclosed along two axes, within ``kidney_shell_mm``, by
  blocks ``kidney_shell_hu`` denser than it: marrow is ringed by cortex, a kidney by fat) and *with a
  renal sinus* (at least ``kidney_sinus`` of its outline, closed in-plane by ``kidney_sinus_mm``, is not
  parenchyma: the hilum with its fat, urine or excreted contrast; a spleen or a femoral head is
  solid). Its parenchyma and sinus go, and the dense voxels connected to its interior (calyces and
  pelvis full of contrast), not a rib that only grazes its outline;
* **contrast bladder** (``bladder_*``, before the blood pools: contrast urine of 300-600 HU is as thick
  and homogeneous as a pool): a sac of contrast (blocks of at least ``bladder_min_hu``) on the midline
  (``bladder_half_width_mm``), behind the abdominal wall and in front of the sacrum
  (``bladder_min_depth``, ``bladder_max_depth``), *above the pubis* (bone in front of it on the midline,
  from ``bladder_pubis_mm`` below its bottom) and well below the lungs (``bladder_below_lungs_mm``,
  when they are labelled; without a lung label: no aerated lung on both sides of it,
  ``bladder_lungs_beside_ml``, or the heart would pass, the sternum in front of it as a pubis).
  Either a thick core (``bladder_core_mm``) with no cortical shell, not a tube (height at most
  ``bladder_max_elongation`` times its width: the aorta is a tube) and walled by soft tissue (at most
  ``bladder_dense_wall`` of the blocks round it ``bladder_wall_max_hu`` or denser), or a layer of
  contrast urine under urine (``bladder_urine_hu`` one or two blocks in front of it) whose top is a level
  (its anterior boundary flat to ``bladder_level_mm``), in the front of the pelvis
  (``bladder_layer_max_depth``), no taller than ``bladder_max_elongation`` times its width (a sheet,
  not a vessel); where a kidney was found, a layer joined to the ureters that enter the bladder is
  judged on its columns under urine at their median level. A midline loop of bowel full of oral contrast
  in the pelvis passes too: it is not bone either;
* **ureters** (``ureter_*``, after the blood pools, and only where a kidney was found): dense tubes
  along the body axis: in each axial slice a small blob (at most ``ureter_max_area_mm2``), the blobs of
  consecutive slices joined into a chain at least ``ureter_min_length_mm`` long that drifts in-plane by
  at most ``ureter_max_slope`` mm per mm of height (ribs cross the slices, the ureter runs down them),
  beside the spine (``ureter_offset_mm``) at the depth of the psoas, in front of the transverse
  processes (``ureter_depth``).

The kidney and ureter rules live here, the bladder rule in ``urinary_bladder``, their parameters in
``urinary_params`` and the shape tests they share in ``urinary_shapes``. Measured on the five real
scans (none with urinary contrast: nothing taken on the chests, the kidneys of ircad1_07 found) and on
patient phantoms in all five phases: EXPERIMENTS.md, issue 21.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import cc3d
import numpy as np
import scipy.ndimage as ndi

from .. import morphology
from ..boxes import mask_bounding_box
from .coarse_ct import CoarseCT
from .urinary_bladder import find_contrast_bladder
from .urinary_params import UrinaryParams
from .urinary_shapes import centre_frame, grow, in_plane_closing, judge, thick_parts

log = logging.getLogger(__name__)


@dataclass
class UrinaryTract:
    """``mask``: the voxels to keep out of the bone; volumes (mL) of each structure found; ``found``:
    one dict per candidate examined (what it was, why it was taken or not)."""

    mask: np.ndarray
    kidney_ml: float = 0.0
    ureter_ml: float = 0.0
    bladder_ml: float = 0.0
    found: list = field(default_factory=list)


def find_kidneys(coarse: CoarseCT, body: np.ndarray, params: UrinaryParams, found: list) -> np.ndarray:
    """Block mask of the kidneys (parenchyma and all it encloses in-plane) on ``coarse``'s grid."""
    out = np.zeros(coarse.mean.shape, dtype=bool)
    smooth = coarse.smoothed()
    parenchyma = (smooth >= params.kidney_min_hu) & (smooth < params.kidney_max_hu) & coarse.allowed
    lo, hi = params.kidney_offset_mm
    for big, core, region, median, enclosed in thick_parts(parenchyma, params.kidney_core_mm, coarse,
                                                            params.kidney_shell_hu, params.kidney_shell_mm):
        ml = float(region.sum()) * coarse.voxel_ml
        if ml < 0.5 * params.kidney_min_ml:
            continue  # fragments: not worth a line in the report
        depth, offset = centre_frame(coarse, body, np.argwhere(core) + [b.start for b in big])
        item = {"what": "kidney", "ml": round(ml, 1), "median_hu": round(median), "depth": round(depth, 2),
                "offset_mm": round(offset), "enclosed": round(enclosed, 3)}
        checks = [(params.kidney_min_ml <= ml <= params.kidney_max_ml, "volume"),
                  (lo <= offset <= hi, "offset from the midline"), (depth >= params.kidney_dorsal, "depth"),
                  (enclosed <= params.kidney_shell, "cortical shell")]
        if all(ok for ok, _ in checks):  # the sinus (an in-plane closing, the costly part) only where it decides
            hull = in_plane_closing(region, params.kidney_sinus_mm, coarse.spacing)
            sinus = float((hull & ~region).sum()) / max(float(hull.sum()), 1.0)
            item["sinus"] = round(sinus, 3)
            checks.append((sinus >= params.kidney_sinus, "no renal sinus"))
        judge(item, checks, found)
        if item["taken"]:
            out[big] |= grow(hull, 1) & coarse.allowed[big]
    return out


def _kidney_voxels(kidneys: np.ndarray, coarse: CoarseCT, ct: np.ndarray, dense: np.ndarray,
                   params: UrinaryParams) -> np.ndarray:
    """Full-resolution kidney voxels: inside the blocks, those below ``kidney_max_hu`` (parenchyma, sinus)
    and the dense ones connected to dense voxels of the blocks' interior (calyces, pelvis), not a rib
    that only grazes the kidney's outline."""
    box = mask_bounding_box(kidneys, [1, 1, 1])
    out = np.zeros(ct.shape, dtype=bool)
    if box is None:
        return out
    fine_box = tuple(slice(b.start * t, min(n, b.stop * t)) for b, t, n in zip(box, coarse.strides, ct.shape))
    blocks = coarse.to_fine(kidneys[box], out[fine_box].shape)
    inner = coarse.to_fine(ndi.binary_erosion(kidneys[box]), out[fine_box].shape)
    near = coarse.to_fine(grow(kidneys[box], 2), out[fine_box].shape)  # the pelvis leaves through the hilum
    sub_ct, sub_dense = ct[fine_box], dense[fine_box] & near
    soft = blocks & (sub_ct < params.kidney_max_hu)
    contrast = morphology.reconstruct(sub_dense & inner, sub_dense)
    out[fine_box] = soft | contrast
    return out


def find_ureters(coarse: CoarseCT, body: np.ndarray, candidates: np.ndarray, params: UrinaryParams,
                 found: list) -> np.ndarray:
    """Block mask of ureters among the dense ``candidates`` blocks."""
    cs = coarse.spacing
    out = np.zeros(candidates.shape, dtype=bool)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = True
    blobs, n = ndi.label(candidates, structure=in_plane)
    if n == 0:
        return out
    area = np.bincount(blobs.ravel(), minlength=n + 1) * cs[1] * cs[2]
    small = area <= params.ureter_max_area_mm2
    small[0] = False
    chains, m = cc3d.connected_components(small[blobs], connectivity=26, return_N=True)
    if m == 0:
        return out
    stats = cc3d.statistics(chains)
    lo, hi = params.ureter_offset_mm
    for index in range(1, m + 1):
        box = stats["bounding_boxes"][index]
        height = (box[0].stop - box[0].start) * cs[0]
        if height < params.ureter_min_length_mm:
            continue
        across = np.hypot((box[1].stop - box[1].start) * cs[1], (box[2].stop - box[2].start) * cs[2])
        depth, offset = centre_frame(coarse, body, np.argwhere(chains[box] == index) + [b.start for b in box])
        slope = max(across - 12.0, 0.0) / height  # a straight tube's own width does not count
        item = {"what": "ureter", "length_mm": round(height), "slope": round(slope, 2), "depth": round(depth, 2),
                "offset_mm": round(offset)}
        judge(item, [(slope <= params.ureter_max_slope, "slope"), (lo <= offset <= hi, "offset from the midline"),
                      (params.ureter_depth[0] <= depth <= params.ureter_depth[1], "depth")], found)
        if item["taken"]:
            out[box] |= chains[box] == index
    return out


def find_kidney_tract(ct: np.ndarray, dense: np.ndarray, body: np.ndarray, coarse: CoarseCT,
                      params: UrinaryParams) -> UrinaryTract:
    """The kidneys among the CT's voxels (parenchyma, sinus, calyces and pelvis): the bone labeler's
    first urinary step, before its blood pools (an enhancing kidney is not a pool setting the blood's
    contrast level). ``dense``: its candidate voxels (>= tau2, allowed); arrays ``[k, j, i]`` in LPS."""
    tract = UrinaryTract(np.zeros(ct.shape, dtype=bool))
    if params.kidneys:
        kidneys = find_kidneys(coarse, body, params, tract.found)
        if kidneys.any():
            tract.mask = _kidney_voxels(kidneys, coarse, ct, dense, params)
            tract.kidney_ml = round(float(tract.mask.sum()) * _voxel_ml(coarse), 1)
    return tract


def _contrast_blocks(tract: UrinaryTract, dense: np.ndarray, coarse: CoarseCT, params: UrinaryParams) -> np.ndarray:
    """Blocks holding dense voxels whose mean is contrast-dense (a lumen fills the block), not speckle."""
    rest = morphology.coarse.block_any(dense & ~tract.mask, coarse.strides)[tuple(slice(0, n) for n in coarse.mean.shape)]
    return rest & (coarse.mean >= params.contrast_min_hu)


def _add(tract: UrinaryTract, name: str, blocks: np.ndarray, dense: np.ndarray, coarse: CoarseCT) -> None:
    if blocks.any():
        voxels = coarse.to_fine(grow(blocks, 1), dense.shape) & dense & ~tract.mask
        setattr(tract, f"{name}_ml", round(float(voxels.sum()) * _voxel_ml(coarse), 1))
        tract.mask |= voxels


def find_contrast_bladder_tract(tract: UrinaryTract, dense: np.ndarray, body: np.ndarray, coarse: CoarseCT,
                                params: UrinaryParams, lungs: Optional[np.ndarray] = None) -> None:
    """The contrast bladder among the dense voxels the kidneys left, added to ``tract``; before the blood
    pools (contrast urine of 300-600 HU is a thick homogeneous core, as a pool, and would set the blood's
    level). ``lungs``: the lung label, when there is one (a bladder lies well below it); arrays
    ``[k, j, i]`` in LPS order (``k`` grows upwards)."""
    if not params.bladder:
        return
    limit = _contrast_blocks(tract, dense, coarse, params)
    if lungs is not None and lungs.any():
        lowest = int(np.argmax(lungs.any(axis=(1, 2))))
        top = lowest // coarse.strides[0] - int(np.ceil(params.bladder_below_lungs_mm / coarse.spacing[0]))
        if top < 0:
            return
        limit[top + 1:] = False
    _add(tract, "bladder", find_contrast_bladder(coarse, body, limit, params, tract.found), dense, coarse)


def find_ureter_tract(tract: UrinaryTract, dense: np.ndarray, body: np.ndarray, coarse: CoarseCT,
                      params: UrinaryParams) -> None:
    """The ureters among the dense voxels left, added to ``tract``: looked for only when a kidney was
    found (a ureter leaves a kidney; a chest has none, and its ribs cut by 5 mm slices are chains of
    small blobs too)."""
    if params.ureters and tract.kidney_ml > 0:
        blocks = find_ureters(coarse, body, _contrast_blocks(tract, dense, coarse, params), params, tract.found)
        _add(tract, "ureter", blocks, dense, coarse)
    for item in tract.found:
        log.debug("urinary candidate: %s", item)


def _voxel_ml(coarse: CoarseCT) -> float:
    return float(np.prod([c / t for c, t in zip(coarse.spacing, coarse.strides)])) / 1000.0


__all__ = ["UrinaryParams", "UrinaryTract", "find_contrast_bladder", "find_contrast_bladder_tract", "find_kidney_tract",
           "find_kidneys", "find_ureter_tract", "find_ureters"]
