"""Real-CT confounders painted into the phantoms, with exact truth (issue 12), for the auto-labeler
tests. The phantom module itself is left alone: these helpers take a rendered phantom and add

* ``paint_blood_pools``: contrast-filled heart chambers and an aorta leaning on the spine
  (300-600 HU, blurred by a voxel), only on voxels whose truth is background, so the truth stays
  exact;
* ``add_low_dose_noise``: correlated Gaussian noise (white noise smoothed over ``corr_mm``, scaled to
  ``sd_hu``), as on a low-dose scan;
* ``paint_bowel_gas``: gas pockets (-1000 HU) with a partial-volume rim in the abdomen's soft tissue;
* ``crop_in_plane``: a field of view that cuts the lungs on both sides.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from organseglib.volume import Volume

BONE, LUNGS = 5, 3


def _spine_front(labels: np.ndarray, k: int) -> tuple[int, int]:
    """(j of the vertebral body's anterior edge, i of the midline) on slice ``k`` (j grows posterior)."""
    mid = labels.shape[2] // 2
    near = labels[k][:, mid - 3:mid + 4] == BONE
    rows = np.flatnonzero(near.any(axis=1))
    back = rows[rows > labels.shape[1] // 2]
    return int(back.min()), mid


def _blend(ct: np.ndarray, mask: np.ndarray, hu: float, free: np.ndarray) -> None:
    w = ndi.gaussian_filter(mask.astype(np.float32), 0.6) * free
    ct += w * (hu - ct)


def paint_blood_pools(ct: Volume, labels: Volume, heart_hu: float = 450.0,
                      aorta_hu: float = 520.0) -> tuple[Volume, np.ndarray]:
    """Heart and aorta full of contrast on a chest phantom (the aorta touching the vertebral bodies);
    returns the CT and the pools' mask (background voxels only)."""
    a = ct.array.astype(np.float32).copy()
    lab = labels.array
    sk, sj, si = ct.array_spacing
    ks = np.flatnonzero((lab == LUNGS).any(axis=(1, 2)))
    k0, k1 = int(ks.min()), int(ks.max())
    kk, jj, ii = np.indices(a.shape, sparse=True)
    free = lab == 0
    aorta = np.zeros(a.shape, bool)
    r = 12.0
    # the phantom's spine is straight: the vertebral bodies' front is the median over the slices of
    # what each reads (at a disc, whose label is background, the bone nearest the front is the arch)
    fronts = [_spine_front(lab, k) for k in range(k0, k1 + 1)]
    front = int(np.median([f for f, _ in fronts]))
    mid = fronts[0][1]
    for k in range(k0, k1 + 1):
        cj, ci = front * sj - r, mid * si + 14.0  # touches the vertebral body, left of the midline
        aorta[k] = ((jj[0] * sj - cj) ** 2 + (ii[0] * si - ci) ** 2) <= r * r
    kc = k0 + 0.35 * (k1 - k0)
    heart = (((kk - kc) * sk / 45.0) ** 2 + ((jj - (front - 75.0 / sj)) * sj / 50.0) ** 2
             + ((ii - mid - 10.0 / si) * si / 55.0) ** 2) <= 1.0
    _blend(a, heart & free, heart_hu, free)
    _blend(a, aorta & free, aorta_hu, free)
    return ct.with_array(a), (heart | aorta) & free


def add_low_dose_noise(ct: Volume, sd_hu: float = 80.0, corr_mm: float = 1.0, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(ct.shape).astype(np.float32)
    sigma = [corr_mm / s for s in ct.array_spacing]
    noise = ndi.gaussian_filter(noise, sigma)
    noise *= np.float32(sd_hu / noise.std())
    return ct.with_array(ct.array.astype(np.float32) + noise)


def paint_bowel_gas(ct: Volume, labels: Volume, count: int = 6, radius_mm: float = 15.0, seed: int = 0) -> Volume:
    """Gas pockets in the soft tissue below the lungs (truth unchanged: background stays background)."""
    rng = np.random.default_rng(seed)
    a = ct.array.astype(np.float32).copy()
    lab = labels.array
    lung_k = np.flatnonzero((lab == LUNGS).any(axis=(1, 2)))
    below = lung_k.min() if lung_k.size else a.shape[0]
    soft = (lab == 0) & (a > -200) & (a < 150)
    soft[below - 2:] = False
    soft = ndi.binary_erosion(soft, iterations=int(np.ceil(radius_mm / min(ct.array_spacing))) + 1)
    cand = np.argwhere(soft)
    kk, jj, ii = np.indices(a.shape, sparse=True)
    sk, sj, si = ct.array_spacing
    gas = np.zeros(a.shape, bool)
    for c in cand[rng.choice(len(cand), size=min(count, len(cand)), replace=False)]:
        gas |= (((kk - c[0]) * sk) ** 2 + ((jj - c[1]) * sj) ** 2 + ((ii - c[2]) * si) ** 2) <= radius_mm ** 2
    _blend(a, gas, -1000.0, lab == 0)
    return ct.with_array(a)


def crop_in_plane(volume: Volume, lo: int, hi: int) -> Volume:
    """Keep array columns ``lo:hi`` along i (patient left-right): a field of view cutting both lungs."""
    m = volume.ijk_to_ras.copy()
    m[:3, 3] = m[:3, 3] + m[:3, 0] * lo
    return Volume(np.ascontiguousarray(volume.array[:, :, lo:hi]), m)
