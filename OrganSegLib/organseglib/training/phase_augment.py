"""Label-guided intensity augmentation: one labelled patient seen in other contrast phases (issue 22).

A network trained on a few real scans learns their contrast phase: kidneys at 170 HU in a portal
venous scan are missed at 30 HU in a non-contrast one. The masks of a labelled case say where each
structure is, so a crop can show the same patient in another phase: each structure the case annotates
whose HU depends on the phase (liver, kidneys, bladder among the organs; spleen, arteries, portal vein
and veins among the extra structures, ``organseglib.extra_structures``) is redrawn at an HU from the
range it spans across the phases of ``phantom.hu_table`` (no contrast, arterial, portal venous,
nephrographic, excretory; measured and published values, cited there), keeping its texture::

    HU − median = smooth + noise                  (inside the structure)
    new         = target + k · smooth + noise

``smooth`` is the deviation from the structure's median smoothed within the structure (normalised
Gaussian, ``texture_sigma_mm``): cortex and medulla, vessels, perfusion; ``noise`` (the rest, the
scanner's) is kept as it is. ``k`` scales the texture with the enhancement,
``k = (target − base + floor) / (median − base + floor)`` clipped to ``texture_scale`` (``base``: the
unenhanced table value), so an enhanced kidney's corticomedullary pattern fades in a non-contrast copy.
The change fades over the structure's edge (weight: the mask smoothed by ``edge_sigma_mm``) and
replaces what an earlier structure set (vessels inside IRCAD's liver mask get the vessels' HU).
Organs a case does not annotate, and everything outside the masks, keep their HU.

Sampling: a crop keeps the scan's own phase with ``p_original``; otherwise, with ``p_discrete``, every
structure moves to one phase's table value plus the between-patient spread of ``hu_table`` (a
*discrete phase copy*, the special case), else each structure is drawn on its own, uniformly over its
range widened by that spread. Urine carries contrast in excretory draws (and with
``p_bladder_contrast`` in independent ones): the bladder's dependent (posterior) part, a layer of a
random fraction of its depth, at ``bladder_contrast_hu``.

All values not cited are this project's choices (the paper has no such augmentation); they are written
into the model card (``PhaseAugmentConfig.to_card``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..extra_structures import EXTRA_STRUCTURES
from ..organs import organ_by_key
from ..phantom import anatomy as T
from ..phantom.hu_table import DEFAULT_FIXED_SD, ENHANCEMENT_SD_FRACTION, FIXED_SD, HU_TABLE, PHASES

# structure key -> (hu_table tissue, source): "organ" = the labels' value, "extra" = the structures map.
# Order = the order they are applied in (later replaces earlier where masks overlap).
PHASE_DEPENDENT = (
    ("liver", T.LIVER, "organ"),
    ("spleen", T.SPLEEN, "extra"),
    ("kidneys", T.KIDNEY, "organ"),
    ("bladder", T.BLADDER, "organ"),
    ("venous", T.VENA_CAVA, "extra"),
    ("portal_vein", T.PORTAL_VEIN, "extra"),
    ("artery", T.AORTA, "extra"),
)
MIN_VOXELS = 20  # smaller pieces (under 0.6 mL at 3 mm) are left as they are
POSTERIOR_AXIS = 1  # training arrays are in LPS order (dataset.TRAINING_ORIENTATION): axis 1 grows posterior


def _pair(name: str, value, low=None) -> tuple:
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not pair[0] <= pair[1] or (low is not None and pair[0] < low):
        raise InputError(f"{name} must be (low, high) with low ≤ high{'' if low is None else f' and low ≥ {low}'}; "
                         f"got {value!r}")
    return pair


@dataclass(frozen=True)
class PhaseAugmentConfig:
    """Parameters of label-guided intensity augmentation (see the module docstring; all ours)."""

    p_original: float = 0.25
    p_discrete: float = 0.4
    p_bladder_contrast: float = 0.15
    bladder_contrast_hu: tuple = (300.0, 1200.0)
    bladder_layer_fraction: tuple = (0.2, 1.0)
    texture_sigma_mm: float = 4.0
    edge_sigma_mm: float = 1.5
    texture_floor_hu: float = 30.0
    texture_scale: tuple = (0.3, 1.5)
    spread: float = 1.0  # × hu_table's between-patient SD around every draw

    def __post_init__(self) -> None:
        for name in ("p_original", "p_discrete", "p_bladder_contrast"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise InputError(f"{name} must be a probability in [0, 1]; got {getattr(self, name)!r}")
        for name in ("texture_sigma_mm", "edge_sigma_mm", "texture_floor_hu", "spread"):
            if not float(getattr(self, name)) >= 0.0:
                raise InputError(f"{name} must be ≥ 0; got {getattr(self, name)!r}")
        object.__setattr__(self, "bladder_contrast_hu", _pair("bladder_contrast_hu", self.bladder_contrast_hu))
        object.__setattr__(self, "bladder_layer_fraction",
                           _pair("bladder_layer_fraction", self.bladder_layer_fraction, low=0.0))
        object.__setattr__(self, "texture_scale", _pair("texture_scale", self.texture_scale, low=0.0))

    def to_card(self) -> dict:
        """What a model card records about it."""
        return {"method": "label-guided intensity augmentation (organseglib.training.phase_augment)",
                "phases": list(PHASES), "structures": [k for k, _, _ in PHASE_DEPENDENT], **asdict(self)}


@dataclass(frozen=True)
class StructureStats:
    """One structure of one case, measured once: its box, median, texture and edge weight."""

    key: str
    tissue: int
    box: tuple             # slices of the case array holding the structure plus its soft edge
    mask: np.ndarray       # bool, in the box
    median: float          # HU of the interior (the mask eroded by one voxel, when that leaves enough)
    smooth: np.ndarray     # float32, in the box: the deviation's smooth part inside the mask, 0 outside
    weight: np.ndarray     # float32, in the box: the mask smoothed over the edge


@dataclass(frozen=True)
class StructureDraw:
    key: str
    target_hu: float
    texture: float
    layer_fraction: float = 0.0  # bladder: dependent fraction of its depth holding contrast (0: none)
    layer_hu: float = 0.0


@dataclass(frozen=True)
class PhaseDraw:
    """What one crop shows: ``phase`` is "original", "independent" or one of ``hu_table.PHASES``."""

    phase: str
    structures: tuple = field(default_factory=tuple)


def _range(tissue: int, spread: float) -> tuple[float, float, float]:
    row = HU_TABLE[tissue]
    sd = FIXED_SD.get(tissue, DEFAULT_FIXED_SD) * spread
    return min(row) - sd, max(row) + sd, row[0]


def structure_masks(labels: np.ndarray, structures: Optional[np.ndarray],
                    annotated: Optional[Sequence[str]]) -> dict:
    """``{key: bool mask}`` of the phase-dependent structures a case annotates and holds; where masks
    overlap (vessels inside the liver mask) the voxels belong to the later structure of ``PHASE_DEPENDENT``."""
    out = {}
    for key, _tissue, source in PHASE_DEPENDENT:
        if source == "organ":
            if annotated is not None and key not in annotated:
                continue
            mask = labels == organ_by_key(key).value
        else:
            if structures is None:
                continue
            mask = structures == EXTRA_STRUCTURES[key]
        for earlier in out.values():
            earlier &= ~mask
        out[key] = mask
    return {k: m for k, m in out.items() if np.count_nonzero(m) >= MIN_VOXELS}


def measure(image: np.ndarray, masks: dict, spacing_mm, config: PhaseAugmentConfig) -> list[StructureStats]:
    """Each structure's box, median, smooth deviation and edge weight (once per case); ``spacing_mm``:
    one voxel size, or one per array axis ``(k, j, i)``."""
    tissues = {k: t for k, t, _ in PHASE_DEPENDENT}
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    s_tex = tuple(config.texture_sigma_mm / spacing)
    s_edge = tuple(config.edge_sigma_mm / spacing)
    margins = [int(np.ceil(3 * e)) + 1 for e in s_edge]
    out = []
    for key, _t, _s in PHASE_DEPENDENT:
        if key not in masks:
            continue
        full = masks[key]
        (box,) = ndimage.find_objects(full.astype(np.uint8))
        box = tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, n, m in zip(box, full.shape, margins))
        mask = full[box]
        hu = np.asarray(image[box], dtype=np.float32)
        # the interior: the edge voxels are partial volume with the neighbours, neither the structure's
        # level nor its texture (they get part of the change through the soft edge weight instead)
        core = ndimage.binary_erosion(mask)
        core = core if np.count_nonzero(core) >= MIN_VOXELS else mask
        median = float(np.median(hu[core]))
        c = core.astype(np.float32)
        if config.texture_sigma_mm > 0:  # normalised convolution over the interior, read out over the mask
            num = ndimage.gaussian_filter((hu - median) * c, s_tex, mode="constant")
            den = ndimage.gaussian_filter(c, s_tex, mode="constant")
            smooth = np.where(mask & (den > 1e-3), num / np.maximum(den, 1e-3), 0.0).astype(np.float32)
        else:
            smooth = np.where(core, hu - median, 0.0).astype(np.float32)
        m = mask.astype(np.float32)
        weight = ndimage.gaussian_filter(m, s_edge, mode="constant") if config.edge_sigma_mm > 0 else m
        out.append(StructureStats(key, tissues[key], box, mask, median, smooth, weight.astype(np.float32)))
    return out


def sample(rng: np.random.Generator, stats: Sequence[StructureStats], config: PhaseAugmentConfig) -> PhaseDraw:
    """Draw what one crop shows (all randomness here; ``apply`` is deterministic)."""
    if not stats or rng.random() < config.p_original:
        return PhaseDraw("original")
    discrete = rng.random() < config.p_discrete
    phase = PHASES[int(rng.integers(len(PHASES)))] if discrete else "independent"
    dose = float(np.clip(rng.normal(1.0, ENHANCEMENT_SD_FRACTION), 0.75, 1.25))
    draws = []
    for s in stats:
        low, high, base = _range(s.tissue, config.spread)
        if discrete:
            value = HU_TABLE[s.tissue][PHASES.index(phase)]
            sd = FIXED_SD.get(s.tissue, DEFAULT_FIXED_SD) * config.spread
            target = base + (value - base) * dose + float(rng.normal(0.0, sd))
        else:
            target = float(rng.uniform(low, high))
        layer_fraction = layer_hu = 0.0
        if s.key == "bladder" and (phase == "excretory" or (not discrete and rng.random() < config.p_bladder_contrast)):
            layer_fraction = float(rng.uniform(*config.bladder_layer_fraction))
            layer_hu = float(rng.uniform(*config.bladder_contrast_hu))
        draws.append(_structure_draw(s, target, config, layer_fraction, layer_hu))
    return PhaseDraw(phase, tuple(draws))


def _structure_draw(s: StructureStats, target: float, config: PhaseAugmentConfig, layer_fraction: float = 0.0,
                    layer_hu: float = 0.0) -> StructureDraw:
    """The draw that puts ``s`` at ``target`` HU, its texture scaled with the enhancement."""
    base, floor = HU_TABLE[s.tissue][0], config.texture_floor_hu
    k = (target - base + floor) / max(s.median - base + floor, 1e-3)
    return StructureDraw(s.key, float(target), float(np.clip(k, *config.texture_scale)), layer_fraction, layer_hu)


def phase_copy(image: np.ndarray, masks: dict, spacing_mm, phase: str,
               config: Optional[PhaseAugmentConfig] = None) -> np.ndarray:
    """The image with every structure of ``masks`` (``structure_masks``) at ``phase``'s table HU, with no
    between-patient spread (an excretory bladder: half its depth at the middle of
    ``bladder_contrast_hu``): the discrete phase copy, deterministic and at any resolution (issue 22
    scores held-out scans in another phase this way)."""
    if phase not in PHASES:
        raise InputError(f"phase must be one of {PHASES}; got {phase!r}")
    config = config or PhaseAugmentConfig()
    stats = measure(image, masks, spacing_mm, config)
    draws = []
    for s in stats:
        layer = (0.5, float(np.mean(config.bladder_contrast_hu))) if s.key == "bladder" and phase == "excretory" else (0, 0)
        draws.append(_structure_draw(s, HU_TABLE[s.tissue][PHASES.index(phase)], config, *layer))
    return apply(image, stats, PhaseDraw(phase, tuple(draws)))


def _layer(mask: np.ndarray, fraction: float) -> np.ndarray:
    """The dependent ``fraction`` of the mask's depth (posterior, supine patient)."""
    rows = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != POSTERIOR_AXIS)))[0]
    first, last = int(rows.min()), int(rows.max())
    cut = last + 1 - max(1, int(round(fraction * (last - first + 1))))
    index = np.arange(mask.shape[POSTERIOR_AXIS]).reshape([-1 if a == POSTERIOR_AXIS else 1 for a in range(3)])
    return mask & (index >= cut)


def apply(image: np.ndarray, stats: Sequence[StructureStats], draw: PhaseDraw) -> np.ndarray:
    """The image with each drawn structure at its new HU (a new array; ``image`` is not changed)."""
    if not draw.structures:
        return image
    by_key = {s.key: s for s in stats}
    out = np.array(image, dtype=np.float32, copy=True)
    for d in draw.structures:
        s = by_key[d.key]
        orig = np.asarray(image[s.box], dtype=np.float32)
        new = orig + np.float32(d.target_hu - s.median) + np.float32(d.texture - 1.0) * s.smooth
        if d.layer_fraction > 0:
            noise = orig - np.float32(s.median) - s.smooth
            layer = _layer(s.mask, d.layer_fraction)
            new = np.where(layer, np.float32(d.layer_hu) + noise, new)
        region = out[s.box]
        region += s.weight * (new - region)  # replaces what an earlier structure set
    return out


class PhaseAugment:
    """``image_of(case, rng)``: the case's image as one crop sees it (training.batches calls it).

    Each case's structures are measured once and kept (by the case object)."""

    def __init__(self, config: Optional[PhaseAugmentConfig] = None) -> None:
        self.config = config or PhaseAugmentConfig()
        self._stats: dict = {}

    def stats(self, case) -> list[StructureStats]:
        entry = self._stats.get(id(case))
        if entry is None or entry[0] is not case:
            masks = structure_masks(case.labels, getattr(case, "structures", None), case.annotated)
            entry = (case, measure(case.image, masks, float(case.spacing_mm), self.config))
            self._stats[id(case)] = entry
        return entry[1]

    def image_of(self, case, rng: np.random.Generator) -> np.ndarray:
        stats = self.stats(case)
        return apply(case.image, stats, sample(rng, stats, self.config))


__all__ = ["PHASE_DEPENDENT", "PhaseAugment", "PhaseAugmentConfig", "PhaseDraw", "StructureDraw", "StructureStats",
           "apply", "measure", "phase_copy", "sample", "structure_masks"]
