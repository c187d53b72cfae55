"""One-click five-organ segmentation: hybrid of the auto-labelers and the network (paper V, VI-C).

Pipeline (``segment_ct``):

1. put the CT into the project's axis order (``orientation.DEFAULT_AXIS_CODE``, LPS; exact) once and,
   when auto-labelers run, compute the patient's body mask there once (``organseglib.body``): the
   labelers and the crop both use it (network only: the crop finds the body on the 3 mm grid);
2. enter the network's space (``organseglib.network_space``: resample to the card's spacing, 3 mm,
   reorient to the card's axis order, crop to the body's box);
3. sliding-window inference with overlapping tiles, probabilities averaged, argmax
   (``organseglib.inference``), z-slab by z-slab, several tiles per forward call;
4. keep the organs the network is asked for; back out of the network's space onto the native voxels
   (``NetworkSpace.labels_to_native``: nearest neighbour, voxel centres aligned);
5. lungs and bone from the morphological auto-labelers at native resolution override the network
   where they apply (the paper found them more accurate: 97.8 vs 91.8 lung Dice, 93.2 vs 79.3 bone),
   except the pieces where the network's probabilities and the piece's shape say otherwise (a kidney
   the network found that the bone labeler took for bone: ``evidence_merge``; each reassignment is
   reported);
6. each network organ cleaned to its plausible components on the final native labels, in the places
   anatomy allows (``organ_cleaning``: one liver on the right, one kidney per side, the bladder in
   the pelvis).

Every part is configurable through ``SegmentConfig``; ``SegmentConfig(autolabel_organs=())`` is
network only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .ct_checks import nonfinite_problem
from .errors import InputError, NotCTError
from .network_space import BODY_MARGIN_MM, LEFT_RIGHT_AXIS
from .organs import ONE_SIDED_ORGANS, organ_by_key, organ_table, parse_organ_list
from .progress import ProgressCallback, null_progress, scaled
from .volume import Volume

log = logging.getLogger(__name__)

ALL_ORGANS = tuple(o.key for o in organ_table())
# Paper VI-C / Table III: morphology beat the network on lungs (97.8 vs 91.8 Dice) and bone (93.2 vs 79.3).
AUTOLABEL_DEFAULT = ("lungs", "bone")
MIRROR_AXES = (LEFT_RIGHT_AXIS,)  # test-time mirroring left-right


@dataclass(frozen=True)
class SegmentConfig:
    """What to segment and how.

    Args:
        organs: organ keys in the output (default: all five).
        autolabel_organs: organs taken from the auto-labelers instead of the network (default lungs and
            bone, paper VI-C); ``()`` is network only. Must be a subset of ``organs``-able organs the
            auto-labelers support (lungs, bone).
        clean: keep only each network organ's plausible components (project's rules,
            ``organseglib.organ_cleaning``).
        min_kidney_ml: smallest kidney component kept, mL (project's choice: a kidney is ~150 mL).
        anatomy: when cleaning, also where each organ may lie: the liver not on the patient's left, one
            kidney per side, the bladder well below the lungs, and no low-density region along the
            liver's surface (a neighbour or mass taken for liver) (``organ_cleaning``). False keeps
            only the component counts (situs inversus, a non-human scan).
        overlap: tile overlap fraction (paper V-A: "partially-overlapping"; 25 % is this project's default).
        weighting: ``"uniform"`` (plain average, the paper) or ``"gaussian"`` tile weights.
        slabs: stitch z-slab by z-slab (bounded memory, identical result) instead of all at once.
        crop_to_body: tile only the body's bounding box (paper 003 crops to the body contour), found on the
            network grid: the same crop, so the same tiles, with and without the auto-labelers.
        body_margin_mm: margin around the body box, mm.
        bf16: bf16 autocast on CUDA (ignored on CPU).
        tile_batch: tiles per forward call of the network (same result as one at a time, to float
            rounding; more uses more memory). None: ``GPU_TILE_BATCH`` on CUDA, where one tile does not
            fill the device, and 1 on the CPU, where batching gains nothing (the forward pass is
            compute-bound; BENCHMARKS.md, issue 14) and each extra tile costs ~0.5 GB.
        tile_shape: network input ``(K, J, I)`` overriding the model card's (multiples of 8), e.g. one
            tile a little larger than the card's to cover a scan in one pass; None: the card's.
        flip_axes: test-time mirroring on these axes of the network grid (``inference.TorchPredictor``;
            in the cards' LPS order 2 is left-right), each pass averaged; () (default): none.
        flip_one_sided: organs that lie on one side of the body: with ``flip_axes``, their probability is
            the plain pass's alone (a mirrored patient has them on the wrong side, and the network, never
            trained on one, does not find them there: averaged, the liver's probability halves;
            EXPERIMENTS.md, issue 22); the other organs and the background take the average.

    Raises:
        InputError: unknown organs, an auto-labeler organ it cannot label, bad numbers.
    """

    organs: tuple = ALL_ORGANS
    autolabel_organs: tuple = AUTOLABEL_DEFAULT
    clean: bool = True
    min_kidney_ml: float = 5.0
    anatomy: bool = True
    overlap: float = 0.25
    weighting: str = "uniform"
    slabs: bool = True
    crop_to_body: bool = True
    body_margin_mm: float = BODY_MARGIN_MM
    bf16: bool = True
    tile_shape: Optional[tuple] = None
    tile_batch: Optional[int] = None
    flip_axes: tuple = ()
    flip_one_sided: tuple = ONE_SIDED_ORGANS

    def __post_init__(self) -> None:
        from .autolabel import supported_organ_keys

        organs = tuple(o.key for o in parse_organ_list(self.organs))
        auto = supported_organ_keys(self.autolabel_organs, what="autolabel_organs", allow_empty=True)
        object.__setattr__(self, "organs", organs)
        object.__setattr__(self, "autolabel_organs", tuple(k for k in auto if k in organs))
        if not 0.0 <= float(self.overlap) < 1.0:
            raise InputError(f"overlap must be a fraction in [0, 1); got {self.overlap!r}")
        if self.weighting not in ("uniform", "gaussian"):
            raise InputError(f"weighting must be 'uniform' or 'gaussian'; got {self.weighting!r}")
        if not float(self.min_kidney_ml) >= 0:
            raise InputError(f"min_kidney_ml must be ≥ 0 mL; got {self.min_kidney_ml!r}")
        if self.tile_shape is not None:
            tile = tuple(int(t) for t in self.tile_shape)
            if len(tile) != 3 or any(t <= 0 or t % 8 for t in tile):
                raise InputError(f"tile_shape must be three positive multiples of 8 (K, J, I); got {self.tile_shape!r}")
            object.__setattr__(self, "tile_shape", tile)
        if not float(self.body_margin_mm) >= 0:
            raise InputError(f"body_margin_mm must be ≥ 0 mm; got {self.body_margin_mm!r}")
        if any(a not in (0, 1, 2) for a in self.flip_axes):
            raise InputError(f"flip_axes must be axes of the network grid (0, 1, 2); got {self.flip_axes!r}")
        object.__setattr__(self, "flip_axes", tuple(sorted({int(a) for a in self.flip_axes})))
        object.__setattr__(self, "flip_one_sided", tuple(o.key for o in parse_organ_list(self.flip_one_sided))
                           if self.flip_one_sided else ())
        if self.tile_batch is not None and (int(self.tile_batch) != self.tile_batch or self.tile_batch < 1):
            raise InputError(f"tile_batch must be an integer ≥ 1 (tiles per forward call); got {self.tile_batch!r}")

    @property
    def cleaning_rules(self):
        """The ``organ_cleaning.CleaningRules`` this configuration asks for."""
        from .organ_cleaning import CleaningRules

        return CleaningRules(anatomy=bool(self.anatomy), min_kidney_ml=float(self.min_kidney_ml))

    @property
    def network_organs(self) -> tuple[str, ...]:
        """Organs the network provides: the requested ones not taken from the auto-labelers."""
        return tuple(k for k in self.organs if k not in self.autolabel_organs)


GPU_TILE_BATCH = 4  # tiles per forward call on CUDA when ``SegmentConfig.tile_batch`` is None


ModelSpec = Union[None, str, "os.PathLike[str]", tuple]


def _load(model: ModelSpec) -> tuple[Any, Any]:
    """The (model on the CPU, card) pair; the predictor moves the model to its device."""
    if isinstance(model, tuple) and len(model) == 2:
        return model
    from .model_package import load_model_package, resolve_model

    return load_model_package(resolve_model(model), device="cpu")


def _tile_batch(config: SegmentConfig, device) -> int:
    if config.tile_batch is not None:
        return int(config.tile_batch)
    return GPU_TILE_BATCH if getattr(device, "type", str(device)) == "cuda" else 1


def network_labels(image: np.ndarray, model, card, config: SegmentConfig, device,
                   progress: Optional[ProgressCallback] = None, probabilities: bool = False):
    """Network labels (organ values, only ``config.network_organs``) of ``image``, a CT in HU on the
    network grid (``organseglib.network_space``); with ``probabilities`` also the averaged
    probabilities, uint8 ``[C, K, J, I]`` (``inference.stitch_probabilities``): ``(labels, probabilities)``.

    Raises:
        InputError: the model has no channel for a requested organ.
    """
    from .inference import TorchPredictor, predict_channels, stitch_probabilities

    values = card.channel_values
    wanted = {organ_by_key(k).value for k in config.network_organs}
    missing = sorted(wanted - set(values))
    if missing:
        raise InputError(f"model {card.name!r} has no output for label values {missing} (its classes: {values}); "
                         "take those organs from the auto-labelers or drop them from --organs")
    one_sided = {organ_by_key(k).value for k in config.flip_one_sided}
    predictor = TorchPredictor(model, card.window_hu, device, bf16=config.bf16, flip_axes=config.flip_axes,
                               plain_channels=[c for c, v in enumerate(values) if v in one_sided])
    lut = np.array([v if v in wanted else 0 for v in values], dtype=np.uint8)
    tile, classes, batch = config.tile_shape or card.tile_shape, int(card.num_classes), _tile_batch(config, device)
    if probabilities:
        channels, probs = stitch_probabilities(image, predictor, tile, classes, config.overlap, config.weighting,
                                               progress, batch)
        return lut[channels], probs
    channels = predict_channels(image, predictor, tile, classes, config.overlap, config.weighting, config.slabs,
                                progress, batch)
    return lut[channels]


def segment_ct(ct: Volume, model: ModelSpec = None, config: Optional[SegmentConfig] = None,
               device: str = "auto", progress: Optional[ProgressCallback] = None) -> Volume:
    """``segment_ct_with_report`` without the warnings (the auto-labelers' are logged)."""
    labels, warnings = segment_ct_with_report(ct, model, config, device, progress)
    for w in warnings:
        log.warning("%s", w)
    return labels


def segment_ct_with_report(ct: Volume, model: ModelSpec = None, config: Optional[SegmentConfig] = None,
                           device: str = "auto", progress: Optional[ProgressCallback] = None,
                           reassignments: Optional[list] = None) -> tuple[Volume, list[str]]:
    """Segment lungs, liver, bone, kidneys and bladder in a CT (hybrid by default; see the module doc).

    Args:
        ct: CT in HU on its native grid.
        model: a model package folder or name, a ``(model, card)`` pair from ``load_model_package``, or
            None for the bundled default model. Not loaded when every requested organ comes from the
            auto-labelers.
        config: what to segment and how (default ``SegmentConfig()``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        progress: ``(fraction, message)`` callback.
        reassignments: a list that receives the hybrid's reassignments (``evidence_merge.Reassignment``:
            pieces of auto-labels the evidence gave to the network's organ).

    Returns:
        (uint8 label Volume on ``ct``'s grid with CT-ORG values, the auto-labelers' warnings as
        ``"organ: message"`` strings: a labeler that drops more than it keeps, leaks to the border...).

    Raises:
        ModelPackageError: the model cannot be loaded; InputError: bad configuration or device;
        NotCTError: NaN or infinite voxels in the CT.
    """
    from .body import body_masks
    from .devices import resolve_device
    from .network_space import enter_for_card, find_body_on_network_grid
    from .organ_cleaning import clean_organs
    from .orientation import DEFAULT_AXIS_CODE, reorient

    config = config or SegmentConfig()
    progress = progress or null_progress
    # NaN/inf would be spread over whole tiles by resampling, and the network's output blamed
    nonfinite = nonfinite_problem(ct.array)
    if nonfinite:
        raise NotCTError(nonfinite)
    # One axis order for the body mask, the auto-labelers and (for the cards trained here) the
    # network: the CT is reoriented once, exactly, and the labels put back once at the end.
    work, back = reorient(ct, DEFAULT_AXIS_CODE)
    body = None
    if config.autolabel_organs:  # the labelers need the native body mask
        progress(0.0, "body mask")
        body = body_masks(np.asarray(work.array, dtype=np.float32), work.array_spacing)  # once per run
    # The network's crop is found on its own grid in both paths, so that the hybrid's network sees exactly
    # what --network-only sees (one tiling: a kidney the network finds alone it finds in the hybrid too)
    crop = find_body_on_network_grid if config.network_organs and config.crop_to_body else None
    out = np.zeros(work.shape, dtype=np.uint8)
    warnings: list[str] = []
    evidence = None
    if config.network_organs:
        dev = resolve_device(device)
        progress(0.0, "loading model")
        net, card = _load(model)
        progress(0.02, f"resampling to {card.spacing_mm:g} mm")
        # on a GPU the resampling's matrix products run there too (the CPU path is numpy)
        image, space = enter_for_card(work, card, body=crop, margin_mm=config.body_margin_mm,
                                      device=dev if dev.type == "cuda" else None)
        net_end = 0.75 if config.autolabel_organs else 0.95
        sub = scaled(progress, 0.1, net_end, "network")
        if config.autolabel_organs:  # the hybrid weighs the network's probabilities where the labels disagree
            from .evidence_merge import NetworkEvidence

            labels, probs = network_labels(image, net, card, config, dev, sub, probabilities=True)
            evidence = NetworkEvidence(probs, card.channel_values, space)
        else:
            labels = network_labels(image, net, card, config, dev, sub)
        progress(net_end, "labels back to the native grid")
        out = space.labels_to_native(labels).array.astype(np.uint8, copy=True)
    if config.autolabel_organs:
        from .autolabel import autolabel_with_report
        from .evidence_merge import merge_by_evidence

        start = 0.75 if config.network_organs else 0.0
        sub = scaled(progress, start, 0.98, "auto-labels")
        auto_volume, report = autolabel_with_report(work, organs=config.autolabel_organs, body=body, progress=sub)
        warnings.extend(report["warnings"])
        out, moved = merge_by_evidence(out, auto_volume.array, work.array, work.array_spacing, evidence)
        if reassignments is not None:
            reassignments.extend(moved)
    out = back(work.with_array(out)).array
    if config.clean and config.network_organs:
        progress(0.98, "cleaning")  # on the final native labels, so the output keeps the promise
        out = clean_organs(ct.with_array(out), config.network_organs, config.cleaning_rules, ct=ct)
    progress(1.0, "done")
    return ct.with_array(out), warnings


__all__ = ["ALL_ORGANS", "AUTOLABEL_DEFAULT", "SegmentConfig", "network_labels",
           "segment_ct", "segment_ct_with_report"]
