"""The reference backend: scipy.ndimage.affine_transform (order 1 images, order 0 labels).

This is the definition every other backend is tested against, and the speed baseline.
Noise comes from ``numpy.random.default_rng(params.noise_seed)`` (float32 standard normals).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

from .arrays import check_image, check_label
from .params import AugmentParams


def apply_scipy(params: AugmentParams, image: np.ndarray,
                label: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Augment one volume (and its label map) with the reference implementation.

    Args:
        params: the drawn parameters (``params.in_shape`` must equal ``image.shape``).
        image: (z, y, x) real array.
        label: (z, y, x) integer label map, or None.

    Returns:
        ``(image_out float32, label_out or None)`` of shape ``params.out_shape``; labels keep
        their dtype.

    Raises:
        AugmentError: for a wrong dtype, dimensionality or shape.
    """
    image = np.asarray(image)
    check_image(image, params)
    if label is not None:
        label = np.asarray(label)
        check_label(label, image)
    matrix, offset = params.matrix, params.offset
    out = ndimage.affine_transform(image.astype(np.float32, copy=False), matrix, offset,
                                   output_shape=params.out_shape, output=np.float32, order=1,
                                   mode="grid-constant", cval=params.image_fill, prefilter=False)
    photometric_numpy(out, params)
    label_out = None
    if label is not None:
        src = label.view(np.uint8) if label.dtype == bool else label
        label_out = ndimage.affine_transform(src, matrix, offset, output_shape=params.out_shape,
                                             output=src.dtype, order=0, mode="grid-constant",
                                             cval=params.label_fill, prefilter=False)
        if label.dtype == bool:
            label_out = label_out.view(bool)
    return out, label_out


def photometric_numpy(out: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Occlusion, noise and window, in place on a float32 (z, y, x) array."""
    k0, k1 = params.occluded_range()
    out[k0:k1] = params.occlusion_value
    if params.noise_sigma > 0:
        noise = np.random.default_rng(params.noise_seed).standard_normal(out.shape, np.float32)
        noise *= np.float32(params.noise_sigma)
        out += noise
    if params.window is not None:
        a, b = params.window
        out -= np.float32(a)
        out *= np.float32(1.0 / (b - a))
        np.clip(out, 0.0, 1.0, out=out)
    return out
