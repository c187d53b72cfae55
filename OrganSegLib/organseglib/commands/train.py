"""``organseg train --data DIR --out MODEL [--init MODEL]``: train or fine-tune the network.

DIR is a CT-ORG folder, a folder exported by the Slicer correction panel, or ``phantoms:COUNT``.
Checkpoints and the learning curve go to ``MODEL.training/``; running the same command again after
an interruption (even SIGKILL) resumes from the last checkpoint. Multi-GPU / multi-node:
``torchrun --nproc_per_node=G -m organseglib train ...``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .. import cli

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train or fine-tune the segmentation network",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="training data: CT-ORG / exported folder, or phantoms:COUNT")
    p.add_argument("--out", required=True, help="output model package folder")
    p.add_argument("--init", help="model package to fine-tune from (learning rate × 0.1, Roth et al.)")
    p.add_argument("--loss", choices=("iou", "dice", "wce"), default="iou", help="training loss (default iou)")
    p.add_argument("--iterations", type=int, default=20000, help="optimizer steps (default 20000)")
    p.add_argument("--batch-size", type=int, default=4, help="crops per step over all processes (default 4)")
    p.add_argument("--crop", type=int, nargs=3, metavar=("K", "J", "I"), default=None,
                   help="training crop in voxels (default 160 120 120 = the paper's 120×120×160)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate before fine-tuning scaling")
    p.add_argument("--width", type=float, default=1.0, help="network width multiplier (new models)")
    p.add_argument("--augment", default="plateau",
                   help="plateau (default: once the training loss stops falling), always, never, at:N")
    p.add_argument("--val-fraction", type=float, default=0.2, help="cases held out for validation")
    p.add_argument("--validate-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spacing", type=float, default=3.0, help="training resolution in mm (default 3)")
    p.add_argument("--cache", help="folder for the 3 mm cache (default ~/.cache/organseg/training)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--no-amp", action="store_true", help="disable bfloat16 mixed precision on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model package at --out")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    cli.add_progress_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..atomic import check_output_path
    from ..errors import InputError, OutputExistsError
    from ..network import PAPER_TILE_SHAPE
    from ..progress import Progress
    from ..training.dataset import load_dataset
    from ..training.distributed import init_distributed, shutdown
    from ..training.export import load_init_model, save_trained_model
    from ..training.trainer import TrainConfig, split_cases, train

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
        init_model, init_card = (None, None)
        width, window = args.width, None
        if args.init:  # fine-tuning keeps the network and intensity window of the starting model
            init_model, init_card = load_init_model(args.init, info.device)
            width, window = init_card.width, tuple(init_card.window_hu)
        config = TrainConfig(
            loss=args.loss, iterations=args.iterations, batch_size=args.batch_size,
            crop_shape=tuple(args.crop) if args.crop else PAPER_TILE_SHAPE, learning_rate=args.lr,
            finetune=init_model is not None, augment=args.augment, validate_every=args.validate_every,
            checkpoint_every=args.checkpoint_every, seed=args.seed, width=width, amp=not args.no_amp,
            **({"window_hu": window} if window else {}))
        progress(0.0, "loading data")
        cases = load_dataset(data, spacing_mm=args.spacing, cache_dir=args.cache)
        train_cases, val_cases = split_cases(cases, args.val_fraction, args.seed)
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
