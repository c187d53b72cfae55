"""Drawn augmentation parameters and the one coordinate convention every backend follows.

Convention (all backends):

* Arrays are indexed ``[z, y, x] = [k, j, i]``; a point is a vector ``p = (p0, p1, p2)`` of
  voxel coordinates in that axis order; voxel ``[k, j, i]`` has its centre at ``p = (k, j, i)``.
* The affine maps OUTPUT voxel coordinates to INPUT voxel coordinates (pull-back, as in texture
  sampling): ``I_out(x) = I_in(A x + b)``.
* ``c_out = (out_shape - 1) / 2`` and ``c_in = (in_shape - 1) / 2`` are the grid centres, and
  ``b = c_in + d - A c_out``, so the output centre samples the input at ``c_in + d``. With equal
  shapes this is the paper's ``b = c + d - A c``.
* ``A = R0 R1 R2 · H · S · F · (I + E)``: ``R_a`` rotates about array axis ``a`` (in the plane of the
  other two axes), ``H`` is unit upper-triangular shear (H01, H02, H12), ``S = diag(scale)``,
  ``F = diag(±1)`` reflections, ``E`` the generic perturbation.
* Out-of-bounds: the input is extended by ``image_fill`` (labels: ``label_fill``) and the image is
  interpolated across the edge (scipy ``mode="grid-constant"``; texture border addressing).
* Occlusion acts along output axis 0 ("z"): voxel ``k`` is occluded when
  ``occlusion_start <= k < occlusion_start + occlusion_height``, with height ``~U[0, δmax]`` and
  start ``~U[-δmax, out_shape[0]]``, so every ``k`` in ``[0, out_shape[0] - 1]`` is occluded with the
  same probability ``E[δ] / (out_shape[0] + δmax)``. Labels are not occluded.
* Order of operations: affine sample (or occlusion value) -> + σ·n -> window
  ``min(max((v - a) / (b - a), 0), 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .config import AugmentConfig, check_probability
from .errors import AugmentError

Shape3 = Tuple[int, int, int]
Vec3 = Tuple[float, float, float]


def check_shape(name: str, shape: object) -> Shape3:
    """Validate a 3D grid shape with every extent >= 2.

    Raises:
        AugmentError: if the shape is not three integers >= 2.
    """
    try:
        dims = tuple(int(v) for v in shape)  # type: ignore[union-attr]
        ok = len(dims) == 3 and all(float(v) == int(v) for v in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        dims, ok = (), False
    if not ok:
        raise AugmentError(f"{name} must be three integers (z, y, x); got {shape!r}")
    if min(dims) < 2:
        raise AugmentError(f"{name} must have every extent >= 2 voxels; got {shape!r}")
    return dims  # type: ignore[return-value]


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """``R0 @ R1 @ R2``, where ``R_a`` rotates by ``angles_deg[a]`` about array axis ``a``."""
    out = np.eye(3)
    for axis, angle in enumerate(angles_deg):
        u, v = [a for a in range(3) if a != axis]
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        r = np.eye(3)
        r[u, u], r[u, v], r[v, u], r[v, v] = c, -s, s, c
        out = out @ r
    return out


@dataclass(frozen=True)
class AugmentParams:
    """Every value drawn for one example; ``apply`` with these is deterministic.

    Attributes:
        in_shape, out_shape: input and output grid shapes (z, y, x).
        rotation_deg: angles about array axes 0, 1, 2 (degrees).
        scale: per-axis scale factors of the sampling coordinates.
        shear: (H01, H02, H12).
        reflect: per-axis reflection flags.
        generic: 3x3 generic perturbation E (row-major tuple of tuples).
        displacement: d, voxels (axis order).
        occlusion_start, occlusion_height: occluded output slab along axis 0 (height 0: none).
        occlusion_value: value of occluded image voxels.
        noise_sigma: σ of the additive Gaussian noise (0: none).
        noise_seed: seed of the per-voxel noise (each backend's generator, see README).
        window: (a, b) with a < b, or None for no window.
        image_fill, label_fill: values outside the input volume.
    """

    in_shape: Shape3
    out_shape: Shape3
    rotation_deg: Vec3 = (0.0, 0.0, 0.0)
    scale: Vec3 = (1.0, 1.0, 1.0)
    shear: Vec3 = (0.0, 0.0, 0.0)
    reflect: Tuple[bool, bool, bool] = (False, False, False)
    generic: Tuple[Vec3, Vec3, Vec3] = ((0.0,) * 3,) * 3
    displacement: Vec3 = (0.0, 0.0, 0.0)
    occlusion_start: float = 0.0
    occlusion_height: float = 0.0
    occlusion_value: float = 0.0
    noise_sigma: float = 0.0
    noise_seed: int = 0
    window: Optional[Tuple[float, float]] = None
    image_fill: float = 0.0
    label_fill: int = 0

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "in_shape", check_shape("in_shape", self.in_shape))
        s(self, "out_shape", check_shape("out_shape", self.out_shape))
        for name in ("rotation_deg", "scale", "shear", "displacement"):
            s(self, name, _vec3(name, getattr(self, name)))
        if min(abs(v) for v in self.scale) == 0.0:
            raise AugmentError(f"scale factors must be non-zero; got {self.scale!r}")
        s(self, "reflect", tuple(bool(v) for v in self.reflect))
        gen = np.asarray(self.generic, dtype=float)
        if gen.shape != (3, 3) or not np.all(np.isfinite(gen)):
            raise AugmentError(f"generic must be a finite 3x3 matrix; got {self.generic!r}")
        s(self, "generic", tuple(tuple(float(v) for v in row) for row in gen))
        for name in ("occlusion_start", "occlusion_height", "occlusion_value", "noise_sigma",
                     "image_fill"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise AugmentError(f"{name} must be finite; got {getattr(self, name)!r}")
            s(self, name, value)
        if self.occlusion_height < 0:
            raise AugmentError(f"occlusion_height must be >= 0; got {self.occlusion_height!r}")
        if self.noise_sigma < 0:
            raise AugmentError(f"noise_sigma must be >= 0 (a standard deviation); got "
                               f"{self.noise_sigma!r}")
        if not (isinstance(self.noise_seed, (int, np.integer)) and 0 <= self.noise_seed < 2**64):
            raise AugmentError(f"noise_seed must be an integer in [0, 2**64); got {self.noise_seed!r}")
        s(self, "noise_seed", int(self.noise_seed))
        if self.window is not None:
            a, b = (float(v) for v in self.window)
            if not (math.isfinite(a) and math.isfinite(b) and a < b):
                raise AugmentError(f"window must be (a, b) with finite a < b; got {self.window!r}. "
                                   "Swap the limits or widen the window.")
            s(self, "window", (a, b))
        if isinstance(self.label_fill, bool) or not float(self.label_fill).is_integer():
            raise AugmentError(f"label_fill must be an integer; got {self.label_fill!r}")
        s(self, "label_fill", int(self.label_fill))

    @classmethod
    def identity(cls, in_shape: Sequence[int], out_shape: Sequence[int] | None = None,
                 **fields: object) -> "AugmentParams":
        """Parameters of the identity transform (centred crop/pad when shapes differ)."""
        return cls(in_shape=tuple(in_shape), out_shape=tuple(out_shape or in_shape), **fields)

    @property
    def matrix(self) -> np.ndarray:
        """A (3x3, float64): output voxel coordinates -> input voxel coordinates (axis order)."""
        shear = np.eye(3)
        shear[0, 1], shear[0, 2], shear[1, 2] = self.shear
        reflect = np.diag([-1.0 if r else 1.0 for r in self.reflect])
        return (rotation_matrix(self.rotation_deg) @ shear @ np.diag(self.scale) @ reflect
                @ (np.eye(3) + np.asarray(self.generic)))

    @property
    def offset(self) -> np.ndarray:
        """b (3, float64) = c_in + d - A c_out."""
        c_in = (np.asarray(self.in_shape, float) - 1) / 2
        c_out = (np.asarray(self.out_shape, float) - 1) / 2
        return c_in + np.asarray(self.displacement) - self.matrix @ c_out

    def occluded_range(self) -> Tuple[int, int]:
        """Occluded output rows along axis 0 as ``[k0, k1)``, clipped to the grid.

        ``k >= start`` and ``k < start + height`` for integer k are ``k >= ceil(start)`` and
        ``k < ceil(start + height)``; every backend uses these integers, so all agree exactly.
        """
        n = self.out_shape[0]
        if self.occlusion_height <= 0:
            return (0, 0)
        k0 = min(max(math.ceil(self.occlusion_start), 0), n)
        k1 = min(max(math.ceil(self.occlusion_start + self.occlusion_height), k0), n)
        return (k0, k1)

    def occluded_rows(self) -> np.ndarray:
        """Boolean mask over output axis 0: True where the slice is occluded."""
        rows = np.zeros(self.out_shape[0], bool)
        k0, k1 = self.occluded_range()
        rows[k0:k1] = True
        return rows


def sample_params(rng: np.random.Generator, config: AugmentConfig, in_shape: Sequence[int],
                  out_shape: Sequence[int] | None = None) -> AugmentParams:
    """Draw one example's parameters from ``config`` (all uniform, as in the paper).

    Args:
        rng: the generator to draw from (never a global one).
        config: the ranges.
        in_shape: input volume shape (z, y, x).
        out_shape: output shape; defaults to ``in_shape``.

    Returns:
        The drawn parameters.

    Raises:
        AugmentError: for a bad shape or a non-Generator ``rng``.
    """
    if not isinstance(rng, np.random.Generator):
        raise AugmentError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); "
                           f"got {type(rng).__name__}")
    if not isinstance(config, AugmentConfig):
        raise AugmentError(f"config must be an AugmentConfig; got {type(config).__name__}")
    in_shape = check_shape("in_shape", in_shape)
    out_shape = check_shape("out_shape", out_shape if out_shape is not None else in_shape)

    def u(r: Tuple[float, float], n: int | None = None) -> np.ndarray:
        return rng.uniform(r[0], r[1], size=n)

    rotation = u(config.rotation_deg, 3)
    scale = u(config.scale, 3)
    shear = u(config.shear, 3)
    reflect = rng.uniform(size=3) < np.asarray(config.reflect_prob)
    generic = u(config.generic, 9).reshape(3, 3)
    if config.displacement_vox is None:
        half = np.maximum(np.asarray(in_shape) - np.asarray(out_shape), 0) / 2
        displacement = rng.uniform(-half, half)
    else:
        displacement = np.array([rng.uniform(lo, hi) for lo, hi in config.displacement_vox])
    dmax = config.occlusion_max_vox
    height = rng.uniform(0.0, dmax)
    start = rng.uniform(-dmax, out_shape[0])
    sigma = rng.uniform(*config.noise_sigma)
    seed = int(rng.integers(0, 2**63))
    window = None
    if config.window_low is not None and config.window_high is not None:
        window = (float(rng.uniform(*config.window_low)), float(rng.uniform(*config.window_high)))
    return AugmentParams(
        in_shape=in_shape, out_shape=out_shape, rotation_deg=tuple(rotation), scale=tuple(scale),
        shear=tuple(shear), reflect=tuple(reflect), generic=tuple(map(tuple, generic)),
        displacement=tuple(displacement), occlusion_start=start,
        occlusion_height=height if dmax > 0 else 0.0, occlusion_value=config.occlusion_value,
        noise_sigma=sigma, noise_seed=seed, window=window, image_fill=config.image_fill,
        label_fill=config.label_fill)


def _vec3(name: str, value: object) -> Vec3:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise AugmentError(f"{name} must be three numbers (axis 0, 1, 2); got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise AugmentError(f"{name} must be three finite numbers (axis 0, 1, 2); got {value!r}")
    return out  # type: ignore[return-value]


__all__ = ["AugmentParams", "sample_params", "rotation_matrix", "check_shape",
           "check_probability"]
