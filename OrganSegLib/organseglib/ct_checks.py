"""Plausibility checks that an image holds CT intensities in Hounsfield units.

A CT in HU has air near −1000 (outside the body, in the lungs or bowel), soft tissue near 0..100 and
bone up to about 3000. Two common mistakes look different:

* an MR (or PET, or any non-CT) image: no voxel anywhere near −1000, values from 0 upward;
* a CT stored unscaled (raw 0..4095 detector values, DICOM RescaleIntercept −1024 not applied):
  no negative values, air near 0 and soft tissue near 1024.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_HU = -1000.0
MIN_AIR_FRACTION = 0.002  # at least 0.2 % of voxels must be air-like (≤ −500 HU): lungs, bowel gas or outside air

# The voxel sizes and fields of view a body CT can have. Clinical scanners reconstruct 0.2-1 mm in plane
# and 0.5-10 mm slices (10 mm only in old protocols); below 0.1 mm is micro-CT of specimens (or a header
# in the wrong unit), and at 20 mm an adult kidney is three voxels deep: no organ is left to segment.
# A whole-body scan covers under 2 m and the widest bore is 0.9 m: a longer axis is a wrong spacing (a
# header in cm read as mm), and its 3 mm network grid would not fit in memory.
MIN_SPACING_MM = 0.1
MAX_SPACING_MM = 20.0
MAX_EXTENT_MM = 2000.0


@dataclass(frozen=True)
class IntensitySummary:
    minimum: float
    maximum: float
    p01: float
    p50: float
    p99: float
    air_fraction: float

    def describe(self) -> str:
        return (f"min {self.minimum:.0f}, 1% {self.p01:.0f}, median {self.p50:.0f}, 99% {self.p99:.0f}, "
                f"max {self.maximum:.0f}; {100 * self.air_fraction:.1f}% of voxels ≤ −500")


def _exact_percentiles(flat: np.ndarray, q: list[float]) -> list[float]:
    """Exact percentiles (numpy's default linear method); integers of modest range by a histogram,
    in chunks (no full-size copy), anything else by ``np.percentile``."""
    if not np.issubdtype(flat.dtype, np.integer):
        return [float(v) for v in np.percentile(flat, q)]
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo >= (1 << 22):
        return [float(v) for v in np.percentile(flat, q)]
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    step = 1 << 22
    for start in range(0, flat.size, step):
        counts += np.bincount(flat[start:start + step].astype(np.int64) - lo, minlength=counts.size)
    cum = np.cumsum(counts)  # cum[v - lo] = number of voxels ≤ v
    out = []
    for p in q:
        pos = p / 100.0 * (flat.size - 1)  # between the sorted values at floor(pos) and ceil(pos)
        below = int(np.searchsorted(cum, int(np.floor(pos)), side="right")) + lo
        above = int(np.searchsorted(cum, int(np.ceil(pos)), side="right")) + lo
        out.append(below + (above - below) * (pos - np.floor(pos)))
    return out


def summarize_intensities(array: np.ndarray, max_samples: int = 2_000_000, exact: bool = False) -> IntensitySummary:
    """Intensity statistics. Minimum and maximum are always exact; the percentiles and air fraction
    come from a strided subsample of ``max_samples`` voxels on large volumes unless ``exact``."""
    full = np.asarray(array).reshape(-1)
    lo, hi = full.min(), full.max()
    flat = full
    if not exact and flat.size > max_samples:
        flat = flat[:: flat.size // max_samples]
    if exact:
        p01, p50, p99 = _exact_percentiles(flat, [1, 50, 99])
        air = float(np.count_nonzero(flat <= -500)) / flat.size
    else:
        p01, p50, p99 = np.percentile(flat.astype(np.float64), [1, 50, 99])
        air = float(np.mean(flat <= -500))
    return IntensitySummary(
        minimum=float(lo), maximum=float(hi), p01=float(p01), p50=float(p50), p99=float(p99), air_fraction=air,
    )


def _soft_tissue_near_1024(array: np.ndarray, max_samples: int = 2_000_000) -> bool:
    """True when most non-air voxels sit at 850..1200: soft tissue (−174..176 HU) shifted by +1024."""
    flat = np.asarray(array).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: flat.size // max_samples]
    body = flat[flat > 200]
    return body.size > 0 and float(np.mean((body >= 850) & (body <= 1200))) >= 0.4


def nonfinite_problem(array: np.ndarray) -> str:
    """What is wrong when a float array holds NaN or infinite voxels ("" when none does)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return ""
    # NaN and inf propagate into the minimum and maximum: two reductions, no full-size temporary
    if np.isfinite(np.minimum.reduce(array, axis=None)) and np.isfinite(np.maximum.reduce(array, axis=None)):
        return ""
    bad = int(np.count_nonzero(~np.isfinite(array)))
    return (f"the image has {bad} NaN or infinite voxels; replace them (e.g. with −1000 HU outside the field of "
            "view) before segmenting")


def ct_problems(array: np.ndarray) -> list[str]:
    """Reasons why ``array`` does not look like CT in HU (empty list when it does).

    Each reason says what was seen and how to fix it.
    """
    array = np.asarray(array)
    if array.size == 0:
        return ["the image has no voxels"]
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        return [f"voxel type {array.dtype} is not a real number type; CT is stored as integers or floats in HU"]
    nonfinite = nonfinite_problem(array)
    if nonfinite:
        return [nonfinite]
    s = summarize_intensities(array)
    if s.minimum >= 0 and s.maximum <= 4096 + 1024 and _soft_tissue_near_1024(array):
        return [f"intensities look like CT stored without its rescale intercept ({s.describe()}): air should be "
                "near −1000 HU. Subtract 1024 (apply DICOM RescaleSlope/RescaleIntercept) and try again"]
    if s.minimum > -200:
        return [f"no voxel is air-like (≤ −200) ({s.describe()}): this does not look like CT in Hounsfield units "
                "(MR, PET or a normalised image?). OrganSeg segments CT only"]
    if s.air_fraction < MIN_AIR_FRACTION and s.p01 > -500:
        return [f"almost no air (≤ −500 HU) anywhere ({s.describe()}): this does not look like a body CT in HU"]
    if s.p99 < -300:
        return [f"nearly all voxels are air ({s.describe()}): the image holds no body, or the intensities are "
                "not in HU"]
    if s.maximum > 40000 or s.minimum < -40000:
        return [f"intensities far outside the CT range −3024..30000 HU ({s.describe()}): check the rescale "
                "slope and intercept"]
    return []


def grid_problem(spacing, shape) -> str:
    """Why a grid of voxel size ``spacing`` (mm, any axis order) and ``shape`` (same order) cannot be a body
    CT ("" when it can): a voxel under ``MIN_SPACING_MM`` or over ``MAX_SPACING_MM``, or an axis longer
    than ``MAX_EXTENT_MM``."""
    spacing = [float(s) for s in spacing]
    shown = " × ".join(f"{s:g}" for s in spacing)
    if min(spacing) < MIN_SPACING_MM or max(spacing) > MAX_SPACING_MM:
        return (f"voxel size {shown} mm is outside what a body CT can have ({MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm): "
                "a micro-CT, or a header whose spacing is in the wrong unit; fix the spacing in the header "
                "(NIfTI pixdim, NRRD space directions) and try again")
    extent = [s * n for s, n in zip(spacing, shape)]
    if max(extent) > MAX_EXTENT_MM:
        shown_extent = " × ".join(f"{e:.0f}" for e in extent)
        return (f"the scan would measure {shown_extent} mm ({' × '.join(str(int(n)) for n in shape)} voxels of "
                f"{shown} mm): longer than any body ({MAX_EXTENT_MM:.0f} mm at most); the spacing in the header is "
                "wrong (cm read as mm?): fix it and try again")
    return ""
