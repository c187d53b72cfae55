"""``organseg train --data DIR --out MODEL [--init MODEL] [--time-budget 30m]``: train or fine-tune the network.

DIR is a CT-ORG folder, a folder exported by the Slicer correction panel, or ``phantoms:COUNT``.
Checkpoints and the learning curve go to ``MODEL.training/``; running the same command again after
an interruption (even SIGKILL) resumes from the last checkpoint. Multi-GPU / multi-node:
``torchrun --nproc_per_node=G -m organseglib train ...``.

``--time-budget 30m`` (90s, 2h, 1h30m) fits the iteration count to the time: a few iterations are timed
on this machine first, the rest of the budget sets the count (stored, so a resumed run keeps it), the
progress shows the time left, and the run stops at the budget with a usable package
(``organseglib.training.budget``). Fine-tuning (``--init``) replays the base model's training
distribution beside DIR's cases: patient-like phantoms and the real cases of any ``--replay`` folder,
half the crops from DIR by default (``--user-fraction``; ``organseglib.training.replay``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import time
import types
from pathlib import Path

from .. import cli
from ..network_space import NETWORK_SPACING_MM
from ..devices import DEVICE_HELP

log = logging.getLogger(__name__)

# Options that set a ``TrainConfig`` field: option dest -> field. Their defaults are TrainConfig's,
# never restated here: an option not given is left out of the config, and ``--help`` shows the
# dataclass's value (filled in only when help is printed: the trainer module imports torch).
CONFIG_FIELDS = {"loss": "loss", "iterations": "iterations", "batch_size": "batch_size", "crop": "crop_shape",
                 "lr": "learning_rate", "width": "width", "augment": "augment",
                 "validate_every": "validate_every", "checkpoint_every": "checkpoint_every", "seed": "seed",
                 "mirror": "mirror"}


def config_defaults() -> dict:
    """``{option dest: TrainConfig default}`` of the options in ``CONFIG_FIELDS``."""
    from ..training.trainer import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {dest: defaults[name] for dest, name in CONFIG_FIELDS.items()}


def _help_with_config_defaults(parser: argparse.ArgumentParser) -> str:
    shown = config_defaults()
    for action in parser._actions:
        if action.dest in shown and action.help and "%(default)s" in action.help:
            value = shown[action.dest]
            action.default = " ".join(map(str, value)) if isinstance(value, tuple) else value
    return argparse.ArgumentParser.format_help(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train or fine-tune the segmentation network",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="training data: CT-ORG / exported folder, or phantoms:COUNT")
    p.add_argument("--out", required=True, help="output model package folder")
    p.add_argument("--init", help="model package to fine-tune from (learning rate × 0.1, Roth et al.)")
    p.add_argument("--loss", choices=("iou", "dice", "wce"), help="training loss (default %(default)s)")
    p.add_argument("--iterations", type=int, help="optimizer steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, help="crops per step over all processes (default %(default)s)")
    p.add_argument("--crop", type=int, nargs=3, metavar=("K", "J", "I"),
                   help="training crop in voxels (default %(default)s = the paper's 120×120×160; with --init, the crop "
                        "the base model's card records)")
    p.add_argument("--lr", type=float, help="Adam learning rate before fine-tuning scaling (default %(default)s)")
    p.add_argument("--width", type=float, help="network width multiplier, new models (default %(default)s)")
    p.add_argument("--augment", help="plateau (once the training loss stops falling), always, never or at:N "
                                     "(default %(default)s)")
    p.add_argument("--no-phase-augment", action="store_true",
                   help="no label-guided intensity augmentation (by default each annotated liver, kidney, bladder "
                        "and kept spleen/vessel mask is also shown at other contrast phases' HU; "
                        "organseglib.training.phase_augment)")
    p.add_argument("--mirror", type=float, metavar="P",
                   help="probability that an augmented crop is mirrored left-right; the liver, one-sided, counts as "
                        "not annotated in a mirrored crop (default %(default)s: never)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="cases held out for validation")
    p.add_argument("--validate-every", type=int, help="iterations between validations (default %(default)s)")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default %(default)s)")
    p.add_argument("--seed", type=int, help="random seed (default %(default)s)")
    p.add_argument("--spacing", type=float, default=NETWORK_SPACING_MM,
                   help="training resolution in mm (default %(default)g, the paper's)")
    p.add_argument("--cache", help="folder for the 3 mm cache (default ~/.cache/organseg/training)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--no-amp", action="store_true", help="disable bfloat16 mixed precision on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model package at --out")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--time-budget", default=None, metavar="DURATION",
                   help="train for this long, e.g. 90s, 30m, 2h, or auto (30m on the CPU, 10m on a GPU; the Slicer "
                        "Retrain's default): the iterations are fitted to it from a short timed warm-up on this "
                        "machine (instead of --iterations)")
    p.add_argument("--replay", action="append", default=[], metavar="DIR",
                   help="with --init: a training-set or CT-ORG folder whose cases are replayed beside --data (e.g. "
                        "the base model's own training set); may be given several times")
    p.add_argument("--replay-phantoms", type=int, default=12,
                   help="with --init: patient-like phantoms replayed beside --data (default %(default)s; 0: none)")
    p.add_argument("--user-fraction", type=float, default=0.5,
                   help="with --init: share of the training crops from --data, the rest from the replay "
                        "(default %(default)s; 1: no replay)")
    cli.add_progress_argument(p)
    p.set_defaults(func=run)
    p.format_help = types.MethodType(_help_with_config_defaults, p)


def given_config(args: argparse.Namespace) -> dict:
    """``{TrainConfig field: value}`` of the config options given on the command line (the others are
    None in ``args`` and keep TrainConfig's defaults)."""
    given = {CONFIG_FIELDS[dest]: getattr(args, dest) for dest in CONFIG_FIELDS if getattr(args, dest) is not None}
    if "crop_shape" in given:
        given["crop_shape"] = tuple(given["crop_shape"])
    return given


def _time_budget(args: argparse.Namespace):
    """``--time-budget`` checked (a duration or ``auto``), or None; never with ``--iterations``."""
    from ..errors import InputError
    from ..training.budget import check_budget

    if args.time_budget is None:
        return None
    if args.iterations is not None:  # given on the command line (its default is TrainConfig's, None here)
        raise InputError("--time-budget picks the iterations; give --iterations or --time-budget, not both")
    return check_budget(args.time_budget)


def _with_replay(replay, train_cases: list, val_cases: list, cache) -> tuple:
    """(training cases, validation cases, card fields, training-data phrase) with the replay mixed in
    (``replay`` None or inactive: the cases as they are)."""
    from ..training.replay import card_sources, mix, replay_cases, validation_phantoms

    if replay is None or not replay.active:
        return train_cases, val_cases, {}, ""
    extra = replay_cases(replay, cache)
    sources, phrase = card_sources(replay, len(extra) - int(replay.phantoms))
    mixed = mix(train_cases, extra, replay.user_fraction)
    log.info("fine-tuning on %d cases of yours beside %d replayed (%s)", len(train_cases), len(extra), phrase)
    if not val_cases and replay.validation_phantoms:
        val_cases = validation_phantoms(replay)
        phrase += (f"; validated on {len(val_cases)} held-out phantoms (a forgetting check: the data folder has "
                   "no validation case)")
        log.info("validating on %d held-out phantoms (a forgetting check)", len(val_cases))
    return mixed, val_cases, {"data_sources": sources}, f" + {phrase}"


def train_config(args: argparse.Namespace, init_card=None):
    """The ``TrainConfig`` of the parsed options: the options given, TrainConfig's defaults for the
    rest; fine-tuning (``init_card``, the starting model's card) keeps its width and intensity window."""
    from ..training.trainer import TrainConfig

    given = given_config(args)
    if init_card is not None:
        given.update(width=init_card.width, window_hu=tuple(init_card.window_hu), finetune=True)
        crop = (init_card.provenance or {}).get("training_crop")
        if "crop_shape" not in given and crop:  # the crops the base model learnt on (its card records them)
            given["crop_shape"] = tuple(int(c) for c in crop)
    if getattr(args, "no_phase_augment", False):
        given["phase_augment"] = None
    return TrainConfig(**given, amp=not args.no_amp)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()  # a --time-budget counts from here: loading the data is part of it
    from ..atomic import check_outputs
    from ..errors import OutputExistsError
    from ..locks import TRAINING_LOCK, is_locked
    from ..training_limits import check_train_numbers

    # every check that needs no torch and no data first: a refusal takes a second and creates nothing
    given = given_config(args)
    check_train_numbers(given.get("learning_rate"), given.get("seed"), args.threads, args.spacing,
                        given.get("crop_shape"))
    out = Path(args.out).expanduser()
    work = out.parent / f"{out.name}.training"
    data = str(args.data)
    # the data folder and the --init package are inputs: --out, its checkpoint folder and --cache may not
    # be, hold, or lie inside either (--overwrite never reaches an input)
    budget = _time_budget(args)
    if args.replay and not args.init:
        from ..errors import InputError

        raise InputError("--replay replays a base model's data while fine-tuning it: give --init MODEL too")
    inputs = [args.init, *args.replay]
    if not data.startswith("phantoms:"):
        from ..training_set import read_manifest

        root = Path(data).expanduser()  # with its cases' files: a CT it references elsewhere (--ct-mode reference)
        inputs += [root, *[root / f for case in read_manifest(root) for f in (case.volume, case.labels)]]
    check_outputs({}, inputs, folders={"--cache": args.cache}, packages={"--out": out, "checkpoint folder": work})
    if out.exists() and not args.overwrite:  # after the input check: --overwrite is no answer for an input
        raise OutputExistsError(f"{str(out)!r} exists; pass --overwrite to replace it or choose another --out")
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank and is_locked(work / TRAINING_LOCK):
        raise OutputExistsError(f"checkpoint folder {str(work)!r} is in use by another organseg train (lock "
                                f"{TRAINING_LOCK}); two runs into one --out would mix their checkpoints: wait for "
                                "it to finish, or choose another --out")
    init_card = None
    if args.init:
        from ..model_package import read_card

        init_card = read_card(args.init)[0]  # a bad package fails now, before torch and the data
    return _train(args, out, work, data, init_card, main_rank, budget, started)


def _train(args: argparse.Namespace, out: Path, work: Path, data: str, init_card, main_rank: bool, budget,
           started: float) -> int:
    import torch

    from ..progress import Progress
    from ..training.dataset import load_dataset
    from ..training.distributed import init_distributed, shutdown
    from ..training.export import load_init_model, save_trained_model
    from ..training.resources import check_training_fits
    from ..training_limits import check_crop
    from ..training.checkpoint import check_checkpoint
    from ..training.budget import budget_seconds, train_with_budget
    from ..training.replay import ReplayConfig
    from ..training.trainer import CHECKPOINT_NAME, split_cases, train

    replay = ReplayConfig(phantoms=args.replay_phantoms, folders=tuple(args.replay), user_fraction=args.user_fraction,
                          spacing_mm=args.spacing)
    config = train_config(args, init_card)
    check_crop(config.crop_shape, args.spacing)  # the default crop, too, must fit a body at --spacing
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed(args.device)
    progress = Progress("train", mode=args.progress if info.is_main else "none")
    try:
        checkpoint = work / CHECKPOINT_NAME
        if not args.restart and checkpoint.exists():
            check_checkpoint(checkpoint)  # a corrupt one is refused now, not after the data is loaded
        check_training_fits(data, args.spacing, config.width, config.crop_shape,
                            config.batch_size // info.world_size, info.device, config.amp and info.device.type == "cuda")
        init_model = load_init_model(args.init, info.device)[0] if args.init else None
        progress(0.0, "loading data")
        cases = load_dataset(data, spacing_mm=args.spacing, cache_dir=args.cache)
        _check_some_organ(cases, data)
        train_cases, val_cases = split_cases(cases, args.val_fraction, config.seed)
        user_train = len(train_cases)
        replayed = _with_replay(replay if init_card is not None else None, train_cases, val_cases, args.cache)
        train_cases, val_cases, card_text, description = replayed
        log.info("%d training and %d validation cases", len(train_cases), len(val_cases))
        common = dict(info=info, init_model=init_model, resume=not args.restart, progress=progress.sub(0.02, 0.98),
                      stop_after=args.stop_after)
        with _checkpoint_folder(work, lock=main_rank):
            if budget is None:
                result = train(config, train_cases, val_cases, work, **common)
            else:
                result = train_with_budget(config, train_cases, val_cases, work, budget_seconds(budget, info.device),
                                           started_at=started, **common)
            finished = result.state.iteration >= result.config.iterations or result.stopped_at_deadline
            if info.is_main and finished:
                if init_card is not None:  # the weights still derive from the base model's data and its terms
                    card_text["data_sources"] = list(init_card.data_sources) + card_text.get("data_sources", [])
                    card_text.setdefault("weights_licence", init_card.weights_licence)
                save_trained_model(out, result, data_description=f"{data}{description}", spacing_mm=args.spacing,
                                   n_train=user_train, n_val=len(val_cases), init_card=init_card,
                                   overwrite=args.overwrite, **card_text)
        if info.is_main and finished:
            curve = result.curve or next(iter(work.glob("learning_curve.png")), None)  # a resumed run may add none
            progress.result(output=str(out), checkpoint=str(work), learning_curve=str(curve) if curve else None,
                            validation=result.final_validation)
        elif info.is_main:
            progress.result(output=None, checkpoint=str(work), iteration=result.state.iteration)
    finally:
        progress.close()
        shutdown(info)
    return 0


def _check_some_organ(cases, data: str) -> None:
    """Refuse a training set whose labels are all background: it can only teach "no organ anywhere"."""
    from ..errors import InputError

    if cases and not any(bool(case.labels.any()) for case in cases):
        raise InputError(f"every label map of {data!r} ({len(cases)} case{'s' if len(cases) > 1 else ''}) is all "
                         "background (0): there is no organ to learn; check that the labels were exported with their "
                         "values (1 liver .. 5 bone) and are not empty")


@contextlib.contextmanager
def _checkpoint_folder(work: Path, lock: bool):
    """The checkpoint folder, made for the run and held by its lock (the main process only): a second
    run into it is refused, not merged. A run that fails before its first checkpoint leaves no folder."""
    from ..locks import TRAINING_LOCK, exclusive_lock

    created = not work.exists()
    work.mkdir(exist_ok=True)
    try:
        if lock:
            with exclusive_lock(work / TRAINING_LOCK, f"checkpoint folder {str(work)!r}"):
                yield
        else:
            yield
    except BaseException:
        if created and set(os.listdir(work)) <= {TRAINING_LOCK}:  # a checkpoint written before the failure stays
            with contextlib.suppress(OSError):
                (work / TRAINING_LOCK).unlink(missing_ok=True)
                work.rmdir()
        raise
