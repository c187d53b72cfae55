"""Will a training run fit in this machine's memory? Estimated before any data is loaded.

Two things must fit:

* **the data**: every case is kept in memory at the training resolution (float32 CT + uint8 labels, 5
  bytes a voxel). A case's size at ``--spacing`` follows from its file header (shape × spacing), read
  without the voxels; phantoms from their field of view (``phantom.render``: 420 mm across).
* **one training step**: the activations autograd keeps for the backward pass, counted by running the
  network once on PyTorch's ``meta`` device (no memory is allocated) with a hook on every tensor it
  saves, times the crops per process, plus the weights, their gradients and Adam's two moments.
  bfloat16 autocast (CUDA) halves the activations. Measured so: 5.1 GiB of activations per
  160×120×120 crop at width 1 (2 387 bytes a voxel), 0.15 GiB per 64³ crop at width 0.25.

The estimates are lower bounds of what the run needs (temporaries of the forward and backward pass
come on top), so a run refused here would certainly have failed: ``--crop 1600 1600 1600`` needs
9 TB, and ``--spacing 0.05`` on the abdomen scan 280 GB; both were killed by the kernel at 22 GB,
with no message (issue 19).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError

log = logging.getLogger(__name__)
BYTES_PER_CASE_VOXEL = 5  # float32 HU + uint8 label
PHANTOM_FOV_MM = 420.0  # phantom.render.phantom_grid: 420 mm across


def machine_memory_bytes() -> Optional[int]:
    """Physical memory, or the container's limit (cgroup v2 ``memory.max``) when lower; None if unknown."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            total = min(total, int(text)) if total else int(text)
    except OSError:
        pass
    return total


def device_memory_bytes(device) -> Optional[int]:
    """Memory of the device training runs on: the GPU's, or the machine's for the CPU."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return int(torch.cuda.get_device_properties(index).total_memory)
    return machine_memory_bytes()


def step_bytes(width: float, crop: Sequence[int], crops_per_process: int, amp: bool = False,
               num_classes: int = 6) -> int:
    """Bytes one training step holds at least: saved activations of ``crops_per_process`` crops of shape
    ``crop`` (K, J, I) plus weights, gradients and Adam's moments (4 copies of the parameters)."""
    import torch

    from ..network import build_network

    saved = [0]

    def pack(tensor):
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    with torch.device("meta"):
        net = build_network(num_classes=num_classes, width=width)
        x = torch.empty((1, 1, *[int(c) for c in crop]))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        net(x)
    activations = saved[0] * int(crops_per_process) // (2 if amp else 1)
    parameters = sum(p.numel() * p.element_size() for p in net.parameters())
    return activations + 4 * parameters


def _case_extents_mm(source: str) -> list:
    """The field of view (mm, three axes) of every case of a training source, from headers only."""
    if source.startswith("phantoms:"):
        from ..phantom.anatomy import REGION_Z

        parts = source.split(":")
        try:
            count = int(parts[1])
        except (IndexError, ValueError):
            return []  # refused with its reason by load_dataset
        z0, z1 = REGION_Z.get(parts[2] if len(parts) > 2 else "abdomen", (0.0, 0.0))
        return [(PHANTOM_FOV_MM, PHANTOM_FOV_MM, z1 - z0)] * count
    import SimpleITK as sitk

    from .dataset import find_cases

    extents = []
    reader = sitk.ImageFileReader()
    for case in find_cases(source):
        if not Path(case.volume).is_file():
            continue  # a DICOM folder: measured when it is read
        reader.SetFileName(str(case.volume))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue  # refused with its reason when it is read
        extents.append(tuple(float(s) * int(n) for s, n in zip(reader.GetSpacing(), reader.GetSize())))
    return extents


def dataset_bytes(source: str, spacing_mm: float) -> int:
    """Bytes the cases of ``source`` take in memory at ``spacing_mm`` (full field of view: an upper bound
    of what the body crop keeps)."""
    total = 0
    for extent in _case_extents_mm(source):
        voxels = 1
        for e in extent:
            voxels *= max(1, int(round(e / spacing_mm)))
        total += voxels * BYTES_PER_CASE_VOXEL
    return total


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n < 2**40 else f"{n / 2**40:.1f} TiB"


def check_training_fits(source: str, spacing_mm: float, width: float, crop: Sequence[int], crops_per_process: int,
                        device, amp: bool) -> None:
    """Refuse a run whose data or training step cannot fit in this machine's memory.

    Raises:
        InputError: naming what does not fit, the estimate, the memory there is, and what to change.
    """
    data = dataset_bytes(source, spacing_mm)
    ram = machine_memory_bytes()
    if ram and data > ram:
        raise InputError(f"the training data at --spacing {spacing_mm:g} mm would take {_gib(data)} of memory and this "
                         f"machine has {_gib(ram)}; train at a coarser --spacing (the paper's is 3 mm)")
    step = step_bytes(width, crop, crops_per_process, amp)
    memory = device_memory_bytes(device)
    where = "the GPU" if getattr(device, "type", "") == "cuda" else "this machine"
    if memory and step > memory:
        raise InputError(f"one training step with --crop {' '.join(map(str, crop))} ({crops_per_process} crop(s) per "
                         f"process, width {width:g}) needs at least {_gib(step)} and {where} has {_gib(memory)}; use a "
                         "smaller --crop or --batch-size (or more processes)")
    log.debug("training needs about %s for the data and %s per step", _gib(data), _gib(step))
