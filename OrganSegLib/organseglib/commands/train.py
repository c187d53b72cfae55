"""``organseg train --data DIR --out MODEL [--init MODEL]``: train or fine-tune the network.

DIR is a CT-ORG folder, a folder exported by the Slicer correction panel, or ``phantoms:COUNT``.
Checkpoints and the learning curve go to ``MODEL.training/``; running the same command again after
an interruption (even SIGKILL) resumes from the last checkpoint. Multi-GPU / multi-node:
``torchrun --nproc_per_node=G -m organseglib train ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
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
                 "validate_every": "validate_every", "checkpoint_every": "checkpoint_every", "seed": "seed"}


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
                   help="training crop in voxels (default %(default)s = the paper's 120×120×160)")
    p.add_argument("--lr", type=float, help="Adam learning rate before fine-tuning scaling (default %(default)s)")
    p.add_argument("--width", type=float, help="network width multiplier, new models (default %(default)s)")
    p.add_argument("--augment", help="plateau (once the training loss stops falling), always, never or at:N "
                                     "(default %(default)s)")
    p.add_argument("--no-phase-augment", action="store_true",
                   help="no label-guided intensity augmentation (by default each annotated liver, kidney, bladder "
                        "and kept spleen/vessel mask is also shown at other contrast phases' HU; "
                        "organseglib.training.phase_augment)")
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
    cli.add_progress_argument(p)
    p.set_defaults(func=run)
    p.format_help = types.MethodType(_help_with_config_defaults, p)


def train_config(args: argparse.Namespace, init_card=None):
    """The ``TrainConfig`` of the parsed options: the options given, TrainConfig's defaults for the
    rest; fine-tuning (``init_card``, the starting model's card) keeps its width and intensity window."""
    from ..training.trainer import TrainConfig

    given = {CONFIG_FIELDS[dest]: getattr(args, dest) for dest in CONFIG_FIELDS if getattr(args, dest) is not None}
    if "crop_shape" in given:
        given["crop_shape"] = tuple(given["crop_shape"])
    if init_card is not None:
        given.update(width=init_card.width, window_hu=tuple(init_card.window_hu), finetune=True)
    if getattr(args, "no_phase_augment", False):
        given["phase_augment"] = None
    return TrainConfig(**given, amp=not args.no_amp)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..atomic import check_output_path
    from ..errors import InputError, OutputExistsError
    from ..progress import Progress
    from ..training.dataset import load_dataset
    from ..training.distributed import init_distributed, shutdown
    from ..training.export import load_init_model, save_trained_model
    from ..training.trainer import split_cases, train

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out).expanduser()
    data = str(args.data)
    if not data.startswith("phantoms:") and Path(data).expanduser().resolve() == out.resolve():
        raise InputError("--out must not be the --data folder; choose another model folder")
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{str(out)!r} exists; pass --overwrite to replace it or choose another --out")
    check_output_path(out, "--out", folder=True)  # before hours of training, not after them
    check_output_path(out.parent / f"{out.name}.training", "checkpoint folder", folder=True)
    info = init_distributed(args.device)
    progress = Progress("train", mode=args.progress if info.is_main else "none")
    try:
        init_model, init_card = load_init_model(args.init, info.device) if args.init else (None, None)
        config = train_config(args, init_card)
        progress(0.0, "loading data")
        cases = load_dataset(data, spacing_mm=args.spacing, cache_dir=args.cache)
        train_cases, val_cases = split_cases(cases, args.val_fraction, config.seed)
        log.info("%d training and %d validation cases", len(train_cases), len(val_cases))
        work = out.parent / f"{out.name}.training"
        result = train(config, train_cases, val_cases, work, info=info, init_model=init_model,
                       resume=not args.restart, progress=progress.sub(0.02, 0.98),
                       stop_after=args.stop_after)
        if info.is_main and result.state.iteration >= config.iterations:
            save_trained_model(out, result, data_description=data, spacing_mm=args.spacing,
                               n_train=len(train_cases), n_val=len(val_cases), init_card=init_card,
                               overwrite=args.overwrite)
            progress.result(output=str(out), checkpoint=str(work), learning_curve=str(result.curve),
                            validation=result.final_validation)
        elif info.is_main:
            progress.result(output=None, checkpoint=str(work), iteration=result.state.iteration)
    finally:
        progress.close()
        shutdown(info)
    return 0
