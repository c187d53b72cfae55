"""FIFO queue of GPU augmentation jobs (paper section IV, figure 3).

Each GPU has ``streams_per_device`` slots, each with its own CUDA stream, pinned host staging
buffers and device buffers. Jobs go round-robin over GPUs, then over each GPU's slots. A job is
enqueued without waiting: copy into pinned staging -> async upload -> kernel -> async download,
all on its slot's stream, so the upload of the next job overlaps the current job's kernel.
``get`` returns results in submission order (FIFO). ``pipelined=False`` runs the same jobs one at
a time on one stream per GPU (for measuring the gain).

Buffer reuse is safe by construction: a slot's device buffers are only touched by work on that
slot's stream (stream order), and its pinned staging buffer is rewritten only after the event
that marks the end of its previous upload.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .arrays import check_image, check_label, check_params_list
from .backend_cupy import (check_interpolation, import_cupy, label_kernel_dtype, launch,
                           make_texture)
from .errors import AugmentError
from .params import AugmentParams

OUTPUTS = ("host", "device")


@dataclass
class _Slot:
    device: int
    stream: Any
    staging: Dict[tuple, np.ndarray] = field(default_factory=dict)
    buffers: Dict[tuple, Any] = field(default_factory=dict)
    upload_done: Any = None


@dataclass
class _Job:
    event: Any
    image_out: Any
    label_out: Any
    label_dtype: Optional[np.dtype]
    keep: tuple


class Pipeline:
    """Pipelined GPU augmentation over CUDA streams and one or more GPUs.

    Args:
        devices: CUDA device ids to use round-robin; default all visible devices.
        streams_per_device: slots (streams) per GPU; 2 overlaps one upload with one kernel.
        interpolation: "software" (exact trilinear) or "texture" (hardware trilinear).
        pipelined: False runs each job to completion before the next (baseline).
        output: "host" (numpy results in pinned memory) or "device" (cupy arrays left on the
            GPU; ``as_torch`` hands them to PyTorch without a copy).

    Raises:
        AugmentError: bad options. BackendUnavailableError: no CuPy or no GPU.
    """

    def __init__(self, devices: Optional[Sequence[int]] = None, streams_per_device: int = 2,
                 interpolation: str = "software", pipelined: bool = True,
                 output: str = "host") -> None:
        cupy = self._cupy = import_cupy()
        check_interpolation(interpolation)
        if output not in OUTPUTS:
            raise AugmentError(f"output must be one of {OUTPUTS}; got {output!r}")
        if int(streams_per_device) < 1:
            raise AugmentError(f"streams_per_device must be >= 1; got {streams_per_device!r}")
        count = cupy.cuda.runtime.getDeviceCount()
        self.devices = list(range(count)) if devices is None else [int(d) for d in devices]
        if not self.devices or any(not 0 <= d < count for d in self.devices):
            raise AugmentError(f"devices must be ids in [0, {count}); got {devices!r}")
        self.interpolation = interpolation
        self.pipelined = bool(pipelined)
        self.output = output
        per_device = int(streams_per_device) if self.pipelined else 1
        self._slots: Dict[int, List[_Slot]] = {}
        for dev in self.devices:
            with cupy.cuda.Device(dev):
                self._slots[dev] = [_Slot(dev, cupy.cuda.Stream(non_blocking=True))
                                    for _ in range(per_device)]
        self._queue: Deque[_Job] = deque()
        self._submitted = 0

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """Jobs submitted and not yet collected with ``get``."""
        return len(self._queue)

    def close(self) -> None:
        """Wait for outstanding work and release buffers."""
        for slots in self._slots.values():
            for slot in slots:
                slot.stream.synchronize()
                slot.staging.clear()
                slot.buffers.clear()
        self._queue.clear()

    def submit(self, params: AugmentParams, image, label=None, out=None, label_out=None) -> None:
        """Enqueue one example (returns at once when pipelined).

        Args:
            params: drawn parameters of this example.
            image: (z, y, x) numpy or cupy array.
            label: (z, y, x) integer array, or None.
            out, label_out: optional host arrays (pinned, C-contiguous, out_shape) to receive the
                result when ``output="host"``.

        Raises:
            AugmentError: bad arrays or parameters.
        """
        cupy = self._cupy
        check_image(image, params)
        if label is not None:
            check_label(label, image)
        dev = self.devices[self._submitted % len(self.devices)]
        slots = self._slots[dev]
        slot = slots[(self._submitted // len(self.devices)) % len(slots)]
        self._submitted += 1
        kernel_name, lab_dtype = "augment_image", np.dtype(np.uint8)
        if label is not None:
            kernel_name, lab_dtype = label_kernel_dtype(label.dtype)
            if isinstance(label, np.ndarray) and lab_dtype != label.dtype and label.size:
                if label.min() < -2**31 or label.max() >= 2**31:
                    raise AugmentError("label values must fit in int32 for the cupy backend")
        with cupy.cuda.Device(dev):
            stream = slot.stream
            keep: list = []
            tex = None
            if self.interpolation == "texture":
                src = self._stage(slot, "image", image, np.float32, to_device=False)
                key = ("texture", tuple(src.shape))
                tex, arr = make_texture(src, params.image_fill, stream, slot.buffers.get(key))
                slot.buffers[key] = arr  # reused by this slot's next job, in stream order
                keep.append(tex)
                img_d = self._dummy(slot)
            else:
                img_d = self._stage(slot, "image", image, np.float32)
            lab_d = (self._dummy(slot) if label is None
                     else self._stage(slot, "label", label, lab_dtype))
            slot.upload_done = stream.record()
            keep += [img_d, lab_d]
            shape = params.out_shape
            if self.output == "device":
                with stream:  # allocated in this stream's memory-pool arena
                    img_o = cupy.empty(shape, np.float32)
                    lab_o = None if label is None else cupy.empty(shape, lab_dtype)
            else:
                img_o = self._buffer(slot, "out", shape, np.float32)
                lab_o = None if label is None else self._buffer(slot, "lab_out", shape, lab_dtype)
            launch(params, kernel_name, dev, img_d, lab_d, tex, img_o,
                   self._dummy(slot) if lab_o is None else lab_o, stream)
            if self.output == "host":
                host_img = out if out is not None else self._pinned(shape, np.float32)
                self._download(img_o, host_img, stream)
                host_lab = None
                if lab_o is not None:
                    host_lab = (label_out if label_out is not None and label_out.dtype == lab_dtype
                                else self._pinned(shape, lab_dtype))
                    self._download(lab_o, host_lab, stream)
                img_o, lab_o = host_img, host_lab
            job = _Job(stream.record(), img_o, lab_o,
                       None if label is None else np.dtype(label.dtype), tuple(keep))
        self._queue.append(job)
        if not self.pipelined:
            job.event.synchronize()

    def get(self) -> Tuple[Any, Optional[Any]]:
        """Wait for the oldest job and return ``(image_out, label_out or None)``.

        Raises:
            AugmentError: if no job is pending.
        """
        if not self._queue:
            raise AugmentError("get() called with no job pending; submit() first")
        job = self._queue.popleft()
        job.event.synchronize()
        lab = job.label_out
        if lab is not None and job.label_dtype is not None and lab.dtype != job.label_dtype:
            lab = lab.view(bool) if job.label_dtype == np.bool_ else lab.astype(job.label_dtype)
        return job.image_out, lab

    def run(self, params_list: Sequence[AugmentParams], images, labels=None):
        """Augment a batch through the queue, keeping it full, and collect it in order.

        Returns:
            ``output="host"``: ``(images (N, *out) float32, labels or None)`` numpy arrays.
            ``output="device"``: lists of cupy arrays (they may live on different GPUs).
        """
        n = images.shape[0] if hasattr(images, "shape") else len(images)
        check_params_list(params_list, n)
        shape = params_list[0].out_shape
        host = self.output == "host"
        out = self._pinned((n, *shape), np.float32) if host else None
        lab_out = None
        if host and labels is not None:
            lab_out = self._pinned((n, *shape), label_kernel_dtype(labels[0].dtype)[1])
        limit = 2 * sum(len(s) for s in self._slots.values())
        results: List[Tuple[Any, Any]] = []
        for i, p in enumerate(params_list):
            self.submit(p, images[i], None if labels is None else labels[i],
                        None if out is None else out[i], None if lab_out is None else lab_out[i])
            while len(self._queue) > limit:
                results.append(self.get())
        while self._queue:
            results.append(self.get())
        if not host:
            return [r[0] for r in results], (None if labels is None else [r[1] for r in results])
        lab = None
        if lab_out is not None:
            want = np.dtype(labels[0].dtype)
            lab = lab_out.view(bool) if want == np.bool_ else lab_out.astype(want, copy=False)
        return out, lab

    # -- buffers ---------------------------------------------------------------------------
    def _pinned(self, shape, dtype) -> np.ndarray:
        import cupyx

        return cupyx.empty_pinned(tuple(shape), np.dtype(dtype))

    def _buffer(self, slot: _Slot, name: str, shape: tuple, dtype) -> Any:
        """The slot's device buffer ``name`` of this shape and dtype (allocated once)."""
        key = (name, tuple(shape), np.dtype(dtype))
        if key not in slot.buffers:
            with self._cupy.cuda.Device(slot.device):
                slot.buffers[key] = self._cupy.empty(tuple(shape), np.dtype(dtype))
        return slot.buffers[key]

    def _dummy(self, slot: _Slot):
        return self._buffer(slot, "dummy", (1,), np.uint8)

    def _stage(self, slot: _Slot, name: str, array, dtype, to_device: bool = True):
        """Put ``array`` (as ``dtype``) where the kernel can read it, on ``slot.stream``."""
        cupy = self._cupy
        if isinstance(array, cupy.ndarray):  # already on a GPU: no host round trip
            with slot.stream:
                arr = array
                if array.device.id != slot.device:  # peer copy onto this slot's GPU
                    if not array.flags.c_contiguous:
                        raise AugmentError("arrays on another GPU must be C-contiguous")
                    arr = cupy.empty(array.shape, array.dtype)
                    arr.data.copy_from_device_async(array.data, array.nbytes, slot.stream)
                if array.dtype == np.bool_:
                    arr = arr.view(np.uint8)
                return cupy.ascontiguousarray(arr.astype(dtype, copy=False))
        host = np.asarray(array)
        if host.dtype == np.bool_:
            host = host.view(np.uint8)
        runtime = cupy.cuda.runtime
        if host.dtype == np.dtype(dtype) and host.flags.c_contiguous and self._is_pinned(host):
            # Already in pinned memory (e.g. a dataset loaded with cupyx.empty_pinned): upload
            # straight from it; the caller must not modify it before get() returns the job.
            if not to_device:
                return host
            buf = self._buffer(slot, "in_" + name, host.shape, dtype)
            runtime.memcpyAsync(buf.data.ptr, host.ctypes.data, host.nbytes,
                                runtime.memcpyHostToDevice, slot.stream.ptr)
            return buf
        key = (name, host.shape, np.dtype(dtype))
        staging = slot.staging.get(key)
        if staging is None:
            staging = slot.staging[key] = self._pinned(host.shape, dtype)
        elif slot.upload_done is not None:
            slot.upload_done.synchronize()  # the previous upload from this buffer has finished
        np.copyto(staging, host, casting="unsafe")
        if not to_device:
            return staging
        buf = self._buffer(slot, "in_" + name, host.shape, dtype)
        runtime.memcpyAsync(buf.data.ptr, staging.ctypes.data, staging.nbytes,
                            runtime.memcpyHostToDevice, slot.stream.ptr)
        return buf

    def _is_pinned(self, host: np.ndarray) -> bool:
        runtime = self._cupy.cuda.runtime
        try:
            return runtime.pointerGetAttributes(host.ctypes.data).type == runtime.memoryTypeHost
        except Exception:  # pageable memory on some drivers reports an error instead
            return False

    def _download(self, device_array, host: np.ndarray, stream) -> None:
        if not (isinstance(host, np.ndarray) and host.flags.c_contiguous
                and host.shape == device_array.shape and host.dtype == device_array.dtype):
            raise AugmentError("out arrays must be C-contiguous numpy arrays of the output shape "
                               "and dtype (preferably pinned: cupyx.empty_pinned)")
        runtime = self._cupy.cuda.runtime
        runtime.memcpyAsync(host.ctypes.data, device_array.data.ptr, host.nbytes,
                            runtime.memcpyDeviceToHost, stream.ptr)


def apply_cupy(params: AugmentParams, image, label=None, interpolation: str = "software",
               device: Optional[int] = None) -> Tuple[Any, Optional[Any]]:
    """Augment one volume on the GPU (a one-volume ``Pipeline``).

    Args:
        params: the drawn parameters.
        image: (z, y, x) numpy or cupy array.
        label: (z, y, x) integer numpy or cupy array, or None.
        interpolation: "software" or "texture".
        device: CUDA device id; default the current one.

    Returns:
        ``(image_out, label_out or None)``: cupy arrays on the device if ``image`` is a cupy
        array, else numpy arrays.

    Raises:
        AugmentError: bad arrays or parameters. BackendUnavailableError: no CuPy or GPU.
    """
    cupy = import_cupy()
    check_image(image, params)
    if label is not None:
        check_label(label, image)
    on_device = isinstance(image, cupy.ndarray)
    dev = device if device is not None else cupy.cuda.Device().id
    with Pipeline(devices=[dev], interpolation=interpolation,
                  output="device" if on_device else "host") as pipe:
        pipe.submit(params, image, label)
        out, lab = pipe.get()
    if not on_device:
        out = np.array(out)
        lab = None if lab is None else np.array(lab)
    return out, lab


def as_torch(array):
    """Hand a cupy array to PyTorch without a copy (DLPack); the tensor shares GPU memory."""
    import torch

    return torch.from_dlpack(array)
