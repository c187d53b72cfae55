"""Sliding-window inference on the network grid (paper section V-A).

The scan (already in the network's space: ``organseglib.network_space``) is covered by partially overlapping tiles
(``organseglib.tiling``); the class probabilities of overlapping tiles are averaged and the argmax
gives the label of each voxel.

Two stitchers give bit-identical results:

* ``stitch_whole`` keeps one accumulator for the whole volume (the reference);
* ``stitch_slabs`` visits the tiles in the same z-major order but finishes and frees the slices
  below the next row of tiles as soon as no later tile can touch them, so its accumulator spans at
  most two tile depths along z whatever the scan's length (bounded memory for whole-body scans).

Both add the same per-tile contributions to each voxel in the same order and divide once, which
is why their outputs are equal bit for bit, not merely close.

A *predictor* is any callable ``tile_hu[K, J, I] -> probabilities[C, K, J, I]`` (float32, summing to 1
over C); ``TorchPredictor`` wraps a network from a model package. A predictor with a
``predict_batch(tiles[N, K, J, I]) -> probabilities[N, C, K, J, I]`` method is given ``tile_batch``
tiles per call (one forward pass of the network for several tiles: fewer, larger matrix products);
the tiles, their order and the sums are the same, so the result equals one tile at a time to the
float rounding of the network's batched arithmetic.

This is the one sliding-window predictor: segmentation and validation during training both use it.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from .boxes import Box
from .ct_checks import AIR_HU  # padding value: what lies outside the field of view
from .errors import InputError, OrganSegError
from .progress import ProgressCallback, null_progress
from .tiling import fitted_tile, pad_to, tile_grid, tile_starts, tile_weights

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]
TileCallback = Callable[[Box, np.ndarray], None]


class NonFiniteOutputError(OrganSegError, ArithmeticError):
    """The network produced NaN or infinite probabilities."""


def _checked(probs: np.ndarray, box, num_classes: int, tile_shape: Sequence[int]) -> np.ndarray:
    expected = (num_classes, *tile_shape)
    if probs.shape != expected:
        raise InputError(f"predictor returned shape {probs.shape} for a tile of {tuple(tile_shape)}; "
                         f"expected {expected} (classes first)")
    if not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs)).sum())
        raise NonFiniteOutputError(
            f"the network produced {bad} non-finite (NaN/inf) probabilities in the tile at "
            f"{tuple((s.start, s.stop) for s in box)}. The weights may be corrupt or overflowed in reduced "
            "precision: retry with --device cpu (float32), and check the model package")
    return probs


def _prepare(image: np.ndarray, tile: Sequence[int], overlap: float):
    if image.ndim != 3:
        raise InputError(f"image must be 3D [k, j, i]; got shape {image.shape}")
    tile = fitted_tile(image.shape, tile)
    padded = pad_to(np.asarray(image, dtype=np.float32), tile, AIR_HU)
    return tile, padded, tile_grid(padded.shape, tile, overlap)


def _check_batch(tile_batch: int) -> int:
    if int(tile_batch) != tile_batch or tile_batch < 1:
        raise InputError(f"tile_batch must be an integer ≥ 1 (tiles per forward call); got {tile_batch!r}")
    return int(tile_batch)


def tile_predictions(padded: np.ndarray, boxes: Sequence[Box], predict: Predictor, num_classes: int,
                     tile: Sequence[int], tile_batch: int = 1) -> Iterator[tuple[Box, np.ndarray]]:
    """``(box, probabilities[C, *tile])`` for each box in order, predicted ``tile_batch`` tiles per
    call when ``predict`` has ``predict_batch`` (else one by one); each checked for shape and NaN."""
    batch_fn = getattr(predict, "predict_batch", None)
    step = _check_batch(tile_batch) if batch_fn is not None else 1
    for first in range(0, len(boxes), step):
        group = boxes[first:first + step]
        if batch_fn is not None:
            probs = batch_fn(np.stack([padded[box] for box in group]))
            if probs.shape[:1] != (len(group),):
                raise InputError(f"predict_batch returned shape {probs.shape} for {len(group)} tiles; "
                                 "expected one probability map per tile first")
        else:
            probs = [predict(padded[box]) for box in group]
        for box, p in zip(group, probs):
            yield box, _checked(p, box, num_classes, tile)


def stitch_whole(image: np.ndarray, predict: Predictor, tile_shape: Sequence[int], num_classes: int,
                 overlap: float = 0.25, weighting: str = "uniform",
                 progress: Optional[ProgressCallback] = None, tile_batch: int = 1,
                 on_tile: Optional[TileCallback] = None) -> np.ndarray:
    """Averaged probabilities ``[C, K, J, I]`` of overlapping tiles over the whole image (reference path).

    Args:
        image: CT in HU on the network grid, ``[K, J, I]``.
        predict: tile (HU) → probabilities ``[C, *tile]``.
        tile_shape: model tile ``(K, J, I)``; shrunk to the image where it is smaller (``fitted_tile``).
        num_classes: C.
        overlap: fraction of a tile shared by neighbours (paper: "partially-overlapping"; 25 %).
        weighting: ``"uniform"`` (plain average, the paper) or ``"gaussian"``.
        progress: ``(fraction, message)`` callback.
        tile_batch: tiles per call of ``predict.predict_batch`` (when the predictor has one).
        on_tile: called with ``(box, probabilities)`` of each tile (box in the image padded to at least
            one tile with air), e.g. for the validation loss of each tile.

    Raises:
        InputError: bad shapes or parameters; NonFiniteOutputError: NaN/inf from the network.
    """
    progress = progress or null_progress
    tile, padded, boxes = _prepare(image, tile_shape, overlap)
    weights = tile_weights(tile, weighting)
    acc = np.zeros((num_classes, *padded.shape), dtype=np.float32)
    wsum = np.zeros(padded.shape, dtype=np.float32)
    progress(0.0, f"{len(boxes)} tiles of {tile[0]}×{tile[1]}×{tile[2]}")
    for n, (box, probs) in enumerate(tile_predictions(padded, boxes, predict, num_classes, tile, tile_batch)):
        if on_tile is not None:
            on_tile(box, probs)
        acc[(slice(None), *box)] += probs * weights
        wsum[box] += weights
        progress((n + 1) / len(boxes), f"tile {n + 1}/{len(boxes)}")
    acc /= wsum
    return acc[(slice(None), *(slice(0, s) for s in image.shape))]


def iter_slabs(image: np.ndarray, predict: Predictor, tile_shape: Sequence[int], num_classes: int,
               overlap: float = 0.25, weighting: str = "uniform",
               progress: Optional[ProgressCallback] = None,
               tile_batch: int = 1) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(z0, z1, probabilities[C, z1 - z0, J, I])`` for consecutive finished z-slabs.

    Same arguments as ``stitch_whole``; the concatenated slabs equal its output exactly. Batches of
    tiles run across rows of tiles (the tiles of one batch may finish two slabs).
    """
    progress = progress or null_progress
    tile, padded, boxes = _prepare(image, tile_shape, overlap)
    predictions = tile_predictions(padded, boxes, predict, num_classes, tile, tile_batch)
    weights = tile_weights(tile, weighting)
    z_starts = tile_starts(padded.shape[0], tile[0], overlap)
    rows = {z: [b for b in boxes if b[0].start == z] for z in z_starts}
    plane = padded.shape[1:]
    acc = np.zeros((num_classes, 0, *plane), dtype=np.float32)
    wsum = np.zeros((0, *plane), dtype=np.float32)
    acc_z0, done, K = 0, 0, image.shape[0]
    progress(0.0, f"{len(boxes)} tiles of {tile[0]}×{tile[1]}×{tile[2]}")
    for r, z in enumerate(z_starts):
        grow = z + tile[0] - (acc_z0 + wsum.shape[0])
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((num_classes, grow, *plane), np.float32)], axis=1)
            wsum = np.concatenate([wsum, np.zeros((grow, *plane), np.float32)], axis=0)
        for box in rows[z]:
            local = (slice(z - acc_z0, z - acc_z0 + tile[0]), box[1], box[2])
            _, probs = next(predictions)  # rows[z] in turn are ``boxes`` in order (tile_grid is z-major)
            acc[(slice(None), *local)] += probs * weights
            wsum[local] += weights
            done += 1
            progress(done / len(boxes), f"tile {done}/{len(boxes)}")
        z_next = z_starts[r + 1] if r + 1 < len(z_starts) else acc_z0 + wsum.shape[0]
        n = z_next - acc_z0
        finished = acc[:, :n] / wsum[:n]
        z1 = min(z_next, K)
        if z1 > acc_z0:
            yield acc_z0, z1, finished[:, : z1 - acc_z0, : image.shape[1], : image.shape[2]]
        acc, wsum, acc_z0 = acc[:, n:], wsum[n:], z_next


def stitch_slabs(image: np.ndarray, predict: Predictor, tile_shape: Sequence[int], num_classes: int,
                 overlap: float = 0.25, weighting: str = "uniform",
                 progress: Optional[ProgressCallback] = None, tile_batch: int = 1) -> np.ndarray:
    """Argmax channel ``[K, J, I]`` (uint8) of the averaged probabilities, computed slab by slab."""
    out = np.zeros(image.shape, dtype=np.uint8)
    for z0, z1, probs in iter_slabs(image, predict, tile_shape, num_classes, overlap, weighting, progress,
                                    tile_batch):
        out[z0:z1] = np.argmax(probs, axis=0)
    return out


def stitch_probabilities(image: np.ndarray, predict: Predictor, tile_shape: Sequence[int], num_classes: int,
                         overlap: float = 0.25, weighting: str = "uniform",
                         progress: Optional[ProgressCallback] = None,
                         tile_batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(channels, probabilities)``: the argmax channel ``[K, J, I]`` (uint8, equal to ``stitch_slabs``'s)
    and the averaged probabilities ``[C, K, J, I]`` as uint8 (``round(255 p)``: a 1/255 step, a quarter of
    the float32 volume), computed slab by slab; the evidence the hybrid merge weighs
    (``organseglib.evidence``)."""
    out = np.zeros(image.shape, dtype=np.uint8)
    probs = np.zeros((num_classes, *image.shape), dtype=np.uint8)
    for z0, z1, p in iter_slabs(image, predict, tile_shape, num_classes, overlap, weighting, progress, tile_batch):
        out[z0:z1] = np.argmax(p, axis=0)
        np.rint(np.clip(p, 0.0, 1.0) * 255.0, out=p)
        probs[:, z0:z1] = p
    return out, probs


def predict_channels(image: np.ndarray, predict: Predictor, tile_shape: Sequence[int], num_classes: int,
                     overlap: float = 0.25, weighting: str = "uniform", slabs: bool = True,
                     progress: Optional[ProgressCallback] = None, tile_batch: int = 1) -> np.ndarray:
    """Argmax channel per voxel ``[K, J, I]`` (uint8), by slabs (default) or over the whole volume."""
    if slabs:
        return stitch_slabs(image, predict, tile_shape, num_classes, overlap, weighting, progress, tile_batch)
    probs = stitch_whole(image, predict, tile_shape, num_classes, overlap, weighting, progress, tile_batch)
    return np.argmax(probs, axis=0).astype(np.uint8)


# --- torch ---------------------------------------------------------------------------------------------
class TorchPredictor:
    """Tile predictor around a network: window HU (eq. 3), forward, softmax (Table I's last row).

    The network runs as ``network_layout.inference_network`` makes it: a copy in eval mode with batch
    norm folded into the convolutions and, on the CPU, in ``channels_last_3d`` (the same probabilities
    to float rounding, faster; the caller's model is not changed). On CUDA the forward runs under bf16
    autocast (``bf16=True``); probabilities are returned as float32 numpy. A CUDA out-of-memory error
    moves the network to the CPU once, with a warning.

    ``flip_axes``: test-time augmentation by mirroring: the tiles are also predicted mirrored along these
    axes of the network grid (each subset of them, so 2**len(flip_axes) passes), the predictions mirrored
    back and averaged (nnU-Net's "mirroring"). Off by default: the bundled models were trained without
    mirrored crops (``cudaaugment``'s ``reflect_prob`` is 0: a left-right flip puts the liver on the left),
    and issue 22's leave-one-out decides whether it helps (EXPERIMENTS.md). ``plain_channels``: the
    channels whose probability is the plain pass's alone, not the average: organs that lie on one side
    of the body (the liver), which the network, having never seen a mirrored patient, does not find
    mirrored; the others (kidneys, lungs, bladder, bone, background) share the rest, averaged over every
    pass (``_average``).
    """

    def __init__(self, model, window_hu: Sequence[float], device="cpu", bf16: bool = True,
                 flip_axes: Sequence[int] = (), plain_channels: Sequence[int] = ()) -> None:
        import torch

        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self._source = model
        self.model = self._prepare(self.device)
        self.window = tuple(float(w) for w in window_hu)
        self.bf16 = bool(bf16)
        self.flip_axes = tuple(sorted({int(a) for a in flip_axes}))
        if any(a not in (0, 1, 2) for a in self.flip_axes):
            raise InputError(f"flip_axes must be axes of the tile (0, 1, 2); got {tuple(flip_axes)!r}")
        self.plain_channels = sorted({int(c) for c in plain_channels})
        if any(c < 0 for c in self.plain_channels):
            raise InputError(f"plain_channels must be channel indices >= 0; got {tuple(plain_channels)!r}")

    def _prepare(self, device):
        from .network_layout import inference_network

        return inference_network(self._source, device)

    def _flips(self) -> list[tuple[int, ...]]:
        from itertools import combinations

        return [c for r in range(len(self.flip_axes) + 1) for c in combinations(self.flip_axes, r)]

    def _forward(self, tiles: np.ndarray) -> np.ndarray:
        import torch

        from .network import window_hu
        from .network_layout import memory_format_for, to_memory_format

        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))[:, None].to(self.device)
        x = window_hu(x, self.window)
        fmt = memory_format_for(self.device)
        flips = self._flips()
        with torch.inference_mode():
            passes = []
            for flip in flips:
                dims = [2 + a for a in flip]
                xf = to_memory_format(torch.flip(x, dims) if dims else x, fmt)
                if self.device.type == "cuda" and self.bf16:
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        logits = self.model(xf)
                else:
                    logits = self.model(xf)
                p = torch.softmax(logits.float(), dim=1)
                passes.append(torch.flip(p, dims) if dims else p)
            probs = passes[0] if len(passes) == 1 else self._average(passes)
        return probs.contiguous().cpu().numpy()

    def _average(self, passes: list):
        """The mean of the passes (the plain one first); with ``plain_channels``, each mirrored pass first
        takes those channels from the plain pass and shares what is left among its other channels in its
        own proportions (it cannot speak for an organ it would find on the wrong side), so those channels
        come out as the plain pass's and every voxel's probabilities still sum to 1."""
        plain = passes[0]
        if self.plain_channels:
            one = self.plain_channels
            others = [c for c in range(plain.shape[1]) if c not in set(one)]
            left = 1.0 - plain[:, one].sum(dim=1, keepdim=True)
            for p in passes[1:]:
                rest = p[:, others].sum(dim=1, keepdim=True).clamp_min(1e-12)
                p[:, others] *= left / rest
                p[:, one] = plain[:, one]
        total = passes[0].clone()
        for p in passes[1:]:
            total += p
        return total / len(passes)

    def predict_batch(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, C, K, J, I]`` of tiles ``[N, K, J, I]`` (HU) in one forward pass."""
        import torch

        try:
            return self._forward(tiles)
        except torch.cuda.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            log.warning("CUDA out of memory on %d tiles of %s; continuing on the CPU (slower)",
                        len(tiles), tiles.shape[1:])
            self.model = None
            torch.cuda.empty_cache()
            self.device = torch.device("cpu")
            self.model = self._prepare(self.device)
            return self._forward(tiles)

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        return self.predict_batch(np.asarray(tile)[None])[0]


__all__ = ["NonFiniteOutputError", "Predictor", "TileCallback", "TorchPredictor", "iter_slabs", "predict_channels",
           "stitch_probabilities", "stitch_slabs", "stitch_whole", "tile_predictions"]
