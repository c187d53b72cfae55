"""The loss functions against the properties stated in section V-C of the paper (eqs. 4-11)."""

from __future__ import annotations

import math

import pytest
import torch

from organseglib.errors import InputError
from organseglib.losses import (class_balance_weights, dice_loss, iou_f_loss, iou_loss, iou_power_loss,
                                one_hot, segmentation_loss, soft_dice, soft_iou, weighted_cross_entropy)

FAMILY = {
    "iou (eq. 5)": iou_loss,
    "iou m=2 (eq. 8)": lambda p, y: iou_power_loss(p, y, 2.0),
    "iou m=0.5 (eq. 8)": lambda p, y: iou_power_loss(p, y, 0.5),
    "iou f=sin (eq. 9)": lambda p, y: iou_f_loss(p, y, lambda t: torch.sin(0.5 * math.pi * t)),
    "dice (eq. 6)": dice_loss,
}
SET_SCORE = {"iou": lambda a, b: (a & b).sum().double() / (a | b).sum().double(),
             "dice": lambda a, b: 2 * (a & b).sum().double() / (a.sum() + b.sum()).double()}


def _binary_case(seed: int, n: int = 40):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(1, 1, n, generator=g) < 0.4).double()
    p = (torch.rand(1, 1, n, generator=g) < 0.5).double()
    y[0, 0, 0], p[0, 0, 1] = 1.0, 1.0  # never both empty
    return p, y


def _soft_case(seed: int, n: int = 30):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(1, 1, n, generator=g) < 0.5).double()
    y[0, 0, 0] = 1.0
    p = torch.rand(1, 1, n, generator=g, dtype=torch.float64).clamp(0.05, 0.95)
    return p, y


@pytest.mark.parametrize("name", list(FAMILY))
@pytest.mark.parametrize("seed", range(4))
def test_equal_to_binary_score_on_binary_p(name, seed):
    """Property 1: on binary p the loss is 1 − (binary IOU or Dice)."""
    p, y = _binary_case(seed)
    score = SET_SCORE["dice" if name.startswith("dice") else "iou"](p.bool(), y.bool())
    assert FAMILY[name](p, y).item() == pytest.approx(1.0 - score.item(), abs=1e-12)


def test_hand_worked_values():
    # p = (1, 1, 0, 0), y = (1, 0, 1, 0): IOU 1/3, Dice 1/2.
    p = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]], dtype=torch.float64)
    y = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]], dtype=torch.float64)
    assert iou_loss(p, y).item() == pytest.approx(2 / 3)
    assert dice_loss(p, y).item() == pytest.approx(1 / 2)
    # soft: p = (0.5, 0.5), y = (1, 0): IOU = 0.5 / (1 + 1 − 0.5) = 1/3; m = 2: 0.25 / (0.5 + 1 − 0.25) = 0.2
    p = torch.tensor([[[0.5, 0.5]]], dtype=torch.float64)
    y = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    assert iou_loss(p, y).item() == pytest.approx(2 / 3)
    assert iou_power_loss(p, y, 2.0).item() == pytest.approx(0.8)


@pytest.mark.parametrize("name", list(FAMILY))
@pytest.mark.parametrize("seed", range(3))
def test_monotone_in_each_p(name, seed):
    """Property 2: the loss strictly decreases in p_k where y_k = 1 and increases where y_k = 0."""
    p, y = _soft_case(seed)
    p.requires_grad_(True)
    (grad,) = torch.autograd.grad(FAMILY[name](p, y), p)
    assert torch.all(grad[y == 1] < 0) and torch.all(grad[y == 0] > 0)


@pytest.mark.parametrize("name", list(FAMILY))
@pytest.mark.parametrize("seed", range(3))
def test_extrema_at_y_and_one_minus_y(name, seed):
    """Property 3: loss 0 only at p = y, 1 at p = 1 − y, strictly between for other p."""
    p, y = _soft_case(seed)
    loss = FAMILY[name]
    assert loss(y, y).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(1 - y, y).item() == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < loss(p, y).item() < 1.0


def test_defined_at_p_equal_y_zero():
    """Property 4: the score is defined as 1 (loss 0) at p = y = 0, with finite gradients."""
    p = torch.zeros(2, 3, 5, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(2, 3, 5, dtype=torch.float64)
    assert torch.all(soft_iou(p, y) == 1) and torch.all(soft_dice(p, y) == 1)
    loss = iou_loss(p, y) + dice_loss(p, y)
    assert loss.item() == 0.0
    (grad,) = torch.autograd.grad(loss, p)
    assert torch.all(torch.isfinite(grad))


@pytest.mark.parametrize("seed", range(5))
def test_false_negative_and_false_positive_penalties(seed):
    """Eqs. 10 and 11: with ε = ‖p − y‖₁ and N = ‖y‖₁, L_FN = ε/N (p ≤ y) and L_FP = ε/(N + ε) (p ≥ y)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(1, 1, 50, generator=g) < 0.5).double()
    y[0, 0, 0] = 1.0
    n = y.sum().item()
    shrink = y * torch.rand(y.shape, generator=g, dtype=torch.float64)          # p ≤ y
    grow = torch.maximum(y, torch.rand(y.shape, generator=g, dtype=torch.float64))  # p ≥ y
    eps_fn = (shrink - y).abs().sum().item()
    eps_fp = (grow - y).abs().sum().item()
    assert iou_loss(shrink, y).item() == pytest.approx(eps_fn / n, rel=1e-12)
    assert iou_loss(grow, y).item() == pytest.approx(eps_fp / (n + eps_fp), rel=1e-12)


@pytest.mark.parametrize("name", list(FAMILY))
def test_gradcheck(name):
    p, y = _soft_case(7, n=12)
    p = p.reshape(1, 2, 6).clone().requires_grad_(True)
    y = y.reshape(1, 2, 6)
    assert torch.autograd.gradcheck(lambda q: FAMILY[name](q, y), (p,))


def test_gradcheck_weighted_cross_entropy_and_softmax_losses():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 5), generator=g)
    y = one_hot(labels, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q: weighted_cross_entropy(q, y), (logits,))
    for name in ("iou", "dice"):
        assert torch.autograd.gradcheck(
            lambda q: (1 - soft_iou(torch.softmax(q, 1), y)).mean() if name == "iou"
            else (1 - soft_dice(torch.softmax(q, 1), y)).mean(), (logits,))


def test_weighted_cross_entropy_is_eq4_in_the_binary_case():
    """Binary: (1/n) Σ ((1 − y)·w + y·(1 − w)) L_k with w the foreground fraction and L_k = −log p(y_k)."""
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(1, 20, generator=g) < 0.2).long()
    logits = torch.randn(1, 2, 20, generator=g, dtype=torch.float64)
    w = labels.double().mean()
    logp = torch.log_softmax(logits, 1)
    lk = -torch.where(labels == 1, logp[:, 1], logp[:, 0])
    weight = (1 - labels) * w + labels * (1 - w)
    expected = (weight * lk).mean()
    got = weighted_cross_entropy(logits, one_hot(labels, 2, dtype=torch.float64))
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_class_weights_make_every_class_weigh_the_same():
    labels = torch.zeros(1, 100, dtype=torch.long)
    labels[0, :10] = 1
    labels[0, 10:12] = 2
    y = one_hot(labels, 4)
    w = class_balance_weights(y)[0]
    totals = w * y[0].sum(-1)  # total weight of each class's voxels
    assert w[3] == 0 and w.sum().item() == pytest.approx(1.0)
    assert totals[0].item() == pytest.approx(totals[1].item()) == pytest.approx(totals[2].item())


def test_segmentation_loss_perfect_and_bad_prediction():
    labels = torch.tensor([[[0, 1, 2, 2]]])
    good = 50.0 * one_hot(labels, 3).movedim(1, 1)
    assert segmentation_loss("iou", good, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert segmentation_loss("dice", good, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert segmentation_loss("wce", good, labels).item() == pytest.approx(0.0, abs=1e-6)
    bad = 50.0 * one_hot((labels + 1) % 3, 3)
    assert segmentation_loss("iou", bad, labels).item() == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(InputError, match="loss must be one of"):
        segmentation_loss("focal", torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(InputError, match="label values"):
        one_hot(torch.tensor([[0, 7]]), 6)
    with pytest.raises(InputError, match="same"):
        iou_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(InputError, match="power m"):
        iou_power_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), 0.0)
