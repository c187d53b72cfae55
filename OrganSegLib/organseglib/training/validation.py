"""Validation during training: loss over all sub-volumes of each validation scan, per-organ Dice.

Section VI-C: "the validation loss is averaged over all sub-volumes of each image in the validation
set". Each scan (already in the network's space, ``organseglib.network_space``) goes through the one
sliding-window predictor, ``organseglib.inference`` (its tiling, HU window and autocast): crop-sized
tiles placed by ``tiling.tile_starts`` without requested overlap (scans smaller than a tile are padded
with air), several tiles per forward call. The loss of each tile is computed on that tile's
probabilities and averaged over tiles; the argmax of the averaged probabilities gives the label map
scored by Dice. Full inference with 25 % overlap is what ``segment`` does.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..ct_checks import AIR_HU
from ..inference import TorchPredictor, stitch_whole
from ..losses import segmentation_loss
from ..metrics import dice
from ..network import DEFAULT_WINDOW_HU
from ..organs import organ_table
from ..tiling import pad_to
from .batches import annotated_mask
from .dataset import TrainingCase

VALIDATION_OVERLAP = 0.0  # tiles just cover the scan (the paper's "all sub-volumes"), as few as possible
VALIDATION_TILE_BATCH = 2  # tiles per forward call
_TINY = 1e-30  # floor of the probabilities before the log (the loss is given log-probabilities)


@torch.no_grad()
def predict_case(model: torch.nn.Module, case: TrainingCase, crop_shape: Sequence[int], device: torch.device,
                 window: Sequence[float] = DEFAULT_WINDOW_HU, amp: bool = False,
                 loss_name: Optional[str] = None) -> tuple[np.ndarray, list[float]]:
    """Label map (argmax channel) of one case in the network's space from crop-sized tiles through the
    inference predictor, and the loss of each tile (if ``loss_name``). Puts the model in eval mode."""
    predictor = TorchPredictor(model, window, device, bf16=amp)
    labels = pad_to(case.labels, crop_shape, 0)
    losses: list[float] = []

    def tile_loss(box, probs: np.ndarray) -> None:
        # log-probabilities as logits: their softmax is the probabilities, so the loss is unchanged
        logits = torch.from_numpy(np.log(np.maximum(probs, _TINY)))[None]
        target = torch.from_numpy(labels[box][None].astype(np.int64))
        ann = annotated_mask([case], probs.shape[0])  # partial labels: organs the case does not annotate ignored
        losses.append(float(segmentation_loss(loss_name, logits, target, ann)))

    probs = stitch_whole(case.image, predictor, crop_shape, _num_classes(model), VALIDATION_OVERLAP,
                         tile_batch=VALIDATION_TILE_BATCH, on_tile=tile_loss if loss_name is not None else None)
    return np.argmax(probs, axis=0).astype(np.uint8), losses


def _num_classes(model: torch.nn.Module) -> int:
    spec = getattr(model, "spec", None)  # organseglib.network's networks
    if spec is not None:
        return int(spec.num_classes)
    return int(getattr(model, "num_classes", len(organ_table()) + 1))  # else background + the organs


@torch.no_grad()
def validate(model: torch.nn.Module, cases: Sequence[TrainingCase], loss_name: str, crop_shape: Sequence[int],
             device: torch.device, window: Sequence[float] = DEFAULT_WINDOW_HU, amp: bool = False) -> dict:
    """``{"loss": mean tile loss, "dice": {organ key: mean Dice over scans holding the organ}}``.

    The model is put in eval mode and restored to its previous mode afterwards.
    """
    was_training = model.training
    losses: list[float] = []
    scores: dict[str, list[float]] = {o.key: [] for o in organ_table()}
    try:
        for case in cases:
            pred, tile_losses = predict_case(model, case, crop_shape, device, window, amp, loss_name)
            losses.extend(tile_losses)
            for organ in organ_table():
                ref = case.labels == organ.value
                if ref.any():
                    scores[organ.key].append(dice(pred == organ.value, ref))
    finally:
        model.train(was_training)
    return {"loss": float(np.mean(losses)) if losses else float("nan"),
            "dice": {k: float(np.mean(v)) for k, v in scores.items() if v}}


__all__ = ["VALIDATION_OVERLAP", "predict_case", "validate"]
