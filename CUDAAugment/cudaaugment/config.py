"""User ranges from which augmentation parameters are drawn (paper section IV).

Every range is a ``(low, high)`` pair and every draw is uniform on it, as in the paper. Lengths
are in voxels of the input array (the paper resamples every scan to 3 mm isotropic voxels before
augmenting, so a voxel is a fixed physical length there); angles are in degrees; intensities are
in the image's own units (HU for CT).

The paper states the kind of every range but not its values, except the window examples; the
defaults below are marked with where they come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

from .errors import AugmentError

Range = Tuple[float, float]


def check_range(name: str, value: object, *, low_min: float | None = None,
                strictly_positive: bool = False) -> Range:
    """Validate a ``(low, high)`` pair of finite numbers with low <= high.

    Args:
        name: parameter name used in the error message.
        value: the pair to check.
        low_min: smallest allowed ``low`` (inclusive), or None.
        strictly_positive: require ``low > 0``.

    Returns:
        The pair as a tuple of two floats.

    Raises:
        AugmentError: if the value is not a pair of finite numbers with low <= high within limits.
    """
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise AugmentError(f"{name} must be a (low, high) pair of numbers; got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise AugmentError(f"{name} must hold finite numbers; got {value!r}")
    if low > high:
        raise AugmentError(f"{name} must have low <= high; got {value!r}. Swap the two values.")
    if low_min is not None and low < low_min:
        raise AugmentError(f"{name} must have low >= {low_min}; got {value!r}")
    if strictly_positive and low <= 0:
        raise AugmentError(f"{name} must have low > 0; got {value!r}")
    return (low, high)


def check_probability(name: str, value: object) -> float:
    """Validate a probability in [0, 1].

    Raises:
        AugmentError: if the value is not a number in [0, 1].
    """
    try:
        p = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AugmentError(f"{name} must be a probability in [0, 1]; got {value!r}") from None
    if not 0.0 <= p <= 1.0:
        raise AugmentError(f"{name} must be a probability in [0, 1]; got {value!r}")
    return p


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (paper section IV); validated on construction.

    Attributes:
        rotation_deg: range of each of the three rotation angles (about array axes 0, 1, 2), degrees.
            Default ±15° (our choice; the paper gives no value).
        scale: range of each per-axis scale factor of the sampling coordinates (factor > 1 samples a
            larger field, so anatomy looks smaller). Default 0.9-1.1 (our choice).
        shear: range of each of the three shear coefficients (upper triangle). Default ±0.05 (ours).
        reflect_prob: probability that the volume is reflected about each array axis (paper
            footnote 3). Default 0 on every axis (ours: left-right flips mislabel lateral organs).
        generic: range of each of the nine entries of the generic affine perturbation E in
            A = ... (I + E). Default ±0.02 (ours).
        displacement_vox: per-axis ranges of the displacement d of the centre, in voxels; None
            (default) draws a uniform random crop: d_k ~ U[-m_k, m_k], m_k = max(in_k - out_k, 0)/2,
            like the paper's uniformly placed 120x120x160 training sub-region (section V).
        occlusion_max_vox: δmax, the largest occluded slab height along array axis 0, in output
            voxels; 0 disables occlusion. Default 0 (off; the paper gives no value).
        occlusion_value: value written into occluded image voxels before noise and window. Default
            0, as in the paper's equation (2).
        noise_sigma: range of the per-example standard deviation σ of the additive Gaussian noise,
            image units. Default (0, 0): off (the paper gives no value).
        window_low: range of the lower window limit a, or None for no window/level. Default
            (-1000, -150) HU: the paper's bone and abdominal window lower limits (section IV).
        window_high: range of the upper window limit b, or None. Default (230, 1500) HU: the
            paper's abdominal and bone window upper limits (section IV). Every draw has a < b.
        image_fill: image value outside the input volume. Default 0 (CT users pass -1000).
        label_fill: label value outside the input volume. Default 0 (background).
    """

    rotation_deg: Range = (-15.0, 15.0)
    scale: Range = (0.9, 1.1)
    shear: Range = (-0.05, 0.05)
    reflect_prob: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    generic: Range = (-0.02, 0.02)
    displacement_vox: Optional[Tuple[Range, Range, Range]] = None
    occlusion_max_vox: float = 0.0
    occlusion_value: float = 0.0
    noise_sigma: Range = (0.0, 0.0)
    window_low: Optional[Range] = (-1000.0, -150.0)
    window_high: Optional[Range] = (230.0, 1500.0)
    image_fill: float = 0.0
    label_fill: int = field(default=0)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "rotation_deg", check_range("rotation_deg", self.rotation_deg))
        s(self, "scale", check_range("scale", self.scale, strictly_positive=True))
        s(self, "shear", check_range("shear", self.shear))
        s(self, "generic", check_range("generic", self.generic))
        probs = _three("reflect_prob", self.reflect_prob)
        s(self, "reflect_prob", tuple(check_probability(f"reflect_prob[{i}]", p)
                                      for i, p in enumerate(probs)))
        if self.displacement_vox is not None:
            ranges = _three("displacement_vox", self.displacement_vox)
            s(self, "displacement_vox", tuple(check_range(f"displacement_vox[{i}]", r)
                                              for i, r in enumerate(ranges)))
        s(self, "occlusion_max_vox", _finite("occlusion_max_vox", self.occlusion_max_vox, minimum=0.0))
        s(self, "occlusion_value", _finite("occlusion_value", self.occlusion_value))
        s(self, "noise_sigma", check_range("noise_sigma", self.noise_sigma, low_min=0.0))
        if (self.window_low is None) != (self.window_high is None):
            raise AugmentError("window_low and window_high must both be ranges or both be None; "
                               f"got window_low={self.window_low!r}, window_high={self.window_high!r}")
        if self.window_low is not None:
            low = check_range("window_low", self.window_low)
            high = check_range("window_high", self.window_high)
            if low[1] >= high[0]:
                raise AugmentError("window ranges must guarantee a < b: need window_low[1] < "
                                   f"window_high[0]; got window_low={low!r}, window_high={high!r}")
            s(self, "window_low", low)
            s(self, "window_high", high)
        s(self, "image_fill", _finite("image_fill", self.image_fill))
        if isinstance(self.label_fill, bool) or not float(self.label_fill).is_integer():
            raise AugmentError(f"label_fill must be an integer label value; got {self.label_fill!r}")
        s(self, "label_fill", int(self.label_fill))

    @classmethod
    def identity(cls, **overrides: object) -> "AugmentConfig":
        """A configuration that draws the identity transform and no photometric change.

        Args:
            overrides: fields to set on top of the identity (e.g. ``noise_sigma=(5, 10)``).
        """
        base: dict = dict(rotation_deg=(0.0, 0.0), scale=(1.0, 1.0), shear=(0.0, 0.0),
                          reflect_prob=(0.0, 0.0, 0.0), generic=(0.0, 0.0),
                          displacement_vox=((0.0, 0.0),) * 3, occlusion_max_vox=0.0,
                          noise_sigma=(0.0, 0.0), window_low=None, window_high=None)
        base.update(overrides)
        return cls(**base)


def _three(name: str, value: object) -> Sequence:
    try:
        items = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise AugmentError(f"{name} must have one entry per array axis (3); got {value!r}") from None
    if len(items) != 3:
        raise AugmentError(f"{name} must have one entry per array axis (3); got {value!r}")
    return items


def _finite(name: str, value: object, minimum: float | None = None) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AugmentError(f"{name} must be a finite number; got {value!r}") from None
    if not math.isfinite(v):
        raise AugmentError(f"{name} must be a finite number; got {value!r}")
    if minimum is not None and v < minimum:
        raise AugmentError(f"{name} must be >= {minimum}; got {value!r}")
    return v
