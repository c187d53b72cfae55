"""The CUDA backend: the kernel in ``kernels/augment.cu`` loaded with ``cupy.RawModule``.

CuPy is imported lazily, so the package imports (and the other backends run) without it.

Interpolation: ``"software"`` (default) reads the image from global memory and interpolates in
float32, matching scipy to float rounding; ``"texture"`` uses the texture unit's hardware
trilinear, whose weights have only 8 fractional bits (CUDA C Programming Guide, "Linear
Filtering"): on CT its error reaches about 1/512 of the local intensity jump (a few HU at a
bone or air edge; see benchmarks/results/augment.md for the measured emulation). Software is the
default until a GPU measurement shows the texture path is worth that error.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any, Dict, Tuple

import numpy as np

from .errors import AugmentError, BackendUnavailableError
from .params import AugmentParams

KERNEL_FILE = "augment.cu"
INTERPOLATIONS = ("software", "texture")
BLOCK = 256
# Kernel entry point per label dtype (others are converted to int32 and back).
LABEL_KERNELS = {np.dtype(np.uint8): "augment_u8", np.dtype(np.int8): "augment_i8",
                 np.dtype(np.int16): "augment_i16", np.dtype(np.uint16): "augment_u16",
                 np.dtype(np.int32): "augment_i32", np.dtype(np.uint32): "augment_u32"}

_MODULES: Dict[int, Any] = {}  # device -> RawModule
_KERNELS: Dict[Tuple[int, str], Any] = {}  # (device, name) -> RawKernel


def kernel_source() -> str:
    """The CUDA source of the augmentation kernels (package data)."""
    return (resources.files("cudaaugment") / "kernels" / KERNEL_FILE).read_text()


def import_cupy():
    """Import CuPy and check a CUDA GPU is usable.

    Raises:
        BackendUnavailableError: CuPy is not installed or no CUDA device is usable.
    """
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            "backend 'cupy' needs CuPy and an NVIDIA GPU: pip install cupy-cuda12x "
            "(or use backend='torch', which runs on CPU or CUDA)") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver
        raise BackendUnavailableError(f"backend 'cupy' found no usable CUDA device ({exc}); "
                                      "use backend='torch' or 'scipy'") from exc
    if count < 1:
        raise BackendUnavailableError("backend 'cupy' found no CUDA device; use backend='torch'")
    return cupy


def get_kernel(name: str, device: int):
    """The compiled kernel ``name`` on ``device`` (one RawModule per device, compiled once)."""
    kernel = _KERNELS.get((device, name))
    if kernel is not None:
        return kernel
    cupy = import_cupy()
    with cupy.cuda.Device(device):
        if device not in _MODULES:
            _MODULES[device] = cupy.RawModule(code=kernel_source(), options=("--std=c++14",))
        kernel = _KERNELS[(device, name)] = _MODULES[device].get_function(name)
    return kernel


def check_interpolation(interpolation: str) -> None:
    """Raises AugmentError unless ``interpolation`` is "software" or "texture"."""
    if interpolation not in INTERPOLATIONS:
        raise AugmentError(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")


def label_kernel_dtype(dtype: np.dtype) -> Tuple[str, np.dtype]:
    """Kernel name and the dtype the labels are sent in (bool as uint8, 64-bit as int32)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "augment_u8", np.dtype(np.uint8)
    if dtype in LABEL_KERNELS:
        return LABEL_KERNELS[dtype], dtype
    return "augment_i32", np.dtype(np.int32)


def make_texture(source, fill: float, stream, cuda_array=None):
    """A 3D float texture (border addressing = ``fill``, linear filtering) holding ``source``.

    Args:
        source: (z, y, x) float32 C-contiguous numpy (pinned for an async copy) or cupy array.
        fill: value read outside the volume (the border colour).
        stream: the cupy stream to copy on.
        cuda_array: a CUDAarray of the same shape to reuse (allocating one can synchronize the
            device, which would break the pipeline's overlap), or None.

    Returns:
        ``(texture_object, cuda_array)``; keep both alive until the kernel has run.
    """
    import_cupy()
    from cupy.cuda import runtime, texture

    d, h, w = source.shape
    chan = texture.ChannelFormatDescriptor(32, 0, 0, 0, runtime.cudaChannelFormatKindFloat)
    arr = cuda_array
    if arr is None or (arr.depth, arr.height, arr.width) != (d, h, w):
        arr = texture.CUDAarray(chan, w, h, d)
    arr.copy_from(source, stream)
    res = texture.ResourceDescriptor(runtime.cudaResourceTypeArray, cuArr=arr)
    desc = texture.TextureDescriptor(
        addressModes=(runtime.cudaAddressModeBorder,) * 3, filterMode=runtime.cudaFilterModeLinear,
        readMode=runtime.cudaReadModeElementType, borderColors=(float(fill), 0.0, 0.0, 0.0),
        normalizedCoords=0)
    return texture.TextureObject(res, desc), arr


def kernel_args(params: AugmentParams, image, label_in, tex, image_out, label_out) -> tuple:
    """The argument tuple of the ``augment_*`` kernels for one example (see augment.cu)."""
    a = params.matrix.astype(np.float32).ravel()
    b = params.offset.astype(np.float32)
    k0, k1 = params.occluded_range()
    seed = params.noise_seed
    win_lo, win_scale = (0.0, 1.0)
    if params.window is not None:
        win_lo, win_scale = params.window[0], 1.0 / (params.window[1] - params.window[0])
    use_texture = tex is not None
    f32, i32, u32 = np.float32, np.int32, np.uint32
    return (image, label_in, tex if use_texture else np.uint64(0), i32(use_texture),
            *(i32(v) for v in params.in_shape), image_out, label_out,
            *(i32(v) for v in params.out_shape), *(f32(v) for v in a), *(f32(v) for v in b),
            f32(params.image_fill), i32(params.label_fill), i32(k0), i32(k1),
            f32(params.occlusion_value), f32(params.noise_sigma), u32(seed & 0xFFFFFFFF),
            u32(seed >> 32), i32(params.window is not None), f32(win_lo), f32(win_scale))


def launch(params: AugmentParams, kernel_name: str, device: int, image, label_in, tex,
           image_out, label_out, stream) -> None:
    """Launch one example's kernel on ``stream`` (one thread per output voxel)."""
    n = int(np.prod(params.out_shape))
    if n >= 2**31:
        raise AugmentError(f"out_shape {params.out_shape!r} has {n} voxels; the kernel handles "
                           "fewer than 2**31 per volume")
    kernel = get_kernel(kernel_name, device)
    with stream:
        kernel((math.ceil(n / BLOCK),), (BLOCK,),
               kernel_args(params, image, label_in, tex, image_out, label_out))
