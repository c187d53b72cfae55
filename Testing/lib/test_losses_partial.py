"""Marginal (partial-label) losses on a hand-worked two-voxel example."""

import math

import pytest
import torch

from organseglib.errors import InputError
from organseglib.losses import marginal_probabilities, segmentation_loss

# Two voxels, three classes (0 background, 1 organ A, 2 organ B). The case annotates A but not B.
P = torch.tensor([[[0.5, 0.1], [0.2, 0.6], [0.3, 0.3]]])  # (N=1, C=3, 2 voxels)
LOGITS = P.log()  # softmax(log p) = p
LABELS = torch.tensor([[0, 1]])
ANN = torch.tensor([[True, True, False]])


def test_marginal_probabilities_merge_unannotated_into_background():
    merged = marginal_probabilities(P, ANN)
    # voxel 1: 0.5 + 0.3 = 0.8; voxel 2: 0.1 + 0.3 = 0.4; class B channel dropped to 0.
    assert torch.allclose(merged, torch.tensor([[[0.8, 0.4], [0.2, 0.6], [0.0, 0.0]]]))


def test_iou_hand_worked():
    # background': inter 0.8, union 1.2 + 1 - 0.8 = 1.4 -> 4/7; A: inter 0.6, union 0.8 + 1 - 0.6 = 1.2 -> 1/2
    # loss = 1 - (4/7 + 1/2) / 2 = 13/28 (class B is not averaged in)
    loss = segmentation_loss("iou", LOGITS, LABELS, ANN)
    assert float(loss) == pytest.approx(13 / 28, abs=1e-6)
    # without partial handling B's 0.3 + 0.3 counts as a false positive, and the loss differs
    assert float(segmentation_loss("iou", LOGITS, LABELS)) != pytest.approx(13 / 28, abs=1e-3)


def test_dice_hand_worked():
    # background': 2·0.8 / (1.2 + 1) = 8/11; A: 2·0.6 / (0.8 + 1) = 2/3; loss = 1 − (8/11 + 2/3)/2 = 10/33
    assert float(segmentation_loss("dice", LOGITS, LABELS, ANN)) == pytest.approx(10 / 33, abs=1e-6)


def test_wce_hand_worked():
    # weights 1/2 each (each class holds half the voxels); −log p'(true): −log 0.8 and −log 0.6, /2 voxels
    expected = (-math.log(0.8) - math.log(0.6)) / 4
    assert float(segmentation_loss("wce", LOGITS, LABELS, ANN)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", ["iou", "dice", "wce"])
def test_all_annotated_equals_plain_loss(name):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 4, 5, 3, generator=g)
    labels = torch.randint(0, 6, (2, 4, 5, 3), generator=g)
    full = torch.ones(2, 6, dtype=torch.bool)
    assert float(segmentation_loss(name, logits, labels, full)) == pytest.approx(
        float(segmentation_loss(name, logits, labels)), rel=1e-6)


@pytest.mark.parametrize("name", ["iou", "dice", "wce"])
def test_gradients_finite_and_unannotated_prediction_free(name):
    logits = LOGITS.clone().requires_grad_(True)
    segmentation_loss(name, logits, LABELS, ANN).backward()
    assert torch.isfinite(logits.grad).all()
    # moving probability between background and B (both "not A") changes nothing
    shifted = torch.tensor([[[0.6, 0.2], [0.2, 0.6], [0.2, 0.2]]]).log()
    assert float(segmentation_loss(name, shifted, LABELS, ANN)) == pytest.approx(
        float(segmentation_loss(name, LOGITS, LABELS, ANN)), abs=1e-6)


def test_label_of_unannotated_class_is_refused():
    with pytest.raises(InputError, match="does not annotate"):
        segmentation_loss("iou", LOGITS, torch.tensor([[0, 2]]), ANN)


def test_bad_annotated_shape():
    with pytest.raises(InputError, match="annotated"):
        segmentation_loss("iou", LOGITS, LABELS, torch.ones(1, 4, dtype=torch.bool))
