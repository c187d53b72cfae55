"""The torch backend: batched ``affine_grid`` + ``grid_sample`` and in-place elementwise ops.

Device-agnostic: runs where the input tensors live (CPU here, CUDA when present), and returns
tensors on that device, so a CUDA batch goes to the network without a trip through host memory.
Noise comes from ``torch.Generator(device).manual_seed(params.noise_seed % 2**63)``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .arrays import check_image, check_label, check_params_list
from .errors import AugmentError, BackendUnavailableError
from .params import AugmentParams

# Exactly representable integers in float32: labels go through grid_sample as floats.
_FLOAT32_EXACT_INT = 2**24
# Largest sampling grid built at once on the CPU (bytes), so batch 32 does not need 900 MB.
_CPU_GRID_BYTES = 128 * 2**20


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed in this project
        raise BackendUnavailableError("backend 'torch' needs PyTorch: pip install torch") from exc
    return torch


def normalized_theta(params: AugmentParams) -> np.ndarray:
    """The (3, 4) ``affine_grid`` matrix (x, y, z order, align_corners=True) equal to ``params``.

    Output voxel o = D_out (g_out + 1) with D_out = diag((out - 1) / 2); input p = A o + b;
    grid_sample reads g_in = N_in p - 1 with N_in = diag(2 / (in - 1)). Hence
    g_in = (N_in A D_out) g_out + N_in (A D_out 1 + b) - 1, then reversed to (x, y, z).
    """
    a, b = params.matrix, params.offset
    d_out = np.diag((np.asarray(params.out_shape, float) - 1) / 2)
    n_in = np.diag(2 / (np.asarray(params.in_shape, float) - 1))
    lin = n_in @ a @ d_out
    trans = n_in @ (a @ d_out @ np.ones(3) + b) - 1
    rev = [2, 1, 0]
    return np.concatenate([lin[np.ix_(rev, rev)], trans[rev, None]], axis=1)


def sampling_grid(theta, out_shape):
    """``F.affine_grid(theta, (N, 1, *out_shape), align_corners=True)`` as three broadcast adds.

    affine_grid builds the grid by a batched matrix product over every voxel, several times
    slower on the CPU than summing the contribution of each axis.
    """
    torch = _torch()
    d, h, w = out_shape
    kw = dict(dtype=theta.dtype, device=theta.device)
    gz = torch.linspace(-1, 1, d, **kw)[None, :, None] * theta[:, None, :, 2]  # (N, D, 3)
    gy = torch.linspace(-1, 1, h, **kw)[None, :, None] * theta[:, None, :, 1]
    gx = torch.linspace(-1, 1, w, **kw)[None, :, None] * theta[:, None, :, 0] + theta[:, None, :, 3]
    return gz[:, :, None, None] + gy[:, None, :, None] + gx[:, None, None, :]


def apply_torch_batch(params_list: Sequence[AugmentParams], images, labels=None,
                      device=None) -> Tuple[object, Optional[object]]:
    """Augment a batch with torch; every example must share the input and output shapes.

    Args:
        params_list: one AugmentParams per example (same ``in_shape`` and ``out_shape``).
        images: (N, z, y, x) real numpy array or torch tensor.
        labels: (N, z, y, x) integer array/tensor, or None.
        device: torch device to compute on; default the tensor's device (CPU for numpy input).

    Returns:
        ``(images_out float32 tensor, labels_out tensor or None)`` of shape (N, *out_shape) on the
        compute device; labels keep their dtype.

    Raises:
        AugmentError: for bad shapes, dtypes or parameters.
    """
    torch = _torch()
    check_image(images, batched=True)
    check_params_list(params_list, images.shape[0])
    for p in params_list:
        check_image(images[0], p)
    if labels is not None:
        check_label(labels, images, batched=True)
    images = _as_tensor(images, device).to(torch.float32)
    dev = images.device
    n = images.shape[0]
    out_shape = params_list[0].out_shape
    out = torch.empty((n, *out_shape), dtype=torch.float32, device=dev)
    lab_t = lab_out = None
    if labels is not None:
        lab_t = _as_tensor(labels, dev)
        wide = [getattr(torch, name, None) for name in ("int32", "int64", "uint32", "uint64")]
        if lab_t.dtype in wide and lab_t.numel():
            big = lab_t.to(torch.int64)  # (unsigned 32/64-bit tensors lack max/abs kernels)
            if max(int(big.max()), -int(big.min())) >= _FLOAT32_EXACT_INT:
                raise AugmentError("label values must be below 2**24 in magnitude for the torch "
                                   "backend (sampled as float32); got larger values")
        lab_out = torch.empty((n, *out_shape), dtype=lab_t.dtype, device=dev)
    chunk = n
    if dev.type == "cpu":
        chunk = max(1, _CPU_GRID_BYTES // (12 * int(np.prod(out_shape))))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        _warp_chunk(torch, params_list[sl], images[sl], None if lab_t is None else lab_t[sl],
                    out[sl], None if lab_out is None else lab_out[sl])
    for i, p in enumerate(params_list):
        photometric_torch(out[i], p)
    return out, lab_out


def _warp_chunk(torch, params_list, images, labels, out, lab_out) -> None:
    import torch.nn.functional as F

    dev = images.device
    theta = torch.as_tensor(np.stack([normalized_theta(p) for p in params_list]),
                            dtype=torch.float32, device=dev)
    grid = sampling_grid(theta, params_list[0].out_shape)
    fills = torch.as_tensor([p.image_fill for p in params_list], dtype=torch.float32, device=dev)
    if any(p.image_fill != 0 for p in params_list):  # grid_sample pads zeros: shift the values
        src = images - fills.view(-1, 1, 1, 1)
        res = F.grid_sample(src[:, None], grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)[:, 0]
        out.copy_(res.add_(fills.view(-1, 1, 1, 1)))
    else:
        out.copy_(F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros",
                                align_corners=True)[:, 0])
    if labels is not None:
        lfill = torch.as_tensor([p.label_fill for p in params_list], dtype=torch.float32,
                                device=dev).view(-1, 1, 1, 1)
        shift = any(p.label_fill != 0 for p in params_list)
        src = labels.to(torch.float32)
        if shift:
            src = src - lfill
        res = F.grid_sample(src[:, None], grid, mode="nearest", padding_mode="zeros",
                            align_corners=True)[:, 0]
        if shift:
            res = res + lfill
        lab_out.copy_(res.round_() if labels.dtype != torch.bool else res > 0.5)


def photometric_torch(out, params: AugmentParams):
    """Occlusion, noise and window, in place on one float32 (z, y, x) tensor."""
    torch = _torch()
    k0, k1 = params.occluded_range()
    if k1 > k0:
        out[k0:k1] = params.occlusion_value
    if params.noise_sigma > 0:
        gen = torch.Generator(device=out.device).manual_seed(params.noise_seed % 2**63)
        noise = torch.randn(out.shape, generator=gen, device=out.device, dtype=torch.float32)
        out.add_(noise, alpha=params.noise_sigma)
    if params.window is not None:
        a, b = params.window
        out.sub_(a).mul_(float(np.float32(1.0 / (b - a)))).clamp_(0.0, 1.0)
    return out


def apply_torch(params_list: Sequence[AugmentParams], images: Sequence, labels=None,
                device=None) -> Tuple[object, Optional[object]]:
    """Augment examples that may differ in input shape (grouped into equal-shape batches).

    Args:
        params_list: one AugmentParams per example, one shared ``out_shape``.
        images: sequence of (z, y, x) arrays/tensors, or an (N, z, y, x) array/tensor.
        labels: matching label maps, or None.
        device: torch device; default that of the first tensor (CPU for numpy input).

    Returns:
        ``(images_out, labels_out or None)`` stacked tensors (N, *out_shape).
    """
    torch = _torch()
    if hasattr(images, "shape") and len(images.shape) == 4:
        return apply_torch_batch(params_list, images, labels, device)
    images = list(images)
    check_params_list(params_list, len(images))
    groups: dict = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape), []).append(i)
    results: List = [None] * len(images)
    for idx in groups.values():
        bimg = torch.stack([_as_tensor(images[i], device) for i in idx])
        blab = None if labels is None else torch.stack([_as_tensor(labels[i], bimg.device)
                                                        for i in idx])
        oi, ol = apply_torch_batch([params_list[i] for i in idx], bimg, blab, bimg.device)
        for j, i in enumerate(idx):
            results[i] = (oi[j], None if ol is None else ol[j])
    out = torch.stack([r[0] for r in results])
    lab = None if labels is None else torch.stack([r[1] for r in results])
    return out, lab


def _as_tensor(x, device=None):
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    if type(x).__module__.startswith("cupy"):
        return torch.from_dlpack(x)  # zero-copy hand-over from the cupy backend
    arr = np.ascontiguousarray(x)
    return torch.from_numpy(arr).to(device if device is not None else "cpu")
