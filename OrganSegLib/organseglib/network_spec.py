"""What a segmentation network is, without torch: the one set of rules for its fields.

``build_network`` (``organseglib.network``) builds from a ``NetworkSpec``, and a model card
(``organseglib.model_package.ModelCard``) checks its architecture fields by making one, so a card
that would only fail when the weights are loaded is refused when it is read, with the same rule.
Torch-free so that the Slicer GUI can read cards without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

ARCHITECTURES = ("googlenet3d",)
IN_CHANNELS = 1  # the network reads one channel: the windowed CT (eq. 3); every predictor feeds one


@dataclass(frozen=True)
class NetworkSpec:
    """What ``build_network`` is asked for (recorded in model cards).

    Args:
        architecture: one of ``ARCHITECTURES`` (``"googlenet3d"``: Table I).
        num_classes: output class maps, ≥ 2 (Table I: 6, background and the five organs).
        width: channel multiplier in (0, 4] (1.0 is Table I).
        in_channels: input channels; must be 1 (the windowed CT: every predictor and the training
            batches feed one channel, so any other value could never be fed).

    Raises:
        InputError: a field breaks its rule (the message names the field).
    """

    architecture: str = "googlenet3d"
    num_classes: int = 6
    width: float = 1.0
    in_channels: int = IN_CHANNELS

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {ARCHITECTURES}; got {self.architecture!r}")
        if int(self.num_classes) != self.num_classes or self.num_classes < 2:
            raise InputError(f"num_classes must be an integer ≥ 2; got {self.num_classes!r}")
        if not (0 < float(self.width) <= 4):
            raise InputError(f"width must be in (0, 4]; got {self.width!r} (1.0 is the paper's network)")
        if self.in_channels != IN_CHANNELS:
            raise InputError(f"in_channels must be {IN_CHANNELS} (the network reads one windowed CT channel); "
                             f"got {self.in_channels!r}")
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "in_channels", int(self.in_channels))


__all__ = ["ARCHITECTURES", "IN_CHANNELS", "NetworkSpec"]
