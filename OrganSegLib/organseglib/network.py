"""The 3D GoogLeNet fully-convolutional network of Rister et al. (section V-B, Table I).

Layers, from the input image to the class maps (Table I; channel counts at ``width=1.0``)::

    conv 7³ stride 2 (64) → conv 1³ (64) → conv 4³ (192) → max-pool 2
    → inception ×6 (256, 480, 512, 512, 528, 832) → max-pool 2
    → inception ×2 (832, 1024) → interpolation ×8 (filter 8, stride 1/8) to the class maps

Every convolution is followed by bias, batch normalisation and ReLU (section V-B). An inception
module concatenates four paths: 1³; 1³ → 3³; 1³ → 5³; 3³ max-pool → 1³ (Szegedy et al.); the
per-path filter counts are GoogLeNet's for the modules of the same output size (3a, 3b, 4a, 4b, 4d,
4e, 5a, 5b), since the paper gives only the totals. No skip connections (section V-B).
The interpolation layer is a learned transposed convolution with filter 8 and stride 8, as Table I
lists it ("filter size 8 ... stride 1/8").

``forward`` returns **logits** ``(N, num_classes, K, J, I)``; the softmax of Table I's last row is
applied by the losses (``organseglib.losses``) and by inference (``torch.softmax(logits, 1)``).
The spatial input size must be a multiple of 8 in each axis; the output has the same size.

Input intensities: CT in HU mapped to [0, 1] by the window of eq. 3 (``window_hu``), the same
window/level operation the data augmentation randomises.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import InputError
from .network_spec import ARCHITECTURES, NetworkSpec

# Tile (K, J, I) = 160 slices × 120 × 120 at 3 mm: the paper's 120×120×160 input (section V-A).
PAPER_TILE_SHAPE = (160, 120, 120)
DOWNSAMPLING = 8  # stride-2 convolution and two max-pools (Table I)
# Default intensity window (HU) for the network input: wide enough for lungs (≈ −850 HU) and bone
# (≥ 700 HU). The paper randomises the window during augmentation (eq. 3) but gives no fixed value;
# this one is the project's choice and is recorded in each model card.
DEFAULT_WINDOW_HU = (-1000.0, 1000.0)

# Inception paths (1³, 3³ reduce, 3³, 5³ reduce, 5³, pool projection) per module, from GoogLeNet.
_INCEPTION_FILTERS = {
    "3a": (64, 96, 128, 16, 32, 32),       # 256
    "3b": (128, 128, 192, 32, 96, 64),     # 480
    "4a": (192, 96, 208, 16, 48, 64),      # 512
    "4b": (160, 112, 224, 24, 64, 64),     # 512
    "4d": (112, 144, 288, 32, 64, 64),     # 528
    "4e": (256, 160, 320, 32, 128, 128),   # 832
    "5a": (256, 160, 320, 32, 128, 128),   # 832
    "5b": (384, 192, 384, 48, 128, 128),   # 1024
}
_STAGE1 = ("3a", "3b", "4a", "4b", "4d", "4e")  # before the second pool (Table I)
_STAGE2 = ("5a", "5b")


def window_hu(hu: np.ndarray | torch.Tensor, window: Sequence[float] = DEFAULT_WINDOW_HU):
    """Eq. 3: clamp HU to the window ``[a, b]`` and map it affinely to [0, 1] (numpy or torch)."""
    a, b = float(window[0]), float(window[1])
    if not b > a:
        raise InputError(f"intensity window must have low < high (HU); got {tuple(window)!r}")
    if isinstance(hu, torch.Tensor):
        return ((hu - a) / (b - a)).clamp(0.0, 1.0)
    return np.clip((np.asarray(hu, dtype=np.float32) - a) / (b - a), 0.0, 1.0).astype(np.float32)


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    """Convolution with bias, batch normalisation and ReLU (section V-B: after every convolution)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        layers: list[nn.Module] = []
        if stride == 1 and kernel % 2 == 0:  # "same" size for the 4³ filter: pad 1 before, 2 after
            before, after = (kernel - 1) // 2, kernel // 2
            layers.append(nn.ConstantPad3d((before, after) * 3, 0.0))
            layers.append(nn.Conv3d(cin, cout, kernel, bias=True))
        else:
            layers.append(nn.Conv3d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=True))
        super().__init__(*layers, nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class Inception3d(nn.Module):
    """A 3D inception module: four parallel paths concatenated along channels."""

    def __init__(self, cin: int, filters: Sequence[int]) -> None:
        super().__init__()
        c1, r3, c3, r5, c5, cp = filters
        self.path1 = ConvBNReLU(cin, c1, 1)
        self.path3 = nn.Sequential(ConvBNReLU(cin, r3, 1), ConvBNReLU(r3, c3, 3))
        self.path5 = nn.Sequential(ConvBNReLU(cin, r5, 1), ConvBNReLU(r5, c5, 5))
        self.pathp = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), ConvBNReLU(cin, cp, 1))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.path1(x), self.path3(x), self.path5(x), self.pathp(x)]
        if x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
            # in channels_last_3d (network_layout) some CPU convolutions still return the standard layout
            # (a 1x1x1 weight is both layouts at once), and the concatenation follows them: every later
            # pooling and convolution then ran in the slow layout. One layout through the network, the
            # same numbers (measured: forward 1.5x faster at width 0.125, outputs bit-identical)
            parts = [p.contiguous(memory_format=torch.channels_last_3d) for p in parts]
        return torch.cat(parts, dim=1)


class GoogLeNet3d(nn.Module):
    """Table I as a module; see the module docstring. ``forward(x)`` returns logits."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        w = spec.width
        c64, c192 = _scaled(64, w), _scaled(192, w)
        self.stem = nn.Sequential(
            ConvBNReLU(spec.in_channels, c64, 7, stride=2),
            ConvBNReLU(c64, c64, 1),
            ConvBNReLU(c64, c192, 4),
            nn.MaxPool3d(2, stride=2),
        )
        layers: list[nn.Module] = []
        cin = c192
        for name in _STAGE1:
            module = Inception3d(cin, [_scaled(f, w) for f in _INCEPTION_FILTERS[name]])
            layers.append(module)
            cin = module.out_channels
        layers.append(nn.MaxPool3d(2, stride=2))
        for name in _STAGE2:
            module = Inception3d(cin, [_scaled(f, w) for f in _INCEPTION_FILTERS[name]])
            layers.append(module)
            cin = module.out_channels
        self.body = nn.Sequential(*layers)
        self.features = cin
        # Interpolation ×8 to the class maps (Table I: filter 8, stride 1/8).
        self.interpolate = nn.ConvTranspose3d(cin, spec.num_classes, DOWNSAMPLING, stride=DOWNSAMPLING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.spec.in_channels:
            raise InputError(f"network input must be (N, {self.spec.in_channels}, K, J, I); got {tuple(x.shape)!r}")
        if any(int(s) % DOWNSAMPLING for s in x.shape[2:]):
            raise InputError(f"network input sizes must be multiples of {DOWNSAMPLING}; got {tuple(x.shape[2:])!r} "
                             "(pad or crop the tile)")
        return self.interpolate(self.body(self.stem(x)))


def build_network(architecture: str = "googlenet3d", num_classes: int = 6, width: float = 1.0,
                  in_channels: int = 1) -> nn.Module:
    """Build the segmentation network (untrained, on the current default device).

    Args:
        architecture: ``"googlenet3d"`` (Table I).
        num_classes: output class maps (6: background and the five organs).
        width: channel multiplier (1.0 = Table I; e.g. 0.125 for the CPU demo model).
        in_channels: input image channels (1: windowed CT).

    Raises:
        InputError: unknown architecture or invalid sizes.
    """
    return GoogLeNet3d(NetworkSpec(architecture, num_classes, float(width), in_channels))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (works on the meta device)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
