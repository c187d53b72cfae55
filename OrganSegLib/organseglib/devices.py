"""Which device the network runs on: the one parser of device names, for the CLI and the Slicer module.

Accepted names (any case, spaces around ignored): ``auto`` (CUDA when PyTorch sees a GPU, else the
CPU), ``cpu``, ``cuda`` and ``cuda:N`` (GPU number N), with ``gpu`` / ``gpu:N`` as other spellings of
``cuda`` / ``cuda:N`` (the Slicer module's device menu says "GPU"). ``parse_device`` only checks and
normalises the text (no torch import: the Slicer GUI calls it before starting a child process);
``resolve_device`` turns it into a ``torch.device`` and checks that CUDA is there.
"""

from __future__ import annotations

import re

from .errors import InputError

DEVICE_HELP = "auto (CUDA when PyTorch sees a GPU, else the CPU; default), cpu, cuda or cuda:N (gpu means cuda)"
_DEVICE = re.compile(r"^(auto|cpu|cuda|gpu)(?::(\d+))?$")


def parse_device(device: object = "auto") -> str:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` from any accepted spelling.

    Raises:
        InputError: an unknown name, or an index on ``auto``/``cpu``.
    """
    text = str(device).strip().lower()
    match = _DEVICE.match(text)
    if match is None or (match.group(2) is not None and match.group(1) in ("auto", "cpu")):
        raise InputError(f"device must be auto, cpu or cuda[:N] (GPU N; gpu[:N] means the same); got {device!r}")
    name = "cuda" if match.group(1) == "gpu" else match.group(1)
    return name if match.group(2) is None else f"{name}:{int(match.group(2))}"


def resolve_device(device: object = "auto"):
    """The ``torch.device`` for a device name (``parse_device``); ``"auto"``: CUDA when available.

    Raises:
        InputError: an unknown name, CUDA asked for but not available, or no GPU of that number.
    """
    import torch

    name = parse_device(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but this PyTorch sees no CUDA GPU; use --device cpu or auto")
    chosen = torch.device(name)
    if chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered "
                         f"from 0; pick one of them or use cuda")
    return chosen


__all__ = ["DEVICE_HELP", "parse_device", "resolve_device"]
