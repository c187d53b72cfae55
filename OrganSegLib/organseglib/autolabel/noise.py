"""Image noise of a CT, measured in the patient's soft tissue, and a light smoothing when it is high.

The paper's thresholds (-150 HU for air, 200 HU for bone) assume the noise of a diagnostic CT (a
standard deviation of 10-30 HU in soft tissue). On a low-dose scan (sd 60-100 HU) fat at -100 HU
crosses -150 HU in a third of its voxels, so the "air" percolates through fat and the lung label leaks
into it; muscle at 50 HU crosses 200 HU in one voxel of twenty and ends up as "bone". Smoothing the
CT over about 1.5 mm before thresholding restores the separation the paper relies on (ours, not the
paper's: ``NoiseParams``).

The noise is estimated from differences between voxels ``lag_mm`` apart in-plane, among voxels of
soft-tissue density (-300..300 HU): ``sd = 1.4826 * MAD / sqrt(2)``. The lag reaches past the
correlation length of reconstructed CT noise (a voxel-to-voxel difference would under-read correlated
noise); organ edges are few among the pairs and the median ignores them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from ..errors import InputError
from .neighbourhood import neighbourhood_mean_sd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NoiseParams:
    """When and how much to smooth before thresholding (ours; the paper thresholds the raw CT)."""

    smooth_above_hu: float = 35.0  # diagnostic CT: 10-30 HU in soft tissue; low-dose: 60-100 HU
    sigma_mm: float = 1.5  # Gaussian sigma: ~4x less white noise at 0.8 mm voxels, edges move < 1 voxel
    min_sigma_voxels: float = 0.8  # on coarse voxels (3 mm) 1.5 mm would hardly smooth: at least this
    lag_mm: float = 2.0  # in-plane distance of the voxel pairs whose differences measure the noise

    def __post_init__(self) -> None:
        if not self.smooth_above_hu >= 0:
            raise InputError(f"smooth_above_hu must be >= 0 HU (a large value never smooths); got {self.smooth_above_hu!r}")
        if not 0.0 <= self.sigma_mm <= 5.0:
            raise InputError(f"sigma_mm must be between 0 and 5 mm; got {self.sigma_mm!r}")
        if not 0.0 <= self.min_sigma_voxels <= 3.0:
            raise InputError(f"min_sigma_voxels must be between 0 and 3; got {self.min_sigma_voxels!r}")
        if not 0.5 <= self.lag_mm <= 10.0:
            raise InputError(f"lag_mm must be between 0.5 and 10 mm; got {self.lag_mm!r}")


def noise_sd(ct: np.ndarray, spacing: tuple[float, float, float], lag_mm: float = 2.0,
             max_slices: int = 24) -> float:
    """Robust standard deviation (HU) of the noise in soft tissue; nan when there is none."""
    step_k = max(1, ct.shape[0] // max_slices)
    sub = ct[::step_k]
    lag = max(1, int(round(lag_mm / float(spacing[2]))))
    a, b = sub[:, :, :-lag], sub[:, :, lag:]
    soft = (a > -300) & (a < 300) & (b > -300) & (b < 300)
    if np.count_nonzero(soft) < 1000:
        return float("nan")
    diff = (a[soft] - b[soft]).astype(np.float32)
    mad = float(np.median(np.abs(diff - np.median(diff))))
    return 1.4826 * mad / np.sqrt(2.0)


def smoothed_if_noisy(ct: np.ndarray, spacing: tuple[float, float, float], params: NoiseParams) -> tuple[np.ndarray, float]:
    """``(ct_for_thresholds, noise_sd)``: the CT itself when its noise is at most
    ``params.smooth_above_hu``, else a Gaussian-smoothed float32 copy (sigma ``params.sigma_mm``)."""
    sd = noise_sd(ct, spacing, params.lag_mm)
    if not np.isfinite(sd) or sd <= params.smooth_above_hu or params.sigma_mm <= 0:
        return ct, sd
    sigma = [max(params.sigma_mm / float(s), params.min_sigma_voxels) for s in spacing]
    log.info("noise sd %.0f HU in soft tissue > %.0f HU: thresholds read a CT smoothed over %.1f mm",
             sd, params.smooth_above_hu, params.sigma_mm)
    out = ndi.gaussian_filter(np.asarray(ct, dtype=np.float32), sigma, truncate=3.0)
    return out, sd


def noise_speckle(ct: np.ndarray, dense: np.ndarray, threshold_hu: float, below_hu: float, sd_factor: float,
                  sd_hu: float) -> np.ndarray:
    """The voxels of ``dense`` (``ct >= threshold_hu``) that are noise, not tissue: below ``below_hu``, in
    a 3×3×3 neighbourhood whose mean is below the threshold and whose spread is at most ``sd_factor``
    times the scan's noise (``sd_hu``): a homogeneous region just below the threshold, such as blood at
    180 HU in the portal venous phase, where one voxel in four or five crosses 200 HU and the specks
    join (26-connected, they percolate above about one in ten) and touch the spine. Bone there has
    a spread far above the noise (cortex beside marrow, fat or muscle). Voxels on the array's faces
    are never speckle. Returns a mask (all False when ``sd_hu`` is not finite)."""
    out = np.zeros(dense.shape, dtype=bool)
    if not np.isfinite(sd_hu) or sd_hu <= 0 or min(dense.shape) < 3:
        return out
    ct = np.ascontiguousarray(ct)
    flat = np.flatnonzero(dense)
    flat = flat[ct.reshape(-1).take(flat) < below_hu]
    K, J, I = dense.shape
    k, j, i = flat // (J * I), (flat // I) % J, flat % I
    flat = flat[(k > 0) & (k < K - 1) & (j > 0) & (j < J - 1) & (i > 0) & (i < I - 1)]
    if len(flat) == 0:
        return out
    mean, sd = neighbourhood_mean_sd(ct, flat)
    out.reshape(-1)[flat[(mean < threshold_hu) & (sd <= sd_factor * sd_hu)]] = True
    return out
