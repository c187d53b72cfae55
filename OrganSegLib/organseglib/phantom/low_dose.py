"""Low-dose noise added to a real CT: correlated noise and streaks (issue 21's reproduction of a low-dose
chest, for tests and ``scripts/experiment_low_dose.py``).

A held-out low-dose, respiratory-gated chest (2 mm slices) read about 32 HU of noise (SD) in fat, its
local SD reaching 61 HU at the 90th percentile: the noise of a low-dose scan is correlated (the
reconstruction kernel's noise power spectrum, ``scanner.noise_power``) and streaked (photon
starvation along the most attenuating, lateral paths through the shoulders). ``low_dose_noise`` draws
both on an axial stack:

* correlated noise with the kernel's spectrum in-plane and the slice profile along z
  (``scanner.correlated_noise``), of standard deviation ``sd_hu`` in the middle of the slice, rising
  towards its sides (``lateral_gain``: the lateral paths through the patient are the longest);
* per slice, ``streaks`` straight lines within ``streak_angle_deg`` of the left-right direction through
  random points near the middle of the slice, each a Gaussian profile ``streak_width_mm`` wide (SD) of
  ``streak_hu`` at its centre, dark and bright in turn (the paired streaks of photon starvation).

``add_low_dose_noise`` adds it to a CT of any axis order (drawn on its axial LPS stack, put back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .scanner import correlated_noise


@dataclass(frozen=True)
class LowDoseNoise:
    """The noise to add; defaults: issue 21's held-out low-dose chest (32 HU SD in fat)."""

    sd_hu: float = 32.0  # the median of the local noise SD over the slice
    fc: float = 0.4  # cycles/mm: a standard body kernel's roll-off (scanner.ScanParams: 0.28-0.45)
    # the noise grows towards the sides (the longest, lateral paths through the patient): its SD is
    # sd_hu * (1 + lateral_gain * x^2) / median, x = -1..1 across the slice (measured with the streaks:
    # local SD median 32 HU, 90th percentile about 60 HU, as the held-out chest)
    lateral_gain: float = 1.5
    streaks: int = 8  # per slice
    streak_hu: float = 80.0
    streak_width_mm: float = 1.5
    streak_angle_deg: float = 20.0

    def __post_init__(self) -> None:
        if not (self.sd_hu >= 0 and self.fc > 0 and self.lateral_gain >= 0 and self.streaks >= 0
                and self.streak_hu >= 0 and self.streak_width_mm > 0 and 0 <= self.streak_angle_deg <= 90):
            raise InputError(f"low-dose noise: need sd_hu >= 0, fc > 0, lateral_gain >= 0, streaks >= 0, "
                             f"streak_hu >= 0, streak_width_mm > 0, streak_angle_deg in [0, 90]; got {self!r}")


def low_dose_noise(shape, spacing, params: LowDoseNoise = LowDoseNoise(), seed: int = 0) -> np.ndarray:
    """float32 noise ``[K, J, I]`` for an axial stack (k the slice axis) of voxel size ``spacing``
    ``(k, j, i)`` mm: correlated noise of ``params.sd_hu`` plus the streaks."""
    K, J, I = (int(n) for n in shape)
    sk, sj, si = (float(s) for s in spacing)
    out = correlated_noise((K, J, I), (si, sj, sk), params.sd_hu, params.fc, sk, seed) if params.sd_hu > 0 \
        else np.zeros((K, J, I), np.float32)
    if params.lateral_gain > 0:
        x = np.linspace(-1.0, 1.0, I, dtype=np.float32)
        gain = 1.0 + np.float32(params.lateral_gain) * x * x
        out *= gain / np.float32(np.median(gain))
    if params.streaks == 0 or params.streak_hu == 0:
        return out
    rng = np.random.default_rng([seed, 21])
    y = (np.arange(J, dtype=np.float32) - J / 2.0) * sj
    x = (np.arange(I, dtype=np.float32) - I / 2.0) * si
    for k in range(K):
        for n in range(params.streaks):
            angle = np.deg2rad(rng.uniform(-params.streak_angle_deg, params.streak_angle_deg))
            y0, x0 = rng.normal(0.0, 0.15 * J * sj), rng.normal(0.0, 0.15 * I * si)
            # distance of each pixel to the line through (x0, y0) along (cos, sin)
            d = (y[:, None] - y0) * np.float32(np.cos(angle)) - (x[None, :] - x0) * np.float32(np.sin(angle))
            sign = 1.0 if n % 2 else -1.0
            out[k] += np.float32(sign * params.streak_hu) * np.exp(-0.5 * (d / params.streak_width_mm) ** 2)
    return out


def add_low_dose_noise(ct: Volume, params: LowDoseNoise = LowDoseNoise(), seed: int = 0) -> Volume:
    """``ct`` (float32) with ``low_dose_noise`` added, drawn on its axial stack whatever its axis order."""
    from ..orientation import DEFAULT_AXIS_CODE, reorient

    axial, back = reorient(ct, DEFAULT_AXIS_CODE)
    noisy = np.asarray(axial.array, dtype=np.float32) + low_dose_noise(axial.shape, axial.array_spacing, params, seed)
    return back(axial.with_array(noisy))


__all__ = ["LowDoseNoise", "add_low_dose_noise", "low_dose_noise"]
