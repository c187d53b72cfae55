"""Trained network -> model package (``organseglib.model_package``), and model package -> network
for fine-tuning. The package format (safetensors + JSON card + SHA-256) lives in ``model_package``;
this module only fills in the card from the training run."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import Any, Optional

import torch

from ..network import PAPER_TILE_SHAPE
from .dataset import TRAINING_ORIENTATION


def load_init_model(folder: str | os.PathLike, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The network and card of an existing model package (for ``--init``)."""
    from ..model_package import load_model_package

    model, card = load_model_package(folder, device)
    return model.train(), card


def card_fields(result, data_description: str, spacing_mm: float, n_train: int, n_val: int,
                init_card: Any = None, name: Optional[str] = None, description: Optional[str] = None,
                intended_use: Optional[str] = None, data_sources: Optional[list] = None,
                weights_licence: Optional[str] = None) -> dict:
    """Everything the card should say about a training run (filtered to the card's fields later)."""
    cfg = result.config
    net = result.model
    spec = getattr(net, "spec", None)
    trained_on = (f"{n_train} training / {n_val} validation cases from {data_description} at {spacing_mm} mm")
    history = result.state.history
    return {
        "name": name or Path(str(result.work_dir)).name.replace(".training", ""),
        "description": description or (f"3D GoogLeNet FCN (Rister et al., Table I), width {cfg.width}, trained with "
                                       f"the {cfg.loss} loss for {result.state.iteration} iterations."),
        "architecture": getattr(spec, "architecture", "googlenet3d"),
        "width": float(getattr(spec, "width", cfg.width)),
        "num_classes": int(getattr(spec, "num_classes", cfg.num_classes)),
        "in_channels": int(getattr(spec, "in_channels", 1)),
        "spacing_mm": float(spacing_mm),
        "orientation": TRAINING_ORIENTATION,  # axis order of the training arrays (dataset.py)
        "tile_shape": list(PAPER_TILE_SHAPE),  # inference tile (section V-A); training crops may be smaller
        "window_hu": list(cfg.window_hu),
        "training_data": trained_on,
        "intended_use": intended_use or "research; not validated for clinical use",
        "data_sources": list(data_sources or []),
        "weights_licence": weights_licence or "",
        "provenance": {
            "script": "organseglib.training (organseg train)", "training_crop": list(cfg.crop_shape),
            "loss": cfg.loss, "iterations": result.state.iteration, "batch_size": cfg.batch_size,
            "learning_rate": cfg.effective_lr, "augment": cfg.augment,
            "augmentation_started_at": result.state.augment_start, "seed": cfg.seed,
            "phase_augment": cfg.phase_augment.to_card() if getattr(cfg, "phase_augment", None) else None,
            "mirror_left_right": _mirror_card(cfg),
            "fine_tuned_from": getattr(init_card, "name", None) if init_card is not None else None,
            "final_validation": history["val"][-1] if history.get("val") else None,
            # wall clock of the iterations since train_seconds_from_iteration (0 unless the run began
            # before the trainer counted), summed over resumes; the machine's load is not recorded
            "train_minutes": _train_minutes(result.state),
            "train_minutes_from_iteration": result.state.extra.get("train_seconds_from_iteration"),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def _train_minutes(state) -> Optional[float]:
    seconds = state.extra.get("train_seconds")
    return None if seconds is None else round(float(seconds) / 60.0, 1)


def save_trained_model(folder: str | os.PathLike, result, data_description: str, spacing_mm: float,
                       n_train: int, n_val: int, init_card: Any = None, overwrite: bool = False,
                       **card_text: Any) -> Path:
    """Write ``result.model`` as a model package with a card describing the run (one call to
    ``model_package.save_model_package``)."""
    from ..model_package import ModelCard, save_model_package

    fields = card_fields(result, data_description, spacing_mm, n_train, n_val, init_card, **card_text)
    known = {f.name for f in dataclasses.fields(ModelCard)}
    card = ModelCard(**{k: v for k, v in fields.items() if k in known})
    save_model_package(folder, result.model.eval(), card, overwrite=overwrite)
    return Path(folder)


def _mirror_card(cfg) -> Optional[dict]:
    """The card's account of training-time mirroring (``TrainConfig.mirror``), None when off."""
    probability = float(getattr(cfg, "mirror", 0.0))
    if not probability:
        return None
    from ..organs import ONE_SIDED_ORGANS

    return {"probability": probability, "unannotated_when_mirrored": list(ONE_SIDED_ORGANS)}
