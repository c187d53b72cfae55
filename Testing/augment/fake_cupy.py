"""A CPU stand-in for the parts of CuPy that cudaaugment uses, to test the cupy backend's Python
side (argument packing, staging, streams bookkeeping, FIFO order, round-robin over GPUs, dtype
handling) on a machine without a GPU.

The "kernel" is a NumPy transcription of kernels/augment.cu that reads its arguments by the
names in the kernel's C signature, so a mismatch between the launch arguments and what the kernel
does with them shows up as a wrong result. It proves nothing about the CUDA C itself: that is
compiled by nvcc in test_augment_kernel_source.py and run for real by the ``cuda`` tests.
"""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np

from cudaaugment.backend_cupy import kernel_source
from reference_numpy import texture_trilinear, voxel_normals

DEVICE_COUNT = 2
_state = {"device": 0, "launches": [], "pinned": []}


class _Ptr:
    def __init__(self, arr):
        self._arr = arr

    @property
    def ptr(self) -> int:
        return self._arr.ctypes.data

    def copy_from_device_async(self, src, size, stream=None):
        ctypes.memmove(self.ptr, src.ptr, size)


class FakeArray(np.ndarray):
    """A "device" array: a numpy array that remembers its device."""

    def __array_finalize__(self, obj):
        self.dev = getattr(obj, "dev", _state["device"])

    @property
    def data(self):  # noqa: D401 - mimics cupy.ndarray.data (a MemoryPointer)
        return _Ptr(self)

    @property
    def device(self):
        return types.SimpleNamespace(id=self.dev)

    def get(self):
        return np.array(self)


def empty(shape, dtype=np.float32):
    return np.empty(shape, dtype).view(FakeArray)


def asarray(a):
    return a if isinstance(a, FakeArray) else np.array(a).view(FakeArray)


def ascontiguousarray(a):
    return np.ascontiguousarray(a).view(FakeArray)


class Device:
    def __init__(self, i=None):
        self.id = _state["device"] if i is None else i

    def __enter__(self):
        self._prev, _state["device"] = _state["device"], self.id
        return self

    def __exit__(self, *exc):
        _state["device"] = self._prev


class Event:
    def synchronize(self):
        pass


class Stream:
    def __init__(self, null=False, non_blocking=False):
        self.ptr = id(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def record(self):
        return Event()

    def synchronize(self):
        pass


class CUDAarray:
    def __init__(self, desc, width, height=0, depth=0, flags=0):
        self.width, self.height, self.depth = width, height, depth
        self.values = None

    def copy_from(self, in_arr, stream=None):
        assert in_arr.shape == (self.depth, self.height, self.width)
        self.values = np.array(in_arr, np.float32)


class TextureObject:
    def __init__(self, res, desc):
        self.array, self.fill = res.cuArr, desc.borderColors[0]


class _Kernel:
    def __init__(self, name):
        self.name = name
        src = kernel_source()
        macro = src[src.index("#define AUGMENT_ARGS(L)"):src.index("#define AUGMENT_CALL")]
        decls = macro.split("\n", 1)[1].replace("\\", " ").split(",")
        self.names = [d.split()[-1] for d in decls]

    def __call__(self, grid, block, args, **kwargs):
        assert len(args) == len(self.names), "launch arguments do not match the kernel"
        a = dict(zip(self.names, args))
        _state["launches"].append((self.name, _state["device"]))
        out_shape = (a["out_d"], a["out_h"], a["out_w"])
        assert grid[0] * block[0] >= np.prod(out_shape)
        m = np.array([[a[f"a{r}{c}"] for c in range(3)] for r in range(3)], np.float32)
        b = np.array([a["b0"], a["b1"], a["b2"]], np.float32)
        idx = np.indices(out_shape, dtype=np.float32).reshape(3, -1)
        p = (m @ idx + b[:, None]).astype(np.float64)
        if a["use_texture"]:
            tex = a["tex"]
            value = texture_trilinear(tex.array.values, p, tex.fill, weight_bits=8)
        else:
            image = np.asarray(a["image"]).reshape(a["in_d"], a["in_h"], a["in_w"])
            value = texture_trilinear(image, p, a["image_fill"], weight_bits=None)
        value = value.reshape(out_shape).astype(np.float32)
        value[a["occ_k0"]:a["occ_k1"]] = a["occ_value"]
        if a["sigma"] > 0:
            seed = int(a["seed_lo"]) | (int(a["seed_hi"]) << 32)
            value += a["sigma"] * voxel_normals(seed, value.size).reshape(out_shape)
        if a["do_window"]:
            value = np.clip((value - a["win_lo"]) * a["win_scale"], 0, 1)
        np.copyto(a["image_out"], value.reshape(a["image_out"].shape))
        if self.name != "augment_image":
            shape_in = np.array([a["in_d"], a["in_h"], a["in_w"]])[:, None]
            q = np.floor(p + 0.5).astype(np.int64)
            inside = np.all((q >= 0) & (q < shape_in), axis=0)
            q = np.clip(q, 0, shape_in - 1)
            lab = np.asarray(a["label_in"]).reshape(a["in_d"], a["in_h"], a["in_w"])
            res = np.where(inside, lab[q[0], q[1], q[2]], a["label_fill"])
            np.copyto(a["label_out"], res.reshape(out_shape).astype(a["label_out"].dtype))


def empty_pinned(shape, dtype=np.float32):
    """A host array registered as "pinned" (pointerGetAttributes reports memoryTypeHost)."""
    arr = np.empty(shape, dtype)
    _state["pinned"].append(arr)
    return arr


def _attributes(ptr):
    for arr in _state["pinned"]:
        start = arr.ctypes.data
        if start <= ptr < start + max(arr.nbytes, 1):
            return types.SimpleNamespace(type=1)
    return types.SimpleNamespace(type=0)  # pageable


class RawModule:
    def __init__(self, code=None, options=()):
        assert code == kernel_source()

    def get_function(self, name):
        return _Kernel(name)


def install(monkeypatch) -> dict:
    """Register the fake as ``cupy`` / ``cupyx`` for one test; returns the launch log state."""
    from cudaaugment import backend_cupy

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: DEVICE_COUNT, memcpyHostToDevice=1, memcpyDeviceToHost=2,
        memcpyAsync=lambda dst, src, size, kind, stream: ctypes.memmove(dst, src, size),
        deviceSynchronize=lambda: None, memoryTypeHost=1, pointerGetAttributes=_attributes, cudaChannelFormatKindFloat=2, cudaResourceTypeArray=0,
        cudaAddressModeBorder=3, cudaFilterModeLinear=1, cudaReadModeElementType=0)
    texture = types.SimpleNamespace(
        ChannelFormatDescriptor=lambda *a: a, CUDAarray=CUDAarray, TextureObject=TextureObject,
        ResourceDescriptor=lambda kind, cuArr=None: types.SimpleNamespace(cuArr=cuArr),
        TextureDescriptor=lambda **kw: types.SimpleNamespace(**kw))
    cuda = types.SimpleNamespace(runtime=runtime, texture=texture, Device=Device, Stream=Stream)
    cupy = types.ModuleType("cupy")
    cupy.__dict__.update(ndarray=FakeArray, empty=empty, asarray=asarray, cuda=cuda,
                         ascontiguousarray=ascontiguousarray, RawModule=RawModule)
    cupyx = types.ModuleType("cupyx")
    cupyx.empty_pinned = empty_pinned
    cuda_mod = types.ModuleType("cupy.cuda")
    cuda_mod.__dict__.update(vars(cuda))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda_mod)
    monkeypatch.setitem(sys.modules, "cupy.cuda.runtime", runtime)
    monkeypatch.setitem(sys.modules, "cupy.cuda.texture", texture)
    monkeypatch.setattr(backend_cupy, "_MODULES", {})
    monkeypatch.setattr(backend_cupy, "_KERNELS", {})
    _state.update(device=0, launches=[], pinned=[])
    return _state
