"""Training checkpoints: one safetensors file, written atomically, never unpickled.

Tensors (model parameters and buffers, optimizer moments, torch generator states) are stored as
safetensors; everything else (iteration, optimizer hyper-parameters, numpy generator states, loss
history, configuration) goes as JSON into the file's metadata. The file is written to a temporary
name in the same folder and renamed over the old one (``os.replace``), so a run killed at any
moment (SIGKILL included) leaves the previous checkpoint intact and complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from ..errors import InputError
from ..model_package import describe_nonfinite, nonfinite_tensors

FORMAT = "organseg-checkpoint/1"
_MODEL = "model."
_OPT = "optim."


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly where it stopped."""

    iteration: int = 0
    augmenting: bool = False
    augment_start: Optional[int] = None
    rng_states: list = field(default_factory=list)  # numpy bit-generator states, one per rank
    history: dict = field(default_factory=lambda: {"train": [], "val": []})
    extra: dict = field(default_factory=dict)


def _optimizer_tensors(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for pid, entry in opt_state["state"].items():
        plain[str(pid)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPT}{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[str(pid)][key] = value
    return tensors, {"param_groups": opt_state["param_groups"], "plain": plain}


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: TrainingState, config: dict) -> Path:
    """Write the checkpoint atomically to ``path`` (a ``.safetensors`` file)."""
    target = Path(path)
    tensors = {f"{_MODEL}{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = nonfinite_tensors(tensors)
    if bad:  # never replace the last good checkpoint with a diverged one
        raise InputError(f"the network's weights became non-finite by iteration {state.iteration} ("
                         f"{describe_nonfinite(bad)}): the steps were too large; lower --lr and pass --restart "
                         f"(the last good checkpoint {str(target)!r}, if any, is kept)")
    opt_tensors, opt_meta = _optimizer_tensors(optimizer.state_dict())
    tensors.update(opt_tensors)
    meta = {
        "format": FORMAT,
        "config": json.dumps(config),
        "optimizer": json.dumps(opt_meta),
        "state": json.dumps({"iteration": state.iteration, "augmenting": state.augmenting,
                             "augment_start": state.augment_start, "rng_states": state.rng_states,
                             "history": state.history, "extra": state.extra}),
    }
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        with open(tmp, "rb") as fh:  # make the data durable before the rename publishes it
            os.fsync(fh.fileno())
    return target


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and decoded metadata of a checkpoint file.

    Raises:
        InputError: the file is not a readable organseg checkpoint.
    """
    p = Path(path)
    try:
        tensors = load_file(str(p))
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        decoded = {k: json.loads(meta[k]) for k in ("config", "optimizer", "state")}
    except (OSError, SafetensorError, ValueError, KeyError) as exc:
        raise InputError(f"{str(p)!r} is not a readable training checkpoint ({exc}); delete it to start "
                         "afresh (or pass --restart)") from None
    return tensors, decoded


def check_checkpoint(path: str | os.PathLike) -> None:
    """Refuse a checkpoint that cannot be resumed: unreadable, or holding NaN or infinite tensors (made
    before any data is loaded; ``load_checkpoint`` checks again).

    Raises:
        InputError: naming the file, what is wrong and ``--restart``.
    """
    tensors, _ = read_checkpoint(path)
    bad = nonfinite_tensors(tensors)
    if bad:  # resumed, it would train on NaN (or, at its last iteration, export NaN weights)
        raise InputError(f"checkpoint {str(path)!r} holds {describe_nonfinite(bad)}: it is corrupt; pass --restart to "
                         "discard it and train afresh")


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: Optional[torch.optim.Optimizer] = None,
                    check: Optional[Callable[[dict], None]] = None) -> tuple[TrainingState, dict]:
    """Restore model (and optimizer) in place; return the training state and the saved config.

    Args:
        check: called with the saved config before anything is restored; raises when the run's
            settings do not match it (a changed width would otherwise fail deep inside torch).

    Raises:
        InputError: not a readable checkpoint, ``check`` refused it, or its tensors do not fit ``model``.
    """
    tensors, meta = read_checkpoint(path)
    if check is not None:
        check(meta["config"])
    if nonfinite_tensors(tensors):
        check_checkpoint(path)  # raises, naming the tensors
    device = next(model.parameters()).device
    weights = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != expected[k]]
    if set(weights) != set(expected) or wrong:
        detail = (f"{len(wrong)} tensors of another shape, e.g. {wrong[0]} {tuple(weights[wrong[0]].shape)} vs "
                  f"{expected[wrong[0]]}" if wrong else "different tensor names")
        raise InputError(f"checkpoint {str(path)!r} holds another network ({detail}): it was written with other "
                         "settings (e.g. --width); pass --restart to discard it or choose another --out")
    model.load_state_dict({k: v.to(device) for k, v in weights.items()})
    if optimizer is not None:
        opt_meta = meta["optimizer"]
        state: dict[int, dict[str, Any]] = {int(pid): dict(values) for pid, values in opt_meta["plain"].items()}
        for key, value in tensors.items():
            if key.startswith(_OPT):
                pid, name = key[len(_OPT):].split(".", 1)
                state.setdefault(int(pid), {})[name] = value.to(device) if name != "step" else value
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in opt_meta["param_groups"]]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    s = meta["state"]
    return TrainingState(iteration=int(s["iteration"]), augmenting=bool(s["augmenting"]),
                         augment_start=s["augment_start"], rng_states=s["rng_states"],
                         history=s["history"], extra=s.get("extra", {})), meta["config"]
