"""``organseg evaluate PRED REF``: per-organ Dice, Jaccard, VOE, RVD and surface distances in mm."""

from __future__ import annotations

import argparse

from ..atomic import check_outputs, write_text_atomic
from ..io import read_labels
from ..metrics import evaluate_labels, format_table, scores_to_csv, scores_to_json
from ..organs import parse_organ_list


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="compare a predicted label map with a reference",
                       description=__doc__)
    p.add_argument("pred", help="predicted labels (.nii.gz, .nrrd, .seg.nrrd)")
    p.add_argument("ref", help="reference labels on the same grid")
    p.add_argument("--organs", default=None, help="comma-separated organs (default: all five)")
    p.add_argument("--csv", default=None, help="also write the table as CSV here")
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
