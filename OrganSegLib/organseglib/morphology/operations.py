"""Binary dilation, erosion, closing and opening by a ball in mm, exact and fast.

Border rules (what lies outside the array):

* ``dilation``: outside is background, so nothing grows in from beyond the border.
* ``erosion``: outside is foreground, so an object touching the border is not eaten from that side
  (a lung cut by the first slice keeps its cut face).
* ``closing = erosion(dilation(mask))`` with those rules is extensive (``mask`` is inside its
  closing), so structures near the first and last slices survive.
* ``opening = dilation(erosion(mask))`` is anti-extensive (inside ``mask``).

These equal ``scipy.ndimage.binary_dilation(mask, ball, border_value=0)`` and
``binary_erosion(mask, ball, border_value=1)`` composed in the same order, voxel for voxel, whatever
``method`` computes them:

* ``"direct"``: scipy.ndimage itself (the reference; fast only for small balls);
* ``"fft"``: scipy.fft convolution with an exact integer threshold (paper III-A);
* ``"fft-torch"``: the same with torch.fft on ``device`` (CPU, or CUDA when present);
* ``"edt"``: thresholding a Euclidean distance transform, when its round-off is provably safe;
* ``"auto"``: the fastest exact one by a cost model measured on this project's benchmark.

Every method works on the bounding box of the mask plus the margin the operation can reach, so
small objects in big volumes cost little.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
import scipy.ndimage as ndi

from ..errors import InputError
from ..boxes import mask_bounding_box
from . import edt as _edt_mod
from .ball import Ball, make_ball
from .fft import ScipyFFT, TorchFFT, padded_shape

log = logging.getLogger(__name__)

METHODS = ("auto", "direct", "fft", "fft-torch", "edt")

# Seconds per voxel on the 2-core benchmark machine (benchmarks/bench_autolabel.py): a dilation by
# FFT costs three transforms of the padded array, one by EDT one pass over the array, and scipy's
# direct dilation about one pass per voxel of the ball's surface.
_COST_FFT_PER_PADDED_VOXEL = 5e-8
_COST_EDT_PER_VOXEL = 4.5e-8
_COST_DIRECT_PER_VOXEL_AND_BALL_VOXEL = 2e-10


class _Direct:
    name = "direct"

    def dilate(self, mask: np.ndarray, ball: Ball, kernel_cache: Optional[dict] = None) -> np.ndarray:
        return ndi.binary_dilation(mask, structure=ball.array, border_value=0)


def _check_mask(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise InputError(f"mask must be a 2D or 3D array; got {mask.ndim}D with shape {mask.shape}")
    if len(tuple(spacing)) != mask.ndim:
        raise InputError(
            f"spacing must give one value in mm per array axis ({mask.ndim}); got {tuple(spacing)!r}"
        )
    return mask.astype(bool, copy=False)


def choose_method(shape: Sequence[int], ball: Ball) -> str:
    """The fastest exact method for a mask of ``shape`` (after cropping) and ``ball``."""
    n = float(np.prod(shape))
    costs = {
        "direct": n * ball.size * _COST_DIRECT_PER_VOXEL_AND_BALL_VOXEL,
        "fft": float(np.prod(padded_shape(tuple(shape), ball.half))) * _COST_FFT_PER_PADDED_VOXEL,
    }
    if _edt_mod.safe(ball):
        costs["edt"] = n * _COST_EDT_PER_VOXEL
    if ball.size <= 7:  # a cross or a point: nothing beats scipy
        return "direct"
    return min(costs, key=costs.__getitem__)


def _backend(method: str, device: Optional[str], ball: Ball, shape: Sequence[int]):
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}")
    if method == "auto":
        method = choose_method(shape, ball)
    if method == "edt" and not _edt_mod.safe(ball):
        log.debug("EDT round-off not provably safe for %s; using FFT", ball)
        method = "fft"
    if method == "direct":
        return _Direct()
    if method == "fft":
        return ScipyFFT()
    if method == "fft-torch":
        return TorchFFT(device)
    return _edt_mod.EDT()


def _run(mask: np.ndarray, radius_mm: float, spacing: Sequence[float], method: str,
         device: Optional[str], steps: str, margin_balls: int) -> np.ndarray:
    """Apply ``steps`` ('d' dilation, 'e' erosion, left to right) on the cropped mask."""
    mask = _check_mask(mask, spacing)
    ball = make_ball(radius_mm, spacing)
    out = np.zeros(mask.shape, dtype=bool)
    box = mask_bounding_box(mask, [margin_balls * h for h in ball.half])
    if box is None:  # empty mask: every operation gives an empty mask
        return out
    crop = mask[box]
    backend = _backend(method, device, ball, crop.shape)
    log.debug("%s by %.2f mm ball %s on %s with %s", steps, radius_mm, ball.array.shape, crop.shape,
              backend.name)
    cache: dict = {}
    for step in steps:
        if step == "d":
            crop = backend.dilate(crop, ball, cache)
        elif hasattr(backend, "erode"):  # EDT: the distance to the background, thresholded
            crop = backend.erode(crop, ball)
        else:  # erosion = complement of the dilation of the complement (outside = foreground)
            crop = ~backend.dilate(~crop, ball, cache)
    # cropping treats the box edge as outside; the margin makes that matter only where the true
    # result is empty (dilation), or the result is clipped to the input (erosion, opening)
    if steps in ("e", "ed"):
        crop &= mask[box]
    out[box] = crop
    return out


def dilation(mask: np.ndarray, radius_mm: float, spacing: Sequence[float], method: str = "auto",
             device: Optional[str] = None) -> np.ndarray:
    """Binary dilation by a ball of ``radius_mm``; outside the array is background.

    Args:
        mask: 2D or 3D boolean array.
        radius_mm: ball radius in mm.
        spacing: voxel size in mm per array axis (``Volume.array_spacing``).
        method: one of ``METHODS``.
        device: torch device for ``"fft-torch"`` (default CPU).

    Raises:
        InputError: bad mask, spacing, radius or method.
    """
    return _run(mask, radius_mm, spacing, method, device, "d", 1)


def erosion(mask: np.ndarray, radius_mm: float, spacing: Sequence[float], method: str = "auto",
            device: Optional[str] = None) -> np.ndarray:
    """Binary erosion by a ball; outside the array is foreground (border objects keep their cut face).

    Args and Raises: as ``dilation``.
    """
    return _run(mask, radius_mm, spacing, method, device, "e", 1)


def closing(mask: np.ndarray, radius_mm: float, spacing: Sequence[float], method: str = "auto",
            device: Optional[str] = None) -> np.ndarray:
    """Dilation then erosion (rules above); contains ``mask``. Args and Raises: as ``dilation``."""
    return _run(mask, radius_mm, spacing, method, device, "de", 2)


def opening(mask: np.ndarray, radius_mm: float, spacing: Sequence[float], method: str = "auto",
            device: Optional[str] = None) -> np.ndarray:
    """Erosion then dilation (rules above); inside ``mask``. Args and Raises: as ``dilation``."""
    return _run(mask, radius_mm, spacing, method, device, "ed", 1)
