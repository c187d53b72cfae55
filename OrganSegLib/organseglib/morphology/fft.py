"""Binary dilation by FFT convolution (paper III-A, eq. 1), on scipy.fft or torch.fft.

``count(x) = sum_n f(x - n) k(n)`` is the number of mask voxels the ball centred on ``x`` covers:
an integer. It is computed in float64, whose FFT round-off for these sizes is below 1e-6 (the
relative error of a float64 FFT convolution is about ``1e-16 * log2(N)`` times ``|f|_2 |k|_2``,
i.e. < 1e-7 even for 10^9 voxels and a 10^5-voxel ball), so thresholding at 0.5 gives the exact
integer test ``count > 0``. float32 is not used: its round-off grows with the volume and the ball
and a bound like the one above (with 6e-8 in place of 1e-16) exceeds 0.5 for a 512x512x300 volume and
a 25 mm ball, so it could flip voxels.

Each axis is zero-padded to at least ``n + half`` (rounded up to a fast FFT length), which makes the
circular convolution linear inside the volume: outside the volume is background.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.fft

from .ball import Ball

THRESHOLD = 0.5  # counts are integers: count > 0.5 <=> count >= 1


def padded_shape(shape: tuple[int, ...], half: tuple[int, ...]) -> tuple[int, ...]:
    """FFT lengths that avoid wrap-around for a kernel of half-widths ``half``."""
    return tuple(scipy.fft.next_fast_len(n + h, real=True) for n, h in zip(shape, half))


def _kernel_padded(ball: Ball, shape: tuple[int, ...]) -> np.ndarray:
    """The ball placed with its centre at index 0 (wrapped), in an array of ``shape``."""
    k = np.zeros(shape, dtype=np.float64)
    b = ball.array.astype(np.float64)
    # roll the centre of the ball to the origin: offsets -h..-1 land at the end of each axis
    idx = [np.r_[np.arange(n - h, n), np.arange(0, h + 1)] for n, h in zip(shape, ball.half)]
    k[np.ix_(*idx)] = b
    return k


class ScipyFFT:
    """Dilation-by-count on numpy arrays with scipy.fft (``workers`` threads)."""

    name = "fft-scipy"

    def __init__(self, workers: Optional[int] = None) -> None:
        self.workers = workers if workers is not None else -1

    def dilate(self, mask: np.ndarray, ball: Ball, kernel_cache: Optional[dict] = None) -> np.ndarray:
        """Exact ``binary_dilation(mask, ball.array, border_value=0)``."""
        return self.counts(mask, ball, kernel_cache) > THRESHOLD

    def counts(self, mask: np.ndarray, ball: Ball, kernel_cache: Optional[dict] = None) -> np.ndarray:
        """float64 ``sum_n mask(x - n) ball(n)`` for every voxel (integers up to FFT round-off)."""
        shape = padded_shape(mask.shape, ball.half)
        kf = None if kernel_cache is None else kernel_cache.get(shape)
        if kf is None:
            kf = scipy.fft.rfftn(_kernel_padded(ball, shape), s=shape, workers=self.workers,
                                 overwrite_x=True)
            if kernel_cache is not None:
                kernel_cache[shape] = kf
        spec = scipy.fft.rfftn(mask.astype(np.float64), s=shape, workers=self.workers)
        spec *= kf
        counts = scipy.fft.irfftn(spec, s=shape, workers=self.workers, overwrite_x=True)
        del spec
        return counts[tuple(slice(0, n) for n in mask.shape)]


class TorchFFT:
    """The same dilation with torch.fft on a torch device (CPU here; CUDA when present)."""

    name = "fft-torch"

    def __init__(self, device: Optional[str] = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device if device is not None else "cpu")

    def dilate(self, mask: np.ndarray, ball: Ball, kernel_cache: Optional[dict] = None) -> np.ndarray:
        """Exact ``binary_dilation(mask, ball.array, border_value=0)`` computed with torch.fft."""
        return (self._counts(mask, ball, kernel_cache) > THRESHOLD).cpu().numpy()

    def counts(self, mask: np.ndarray, ball: Ball, kernel_cache: Optional[dict] = None) -> np.ndarray:
        """float64 counts as ``ScipyFFT.counts``, computed on ``self.device``."""
        return self._counts(mask, ball, kernel_cache).cpu().numpy()

    def _counts(self, mask: np.ndarray, ball: Ball, kernel_cache: Optional[dict] = None):
        torch = self.torch
        shape = padded_shape(mask.shape, ball.half)
        kf = None if kernel_cache is None else kernel_cache.get(shape)
        if kf is None:
            k = torch.from_numpy(_kernel_padded(ball, shape)).to(self.device)
            kf = torch.fft.rfftn(k, s=shape)
            del k
            if kernel_cache is not None:
                kernel_cache[shape] = kf
        x = torch.from_numpy(np.ascontiguousarray(mask)).to(self.device).to(torch.float64)
        spec = torch.fft.rfftn(x, s=shape)
        del x
        spec *= kf
        counts = torch.fft.irfftn(spec, s=shape)
        del spec
        return counts[tuple(slice(0, n) for n in mask.shape)]
