#!/usr/bin/env python
"""Leave-one-out over the real labelled CT cases: train without the case, score it (issue 11, item 5).

For each held-out case (``ircad1_07``, ``abdomen_totalseg``): train the shipped-model recipe
(``scripts/train_real_model.py``: phantoms + the other real cases + the auto-labelled chest scans,
partial labels, fine-tuned from the phantom demo model) without it, segment it with the hybrid
default (lungs and bone from the auto-labelers, liver, kidneys, bladder from the network) and score
it with ``organseglib.scorecard`` on the organs its reference annotates. Prints the per-case table and
the Table II summary and writes them as JSON/CSV.

Smoke run (minutes)::

    python scripts/leave_one_out.py --out /tmp/loo_smoke --iterations 2

Full run (the figures for EXPERIMENTS.md)::

    python scripts/leave_one_out.py --out /tmp/loo --preset cpu      # 2 × 800 iterations, ≈ 2 × 1 h 50 min on 2 CPU cores
    python scripts/leave_one_out.py --out /tmp/loo --preset gpu      # 2 × 3000 iterations, ≈ 2 × 12 min on one H100 (estimate)

Each fold checkpoints (``OUT/without-CASE.training``), so an interrupted run continues where it stopped.
The folds can also be trained side by side, one process each (``scripts/train_real_model.py --out
OUT/without-CASE --set OUT/real_set --exclude CASE --threads 1``), and then scored with ``--score-only``.
The models trained here include IRCAD data in one fold: non-commercial research use only; keep them
out of the repository.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment"), str(REPO / "scripts")]

from real_cases import REAL_CASES, build  # noqa: E402
from train_real_model import PRESETS, train_recipe  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the fold models, predictions and scores")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset (e.g. 2 for a smoke run)")
    ap.add_argument("--cases", default=",".join(REAL_CASES), help="held-out cases (default: every real labelled case)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--device", default="auto", help="segmentation device")
    ap.add_argument("--score-only", action="store_true",
                    help="score the fold models already in OUT (trained by this script or train_real_model.py)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from organseglib.atomic import write_text_atomic
    from organseglib.scorecard import (format_scorecard, from_model, list_set, score_set, scorecard_to_csv,
                                       scorecard_to_json)

    args.out.mkdir(parents=True, exist_ok=True)
    set_folder = args.out / "real_set"
    ids = build(set_folder, args.data, chest=True)
    cases = {c.case_id: c for c in list_set(set_folder)}
    rows = []
    for held_out in [c for c in args.cases.split(",") if c]:
        if held_out not in cases:
            raise SystemExit(f"--cases: {held_out!r} is not a real labelled case ({', '.join(REAL_CASES)})")
        model = args.out / f"without-{held_out}"
        if args.score_only:
            from organseglib.model_package import is_model_package

            if not is_model_package(model):
                raise SystemExit(f"--score-only: {model} holds no trained model; train the fold first")
        else:
            model = train_recipe(model, args.data, set_folder, args.preset, args.iterations, exclude=(held_out,))
        predict = from_model(str(model), None, args.device, save_dir=args.out / f"pred-without-{held_out}")
        rows += score_set([cases[held_out]], predict)
        logging.info("fold without %s done:\n%s", held_out, format_scorecard(rows))
    print(format_scorecard(rows))
    write_text_atomic(args.out / "leave_one_out.json", scorecard_to_json(rows))
    write_text_atomic(args.out / "leave_one_out.csv", scorecard_to_csv(rows))
    del ids
    return 0


if __name__ == "__main__":
    sys.exit(main())
