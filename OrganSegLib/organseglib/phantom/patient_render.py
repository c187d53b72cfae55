"""Render a patient-like phantom: paint tissues, HU per phase with texture, scanner blur, noise, field of view.

``render_patient(patient, scan, spacing)`` is deterministic: every random draw lives in
``PatientParams`` and ``ScanParams`` (their seeds included).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..volume import Volume
from . import anatomy as T
from .anatomy import TISSUE_TO_LABEL
from .patient import PatientParams
from .patient_paint import paint_patient
from .urinary_tract import UROGRAPHIC_PHASES
from .scanner import ScanParams, correlated_noise, reconstruction_circle, scanner_blur

AIR_HU = -1024.0


def patient_grid(scan: ScanParams, spacing: Sequence[float], shape: Optional[Sequence[int]] = None) -> Volume:
    """The (uint8 zeros) grid of an acquisition: a square ``fov_mm`` wide centred on the reconstruction
    centre, covering ``scan.z_range``; axial direction (i to patient left, j posterior, k superior)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise InputError(f"spacing must be three positive mm values (i, j, k); got {tuple(spacing)!r}")
    z0, z1 = scan.z_range
    if shape is None:
        n_xy = max(int(round(scan.fov_mm / spacing[0])), 1), max(int(round(scan.fov_mm / spacing[1])), 1)
        shape = (max(int(round((z1 - z0) / spacing[2])), 1), n_xy[1], n_xy[0])
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape must be three positive sizes (K, J, I); got {shape!r}")
    direction = np.diag([-1.0, -1.0, 1.0])
    extent = (np.asarray(shape[::-1]) - 1) * spacing
    centre = np.array([0.0, scan.centre_y, (z0 + z1) / 2.0])
    origin = centre - direction @ (extent / 2.0)
    return Volume.from_geometry(np.zeros(shape, dtype=np.uint8), spacing, origin, direction)


def _smooth_field(shape, spacing, sigma_mm: float, seed) -> np.ndarray:
    """A smooth Gaussian random field (SD ≈ 1), made on a coarse grid and interpolated (cheap at any size)."""
    rng = np.random.default_rng(seed)
    if min(spacing) >= sigma_mm / 2.0:  # coarse voxels: filter white noise on the grid itself
        field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32),
                                        [sigma_mm / s for s in spacing], mode="wrap", truncate=3.0)
        field /= max(float(field.std()), 1e-6)
        return field
    step = sigma_mm  # fine voxels: one sample per sigma on a coarse grid, interpolated
    coarse = [max(int(np.ceil(n * s / step)) + 2, 2) for n, s in zip(shape, spacing)]
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), 1.0, mode="wrap")
    field /= max(float(field.std()), 1e-6)
    zoom = [n / c for n, c in zip(shape, coarse)]
    out = ndimage.zoom(field, zoom, order=1, grid_mode=True, mode="grid-wrap")
    return out[:shape[0], :shape[1], :shape[2]]


def paint_grid(patient: PatientParams, grid: Volume, table: bool, slab: int = 24) -> np.ndarray:
    """Tissue classes (uint8, K, J, I) of ``patient`` on ``grid`` (axis-aligned), painted in slabs of z."""
    K, J, I = grid.shape
    m = grid.ijk_to_ras
    x, y = m[0, 0] * np.arange(I) + m[0, 3], m[1, 1] * np.arange(J) + m[1, 3]
    z = m[2, 2] * np.arange(K) + m[2, 3]
    tissue = np.empty(grid.shape, dtype=np.uint8)
    urography = patient.phase in UROGRAPHIC_PHASES
    for k0 in range(0, K, slab):
        tissue[k0:k0 + slab] = paint_patient(patient.anatomy, x, y, z[k0:k0 + slab], table=table, urography=urography,
                                             bladder_contrast=patient.bladder_contrast)
    return tissue


def render_patient(patient: PatientParams, scan: ScanParams, spacing: Sequence[float],
                   shape: Optional[Sequence[int]] = None, slab: int = 24):
    """CT (float32 HU) and labels (uint8, CT-ORG) Volumes and the tissue classes of one acquisition."""
    grid = patient_grid(scan, spacing, shape)
    tissue = paint_grid(patient, grid, scan.table, slab)
    sp = tuple(float(s) for s in grid.array_spacing[::-1])
    ct = np.asarray(patient.hu, dtype=np.float32)[tissue]
    tex_sd = np.asarray(patient.texture_sd, dtype=np.float32)
    if tex_sd.any():
        ct += tex_sd[tissue] * _smooth_field(grid.shape, sp[::-1], 4.0, [patient.texture_seed, 1])
    feces = tissue == T.FECES
    if feces.any():  # gas pockets in stool
        pockets = _smooth_field(grid.shape, sp[::-1], 2.5, [patient.texture_seed, 2]) > 1.0
        ct[feces & pockets] = patient.hu[T.GAS]
    scanner_blur(ct, sp, scan.psf_mm, scan.slice_mm)
    if scan.noise_sd > 0:
        ct += correlated_noise(grid.shape, sp, scan.noise_sd, scan.noise_fc, scan.slice_mm, scan.noise_seed)
    m = grid.ijk_to_ras
    K, J, I = grid.shape
    inside = reconstruction_circle(m[0, 0] * np.arange(I) + m[0, 3], m[1, 1] * np.arange(J) + m[1, 3],
                                   scan.fov_mm, scan.centre_y)
    ct[:, ~inside] = AIR_HU
    tissue[:, ~inside] = T.AIR
    labels = TISSUE_TO_LABEL[tissue]
    np.clip(ct, -1024.0, 3071.0, out=ct)
    np.rint(ct, out=ct)
    return grid.with_array(ct), grid.with_array(labels), tissue
