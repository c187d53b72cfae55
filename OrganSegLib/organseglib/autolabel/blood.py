"""Contrast-filled blood pools (heart chambers, aorta, venae cavae) among the dense voxels (ours).

On a contrast-enhanced CT, blood reaches 150-600 HU: above the paper's bone threshold tau2 = 200 HU,
and the heart and aorta touch the spine and sternum, so "the largest dense component" (paper III-C)
is then the skeleton *plus* the blood pool. A blood pool is told from bone by shape and HU profile:

* it is thick and homogeneous: what survives an erosion by ``blood_core_mm`` of the voxels between
  tau2 and ``blood_max_hu`` (cortex, brighter, is taken out first, so that the aorta's core and the
  marrow of the vertebra it leans on come apart);
* its median is below ``blood_max_hu``;
* it is not ringed by cortex: of the shell around the core (where the erosion stopped and a little
  beyond) at most ``blood_rim_cortex`` is as bright as cortex (>= ``blood_max_hu``). Marrow is
  ringed by cortex; a blood pool by wall, myocardium, fat and lung, touching bone along a small part
  of its outline at most. A core of ``blood_large_ml`` or more may have up to ``blood_large_rim_cortex``
  of bright rim: the heart's rim holds streaming contrast, calcium, ribs and sternum (measured 15 % on
  chest_cropped_totalseg), while marrow is ringed by cortex all round (36 % on the phantom's pelvis).

The median of the pools is the contrast level of the blood, "read off the aorta" (``level_hu``): the
bone labeler then asks more of a separate dense piece than of the blood (``BoneParams.piece_*``).
Works on blocks of about ``coarse_mm`` (their mean HU for the pools, their maximum for the cortex;
cheap), returns full-resolution masks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import cc3d
import numpy as np

from .. import morphology
from .coarse_ct import CoarseCT, coarse_ct as coarse_ct_of

log = logging.getLogger(__name__)


@dataclass
class BloodPools:
    """``mask``: the pools' voxels to keep out of the bone (lumen from tau1 up, bright speckle and
    streaming contrast inside it); ``level_hu``: volume-weighted median HU of the pools (None: none
    found); ``ml``: their volume (coarse estimate); ``cores``: one dict per thick dense core examined."""

    mask: np.ndarray
    level_hu: Optional[float]
    ml: float
    cores: list


def find_blood_pools(ct: np.ndarray, allowed: np.ndarray, spacing: tuple[float, float, float], params,
                     coarse: Optional[CoarseCT] = None) -> BloodPools:
    """Blood pools in ``ct`` (HU, ``[k, j, i]``) within ``allowed``; ``params`` is a ``BoneParams``;
    ``coarse``: the CT on blocks of ``params.coarse_mm`` when the caller has it (``coarse_ct.py``)."""
    empty = BloodPools(np.zeros(ct.shape, dtype=bool), None, 0.0, [])
    if params.blood_core_mm <= 0:
        return empty
    # block means average the noise and speckle of the blood away; block maxima keep thin cortex
    coarse = coarse or coarse_ct_of(ct, allowed, spacing, params.coarse_mm)
    strides, cs = coarse.strides, coarse.spacing
    coarse_ct, coarse_max, coarse_allowed = coarse.mean, coarse.max, coarse.allowed
    r = params.blood_core_mm
    step = max(cs)
    candidates = (coarse_ct >= params.tau2_hu) & (coarse_ct < params.blood_max_hu) & coarse_allowed
    cores = morphology.erosion(candidates, r, cs)
    labels, n = cc3d.connected_components(cores, connectivity=26, return_N=True)
    if n == 0:
        return empty
    stats = cc3d.statistics(labels)
    voxel_ml = float(np.prod(cs)) / 1000.0
    blood = np.zeros(cores.shape, dtype=bool)
    found = []
    for index in range(1, n + 1):
        size_ml = stats["voxel_counts"][index] * voxel_ml
        if size_ml < params.blood_min_ml:
            continue
        box = stats["bounding_boxes"][index]
        grow = [int(np.ceil((r + 2 * step) / c)) for c in cs]
        big = tuple(slice(max(0, b.start - g), min(n_, b.stop + g)) for b, g, n_ in zip(box, grow, cores.shape))
        core = labels[big] == index
        median = float(np.median(coarse_ct[big][core]))
        rim = morphology.dilation(core, r + 2 * step, cs) & ~morphology.dilation(core, max(r - step, 0.0), cs)
        cortex = float(np.mean(coarse_max[big][rim] >= params.blood_max_hu)) if rim.any() else 0.0
        limit = params.blood_large_rim_cortex if size_ml >= params.blood_large_ml else params.blood_rim_cortex
        sure = median < params.blood_max_hu and cortex <= limit
        found.append({"ml": round(size_ml, 1), "median_hu": round(median), "rim_cortex": round(cortex, 3),
                      "blood": bool(sure), "_index": index, "_big": big})
    levels = [(c["median_hu"], c["ml"]) for c in found if c["blood"]]
    if levels:
        # stage 2: a smaller core at the same contrast level as the sure pools, touching bone on a
        # part of its outline only (the descending aorta along the spine), is blood too
        level = float(np.average([m for m, _ in levels], weights=[w for _, w in levels]))
        for c in found:
            if not c["blood"] and abs(c["median_hu"] - level) <= params.blood_level_tol_hu \
                    and c["rim_cortex"] <= 2 * params.blood_rim_cortex:
                c["blood"] = True
    for c in found:
        index, big = c.pop("_index"), c.pop("_big")
        log.debug("dense core %.1f mL, median %.0f HU, rim %.0f%% cortex: %s", c["ml"], c["median_hu"],
                  100 * c["rim_cortex"], "blood" if c["blood"] else "bone")
        if c["blood"]:
            blood[big] |= labels[big] == index
    levels = [(c["median_hu"], c["ml"]) for c in found if c["blood"]]
    if blood.any() and params.blood_follow_mm < r:
        # follow the pools along thinner lumen (the descending aorta below the arch): the cores of a
        # smaller erosion that connect to the sure pools
        thin = morphology.erosion(candidates, params.blood_follow_mm, cs)
        blood |= morphology.reconstruct(blood & thin, thin)
    if blood.any():
        # streaming undiluted contrast (vena cava, right atrium: brighter than cortex) is blood where
        # it is thick (survives the erosion) and touches the pools
        bright = morphology.erosion((coarse_ct >= params.blood_max_hu) & coarse_allowed, r, cs)
        if bright.any():
            blood |= morphology.reconstruct(morphology.dilation(blood, r + step, cs) & bright, bright)
    if not blood.any():
        return BloodPools(empty.mask, None, 0.0, found)
    # the pool's extent (bright speckle and streaming contrast inside it included), and one coarse
    # voxel beyond it the partial-volume rim below cortex density (the cortex of a bone it touches stays)
    lumen = morphology.dilation(blood, r, cs)
    rim = morphology.dilation(blood, r + step, cs)
    level = float(np.average([m for m, _ in levels], weights=[w for _, w in levels]))
    full = morphology.repeat_blocks(rim, strides, ct.shape) & (ct < params.blood_max_hu)
    full |= morphology.repeat_blocks(lumen, strides, ct.shape)
    full &= allowed & (ct >= params.tau1_hu)
    ml = round(float(lumen.sum()) * voxel_ml, 1)
    return BloodPools(full, level, ml, found)
