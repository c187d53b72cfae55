"""Costal cartilage: the bars of 90-200 HU that continue the ribs' anterior ends (ours, issue 12).

The paper's labeler starts from bone of at least tau2 = 200 HU, so the costal cartilages (which join
ribs 1-10 to the sternum and to each other in the costal arch) are never labelled. Hand-drawn bone
masks count them (ircad1_07: about 65 mL, median 100 HU) and so do TotalSegmentator's reference
labels (abdomen_totalseg: about 80 mL, median 101 HU; both measured on the false negatives of our
labeler before this rule). Cartilage has the density of an enhanced liver in the portal venous phase
(ircad1_07's liver: median 125 HU), so density alone leaks; the rule is anatomical:

* on blocks of about ``cartilage_grid_mm`` (their mean HU: noise averaged away), the tissue between
  ``cartilage_min_hu`` and ``cartilage_max_hu``;
* *thin* in the axial plane: not within ``cartilage_margin_mm`` of tissue of at least
  ``cartilage_min_hu`` thick enough to hold a disc of radius ``cartilage_thick_mm`` (the liver,
  spleen, kidneys, heart and great vessels, an intervertebral disc, all much thicker than a costal
  cartilage seen in cross-section);
* beyond the bone's own partial-volume rim (``cartilage_rim_mm``), and reaching the bone through it;
* as a connected piece of ``cartilage_min_ml`` to ``cartilage_max_ml`` (larger: a leak along a
  bowel wall or a vessel), in the front third of the body (mean depth front to back at most
  ``cartilage_front``: measured 0.09-0.24 for the cartilages of the five real scans) and beside the
  midline (mean offset at least ``cartilage_lateral_mm``: on the midline lie the thyroid gland
  around the trachea and the soft tissue under the xiphoid, not a rib's cartilage);

then the rim voxels next to such a piece join it.
"""

from __future__ import annotations

import numpy as np

from .. import morphology
from ..boxes import mask_bounding_box
from .spine import grow_into
from .frame import depth_front_to_back, offset_from_midline_mm


def _per_piece_mean(labels: np.ndarray, count: int, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (broadcast to ``labels``' shape, NaN ignored) over each label 0..count-1."""
    values = np.broadcast_to(values, labels.shape)
    ok = np.isfinite(values)
    total = np.bincount(labels[ok], weights=values[ok], minlength=count)
    n = np.bincount(labels[ok], minlength=count)
    return total / np.maximum(n, 1)


def costal_cartilage(bone: np.ndarray, ct: np.ndarray, allowed: np.ndarray, body: np.ndarray, spacing,
                     params) -> np.ndarray:
    """Costal cartilage next to ``bone`` (``params``: a ``BoneParams``); arrays ``[k, j, i]`` in LPS
    order. Returns the cartilage voxels (not in ``bone``, inside ``allowed``)."""
    out = np.zeros(bone.shape, dtype=bool)
    factors = morphology.block_factors(spacing, params.cartilage_grid_mm)
    box = mask_bounding_box(body)
    if box is None:
        return out
    box = tuple(slice(b.start - b.start % f, b.stop) for b, f in zip(box, factors))  # whole blocks
    found = _cartilage_in(bone[box], ct[box], allowed[box], body[box], spacing, factors, params)
    out[box] = found
    return out


def _cartilage_in(bone, ct, allowed, body, spacing, factors, params) -> np.ndarray:
    cs = tuple(float(s) * f for s, f in zip(spacing, factors))
    mean, _ = morphology.coarse.block_mean_max(ct, factors)
    pick = tuple(slice(None, None, f) for f in factors)
    crop = tuple(slice(0, n) for n in mean.shape)
    ok = allowed[pick][crop]
    bone_c = morphology.coarse.block_any(bone, factors)
    soft = ok & (mean >= params.cartilage_min_hu) & ~bone_c
    band = soft & (mean < params.cartilage_max_hu)
    flat = (1e6, cs[1], cs[2])  # a disc in the axial plane: the ball's half-extent along k is 0
    thick = morphology.dilation(morphology.erosion(soft, params.cartilage_thick_mm, flat),
                                params.cartilage_thick_mm + params.cartilage_margin_mm, flat)
    thin = band & ~thick
    rim = morphology.dilation(bone_c, params.cartilage_rim_mm, cs)
    beyond = thin & ~rim
    step = max(cs) * 1.01
    pieces = morphology.reconstruct(morphology.dilation(rim, step, cs) & beyond, beyond)
    labels, sizes = morphology.label(pieces)
    if sizes.size <= 1:
        return np.zeros(bone.shape, dtype=bool)
    ml = sizes * float(np.prod(cs)) / 1000.0
    body_c = body[pick][crop]
    depth = _per_piece_mean(labels, sizes.size, depth_front_to_back(body_c)[:, :, None])
    offset = _per_piece_mean(labels, sizes.size, offset_from_midline_mm(body_c, cs[2])[:, None, :])
    keep = (ml >= params.cartilage_min_ml) & (ml <= params.cartilage_max_ml)
    keep &= (depth <= params.cartilage_front) & (np.abs(offset) >= params.cartilage_lateral_mm)
    keep[0] = False
    if not keep.any():
        return np.zeros(bone.shape, dtype=bool)
    cartilage = keep[labels]
    cartilage |= morphology.dilation(cartilage, params.cartilage_rim_mm + step, cs) & thin & rim
    full = morphology.repeat_blocks(cartilage, factors, ct.shape) & allowed & ~bone
    # blocks that hold a bone voxel were left out above: take their cartilage-density voxels next to
    # the pieces found, at full resolution (one block's width)
    fine = allowed & ~bone & (ct >= params.cartilage_min_hu) & (ct < params.cartilage_max_hu)
    return grow_into(full, fine, max(factors[1:]) - 1)
