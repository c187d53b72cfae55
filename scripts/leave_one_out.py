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

Comparisons (issue 22), each scoring the fold models already in OUT (``--score-only``):

* ``--model-suffix -3000``: score ``OUT/without-CASE-3000`` instead (a shorter budget of the same run,
  exported with ``scripts/export_checkpoint.py``);
* ``--flip``: test-time mirroring left-right (``SegmentConfig.flip_axes``; the liver from the plain pass,
  ``flip_one_sided``); ``--flip-all``: every organ averaged, the liver too;
* ``--network-only``: every organ from the network (the hybrid is the default);
* ``--phase-copy none``: score a copy of each held-out scan whose annotated liver, kidneys, bladder and
  kept spleen/vessels are put at that phase's HU through its own masks
  (``organseglib.training.phase_augment.phase_copy``; written under OUT, never into the repository);
* ``--tag NAME``: the name of this scoring's outputs (``OUT/leave_one_out-NAME.json``, predictions).
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


def phase_copies(cases: dict, phase: str, folder: Path) -> dict:
    """``{case id: SetCase}`` of copies of ``cases`` with their annotated phase-dependent structures at
    ``phase``'s HU (built once into ``folder``; the labels are the originals')."""
    from dataclasses import replace

    from organseglib.extra_structures import structures_path
    from organseglib.io import read_ct, read_volume, write_volume
    from organseglib.orientation import DEFAULT_AXIS_CODE, reorient
    from organseglib.training.phase_augment import phase_copy, structure_masks

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, case in cases.items():
        target = folder / f"ct-{key}.nii.gz"
        if not target.exists():
            ct, back = reorient(read_ct(case.volume), DEFAULT_AXIS_CODE)  # LPS: axis 1 posterior (bladder layer)
            labels = reorient(read_volume(case.labels), DEFAULT_AXIS_CODE)[0].array
            extra = structures_path(case.labels)
            structures = reorient(read_volume(extra), DEFAULT_AXIS_CODE)[0].array if extra.exists() else None
            masks = structure_masks(labels, structures, case.annotated)
            copy = phase_copy(ct.array, masks, ct.array_spacing, phase)
            write_volume(back(ct.with_array(copy)), target)
            logging.info("%s: %s copy of %s (%s) written to %s", key, phase, case.volume, ", ".join(masks), target)
        out[key] = replace(case, volume=target)
    return out


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
    ap.add_argument("--model-suffix", default="", help="score OUT/without-CASE<SUFFIX> (e.g. -3000)")
    ap.add_argument("--flip", action="store_true", help="test-time mirroring left-right (the liver: plain pass)")
    ap.add_argument("--flip-all", action="store_true", help="test-time mirroring left-right, every organ averaged")
    ap.add_argument("--network-only", action="store_true", help="every organ from the network")
    ap.add_argument("--phase-copy", default=None, help="score a copy of each held-out scan in this contrast phase")
    ap.add_argument("--tag", default="", help="name of this scoring's outputs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from organseglib.atomic import write_text_atomic
    from organseglib.scorecard import (format_scorecard, from_model, list_set, score_set, scorecard_to_csv,
                                       scorecard_to_json)
    from organseglib.segment import MIRROR_AXES, SegmentConfig

    config = SegmentConfig(flip_axes=MIRROR_AXES if args.flip or args.flip_all else (),
                           flip_one_sided=() if args.flip_all else ("liver",),
                           **({"autolabel_organs": ()} if args.network_only else {}))
    tag = f"-{args.tag}" if args.tag else ""

    args.out.mkdir(parents=True, exist_ok=True)
    set_folder = args.out / "real_set"
    ids = build(set_folder, args.data, chest=True)
    cases = {c.case_id: c for c in list_set(set_folder)}
    if args.phase_copy:
        cases = phase_copies(cases, args.phase_copy, args.out / f"phase-{args.phase_copy}")
    rows = []
    for held_out in [c for c in args.cases.split(",") if c]:
        if held_out not in cases:
            raise SystemExit(f"--cases: {held_out!r} is not a real labelled case ({', '.join(REAL_CASES)})")
        model = args.out / f"without-{held_out}{args.model_suffix}"
        if args.score_only:
            from organseglib.model_package import is_model_package

            if not is_model_package(model):
                raise SystemExit(f"--score-only: {model} holds no trained model; train the fold first")
        else:
            model = train_recipe(model, args.data, set_folder, args.preset, args.iterations, exclude=(held_out,))
        predict = from_model(str(model), config, args.device,
                             save_dir=args.out / f"pred-without-{held_out}{args.model_suffix}{tag}")
        rows += score_set([cases[held_out]], predict)
        logging.info("fold without %s done:\n%s", held_out, format_scorecard(rows))
    print(format_scorecard(rows))
    write_text_atomic(args.out / f"leave_one_out{args.model_suffix}{tag}.json", scorecard_to_json(rows))
    write_text_atomic(args.out / f"leave_one_out{args.model_suffix}{tag}.csv", scorecard_to_csv(rows))
    del ids
    return 0


if __name__ == "__main__":
    sys.exit(main())
