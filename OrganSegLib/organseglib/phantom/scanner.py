"""The scanner half of the patient-like phantom: field of view, slice thickness, blur and noise.

``ScanParams.sample(rng, region)`` draws the acquisition (what part of the body, reconstruction
diameter, slice thickness, kernel sharpness, noise level); the functions below apply it
deterministically:

* ``slice_kernel``: the slice sensitivity profile, a box ``slice_mm`` wide, integrated over each voxel
  of the grid along z (a 0.6 mm slice on a 3 mm grid averages nothing; a 5 mm slice on a 1 mm grid
  averages five voxels);
* ``scanner_blur``: that profile along z, and in-plane a Gaussian PSF (``psf_mm``, standard deviation)
  plus the pixel's own box (standard deviation spacing/√12);
* ``correlated_noise``: white noise shaped by a filtered-back-projection noise power spectrum
  NPS(f) ∝ (f + f0)·exp(−(f/fc)²) in-plane (a ramp rolled off by the kernel; Kijewski & Judy 1987,
  Boedeker et al. 2007), aliased onto the grid and averaged over the pixel, and by the slice profile
  along z, then scaled to ``noise_sd``. Measured on real scans (scripts/measure_real_hu.py): lag-1
  autocorrelation 0.65 in-plane at 0.78 mm (ircad1_07 liver), −0.01 at 3 mm (abdomen_totalseg liver);
  this model gives the same trend (positive at fine pixels, near zero at 3 mm).
* ``reconstruction_circle``: voxels outside the reconstruction diameter are air (-1024 HU) and
  background, so a body wider than the field of view is cut (truncation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.fft
from scipy import ndimage

from ..errors import InputError

# z ranges (mm, z = 0 at the liver dome) of the scanned regions; "both" is chest-abdomen-pelvis.
SCAN_Z = {"chest": (-60.0, 250.0), "abdomen": (-335.0, 25.0), "both": (-335.0, 250.0)}
REGIONS = ("chest", "abdomen", "both", "slab", "any")
F0 = 0.03  # cycles/mm: the NPS does not vanish at f = 0 (reconstruction interpolation, scatter)


@dataclass(frozen=True)
class ScanParams:
    """One acquisition: z range (mm), reconstruction diameter, slice thickness, blur, noise."""

    z_range: tuple         # (z0, z1) mm scanned, z = 0 at the liver dome
    fov_mm: float          # reconstruction diameter (the circle outside which the image is air)
    centre_y: float        # y (mm) of the reconstruction centre (patient centring in the bore)
    slice_mm: float        # slice thickness (FWHM of the box-shaped slice profile), 0.6-5 mm
    psf_mm: float          # in-plane Gaussian PSF standard deviation (mm)
    noise_sd: float        # HU, standard deviation of the noise on the output grid
    noise_fc: float        # cycles/mm: the kernel's roll-off of the noise power spectrum
    noise_seed: int
    table: bool = True

    def __post_init__(self):
        z0, z1 = self.z_range
        if not z1 > z0:
            raise InputError(f"ScanParams.z_range must be (z0, z1) with z1 > z0 (mm); got {self.z_range!r}")
        for name in ("fov_mm", "slice_mm", "noise_fc"):
            if not getattr(self, name) > 0:
                raise InputError(f"ScanParams.{name} must be > 0; got {getattr(self, name)!r}")
        if self.psf_mm < 0 or self.noise_sd < 0:
            raise InputError(f"ScanParams.psf_mm and noise_sd must be ≥ 0; got {self.psf_mm!r}, {self.noise_sd!r}")

    @staticmethod
    def sample(rng: np.random.Generator, region: str = "any", slice_mm: Optional[float] = None,
               body_width_mm: Optional[float] = None) -> "ScanParams":
        """Draw an acquisition of ``region`` (chest, abdomen, both = chest-abdomen-pelvis, slab, any).

        Slice thickness 0.6-5 mm (clinical range: thin reconstructions to 5 mm routine); reconstruction
        diameter 0.9-1.35 times the body's width (``body_width_mm``; else 300-500 mm) within 250-500 mm,
        so wide patients are sometimes truncated; kernel from soft to sharp
        (PSF 0.8 → 0.4 mm, NPS roll-off fc 0.28 → 0.45 cycles/mm, i.e. an NPS peak at 0.2-0.32 cycles/mm as
        reported for body kernels, e.g. Solomon et al., Med Phys 39:4119, 2012); noise SD 6-35 HU on the output grid
        (real: 10.7 HU at 3 mm in abdomen_totalseg, 12.3 HU at 0.78 mm in ircad1_07, liver residuals).
        """
        if region not in REGIONS:
            raise InputError(f"region must be one of {REGIONS}; got {region!r}")
        u = rng.uniform
        if region == "any":
            region = str(rng.choice(["chest", "abdomen", "both", "slab"], p=[0.25, 0.4, 0.2, 0.15]))
        if region == "slab":
            length = u(20.0, 100.0)
            centre = u(-300.0, 200.0)
            z_range = (centre - length / 2.0, centre + length / 2.0)
        else:
            z0, z1 = SCAN_Z[region]
            z_range = (z0 + u(-20.0, 25.0), z1 + u(-25.0, 20.0))
        sharp = u()
        return ScanParams(
            z_range=z_range, centre_y=u(-30.0, 5.0),
            fov_mm=float(np.clip(body_width_mm * u(0.9, 1.35), 250.0, 500.0)) if body_width_mm else u(300.0, 500.0),
            slice_mm=float(slice_mm) if slice_mm is not None else float(np.exp(u(np.log(0.6), np.log(5.0)))),
            psf_mm=0.8 - 0.4 * sharp, noise_sd=u(6.0, 35.0), noise_fc=0.28 + 0.17 * sharp,
            noise_seed=int(rng.integers(2 ** 31)), table=bool(u() < 0.9))


def slice_kernel(slice_mm: float, spacing_mm: float) -> np.ndarray:
    """Weights along z of a box ``slice_mm`` wide centred on a voxel: its overlap with each voxel."""
    half = slice_mm / 2.0
    n = int(np.ceil(half / spacing_mm - 0.5)) if half > spacing_mm / 2 else 0
    centres = np.arange(-n, n + 1) * spacing_mm
    lo = np.maximum(centres - spacing_mm / 2.0, -half)
    hi = np.minimum(centres + spacing_mm / 2.0, half)
    w = np.clip(hi - lo, 0.0, None)
    return w / w.sum()


def scanner_blur(ct: np.ndarray, spacing, psf_mm: float, slice_mm: float) -> np.ndarray:
    """Blur ``ct`` (K, J, I) in place: slice profile along k, PSF + pixel box in-plane. ``spacing`` is (i, j, k) mm."""
    si, sj, sk = spacing
    w = slice_kernel(slice_mm, sk)
    if w.size > 1:
        ndimage.correlate1d(ct, w, axis=0, output=ct, mode="nearest")
    for axis, s in ((1, sj), (2, si)):
        sigma = np.sqrt(psf_mm ** 2 + s * s / 12.0) / s
        ndimage.gaussian_filter1d(ct, sigma, axis=axis, output=ct, mode="nearest", truncate=3.0)
    return ct


def noise_power(shape_ji, spacing_ij, fc: float) -> np.ndarray:
    """In-plane NPS on the rfft2 grid of (J, I): ramp·roll-off, averaged over the pixel, aliased once."""
    J, I = shape_ji
    si, sj = spacing_ij
    fy = scipy.fft.fftfreq(J, d=sj)[:, None]
    fx = scipy.fft.rfftfreq(I, d=si)[None, :]
    total = np.zeros((J, fx.shape[1]))
    for m in (-1, 0, 1):
        for n in (-1, 0, 1):
            gx, gy = fx + m / si, fy + n / sj
            f = np.sqrt(gx * gx + gy * gy)
            box = np.exp(-(2 * np.pi) ** 2 * (gx * gx * si * si + gy * gy * sj * sj) / 12.0)
            total += (f + F0) * np.exp(-(f / fc) ** 2) * box * box
    return total


def correlated_noise(shape, spacing, sd: float, fc: float, slice_mm: float, seed: int, slab: int = 32) -> np.ndarray:
    """Noise (float32, shape (K, J, I)) with the NPS above in-plane, the slice profile along z, SD ``sd``."""
    K, J, I = shape
    si, sj, sk = spacing
    rng = np.random.default_rng([seed, 2])
    amp = np.sqrt(noise_power((J, I), (si, sj), fc)).astype(np.float32)
    out = np.empty(shape, dtype=np.float32)
    for k0 in range(0, K, slab):
        white = rng.standard_normal((min(slab, K - k0), J, I), dtype=np.float32)
        out[k0:k0 + slab] = scipy.fft.irfft2(scipy.fft.rfft2(white, axes=(1, 2)) * amp, s=(J, I), axes=(1, 2))
    w = slice_kernel(slice_mm, sk)
    if w.size > 1:
        ndimage.correlate1d(out, w, axis=0, output=out, mode="wrap")
    std = float(out.std())
    if std > 0:
        out *= np.float32(sd / std)
    return out


def reconstruction_circle(x: np.ndarray, y: np.ndarray, fov_mm: float, centre_y: float) -> np.ndarray:
    """(J, I) mask of the pixels inside the reconstruction diameter (x (I,), y (J,) mm)."""
    return (x[None, :] ** 2 + (y[:, None] - centre_y) ** 2) <= (fov_mm / 2.0) ** 2
