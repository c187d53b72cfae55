"""Training batches: plain random crops, or crops augmented by ``cudaaugment`` (section IV).

A *batch sampler* is a callable ``(cases, batch_size, crop_shape, rng, device, image_of=None) -> (x, y)``
with ``x`` float32 ``(N, 1, K, J, I)`` in [0, 1] (windowed CT, eq. 3) and ``y`` int64 ``(N, K, J, I)``;
``image_of(case, rng)``, when given, is the case's image as this crop sees it (label-guided intensity
augmentation, ``phase_augment.PhaseAugment.image_of``; default the case's own image). All
randomness is drawn from ``rng`` (a ``numpy.random.Generator``) so a checkpointed generator state
reproduces the batches exactly. The augmented sampler draws ``cudaaugment`` parameters whose
displacement places the output crop uniformly at random in the scan (the paper's random
sub-region), so warp and crop happen in one resampling; it runs on the GPU when the training device
is CUDA (torch backend) and with the torch backend on the CPU otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..network import DEFAULT_WINDOW_HU, window_hu
from ..network_space import LEFT_RIGHT_AXIS
from ..organs import ONE_SIDED_ORGANS, organ_by_key
from ..training_limits import check_mirror
from .dataset import AIR_HU, TrainingCase, random_crop

NUM_CLASSES = 6  # background and the five organs (organs.organ_table)


class Batch(tuple):
    """``(x, y)`` that also carries ``annotated``: bool ``(N, C)``, the classes each crop's case
    annotates (partial labels, ``losses.segmentation_loss``), or None when every case annotates all."""

    annotated: Optional[torch.Tensor] = None

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor, cases: Sequence[TrainingCase],
           unknown: Optional[Sequence[Sequence[int]]] = None) -> "Batch":
        """``unknown[n]``: label values crop ``n`` does not annotate although its case does (its
        voxels of them become background, the loss's marginal takes them; None: none)."""
        batch = cls((x, y))
        batch.annotated = annotated_mask(cases, device=y.device)
        if unknown is not None and any(len(u) for u in unknown):
            if batch.annotated is None:
                batch.annotated = torch.ones(len(cases), NUM_CLASSES, dtype=torch.bool, device=y.device)
            for n, values in enumerate(unknown):
                for value in values:
                    y[n][y[n] == value] = 0
                    batch.annotated[n, value] = False
        return batch


def annotated_mask(cases: Sequence[TrainingCase], num_classes: int = NUM_CLASSES,
                   device: Optional[torch.device] = None) -> Optional[torch.Tensor]:
    """Bool ``(N, C)`` of the classes each case annotates (background always), None when all do."""
    if all(getattr(c, "annotated", None) is None for c in cases):
        return None
    out = torch.ones(len(cases), num_classes, dtype=torch.bool)
    for n, case in enumerate(cases):
        if case.annotated is not None:
            out[n, 1:] = False
            for key in case.annotated:
                out[n, organ_by_key(key).value] = True
    return out.to(device) if device is not None else out


ImageOf = Callable[[TrainingCase, np.random.Generator], np.ndarray]
BatchSampler = Callable[[Sequence[TrainingCase], int, Sequence[int], np.random.Generator, torch.device],
                        tuple[torch.Tensor, torch.Tensor]]


def plain_batch(cases: Sequence[TrainingCase], batch_size: int, crop_shape: Sequence[int],
                rng: np.random.Generator, device: torch.device,
                window: Sequence[float] = DEFAULT_WINDOW_HU,
                image_of: Optional[ImageOf] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniformly random cases and crops, windowed with the fixed network window."""
    images, labels, chosen = [], [], []
    for _ in range(batch_size):
        case = cases[int(rng.integers(len(cases)))]
        chosen.append(case)
        image = case.image if image_of is None else image_of(case, rng)
        img, lab = random_crop(image, case.labels, crop_shape, rng)
        images.append(window_hu(img, window))
        labels.append(lab)
    x = torch.from_numpy(np.stack(images)[:, None]).to(device)
    y = torch.from_numpy(np.stack(labels).astype(np.int64)).to(device)
    return Batch.of(x, y, chosen)


def training_augment_config():
    """The project's augmentation ranges for CT training (cudaaugment defaults, plus air outside the
    scan, noise up to 25 HU and occlusion slabs up to 32 voxels (≈ 10 cm at 3 mm): section IV names
    these operations but gives no values, so these are our choices)."""
    from cudaaugment.config import AugmentConfig

    return AugmentConfig(image_fill=AIR_HU, noise_sigma=(0.0, 25.0), occlusion_max_vox=32.0)


@dataclass
class AugmentedBatches:
    """A batch sampler that augments with ``cudaaugment`` (config: a ``cudaaugment.AugmentConfig``).

    ``mirror``: the probability that a crop is mirrored left-right (it sets the config's
    ``reflect_prob`` on ``LEFT_RIGHT_AXIS``). A crop mirrored left-right, by this or by the config,
    leaves the one-sided organs (``organs.ONE_SIDED_ORGANS``, which the model card names) unannotated: a mirrored liver lies where no patient's does, so the
    loss neither teaches a liver on the left nor calls it background there (its marginal, partial
    labels), while the paired and midline organs are learnt from both sides.
    """

    config: object = None
    backend: str = "torch"
    window: tuple = DEFAULT_WINDOW_HU  # the model's intensity window (TrainConfig.window_hu)
    mirror: float = 0.0

    def __post_init__(self) -> None:
        if self.config is None:
            self.config = training_augment_config()
        if check_mirror(self.mirror):
            from dataclasses import replace

            probs = list(self.config.reflect_prob)
            probs[LEFT_RIGHT_AXIS] = float(self.mirror)
            self.config = replace(self.config, reflect_prob=tuple(probs))
        self._one_sided_values = tuple(organ_by_key(k).value for k in ONE_SIDED_ORGANS)

    def __call__(self, cases: Sequence[TrainingCase], batch_size: int, crop_shape: Sequence[int],
                 rng: np.random.Generator, device: torch.device,
                 image_of: Optional[ImageOf] = None) -> tuple[torch.Tensor, torch.Tensor]:
        from cudaaugment.api import augment_batch
        from cudaaugment.params import sample_params

        chosen = [cases[int(rng.integers(len(cases)))] for _ in range(batch_size)]
        params = [sample_params(rng, self.config, c.image.shape, tuple(crop_shape)) for c in chosen]
        images = [torch.from_numpy(c.image if image_of is None else image_of(c, rng)) for c in chosen]
        labels = [torch.from_numpy(c.labels) for c in chosen]
        options = {"device": device} if self.backend == "torch" else {}
        x, y = augment_batch(images, labels, params, backend=self.backend, **options)
        x = torch.as_tensor(x).to(device=device, dtype=torch.float32)
        if getattr(self.config, "window_low", None) is None:  # no random window: use the fixed one
            x = window_hu(x, self.window)
        y = torch.as_tensor(y).to(device=device, dtype=torch.int64).contiguous()
        unknown = [self._one_sided_values if p.reflect[LEFT_RIGHT_AXIS] else () for p in params]
        return Batch.of(x[:, None].contiguous(), y, chosen, unknown)


def make_augmenter(kind: str = "cudaaugment", config: Optional[object] = None,
                   window: Sequence[float] = DEFAULT_WINDOW_HU, mirror: float = 0.0) -> Optional[BatchSampler]:
    """``"cudaaugment"`` (default) or ``"none"``; ``window``: the model's intensity window in HU;
    ``mirror``: probability of a left-right mirror per crop (``AugmentedBatches``)."""
    if kind == "none":
        return None
    return AugmentedBatches(config=config, window=tuple(float(w) for w in window), mirror=float(mirror))
