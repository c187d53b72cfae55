"""Segmentation losses of Rister et al. section V-C: the IOU loss family, Dice and weighted CE.

Shapes: probabilities ``p`` and one-hot targets ``y`` are ``(N, C, *spatial)``; integer label maps
are ``(N, *spatial)``. The set functions are computed per image and per class, then averaged over
classes and images ("to extend this to multi-class segmentation, simply average the L_IOU for each
class"; the training loss is the average over the random crops).

* ``soft_iou`` — eq. 9 (the score): ``Σ f(p)y / (Σ f(p) + Σ y − Σ f(p)y)``; ``f(p) = p`` is eq. 5 and
  ``f(p) = p**m`` is eq. 8. Where ``p = y = 0`` the score is defined as 1 (paper, property 4: p = y
  is the maximum), so the loss is 0 there. Note that for an absent class (``y = 0``) and any
  ``p > 0`` the score is 0, so that term carries no gradient; the background and present classes
  still penalise such false positives through the softmax.
* ``iou_loss = 1 − soft_iou`` (eq. 5), ``iou_power_loss`` (eq. 8), ``iou_f_loss`` (eq. 9).
* ``dice_loss`` — eq. 6: ``1 − 2Σpy / (Σp + Σy)``, 0 at ``p = y = 0``.
* ``weighted_cross_entropy`` — eq. 4 with the weights the text describes ("a separate weight is
  assigned to each voxel so that all objects weigh the same, regardless of size"): each class gets
  weight ∝ 1/(its voxel fraction), normalised to sum to 1 over the classes present. For two classes
  this is ``(1 − w)`` for ``y = 1`` and ``w`` for ``y = 0`` with ``w`` the foreground fraction. (Eq. 4
  as printed swaps the two, which would amplify the imbalance it is meant to remove; we follow the
  text.)

Partial labels (marginal loss, Shi et al. 2021 "Marginal loss and exclusion loss for partially
supervised multi-organ segmentation"; Fang & Yan 2020, "Multi-organ segmentation over partially
labeled datasets with multi-scale feature abstraction"): a case that does not annotate an organ
labels it 0 there, so 0 means "background *or* an unannotated organ". ``annotated`` is a boolean
``(N, C)`` tensor (class 0 always True). For image ``n`` the probabilities of its unannotated classes
are merged into the background channel (``p'_0 = p_0 + Σ_{c unannotated} p_c``, those channels are
dropped), the one-hot targets are unchanged (they are 0 on those channels), and the set losses are
averaged over the annotated classes only; weighted cross-entropy uses ``log p'``. A prediction of an
unannotated organ where the reference says 0 is therefore never penalised, and with every class
annotated each loss equals its plain form exactly. Hand-worked example in ``Testing/lib/test_losses_partial.py``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .errors import InputError

LOSSES = ("iou", "dice", "wce")


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N, *spatial)`` integer labels -> ``(N, C, *spatial)`` one-hot of ``dtype``."""
    if labels.dtype.is_floating_point:
        raise InputError(f"labels must be an integer tensor; got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InputError(f"label values must lie in [0, {num_classes - 1}]; got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return F.one_hot(labels.long(), num_classes).movedim(-1, 1).to(dtype)


def _check_pair(p: torch.Tensor, y: torch.Tensor) -> None:
    if p.shape != y.shape or p.dim() < 2:
        raise InputError(f"probabilities and one-hot targets must have the same (N, C, ...) shape; got "
                         f"{tuple(p.shape)!r} and {tuple(y.shape)!r}")


def soft_iou(p: torch.Tensor, y: torch.Tensor, f: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Eq. 9 score per image and class, ``(N, C)``; ``f`` defaults to the identity (eq. 5).

    Args:
        p: probabilities in [0, 1], ``(N, C, *spatial)``.
        y: binary targets, same shape.
        f: increasing map of [0, 1] with f(0) = 0 and f(1) = 1 applied to ``p`` (eq. 9).
    """
    _check_pair(p, y)
    fp = p if f is None else f(p)
    dims = tuple(range(2, p.dim()))
    inter = (fp * y).sum(dims)
    union = fp.sum(dims) + y.sum(dims) - inter
    empty = union <= 0
    # Defined as 1 where p = y = 0 (property 4); the `where` keeps gradients finite there.
    return torch.where(empty, torch.ones_like(inter), inter / torch.where(empty, torch.ones_like(union), union))


def iou_loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``1 − soft IOU``, averaged over classes and images."""
    return (1.0 - soft_iou(p, y)).mean()


def iou_power_loss(p: torch.Tensor, y: torch.Tensor, m: float) -> torch.Tensor:
    """Eq. 8 family: ``f(p) = p**m`` for a power ``m > 0``."""
    if not m > 0:
        raise InputError(f"the power m of eq. 8 must be > 0; got {m!r}")
    return (1.0 - soft_iou(p, y, lambda t: t.pow(m))).mean()


def iou_f_loss(p: torch.Tensor, y: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Eq. 9 family: any smooth increasing ``f`` on [0, 1] with ``f(0) = 0``, ``f(1) = 1``."""
    return (1.0 - soft_iou(p, y, f)).mean()


def soft_dice(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 6 score ``2Σpy / (Σp + Σy)`` per image and class; 1 where ``p = y = 0``."""
    _check_pair(p, y)
    dims = tuple(range(2, p.dim()))
    num = 2.0 * (p * y).sum(dims)
    den = p.sum(dims) + y.sum(dims)
    empty = den <= 0
    return torch.where(empty, torch.ones_like(num), num / torch.where(empty, torch.ones_like(den), den))


def dice_loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``1 − soft Dice``, averaged over classes and images."""
    return (1.0 - soft_dice(p, y)).mean()


def class_balance_weights(y: torch.Tensor) -> torch.Tensor:
    """Per image and class weights ``(N, C)`` ∝ 1/fraction, summing to 1 over the classes present."""
    dims = tuple(range(2, y.dim()))
    frac = y.sum(dims) / float(max(1, y[0, 0].numel()))
    inv = torch.where(frac > 0, 1.0 / frac.clamp_min(1e-12), torch.zeros_like(frac))
    return inv / inv.sum(1, keepdim=True).clamp_min(1e-12)


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``(1/n) Σ_k weight(y_k) · (−log p_k[y_k])`` per image, averaged over images.

    Args:
        logits: network output ``(N, C, *spatial)`` (the softmax is applied here, stably).
        y: one-hot targets of the same shape.
    """
    _check_pair(logits, y)
    weights = class_balance_weights(y).detach()
    dims = tuple(range(2, y.dim()))
    nll = -(F.log_softmax(logits, dim=1) * y)  # voxel losses L_k, in the channel of the true class
    per_class = nll.sum(dims) / float(max(1, y[0, 0].numel()))
    return (weights * per_class).sum(1).mean()


def check_annotated(annotated: torch.Tensor, n: int, c: int) -> torch.Tensor:
    """``annotated`` as a bool ``(N, C)`` tensor with class 0 forced True.

    Raises:
        InputError: wrong shape.
    """
    ann = torch.as_tensor(annotated).to(torch.bool)
    if ann.shape != (n, c):
        raise InputError(f"annotated must be a (N, C) = ({n}, {c}) boolean tensor; got shape {tuple(ann.shape)!r}")
    ann = ann.clone()
    ann[:, 0] = True
    return ann


def marginal_probabilities(p: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Probabilities with each image's unannotated classes merged into background (module docstring);
    the unannotated channels become 0."""
    ann = check_annotated(annotated, p.shape[0], p.shape[1]).to(p.device)
    shape = ann.shape + (1,) * (p.dim() - 2)
    keep = ann.reshape(shape).to(p.dtype)
    merged = (p * (1.0 - keep)).sum(1, keepdim=True)
    out = p * keep
    return torch.cat([out[:, :1] + merged, out[:, 1:]], dim=1)


def _masked_mean(per_class: torch.Tensor, ann: torch.Tensor) -> torch.Tensor:
    """Mean over the annotated classes of each image, then over images."""
    w = ann.to(per_class.dtype)
    return ((per_class * w).sum(1) / w.sum(1)).mean()


def marginal_log_probabilities(logits: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """``log p'`` (merged background) from logits, stably; unannotated channels are −inf."""
    ann = check_annotated(annotated, logits.shape[0], logits.shape[1]).to(logits.device)
    logp = F.log_softmax(logits, dim=1)
    shape = ann.shape + (1,) * (logits.dim() - 2)
    keep = ann.reshape(shape).expand_as(logp)
    neg_inf = torch.full_like(logp, float("-inf"))
    bg = torch.logsumexp(torch.where(keep, neg_inf, logp), dim=1, keepdim=True)
    bg = torch.logaddexp(logp[:, :1], bg)
    rest = torch.where(keep[:, 1:], logp[:, 1:], neg_inf[:, 1:])
    return torch.cat([bg, rest], dim=1)


def segmentation_loss(name: str, logits: torch.Tensor, labels: torch.Tensor,
                      annotated: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The training loss ``name`` (``"iou"``, ``"dice"``, ``"wce"``) of logits and integer labels.

    Args:
        annotated: optional bool ``(N, C)``: the classes each image annotates (marginal loss, module
            docstring); None means every class is annotated in every image.

    Raises:
        InputError: an unknown loss, bad labels, or labels holding a class the image does not annotate.
    """
    if name not in LOSSES:
        raise InputError(f"loss must be one of {LOSSES}; got {name!r}")
    y = one_hot(labels, logits.shape[1], dtype=torch.float32)
    logits = logits.float()  # losses in float32 even under mixed precision
    if annotated is None:
        if name == "wce":
            return weighted_cross_entropy(logits, y)
        p = torch.softmax(logits, dim=1)
        return iou_loss(p, y) if name == "iou" else dice_loss(p, y)
    ann = check_annotated(annotated, logits.shape[0], logits.shape[1]).to(logits.device)
    dims = tuple(range(2, y.dim()))
    if bool((y.sum(dims)[~ann] > 0).any()):
        raise InputError("labels hold a class that their case does not annotate; write unannotated organs as 0 "
                         "(label_import does) or list them in annotated_organs")
    if name == "wce":
        weights = class_balance_weights(y).detach()
        nll = -(torch.where(y > 0, marginal_log_probabilities(logits, ann), torch.zeros_like(y)))
        per_class = nll.sum(dims) / float(max(1, y[0, 0].numel()))
        return (weights * per_class).sum(1).mean()
    p = marginal_probabilities(torch.softmax(logits, dim=1), ann)
    score = soft_iou(p, y) if name == "iou" else soft_dice(p, y)
    return _masked_mean(1.0 - score, ann)
