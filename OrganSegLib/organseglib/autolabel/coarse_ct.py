"""The CT on blocks of about 3 mm: block means, block maxima, where the labeler may look, and the body
frame (depth front to back, offset from the midline) there. The blood-pool finder (``blood.py``) and the
urinary-tract rules (``urinary.py``) read their thick structures off it: cheap, and the means average
the noise away while the maxima keep thin cortex."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.ndimage as ndi

from .. import morphology
from .frame import depth_front_to_back, offset_from_midline_mm


@dataclass
class CoarseCT:
    """``mean``, ``max``: float32 block means and maxima; ``allowed``: the block's first voxel is allowed;
    ``strides``: voxels per block along each axis; ``spacing``: the blocks' size in mm."""

    mean: np.ndarray
    max: np.ndarray
    allowed: np.ndarray
    strides: tuple
    spacing: tuple
    _body: Optional[np.ndarray] = None
    _frame: Optional[tuple] = None
    _smooth: Optional[np.ndarray] = None

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def subsample(self, mask: np.ndarray) -> np.ndarray:
        """A full-resolution mask read at each block's first voxel (the grid of ``allowed``)."""
        picked = mask[tuple(slice(None, None, t) for t in self.strides)]
        return picked[tuple(slice(0, n) for n in self.mean.shape)]

    def frame(self, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(depth [k, j], offset_mm [k, i])`` of the body (``frame.py``) on the block grid."""
        if self._frame is None:
            coarse_body = self.subsample(body)
            self._frame = (depth_front_to_back(coarse_body), offset_from_midline_mm(coarse_body, self.spacing[2]))
        return self._frame

    def smoothed(self, sigma_blocks: float = 0.7) -> np.ndarray:
        """The block means smoothed by a Gaussian of ``sigma_blocks`` (on a coarse scan a block is one
        voxel and its mean averages no noise away)."""
        if self._smooth is None:
            self._smooth = ndi.gaussian_filter(self.mean, sigma_blocks, mode="nearest", truncate=2.0)
        return self._smooth

    def to_fine(self, coarse: np.ndarray, shape) -> np.ndarray:
        """A block mask repeated onto the full-resolution grid."""
        return morphology.repeat_blocks(coarse, self.strides, shape)


def coarse_ct(ct: np.ndarray, allowed: np.ndarray, spacing, coarse_mm: float) -> CoarseCT:
    """The CT on blocks of about ``coarse_mm``."""
    strides = morphology.block_factors(spacing, coarse_mm)
    mean, peak = morphology.coarse.block_mean_max(ct, strides)
    out = CoarseCT(mean, peak, np.zeros(mean.shape, bool), tuple(strides),
                   tuple(float(a) * b for a, b in zip(spacing, strides)))
    out.allowed = out.subsample(allowed)
    return out


__all__ = ["CoarseCT", "coarse_ct"]
