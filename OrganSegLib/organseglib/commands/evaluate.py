"""``organseg evaluate``: score predictions against references, one pair or a whole set.

One pair: ``organseg evaluate PRED REF``: per-organ Dice, Jaccard, VOE, RVD and surface distances in mm.

A set (the real-CT scorecard): ``organseg evaluate --set FOLDER (--pred-dir DIR | --model MODEL)``
scores every case of a training-set folder (manifest.json) or CT-ORG folder, only on the organs each
reference annotates, and prints a per-case table and mean ± SD per organ in the paper's Table II
layout (``organseglib.scorecard``). ``--model`` segments each CT first (hybrid default: lungs and bone
from the auto-labelers; ``--network-only`` for the network alone); ``--model bundled`` is the bundled model.
"""

from __future__ import annotations

import argparse

from ..atomic import check_outputs, write_text_atomic
from ..devices import DEVICE_HELP
from ..errors import InputError, OutputExistsError
from ..io import read_labels
from ..metrics import evaluate_labels, format_table, scores_to_csv, scores_to_json
from ..organs import parse_organ_list


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score predicted labels against references (one pair or a whole set)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred", nargs="?", default=None, help="predicted labels (.nii.gz, .nrrd, .seg.nrrd)")
    p.add_argument("ref", nargs="?", default=None, help="reference labels on the same grid")
    p.add_argument("--set", dest="set_folder", default=None,
                   help="score a whole set: a training-set folder (manifest.json) or CT-ORG folder")
    p.add_argument("--pred-dir", default=None, help="with --set: folder of predictions labels-N.nii.gz / N.nii.gz")
    p.add_argument("--model", default=None, help="with --set: segment each CT with this model ('bundled': the default)")
    p.add_argument("--device", default="auto", help=f"with --model: {DEVICE_HELP}")
    p.add_argument("--network-only", action="store_true", help="with --model: every organ from the network")
    p.add_argument("--save-pred", default=None, help="with --model: also write the predictions to this folder")
    p.add_argument("--organs", default=None, help="comma-separated organs (default: all five)")
    p.add_argument("--csv", default=None, help="also write the table as CSV here")
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.set_folder:
        return _run_set(args)
    if args.pred is None or args.ref is None:
        raise InputError("evaluate needs PRED REF, or --set FOLDER with --pred-dir DIR or --model MODEL")
    check_outputs({"--csv": args.csv, "--json": args.json}, [args.pred, args.ref])
    ref = read_labels(args.ref)
    pred = read_labels(args.pred, reference=ref)
    organs = parse_organ_list(args.organs) if args.organs else None
    scores = evaluate_labels(pred, ref, organs)
    print(format_table(scores))
    if args.csv:
        write_text_atomic(args.csv, scores_to_csv(scores))
    if args.json:
        write_text_atomic(args.json, scores_to_json(scores))
    return 0


def _run_set(args: argparse.Namespace) -> int:
    from .. import scorecard as sc

    if args.pred is not None or (args.pred_dir is None) == (args.model is None):
        raise InputError("with --set give exactly one of --pred-dir DIR or --model MODEL (and no PRED REF)")
    organs = [o.key for o in parse_organ_list(args.organs)] if args.organs else None
    cases = sc.list_set(args.set_folder, organs)
    _check_set_outputs(args, cases)
    if args.pred_dir:
        predict = sc.from_folder(args.pred_dir)
    else:
        from ..segment import SegmentConfig

        config = SegmentConfig(autolabel_organs=()) if args.network_only else SegmentConfig()
        model = None if args.model == "bundled" else args.model
        predict = sc.from_model(model, config, args.device, args.save_pred)
    rows = sc.score_set(cases, predict)
    print(sc.format_scorecard(rows))
    if args.csv:
        write_text_atomic(args.csv, sc.scorecard_to_csv(rows))
    if args.json:
        write_text_atomic(args.json, sc.scorecard_to_json(rows))
    return 0


def _check_set_outputs(args: argparse.Namespace, cases) -> None:
    """Every output of ``--set`` checked before any work (``atomic.check_outputs``): none may touch the
    set folder, a case's CT or labels (which may lie elsewhere), the prediction folder or the model
    package; ``--save-pred`` (only with ``--model``) may not replace any case file. Creates nothing."""
    from pathlib import Path

    from ..model_package import resolve_model

    if args.save_pred is not None and args.model is None:
        raise InputError("--save-pred goes with --model (it keeps the predictions the model made); leave it out "
                         "with --pred-dir")
    inputs = [args.set_folder, Path(args.set_folder) / "manifest.json", args.pred_dir]
    if args.model is not None:
        inputs.append(resolve_model(None if args.model == "bundled" else args.model))
    for case in cases:
        inputs += [case.volume, case.labels]
    check_outputs({"--csv": args.csv, "--json": args.json}, inputs, folders={"--save-pred": args.save_pred})
    if args.save_pred is None:
        return
    save = Path(args.save_pred).expanduser().resolve()
    read = {Path(p).expanduser().resolve() for p in inputs if p is not None}
    for case in cases:  # a case file referenced from elsewhere (ct_mode "reference") named like a prediction
        target = save / f"labels-{case.file_id or case.case_id}.nii.gz"
        if target in read:
            raise OutputExistsError(f"--save-pred {args.save_pred!r} would replace {str(target)!r}, an input; "
                                    "choose another folder (inputs are never overwritten)")
