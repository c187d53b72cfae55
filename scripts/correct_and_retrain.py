#!/usr/bin/env python
"""Measure the correct-and-retrain loop (issue 20, item 4): does one corrected case teach a model the
case, and what does the model forget elsewhere?

Start from a leave-one-out fold model (``scripts/leave_one_out.py``: trained without the held-out real
case), then do what a user does in Slicer after correcting that case: save it to a training set and
press *Retrain*. Here the "corrected" labels are the case's reference labels (the organs its reference
annotates), and the retraining is the Retrain button's own command line
(``OrganSegCommon.jobs.train_command``: ``organseg train --init FOLD --time-budget auto``, i.e. 30 min on
the CPU, 10 on a GPU, with the phantom replay of ``organseglib.training.replay``). Dice is measured
before and after, with the default hybrid segmentation (what the user gets) and network only (what the
network learnt or forgot), on the held-out case and on the other labelled real scans (forgetting).

    python scripts/correct_and_retrain.py --model /tmp/loo/without-ircad1_07 --case ircad1_07 \\
        --out /tmp/car-ircad1_07 [--budget auto] [--device cpu]

Writes ``OUT/correct_and_retrain.json`` (and the retrained model ``OUT/retrained``, the one-case training
set ``OUT/corrected``, the real set ``OUT/real_set``, predictions under ``OUT/pred-*``). Models retrained
on ``ircad1_07`` inherit its non-commercial licence: keep them out of the repository. The numbers of one
case are one case: say so wherever they are quoted.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment"), str(REPO / "OrganSeg"), str(REPO / "scripts")]

from real_cases import REAL_CASES, build  # noqa: E402

log = logging.getLogger("correct_and_retrain")


def corrected_set(case, folder: Path) -> Path:
    """A training set holding only ``case`` (a ``scorecard.SetCase``): its CT referenced, its reference
    labels as the user's corrected labels, annotating what the reference annotates."""
    from organseglib.io import read_labels
    from organseglib.training.dataset import fold_ct_org_labels
    from organseglib.training_set import add_case_files, read_manifest

    if read_manifest(folder):
        return folder  # made by an earlier run (the CT is referenced, the labels are the reference's)
    labels = read_labels(case.labels)
    labels = labels.with_array(fold_ct_org_labels(labels.array, str(case.labels)))
    add_case_files(case.volume, labels, folder, f"{case.case_id}: reference labels as the user's correction",
                   case.annotated, ct_mode="reference")
    return folder


def scores(model: str, cases, device: str, save_dir: Path) -> dict:
    """``{"hybrid"|"network": {case: {organ: Dice, "mean": mean}}}`` of ``model`` on ``cases``."""
    from organseglib.model_package import load_model_package
    from organseglib.scorecard import from_model, score_set
    from organseglib.segment import SegmentConfig

    loaded = load_model_package(model, device="cpu")
    out = {}
    for variant, config in (("hybrid", SegmentConfig()), ("network", SegmentConfig(autolabel_organs=()))):
        rows = score_set(cases, from_model(loaded, config, device, save_dir=save_dir / variant))
        table: dict = {}
        for row in rows:
            if row.scores.status != "both empty":
                table.setdefault(row.case_id, {})[row.organ] = round(float(row.scores.dice), 4)
        for per_case in table.values():
            per_case["mean"] = round(sum(per_case.values()) / len(per_case), 4)
        out[variant] = table
    return out


def retrain(model: str, data: Path, out: Path, budget: str, device: str) -> tuple[Path, list]:
    """The Retrain button's command (``OrganSegCommon.jobs.train_command``), run to the end; returns the
    model and the validations it reported as it went."""
    from OrganSegCommon.jobs import library_pythonpath, train_command

    args = train_command(str(data), str(out), init_model=model, device=device, time_budget=budget,
                         python=[sys.executable, "-m", "organseglib"])
    log.info("retraining: %s", " ".join(args))
    validations, last = [], None
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=library_pythonpath()) as child:
        for line in child.stdout:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            last = record
            if record.get("validation") and "status" not in record:  # a validation as it went
                validations.append(record["validation"])
                log.info("%s", record.get("message", ""))
    if child.returncode not in (0, 3) or not out.is_dir():
        raise SystemExit(f"retraining failed (exit {child.returncode}): {last}")
    return out, validations


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the fold model: trained without --case")
    ap.add_argument("--case", required=True, choices=REAL_CASES, help="the held-out real case the user corrects")
    ap.add_argument("--out", type=Path, required=True, help="work folder (outside the repository)")
    ap.add_argument("--budget", default="auto", help="Retrain's time budget (default auto: 30 min CPU, 10 min GPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from organseglib.atomic import write_text_atomic
    from organseglib.model_package import read_card
    from organseglib.scorecard import list_set

    args.out.mkdir(parents=True, exist_ok=True)
    build(args.out / "real_set", args.data, chest=True)
    cases = {c.case_id: c for c in list_set(args.out / "real_set")}
    held, others = cases[args.case], [cases[c] for c in REAL_CASES if c != args.case and c in cases]
    data = corrected_set(held, args.out / "corrected")
    before = scores(args.model, [held, *others], args.device, args.out / "pred-before")
    start = time.monotonic()
    tuned, validations = retrain(args.model, data, args.out / "retrained", args.budget, args.device)
    minutes = (time.monotonic() - start) / 60
    after = scores(str(tuned), [held, *others], args.device, args.out / "pred-after")
    card = read_card(tuned)[0]
    result = {
        "fold_model": str(args.model), "held_out_case": args.case, "other_cases": [c.case_id for c in others],
        "budget": args.budget, "device": args.device, "retrain_minutes": round(minutes, 1),
        "iterations": card.provenance.get("iterations"), "training_data": card.training_data,
        "validations_during_retraining": validations,
        "dice": {variant: {case: {"before": before[variant].get(case), "after": after[variant].get(case)}
                           for case in [args.case, *(c.case_id for c in others)]} for variant in before},
    }
    write_text_atomic(args.out / "correct_and_retrain.json", json.dumps(result, indent=2) + "\n")
    print(f"retrained {result['iterations']} iterations in {minutes:.1f} min ({args.budget}, {args.device})")
    for variant, table in result["dice"].items():
        for case, pair in table.items():
            role = "held out, corrected" if case == args.case else "other (forgetting)"
            b, a = (pair["before"] or {}).get("mean"), (pair["after"] or {}).get("mean")
            print(f"{variant:8s} {case:18s} {role:20s} mean Dice {b} -> {a}   "
                  + ", ".join(f"{k} {pair['before'][k]:.3f}->{pair['after'].get(k, float('nan')):.3f}"
                              for k in (pair["before"] or {}) if k != "mean"))
    print(f"wrote {args.out / 'correct_and_retrain.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
