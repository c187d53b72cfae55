"""Validation during training: loss over all sub-volumes of each validation scan, per-organ Dice.

Section VI-C: "the validation loss is averaged over all sub-volumes of each image in the validation
set". Each scan (already at 3 mm) is covered by crop-sized tiles (the last tile flush with the
border; scans smaller than a tile are padded with air), the loss is averaged over tiles, and the
argmax of the tiles (later tiles overwrite the overlap) gives the label map scored by Dice. This is
a light-weight check for the learning curve; full inference with overlap averaging is
``organseglib.inference``.
"""

from __future__ import annotations

import itertools
from typing import Optional, Sequence

import numpy as np
import torch

from ..losses import segmentation_loss
from ..metrics import dice
from ..network import DEFAULT_WINDOW_HU, window_hu
from ..organs import organ_table
from ..tiling import pad_to
from .batches import annotated_mask
from .dataset import AIR_HU, TrainingCase, tile_starts


@torch.no_grad()
def predict_tiles(model: torch.nn.Module, case: TrainingCase, crop_shape: Sequence[int], device: torch.device,
                  window: Sequence[float] = DEFAULT_WINDOW_HU, amp: bool = False,
                  loss_name: Optional[str] = None) -> tuple[np.ndarray, list[float]]:
    """Label map of one 3 mm case from crop-sized tiles, and the loss of each tile (if ``loss_name``).
    The model must be in eval mode."""
    image = pad_to(case.image, crop_shape, AIR_HU)
    labels = pad_to(case.labels, crop_shape, 0)
    pred = np.zeros(image.shape, dtype=np.uint8)
    losses: list[float] = []
    starts = [tile_starts(n, c) for n, c in zip(image.shape, crop_shape)]
    for corner in itertools.product(*starts):
        sl = tuple(slice(s, s + c) for s, c in zip(corner, crop_shape))
        x = torch.from_numpy(window_hu(image[sl], window)[None, None]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        if loss_name is not None:
            y = torch.from_numpy(labels[sl][None].astype(np.int64)).to(device)
            ann = annotated_mask([case], logits.shape[1], device)  # partial labels: unknown organs ignored
            losses.append(float(segmentation_loss(loss_name, logits.float(), y, ann)))
        pred[sl] = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    return pred[tuple(slice(0, n) for n in case.labels.shape)], losses


@torch.no_grad()
def validate(model: torch.nn.Module, cases: Sequence[TrainingCase], loss_name: str, crop_shape: Sequence[int],
             device: torch.device, window: Sequence[float] = DEFAULT_WINDOW_HU, amp: bool = False) -> dict:
    """``{"loss": mean tile loss, "dice": {organ key: mean Dice over scans holding the organ}}``.

    The model is put in eval mode and restored to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    losses: list[float] = []
    scores: dict[str, list[float]] = {o.key: [] for o in organ_table()}
    try:
        for case in cases:
            pred, tile_losses = predict_tiles(model, case, crop_shape, device, window, amp, loss_name)
            losses.extend(tile_losses)
            for organ in organ_table():
                ref = case.labels == organ.value
                if ref.any():
                    scores[organ.key].append(dice(pred == organ.value, ref))
    finally:
        model.train(was_training)
    return {"loss": float(np.mean(losses)) if losses else float("nan"),
            "dice": {k: float(np.mean(v)) for k, v in scores.items() if v}}
