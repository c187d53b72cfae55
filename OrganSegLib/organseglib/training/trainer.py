"""The training loop: random crops, staged augmentation, checkpoints, resume, DDP, mixed precision.

Section VI-C: batches of 4 random crops; training starts without augmentation, which is introduced
once the training loss (averaged over 100 iterations) stops falling. Every ``checkpoint_every``
iterations the full state (weights, optimizer, every rank's random generator, loss history,
augmentation stage) is written atomically to ``<work_dir>/checkpoint.safetensors``; a run that is
killed (even by SIGKILL) and started again with the same arguments continues from there and ends
with the same weights as an uninterrupted run (on the same device and thread count).
Fine-tuning from an existing model uses a 10× lower learning rate (Roth et al.).
"""

from __future__ import annotations

import hashlib
import logging
import math
from time import monotonic as _clock  # a module name, so tests can drive it
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..losses import LOSSES, segmentation_loss
from ..network import DEFAULT_WINDOW_HU, PAPER_TILE_SHAPE, build_network
from ..network_layout import memory_format_for, to_memory_format
from ..progress import report
from ..training_limits import check_crop, check_learning_rate, check_mirror, check_seed
from .batches import BatchSampler, make_augmenter, plain_batch
from .checkpoint import TrainingState, load_checkpoint, save_checkpoint
from .curves import plot_learning_curve, window_means
from .dataset import TrainingCase
from .phase_augment import PhaseAugment, PhaseAugmentConfig
from .distributed import (DistInfo, all_gather_objects, barrier, mean_across_ranks, sync_buffers, unwrap,
                          wrap_model)
from .validation import validate

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "checkpoint.safetensors"
CURVE_NAME = "learning_curve.png"
# Settings that must match for a checkpoint to be resumed (others, e.g. iterations, may change).
_RESUME_KEYS = ("loss", "batch_size", "crop_shape", "learning_rate", "seed", "width", "augment",
                "num_classes", "window_hu", "finetune", "phase_augment", "mirror")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; defaults follow the paper where it gives a value.

    Attributes:
        loss: ``"iou"`` (section V-C, the paper's choice), ``"dice"`` or ``"wce"`` (eq. 4).
        iterations: total optimizer steps.
        batch_size: crops per step over all ranks (section VI-C: 4).
        crop_shape: training crop (K, J, I) (section V-A: 120×120×160 at 3 mm).
        learning_rate: Adam step size (the paper does not state its optimizer; Adam 1e-3 is ours).
        finetune: start from ``init`` weights with ``learning_rate × finetune_lr_factor``.
        finetune_lr_factor: 0.1 (Roth et al.: "a 10 times smaller learning rate").
        augment: ``"plateau"`` (section VI-C: once the training loss stops falling), ``"always"``,
            ``"never"`` or ``"at:N"`` (from iteration N).
        plateau_window: iterations per training-loss average (figure 6 averages over 100).
        plateau_patience: windows without a relative improvement of ``plateau_min_improvement``.
        validate_every, checkpoint_every: in iterations (the last iteration always does both).
        width: network channel multiplier (1.0 = Table I).
        amp: bfloat16 autocast on CUDA (ignored on the CPU).
        phase_augment: label-guided intensity augmentation (``phase_augment``: each annotated
            phase-dependent structure redrawn at another contrast phase's HU, texture kept), from the
            first iteration in both stages (it changes what the data show, not the geometry); None: off.
        mirror: probability that an augmented crop is mirrored left-right, the one-sided organs
            (``organs.ONE_SIDED_ORGANS``: the liver) left unannotated in it (``batches.AugmentedBatches``);
            0 (default): never. Used by the default augmenter only.
    """

    loss: str = "iou"
    iterations: int = 20000
    batch_size: int = 4
    crop_shape: tuple = PAPER_TILE_SHAPE
    learning_rate: float = 1e-3
    finetune: bool = False
    finetune_lr_factor: float = 0.1
    augment: str = "plateau"
    plateau_window: int = 100
    plateau_patience: int = 3
    plateau_min_improvement: float = 0.01
    validate_every: int = 500
    checkpoint_every: int = 100
    seed: int = 0
    width: float = 1.0
    num_classes: int = 6
    window_hu: tuple = DEFAULT_WINDOW_HU
    amp: bool = True
    phase_augment: Optional[PhaseAugmentConfig] = field(default_factory=PhaseAugmentConfig)
    mirror: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_shape", tuple(int(c) for c in self.crop_shape))
        object.__setattr__(self, "window_hu", tuple(float(w) for w in self.window_hu))
        if self.loss not in LOSSES:
            raise InputError(f"loss must be one of {LOSSES}; got {self.loss!r}")
        for name in ("iterations", "batch_size", "plateau_window", "plateau_patience", "validate_every",
                     "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be ≥ 1; got {getattr(self, name)!r}")
        check_crop(self.crop_shape)  # the rules of the command's options (training_limits)
        check_learning_rate(self.learning_rate)
        check_seed(self.seed)
        check_mirror(self.mirror)
        self.augment_start_iteration()  # validates `augment`

    def augment_start_iteration(self) -> Optional[int]:
        """A fixed start (``always`` = 0, ``at:N`` = N), or None (``never`` / ``plateau``)."""
        if self.augment in ("plateau", "never"):
            return None
        if self.augment == "always":
            return 0
        if self.augment.startswith("at:") and self.augment[3:].isdigit():
            return int(self.augment[3:])
        raise InputError(f"augment must be plateau, always, never or at:N; got {self.augment!r}")

    @property
    def effective_lr(self) -> float:
        return self.learning_rate * (self.finetune_lr_factor if self.finetune else 1.0)


def loss_has_plateaued(train_losses: Sequence[float], window: int, patience: int, min_improvement: float) -> bool:
    """True when the last ``patience`` window means all failed to beat the best earlier window mean
    by the relative margin ``min_improvement`` (evaluated on complete windows only)."""
    _, means = window_means(train_losses, window)
    if len(means) <= patience:
        return False
    best_before = means[:-patience].min()
    return bool(means[-patience:].min() > best_before * (1.0 - min_improvement))


@dataclass
class TrainResult:
    model: torch.nn.Module
    state: TrainingState
    config: TrainConfig
    work_dir: Path
    curve: Optional[Path] = None
    final_validation: dict = field(default_factory=dict)
    stopped_at_deadline: bool = False  # ``train(deadline=...)`` ended the run before config.iterations


def _compatible(saved: dict, config: TrainConfig) -> list[str]:
    now = asdict(config)
    return [k for k in _RESUME_KEYS if k in saved and json_equal(saved[k], now[k]) is False]


def data_fingerprint(train_cases: Sequence[TrainingCase], val_cases: Sequence[TrainingCase],
                     init_model: Optional[torch.nn.Module]) -> str:
    """SHA-256 over the cases (ids, shapes, labels, a stride of the images) and the initial weights:
    a checkpoint resumes only onto the data and starting model it was trained from."""
    h = hashlib.sha256()
    for role, cases in (("train", train_cases), ("val", val_cases)):
        for case in cases:
            h.update(f"|{role}|{case.case_id}|{case.image.shape}|{case.spacing_mm}".encode())
            if getattr(case, "annotated", None) is not None:
                h.update(f"|annotated={','.join(case.annotated)}".encode())
            h.update(np.ascontiguousarray(case.labels).tobytes())
            h.update(np.ascontiguousarray(case.image.reshape(-1)[::97]).tobytes())
    if init_model is not None:
        for name, tensor in sorted(init_model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def json_equal(a, b) -> bool:
    """Equal as JSON (tuples and lists alike, at any depth): a setting read back from a checkpoint."""
    import json

    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def train(config: TrainConfig, train_cases: Sequence[TrainingCase], val_cases: Sequence[TrainingCase],
          work_dir: str | Path, info: DistInfo = DistInfo(), init_model: Optional[torch.nn.Module] = None,
          augmenter: Optional[BatchSampler] = None, resume: bool = True,
          progress: Optional[Callable[..., None]] = None,
          stop_after: Optional[int] = None,
          deadline: Optional[Callable[[], bool]] = None) -> TrainResult:
    """Train (or continue training) a network; see the module docstring.

    Args:
        config: settings.
        train_cases, val_cases: 3 mm cases (``dataset.load_dataset``); val may be empty.
        work_dir: folder for the checkpoint and learning curve (created).
        info: this process's place in a torchrun job (default: single process, CPU).
        init_model: weights to start from (fine-tuning); its copy is trained.
        augmenter: batch sampler used once augmentation is on (default ``cudaaugment``).
        resume: continue from ``work_dir``'s checkpoint when there is one.
        progress: ``(fraction, message)`` callback (rank 0 only); one that takes fields (``Progress``,
            its ``sub``, ``progress.scaled``) also gets each validation as a
            ``validation={"iteration", "loss", "dice"}`` field.
        stop_after: stop (after checkpointing) at this iteration; for tests and time-boxed runs.
        deadline: asked after each iteration (on every rank: it must give every rank the same answer,
            ``training.budget``); True ends the run there, validated and checkpointed like its last
            iteration (``TrainResult.stopped_at_deadline``).

    Raises:
        InputError: no training cases, a batch size not divisible by the world size, or a checkpoint
            from incompatible settings.
    """
    if not train_cases:
        raise InputError("no training cases; pass a data folder with at least one case")
    if config.batch_size % info.world_size:
        raise InputError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                         f"{info.world_size}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    device = info.device
    amp = bool(config.amp and device.type == "cuda")
    if init_model is not None:
        model = init_model.to(device)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_network(num_classes=config.num_classes, width=config.width).to(device)
    # channels_last_3d on the CPU (network_layout: the same step, faster); before the optimizer, so its
    # moments take the parameters' layout; checkpoints store the tensors in the standard layout
    memory_format = memory_format_for(device)
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.effective_lr)
    rng = np.random.default_rng([config.seed, info.rank])
    state = TrainingState()
    ckpt = work / CHECKPOINT_NAME
    fingerprint = data_fingerprint(train_cases, val_cases, init_model)
    if resume and ckpt.exists():
        def check(saved: dict) -> None:  # before the weights are restored: a changed width cannot fit
            bad = _compatible(saved, config)
            if saved.get("data_fingerprint", fingerprint) != fingerprint:
                bad.append("training data or initial model")
            if bad:
                raise InputError(f"checkpoint {str(ckpt)!r} was written with different settings ({', '.join(bad)}); "
                                 "pass --restart to discard it or choose another --out")

        state, _ = load_checkpoint(ckpt, model, optimizer, check=check)
        if len(state.rng_states) == info.world_size:
            rng.bit_generator.state = state.rng_states[info.rank]
        else:
            log.warning("checkpoint has %d generator states for %d processes; reseeding", len(state.rng_states),
                        info.world_size)
            rng = np.random.default_rng([config.seed, info.rank, state.iteration])
        log.info("resuming from %s at iteration %d", ckpt, state.iteration)
    fixed_start = config.augment_start_iteration()
    if augmenter is None and config.augment != "never":
        augmenter = make_augmenter("cudaaugment", window=config.window_hu, mirror=config.mirror)
    net = wrap_model(model, info)
    net.train()
    per_rank = config.batch_size // info.world_size
    last = config.iterations if stop_after is None else min(stop_after, config.iterations)
    curve = None
    phases = {"image_of": PhaseAugment(config.phase_augment).image_of} if config.phase_augment else {}
    stopped = False
    # the wall time spent training, summed over resumes (the model card reports it): counted at each
    # checkpoint, so the iterations an interruption loses are not counted twice
    state.extra.setdefault("train_seconds_from_iteration", state.iteration)
    clock = _clock()
    while state.iteration < last:
        if not state.augmenting and fixed_start is not None and state.iteration >= fixed_start:
            state.augmenting, state.augment_start = True, state.iteration
        sampler = augmenter if (state.augmenting and augmenter is not None) else None
        if sampler is None:
            batch = plain_batch(train_cases, per_rank, config.crop_shape, rng, device, config.window_hu, **phases)
        else:
            batch = sampler(train_cases, per_rank, config.crop_shape, rng, device, **phases)
        x, y = batch
        x = to_memory_format(x, memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x)
        # partial labels: organs a case does not annotate are unknown there (marginal loss)
        loss = segmentation_loss(config.loss, logits, y, getattr(batch, "annotated", None))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = mean_across_ranks(float(loss.detach()), info)
        if not math.isfinite(value):  # the data, the starting weights and any checkpoint were checked finite
            raise InputError(f"training loss became {value} at iteration {state.iteration + 1} with learning rate "
                             f"{config.effective_lr:g}: the steps were too large for this data; lower --lr (e.g. "
                             f"{config.learning_rate / 10:g}) and pass --restart")
        state.iteration += 1
        state.history["train"].append(value)
        if (config.augment == "plateau" and not state.augmenting and state.iteration % config.plateau_window == 0
                and loss_has_plateaued(state.history["train"], config.plateau_window, config.plateau_patience,
                                       config.plateau_min_improvement)):
            state.augmenting, state.augment_start = True, state.iteration
            log.info("training loss stopped falling: augmentation on from iteration %d", state.iteration)
        if deadline is not None and state.iteration < last and deadline():  # out of time: this is the last
            last, stopped = state.iteration, True
        done = state.iteration == last
        validation = None
        if val_cases and (state.iteration % config.validate_every == 0 or done) and info.is_main:
            v = validate(model, val_cases, config.loss, config.crop_shape, device, config.window_hu, amp)
            state.history["val"].append({"iteration": state.iteration, **v})
            validation = {"iteration": state.iteration, "loss": round(float(v["loss"]), 4),
                          "dice": {k: round(float(d), 3) for k, d in v["dice"].items()}}
            log.info("iteration %d: validation loss %.4f, Dice %s", state.iteration, v["loss"], validation["dice"])
        if state.iteration % config.checkpoint_every == 0 or done:
            sync_buffers(net, info)
            states = all_gather_objects(rng.bit_generator.state, info)
            now = _clock()
            state.extra["train_seconds"] = round(float(state.extra.get("train_seconds", 0.0)) + now - clock, 1)
            clock = now
            if info.is_main:
                state.rng_states = states
                save_checkpoint(ckpt, model, optimizer, state, {**asdict(config), "data_fingerprint": fingerprint})
                curve = plot_learning_curve(work / CURVE_NAME, state.history, config.plateau_window,
                                            state.augment_start, f"{config.loss} loss")
            barrier(info)
        if progress is not None and info.is_main:  # the Slicer Retrain panel reads the validation field
            report(progress, state.iteration / config.iterations, f"iteration {state.iteration}/{config.iterations}, "
                   f"loss {value:.4f}{' (augmenting)' if state.augmenting else ''}",
                   **({"validation": validation} if validation else {}))
    final = state.history["val"][-1] if state.history["val"] else {}
    return TrainResult(unwrap(net), state, config, work, curve, final, stopped)


def split_cases(cases: Sequence[TrainingCase], val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """A seeded split into training and validation cases (at least one training case)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):  # None would split at random
        raise InputError(f"split seed must be a whole number; got {seed!r}")
    if not 0 <= val_fraction < 1:
        raise InputError(f"validation fraction must be in [0, 1); got {val_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = min(len(cases) - 1, int(round(val_fraction * len(cases))))
    val = [cases[i] for i in sorted(order[:n_val])]
    tr = [cases[i] for i in sorted(order[n_val:])]
    return tr, val

