"""Replay when fine-tuning: the base model's training distribution beside the user's cases.

A model fine-tuned on two corrected cases alone forgets what it knew (catastrophic forgetting). The
common remedy is rehearsal: keep drawing training crops from the data the base model learnt from
(Robins, Connection Science 1995; Rebuffi et al., iCaRL, CVPR 2017). ``organseg train
--init`` therefore mixes, by default:

* the user's cases (``--data``): ``user_fraction`` of the crops (default 0.5, half);
* replay cases for the rest: ``phantoms`` patient-like phantoms (``organseglib.phantom``,
  ``realism="patient"``, any region, seeds 0..phantoms-1: the bundled models' phantom recipe,
  ``scripts/train_real_model.py``), and the real cases of each ``--replay`` folder (a training-set
  or CT-ORG folder, e.g. the base model's own training set where the user has it).

The mix is exact: the case list holds each user case ``a`` times and each replay case ``b`` times, with
``a : b`` chosen so that a uniformly drawn entry is a user case with probability ``user_fraction``
(a fraction with a denominator of 10 at most), so the trainer and its batch samplers are unchanged
and a checkpoint's data fingerprint covers the mix. When the user's folder is too small to hold out
a validation case, validation runs on ``validation_phantoms`` held-out phantoms (seeds from 1000, never
trained on): then the validation Dice is a forgetting check, not a score on the user's protocol.
The new package's card names what was replayed (``card_sources``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from ..network_space import NETWORK_SPACING_MM
from .dataset import TrainingCase, load_dataset, phantom_cases

PHANTOM_SOURCE = {"source": "organseglib.phantom, realism='patient' (synthetic)", "licence": "same as OrganSeg's code",
                  "labels": "exact, all five organs"}
VALIDATION_SEED = 1000  # held-out phantoms: seeds from here (the demo model's held-out seeds, README)


@dataclass(frozen=True)
class ReplayConfig:
    """What fine-tuning replays beside the user's cases.

    Args:
        phantoms: patient-like phantoms replayed (seeds 0..phantoms-1; 12, as the bundled models' recipe).
        folders: training-set or CT-ORG folders whose real cases are replayed.
        user_fraction: share of the crops drawn from the user's cases (0 < f <= 1; 1: no replay).
        validation_phantoms: held-out phantoms to validate on when the user's folder holds no
            validation case.
        spacing_mm: the training resolution.

    Raises:
        InputError: a fraction outside (0, 1], a negative count, a folder that does not exist.
    """

    phantoms: int = 12
    folders: tuple = ()
    user_fraction: float = 0.5
    validation_phantoms: int = 2
    spacing_mm: float = NETWORK_SPACING_MM

    def __post_init__(self) -> None:
        if not 0.0 < float(self.user_fraction) <= 1.0:
            raise InputError(f"--user-fraction must be in (0, 1] (the share of crops from your cases); "
                             f"got {self.user_fraction!r}")
        for name in ("phantoms", "validation_phantoms"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise InputError(f"{name.replace('_', '-')} must be a whole number >= 0; got {value!r}")
        object.__setattr__(self, "folders", tuple(Path(f).expanduser() for f in self.folders))
        for folder in self.folders:
            if not folder.is_dir():
                raise InputError(f"--replay {str(folder)!r} is not a folder; give a training-set or CT-ORG folder")

    @property
    def active(self) -> bool:
        return float(self.user_fraction) < 1.0 and (self.phantoms > 0 or bool(self.folders))


def replay_cases(config: ReplayConfig, cache_dir=None) -> list[TrainingCase]:
    """The phantoms, then each folder's cases, at ``config.spacing_mm``."""
    cases = phantom_cases(range(int(config.phantoms)), region="any", spacing_mm=config.spacing_mm,
                          realism="patient") if config.phantoms else []
    for folder in config.folders:
        cases += load_dataset(folder, spacing_mm=config.spacing_mm, cache_dir=cache_dir)
    return cases


def validation_phantoms(config: ReplayConfig) -> list[TrainingCase]:
    seeds = range(VALIDATION_SEED, VALIDATION_SEED + int(config.validation_phantoms))
    return phantom_cases(seeds, region="any", spacing_mm=config.spacing_mm, realism="patient")


def repeats(n_user: int, n_replay: int, user_fraction: float) -> tuple[int, int]:
    """``(a, b)``: each user case ``a`` times, each replay case ``b`` times, so that a uniformly drawn
    entry is a user case with probability ``user_fraction`` (to a denominator of 10)."""
    share = Fraction(user_fraction).limit_denominator(10)
    if n_replay == 0 or share == 1:
        return 1, 0
    if share == 0:
        raise InputError(f"--user-fraction {user_fraction!r} rounds to 0: no crop would come from your cases")
    a, b = share.numerator * n_replay, (share.denominator - share.numerator) * n_user
    g = math.gcd(a, b)
    return a // g, b // g


def mix(user: Sequence[TrainingCase], replay: Sequence[TrainingCase], user_fraction: float) -> list[TrainingCase]:
    """The training list: the user's cases and the replay cases, repeated as ``repeats`` says."""
    if not user:
        raise InputError("no training cases of your own to fine-tune on; pass a data folder with at least one case")
    a, b = repeats(len(user), len(replay), user_fraction)
    return [c for c in user for _ in range(a)] + [c for c in replay for _ in range(b)]


def card_sources(config: ReplayConfig, n_replay_real: int) -> tuple[list, str]:
    """The card's ``data_sources`` entries for the replay, and one phrase for ``training_data``."""
    if not config.active:
        return [], ""
    share = float(Fraction(config.user_fraction).limit_denominator(10))
    role = f"replayed while fine-tuning: {100 * (1 - share):.0f} % of the crops"
    sources, parts = [], []
    if config.phantoms:
        sources.append({"name": "replay phantoms", **PHANTOM_SOURCE, "cases": int(config.phantoms),
                        "seeds": f"0-{int(config.phantoms) - 1}", "role": role})
        parts.append(f"{int(config.phantoms)} patient-like phantoms")
    for folder in config.folders:
        sources.append({"name": f"replay: {folder.name}", "source": str(folder),
                        "licence": "as that folder's data (not recorded by organseg)", "role": role})
    if config.folders:
        parts.append(f"{n_replay_real} real cases from {', '.join(str(f) for f in config.folders)}")
    return sources, (f"replay of {' and '.join(parts)} ({100 * (1 - share):.0f} % of the crops; "
                     f"{100 * share:.0f} % from the fine-tuning cases)")


__all__ = ["ReplayConfig", "card_sources", "mix", "repeats", "replay_cases", "validation_phantoms"]
