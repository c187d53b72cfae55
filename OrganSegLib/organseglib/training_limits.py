"""The numbers a training run may be given, checked before torch is imported or any data is read.

One rule each, used by ``organseg train`` (before any work) and by ``TrainConfig`` (for library
callers); every message names the setting and its option, the value, and the fix.

* ``--lr``: a finite number in (0, 1]. Adam moves every weight by about the learning rate per step; at 1
  or more each step is larger than the weights themselves (He-initialised weights of this network are
  under 0.1), so the run can only diverge (``inf`` gave 170 NaN weights, issue 19).
* ``--seed``: a whole number ≥ 0 (numpy's generators take no negative seed).
* ``--threads``: a whole number ≥ 1.
* ``--spacing``: a voxel size a body CT can have (``ct_checks.MIN_SPACING_MM``..``MAX_SPACING_MM``).
* ``--crop``: three multiples of 8 (the network downsamples by 8) that, at ``--spacing``, measure no
  more than a body can (``ct_checks.MAX_EXTENT_MM``); whether it fits in memory is checked once the
  device is known (``training.resources``).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

from .ct_checks import MAX_EXTENT_MM, MAX_SPACING_MM, MIN_SPACING_MM
from .errors import InputError

MAX_LEARNING_RATE = 1.0


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_learning_rate(value) -> float:
    try:
        lr = float(value)
    except (TypeError, ValueError):
        lr = math.nan
    if not (math.isfinite(lr) and 0 < lr <= MAX_LEARNING_RATE):
        raise InputError(f"learning rate (--lr) must be a finite number above 0 and at most {MAX_LEARNING_RATE:g} "
                         f"(Adam; the default is 1e-3); got {value!r}")
    return lr


def check_seed(value) -> int:
    if not _whole(value) or value < 0:
        raise InputError(f"seed (--seed) must be a whole number ≥ 0; got {value!r}")
    return int(value)


def check_mirror(value) -> float:
    """A left-right mirror probability per training crop (``--mirror``)."""
    try:
        probability = float(value)
    except (TypeError, ValueError):
        probability = float("nan")
    if not 0.0 <= probability <= 1.0:
        raise InputError(f"mirror (--mirror) must be a probability in [0, 1]; got {value!r}")
    return probability


def check_threads(value) -> Optional[int]:
    if value is not None and (not _whole(value) or value < 1):
        raise InputError(f"--threads must be a whole number ≥ 1 (CPU threads for PyTorch; leave it out for all "
                         f"cores); got {value!r}")
    return value


def check_spacing(value) -> float:
    try:
        spacing = float(value)
    except (TypeError, ValueError):
        spacing = math.nan
    if not (math.isfinite(spacing) and MIN_SPACING_MM <= spacing <= MAX_SPACING_MM):
        raise InputError(f"training resolution (--spacing) must be {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm (the voxel "
                         f"sizes a body CT can have; the paper's is 3 mm); got {value!r}")
    return spacing


def check_crop(crop: Sequence[int], spacing_mm: Optional[float] = None) -> tuple:
    shape = tuple(crop)
    if len(shape) != 3 or not all(_whole(c) and c >= 8 and c % 8 == 0 for c in shape):
        raise InputError(f"training crop (--crop K J I) must be three multiples of 8 voxels (the network downsamples "
                         f"by 8), e.g. 160 120 120; got {crop!r}")
    if spacing_mm is not None:
        extent = [c * float(spacing_mm) for c in shape]
        if max(extent) > MAX_EXTENT_MM:
            raise InputError(
                f"training crop (--crop) {' '.join(map(str, shape))} at {float(spacing_mm):g} mm measures "
                f"{' × '.join(f'{e:.0f}' for e in extent)} mm, more than any body ({MAX_EXTENT_MM:.0f} mm); the "
                f"paper's crop is 160 120 120 at 3 mm")
    return tuple(int(c) for c in shape)


def check_train_numbers(learning_rate=None, seed=None, threads=None, spacing_mm=None, crop=None) -> None:
    """Check each setting given (None: not given, the default holds)."""
    if learning_rate is not None:
        check_learning_rate(learning_rate)
    if seed is not None:
        check_seed(seed)
    check_threads(threads)
    if spacing_mm is not None:
        check_spacing(spacing_mm)
    if crop is not None:
        check_crop(crop, spacing_mm)


__all__ = ["MAX_LEARNING_RATE", "check_crop", "check_learning_rate", "check_mirror", "check_seed", "check_spacing",
           "check_threads", "check_train_numbers"]
