"""``organseg demo``: the whole pipeline on a built-in synthetic CT (or ``--input CT``).

Makes a seeded phantom (or reads your CT), writes it, runs every stage, writes labels and PNG
overlays to the output folder and prints metrics against the phantom's exact truth (or ``--reference``).

Stages: ``autolabel`` (lungs and bone by morphology, paper III), ``network`` (all five organs from the
bundled default model, ``real``: non-commercial weights, or ``--model demo`` for the phantom-only one; paper V) and ``segment`` (the one-click hybrid: lungs and bone from the
auto-labelers, liver, kidneys and bladder from the network, as ``organseg segment`` does).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import add_progress_argument
from ..devices import DEVICE_HELP
from ..io import read_ct, read_labels, write_labels, write_volume
from ..metrics import evaluate_labels, format_table, scores_to_json
from ..model_package import read_card, resolve_model
from ..organs import organ_table, parse_organ_list
from ..atomic import check_outputs, make_output_folder, write_text_atomic
from ..overlay import save_overlay_png
from ..phantom import make_phantom
from ..progress import Progress

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a built-in phantom CT (or --input)",
                       description=__doc__)
    p.add_argument("--input", default=None, help="a CT file or DICOM folder instead of the phantom")
    p.add_argument("--reference", default=None, help="reference labels for --input, to print metrics")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--seed", type=int, default=7, help="phantom seed (default 7)")
    p.add_argument("--region", default="both", choices=["chest", "abdomen", "both"],
                   help="phantom field of view (default: both)")
    p.add_argument("--size", default="small", choices=["tiny", "small", "clinical"],
                   help="phantom grid: tiny (6 mm), small (3 mm, default) or clinical (512x512x300)")
    p.add_argument("--model", default=None, help="model package for the network stages (default: the bundled 'real' model, non-commercial "
                        "weights; 'demo': phantoms only)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_progress_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    stages = _stages(args.model, args.device)
    names = ["ct.nii.gz", "truth.nii.gz", "truth.png"] + [f"{stage}{suffix}" for stage, _, _ in stages
                                                          for suffix in (".seg.nrrd", ".nii.gz", ".png", "_metrics.json")]
    # before anything is written or created: the demo never writes over or into its own inputs
    check_outputs({f"--out file {name}": out / name for name in names},
                  [args.input, args.reference, resolve_model(args.model)], folders={"--out": out})
    make_output_folder(out, "--out")
    progress = Progress("demo", mode=args.progress)
    if args.input:
        ct = read_ct(args.input)
        truth = read_labels(args.reference, reference=ct) if args.reference else None
        name = "input"
    else:
        progress(0.02, "making phantom")
        phantom = make_phantom(seed=args.seed, region=args.region, size=args.size)
        ct, truth, name = phantom.ct, phantom.labels, f"phantom (seed {args.seed}, {args.region})"
        write_volume(ct, out / "ct.nii.gz")
        write_labels(truth, out / "truth.nii.gz")
    print(f"CT: {name}: {ct}")
    card = read_card(resolve_model(args.model))[0]
    print(f"model: {card.name}" + (f" ({card.weights_licence})" if card.weights_licence else ""))
    results = {}
    for n, (stage, func, _) in enumerate(stages):
        sub = progress.sub(0.1 + 0.8 * n / len(stages), 0.1 + 0.8 * (n + 1) / len(stages), stage)
        labels = func(ct, sub)
        write_labels(labels, out / f"{stage}.seg.nrrd")
        write_labels(labels, out / f"{stage}.nii.gz")
        save_overlay_png(out / f"{stage}.png", ct, labels, title=f"{stage}: {name}")
        results[stage] = labels
        print(f"wrote {out / (stage + '.seg.nrrd')} and {out / (stage + '.png')}")
    if truth is not None:
        save_overlay_png(out / "truth.png", ct, truth, title=f"truth: {name}")
        organs = {stage: keys for stage, _, keys in stages}
        for stage, labels in results.items():
            scores = evaluate_labels(labels, truth, parse_organ_list(organs[stage]))
            print(f"\n{stage} vs truth:\n{format_table(scores)}")
            write_text_atomic(out / f"{stage}_metrics.json", scores_to_json(scores))
    progress.result(output=str(out))
    return 0


def _stages(model, device):
    """(name, function(ct, progress) -> labels, organs it labels) for every stage of the pipeline."""
    from ..autolabel import SUPPORTED, autolabel
    from ..segment import SegmentConfig, segment_ct

    every = [o.key for o in organ_table()]
    return [
        ("autolabel", lambda ct, progress: autolabel(ct, progress=progress), list(SUPPORTED)),
        ("network", lambda ct, progress: segment_ct(ct, model, SegmentConfig(autolabel_organs=()), device, progress),
         every),
        ("segment", lambda ct, progress: segment_ct(ct, model, SegmentConfig(), device, progress), every),
    ]
