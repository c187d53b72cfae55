"""Multi-GPU / multi-node training with PyTorch's own engine (torchrun + DDP); nothing home-made.

Launch as ``torchrun --nproc_per_node=G [--nnodes ... --rdzv_endpoint ...] -m organseglib train ...``.
torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; ``init_distributed`` then joins the
process group (NCCL on GPUs, gloo on CPUs) and picks this rank's device. Without those variables
training runs in one process as usual.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: this rank's CUDA device when present, else the CPU; ``"cuda"`` becomes this rank's
    GPU. Names are parsed by ``devices.resolve_device``."""
    from ..devices import resolve_device

    device = resolve_device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device: str = "auto", backend: Optional[str] = None) -> DistInfo:
    """Join the torchrun process group if this process was launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = choose_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(backend=chosen, rank=rank, world_size=world)
        log.info("rank %d/%d joined the %s process group on %s", rank, world, chosen, dev)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DDP around ``model`` when distributed (gradients averaged across ranks; rank 0's batch-norm
    buffers broadcast every step), else the model itself. On GPUs batch norm becomes
    ``SyncBatchNorm``, so the paper's batch of 4 split over GPUs still normalises over 4 crops."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if info.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[info.device.index])
    return DistributedDataParallel(model)


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, so that all ranks hold
    the model that rank 0 checkpoints (DDP only broadcasts them at the start of each forward)."""
    if info.distributed:
        for buf in unwrap(model).buffers():
            dist.broadcast(buf, src=0)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def all_gather_objects(obj: Any, info: DistInfo) -> list:
    """Every rank's ``obj`` (a list of one when not distributed)."""
    if not info.distributed:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_across_ranks(value: float, info: DistInfo) -> float:
    if not info.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
