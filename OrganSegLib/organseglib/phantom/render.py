"""Render the phantom anatomy on a voxel grid: tissue classes -> HU, partial-volume blur, noise."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..volume import Volume
from . import anatomy
from .anatomy import Anatomy, REGION_Z, TISSUE_TO_LABEL
from .patient import PatientParams
from .patient_render import render_patient
from .scanner import REGIONS as PATIENT_REGIONS
from .scanner import ScanParams

# Bumped whenever the same seed renders a different CT, so that caches of renders (benchmarks) expire.
# 2: partial volume as a box one voxel wide (2026-11-26).
# 3: the patient-like preset (realism="patient", issue 11); the legacy default renders as in 2.
RENDER_VERSION = 3
REALISMS = ("legacy", "patient")

# HU of each tissue class without / with intravenous contrast (portal venous phase).
_HU = {
    anatomy.AIR: -1000, anatomy.FAT: -100, anatomy.MUSCLE: 45, anatomy.LUNG: -860,
    anatomy.LUNG_VESSEL: 40, anatomy.CORTEX: 900, anatomy.MARROW: 250, anatomy.LIVER: 60,
    anatomy.KIDNEY: 32, anatomy.BLADDER: 10, anatomy.AORTA: 42, anatomy.HEART: 42, anatomy.SPLEEN: 50,
    anatomy.DISC: 85, anatomy.TABLE_CORE: -550, anatomy.TABLE_SHELL: 380, anatomy.GAS: -990,
    anatomy.TRACHEA: -990,
}
_CONTRAST = {anatomy.LIVER: 115, anatomy.KIDNEY: 210, anatomy.AORTA: 320, anatomy.HEART: 280,
             anatomy.SPLEEN: 120, anatomy.LUNG_VESSEL: 250}


def _lut(contrast: bool) -> np.ndarray:
    lut = np.zeros(len(TISSUE_TO_LABEL), dtype=np.float32)
    for cls, hu in _HU.items():
        lut[cls] = _CONTRAST.get(cls, hu) if contrast else hu
    return lut


# Presets: (shape (K, J, I), spacing (i, j, k) mm). None: sized to the field of view (420 mm across, the
# region's z range).
SIZES = {
    "tiny": ((None, None, None), (6.0, 6.0, 6.0)),
    "small": ((None, None, None), (3.0, 3.0, 3.0)),
    "clinical": ((300, 512, 512), (0.8, 0.8, 1.5)),
}


@dataclass(frozen=True)
class Phantom:
    """A synthetic CT (float32 HU) and its exact organ labels (uint8, CT-ORG values) on one grid."""

    ct: Volume
    labels: Volume
    anatomy: Anatomy
    seed: int
    region: str
    patient: Optional[PatientParams] = None   # patient-like preset only: what was sampled
    scan: Optional[ScanParams] = None
    tissue: Optional[np.ndarray] = None       # patient-like preset only: tissue class of each voxel


def phantom_grid(region: str, size: str = "small", shape: Optional[Sequence[int]] = None,
                 spacing: Optional[Sequence[float]] = None, cropped: bool = False) -> Volume:
    """The empty grid (uint8 zeros) a phantom is rendered on, centred on the region.

    The direction is the usual axial one (i towards patient left, j posterior, k superior), so arrays
    look like Slicer's axial view of a NIfTI export.
    """
    if region not in REGION_Z:
        raise InputError(f"region must be one of {sorted(REGION_Z)}; got {region!r}")
    if size not in SIZES:
        raise InputError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    preset_shape, preset_spacing = SIZES[size]
    spacing = np.asarray(spacing if spacing is not None else preset_spacing, dtype=np.float64)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise InputError(f"spacing must be three positive mm values (i, j, k); got {tuple(spacing)!r}")
    z0, z1 = REGION_Z[region]
    fov_xy = 420.0 * (0.62 if cropped else 1.0)
    if cropped:
        z0, z1 = z0 + 0.25 * (z1 - z0), z1 - 0.2 * (z1 - z0)
    if shape is None:
        if preset_shape[0] is None or cropped:  # size the grid to the field of view
            shape = (int(round((z1 - z0) / spacing[2])), int(round(fov_xy / spacing[1])),
                     int(round(fov_xy / spacing[0])))
        else:
            shape = preset_shape
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape must be three positive sizes (K, J, I); got {shape!r}")
    direction = np.diag([-1.0, -1.0, 1.0])
    extent = (np.asarray(shape[::-1]) - 1) * spacing  # i, j, k
    centre = np.array([0.0, -20.0, (z0 + z1) / 2.0])
    origin = centre - direction @ (extent / 2.0)
    return Volume.from_geometry(np.zeros(shape, dtype=np.uint8), spacing, origin, direction)


def make_phantom(seed: int = 0, region: str = "abdomen", size: str = "small",
                 shape: Optional[Sequence[int]] = None, spacing: Optional[Sequence[float]] = None,
                 cropped: bool = False, contrast: bool = False, table: Optional[bool] = None,
                 noise_hu: Optional[float] = None, blur_mm: Optional[float] = None, slab: int = 24,
                 realism: str = "legacy", phase: Optional[str] = None, slice_mm: Optional[float] = None,
                 patient: Optional[PatientParams] = None, scan: Optional[ScanParams] = None) -> Phantom:
    """Render a seeded, anatomy-like CT phantom with exact labels.

    Args:
        seed: random seed for the anatomy and the noise (same seed, same phantom).
        region: ``"chest"``, ``"abdomen"`` (lung bases to femoral heads) or ``"both"``.
        size: preset grid ``"tiny"`` (6 mm, unit tests), ``"small"`` (3 mm, the network's resolution)
            or ``"clinical"`` (512×512×300 at 0.8×0.8×1.5 mm, benchmarks).
        shape, spacing: override the preset (shape (K, J, I), spacing (i, j, k) mm).
        cropped: a narrow field of view, so the body and organs are cut by the volume border.
        contrast: intravenous contrast (enhanced liver, kidneys, aorta, heart, lung vessels); with
            ``realism="patient"`` and no ``phase``, it means the portal venous phase.
        table: include the exam table under the patient (default: yes; sampled by the patient preset).
        noise_hu: standard deviation of the noise in HU (default 15 white; sampled by the patient preset).
        blur_mm: the scanner's point-spread function (Gaussian standard deviation, mm; default 0.8,
            sampled by the patient preset). The voxel's own averaging (a box one voxel wide, standard
            deviation spacing / sqrt(12)) is added to it.
        slab: slices painted at once (bounds memory on clinical sizes).
        realism: ``"legacy"`` (default: five organs in a uniform body, as RENDER_VERSION 2) or
            ``"patient"``: the patient-like preset (spleen, heart chambers, great and portal vessels,
            gut with gas/fluid/oral contrast, gallbladder, pancreas, muscles, kidney cortex/medulla/
            pelvis, bladder filling, contrast phase with HU measured on real scans, correlated noise,
            slice thickness, habitus, arms, sampled field of view and truncation). ``region`` may then
            also be ``"slab"`` or ``"any"``; the grid spans the sampled reconstruction diameter.
        phase: patient preset: one of ``hu_table.PHASES`` (``"none"``, ``"arterial"``, ``"portal"``,
            ``"nephrographic"``, ``"excretory"``; default: sampled among the first three).
        slice_mm: patient preset: slice thickness in mm (default: sampled in 0.6-5 mm).
        patient, scan: patient preset: render these parameters instead of sampling them from ``seed``.
    """
    if realism not in REALISMS:
        raise InputError(f"realism must be one of {REALISMS}; got {realism!r}")
    if realism == "patient":
        return _make_patient_phantom(seed, region, size, shape, spacing, cropped, contrast, table, noise_hu,
                                     blur_mm, slab, phase, slice_mm, patient, scan)
    noise_hu = 15.0 if noise_hu is None else noise_hu
    blur_mm = 0.8 if blur_mm is None else blur_mm
    table = True if table is None else table
    if noise_hu < 0 or blur_mm < 0:
        raise InputError(f"noise_hu and blur_mm must be ≥ 0; got {noise_hu!r}, {blur_mm!r}")
    grid = phantom_grid(region, size, shape, spacing, cropped)
    rng = np.random.default_rng(seed)
    anat = Anatomy.sample(rng)
    K, J, I = grid.shape
    m = grid.ijk_to_ras
    # The grid is axis-aligned: x depends on i only, y on j, z on k.
    X = (m[0, 0] * np.arange(I) + m[0, 3])[None, None, :]
    Y = (m[1, 1] * np.arange(J) + m[1, 3])[None, :, None]
    Zall = m[2, 2] * np.arange(K) + m[2, 3]
    tissue = np.empty(grid.shape, dtype=np.uint8)
    for k0 in range(0, K, slab):
        Z = Zall[k0:k0 + slab][:, None, None]
        tissue[k0:k0 + slab] = anatomy.paint(anat, X, Y, Z, contrast=contrast, table=table)
    labels = TISSUE_TO_LABEL[tissue]
    ct = _lut(contrast)[tissue]
    del tissue
    # Partial volume: a voxel averages a box one voxel wide, whose standard deviation is s / sqrt(12);
    # the scanner's PSF (blur_mm) adds to it. (Half a voxel, used before, overstated the box by 1.7x
    # and spread a bone's cortex over the neighbouring voxel at 3 mm.)
    sigma = [np.sqrt(blur_mm ** 2 + s * s / 12.0) / s for s in grid.array_spacing]
    ndimage.gaussian_filter(ct, sigma=sigma, output=ct, mode="nearest", truncate=3.0)
    noise_rng = np.random.default_rng([seed, 1])
    for k0 in range(0, K, slab):
        part = ct[k0:k0 + slab]
        part += noise_rng.standard_normal(part.shape, dtype=np.float32) * np.float32(noise_hu)
    np.clip(ct, -1024.0, 3071.0, out=ct)
    np.rint(ct, out=ct)
    return Phantom(ct=grid.with_array(ct), labels=grid.with_array(labels), anatomy=anat, seed=seed, region=region)


def _make_patient_phantom(seed, region, size, shape, spacing, cropped, contrast, table, noise_hu, blur_mm, slab,
                          phase, slice_mm, patient, scan) -> Phantom:
    """The ``realism="patient"`` branch of ``make_phantom``: sample (unless given), then render."""
    if region not in PATIENT_REGIONS:
        raise InputError(f"region must be one of {PATIENT_REGIONS} for realism='patient'; got {region!r}")
    if size not in SIZES:
        raise InputError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    for name, value in (("noise_hu", noise_hu), ("blur_mm", blur_mm), ("slice_mm", slice_mm)):
        if value is not None and (value < 0 or (name == "slice_mm" and value == 0)):
            raise InputError(f"{name} must be ≥ 0 (slice_mm > 0); got {value!r}")
    rng = np.random.default_rng([seed, 11])
    if phase is None and contrast:
        phase = "portal"
    if patient is None:
        patient = PatientParams.sample(rng, phase)
    if scan is None:
        pa = patient.anatomy
        scan = ScanParams.sample(rng, region, slice_mm, body_width_mm=2.0 * (pa.lean_a + pa.fat_mm))
        changes = {}
        if noise_hu is not None:
            changes["noise_sd"] = float(noise_hu)
        if blur_mm is not None:
            changes["psf_mm"] = float(blur_mm)
        if table is not None:
            changes["table"] = bool(table)
        if cropped:  # a narrow field of view, cut in z too (as the legacy option)
            z0, z1 = scan.z_range
            changes.update(fov_mm=260.0, z_range=(z0 + 0.25 * (z1 - z0), z1 - 0.2 * (z1 - z0)))
        if changes:
            scan = replace(scan, **changes)
    preset_shape, preset_spacing = SIZES[size]
    if spacing is None:
        spacing = preset_spacing if preset_shape[0] is None else (scan.fov_mm / 512.0, scan.fov_mm / 512.0, 1.5)
    ct, labels, tissue = render_patient(patient, scan, spacing, shape, slab)
    return Phantom(ct=ct, labels=labels, anatomy=patient.anatomy.base, seed=seed, region=region,
                   patient=patient, scan=scan, tissue=tissue)
