"""The one place where a backend is chosen: ``apply`` (one example) and ``augment_batch``."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .arrays import check_params_list
from .errors import AugmentError
from .params import AugmentParams

BACKENDS = ("scipy", "torch", "cupy")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise AugmentError(f"backend must be one of {BACKENDS}; got {backend!r}")


def apply(params: AugmentParams, image, label=None, backend: str = "scipy",
          **options) -> Tuple[object, Optional[object]]:
    """Apply drawn parameters to one (z, y, x) volume and its label map (deterministic).

    Args:
        params: from ``sample_params`` (or built by hand).
        image: (z, y, x) real array: numpy for scipy; numpy or torch for torch; numpy or cupy for
            cupy.
        label: (z, y, x) integer label map, or None.
        backend: "scipy" (reference), "torch" or "cupy".
        options: backend options (torch: ``device``; cupy: ``interpolation``).

    Returns:
        ``(image_out, label_out or None)`` of shape ``params.out_shape``: numpy arrays for scipy,
        torch tensors for torch (on the compute device), and for cupy arrays of the input's kind.

    Raises:
        AugmentError: bad parameters or arrays. BackendUnavailableError: backend cannot run here.
    """
    _check_backend(backend)
    if not isinstance(params, AugmentParams):
        raise AugmentError(f"params must be AugmentParams (see sample_params); got "
                           f"{type(params).__name__}")
    if backend == "scipy":
        from .backend_scipy import apply_scipy
        return apply_scipy(params, image, label)
    if backend == "torch":
        from .backend_torch import apply_torch_batch
        from .arrays import check_image
        check_image(image, params)
        lab = None if label is None else label[None]
        out, lab_out = apply_torch_batch([params], image[None], lab, options.get("device"))
        return out[0], None if lab_out is None else lab_out[0]
    from .pipeline import apply_cupy
    return apply_cupy(params, image, label, **options)


def augment_batch(images, labels, params_list: Sequence[AugmentParams], backend: str = "scipy",
                  **options) -> Tuple[object, Optional[object]]:
    """Augment a batch of volumes with their label maps.

    Args:
        images: (N, z, y, x) array, or a sequence of (z, y, x) volumes (shapes may differ).
        labels: matching label maps (same form), or None.
        params_list: one AugmentParams per example; all share one ``out_shape``.
        backend: "scipy", "torch" or "cupy" (the cupy backend runs the pipelined queue).
        options: torch: ``device``; cupy: ``devices``, ``interpolation``, ``pipelined``.

    Returns:
        ``(images_out (N, *out_shape) float32, labels_out or None)``: numpy for scipy and cupy,
        torch tensors for torch.

    Raises:
        AugmentError: bad parameters or arrays. BackendUnavailableError: backend cannot run here.
    """
    _check_backend(backend)
    n = images.shape[0] if hasattr(images, "shape") else len(images)
    check_params_list(params_list, n)
    if labels is not None:
        n_lab = labels.shape[0] if hasattr(labels, "shape") else len(labels)
        if n_lab != n:
            raise AugmentError(f"need one label map per image: {n} images, got {n_lab} labels")
    if backend == "torch":
        from .backend_torch import apply_torch
        return apply_torch(params_list, images, labels, options.get("device"))
    if backend == "cupy":
        from .pipeline import Pipeline
        with Pipeline(**options) as pipe:
            return pipe.run(params_list, images, labels)
    from .backend_scipy import apply_scipy
    out = np.empty((n, *params_list[0].out_shape), np.float32)
    lab_out = None
    for i, p in enumerate(params_list):
        img_i, lab_i = apply_scipy(p, images[i], None if labels is None else labels[i])
        out[i] = img_i
        if lab_i is not None:
            if lab_out is None:
                lab_out = np.empty((n, *p.out_shape), lab_i.dtype)
            lab_out[i] = lab_i
    return out, lab_out
