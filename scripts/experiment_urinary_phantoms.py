#!/usr/bin/env python
"""The bone labeler on patient phantoms in each contrast phase, with the urinary rules off and on
(issue 21): bone Dice and the share of the urinary tract (kidney, medulla, renal pelvis, ureter,
bladder, contrast urine) labelled bone. Phantom figures, never evidence for patients.

    python scripts/experiment_urinary_phantoms.py                                  # 5 phases x 13 seeds
    python scripts/experiment_urinary_phantoms.py --phases excretory --seeds 0-3

One JSON line per phantom; the summary per phase on stderr.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys

import numpy as np

from organseglib.autolabel import AutoLabelParams, autolabel_with_report
from organseglib.autolabel.urinary import UrinaryParams
from organseglib.metrics import dice
from organseglib.phantom import anatomy as T
from organseglib.phantom import make_phantom

BONE = 5
URINARY = (T.KIDNEY, T.KIDNEY_MEDULLA, T.RENAL_PELVIS, T.URETER, T.BLADDER, T.BLADDER_CONTRAST)


def seeds(text: str) -> list:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",") if s]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", default="excretory,arterial,nephrographic,portal,none")
    ap.add_argument("--seeds", default="0-12")
    ap.add_argument("--region", default="abdomen")
    args = ap.parse_args(argv)
    on = AutoLabelParams()
    off = dataclasses.replace(on, bone=dataclasses.replace(on.bone, urinary=UrinaryParams.off()))
    rows = collections.defaultdict(list)
    for phase in args.phases.split(","):
        for seed in seeds(args.seeds):
            p = make_phantom(seed=seed, region=args.region, size="small", realism="patient", phase=phase)
            truth = p.labels.array == BONE
            urinary = np.isin(p.tissue, URINARY)
            row = {"phase": phase, "seed": seed}
            for name, params in (("off", off), ("on", on)):
                labels, report = autolabel_with_report(p.ct, params=params)
                bone = labels.array == BONE
                row[f"{name}_bone_dice"] = round(dice(bone, truth), 4)
                row[f"{name}_urinary_bone"] = round(float((bone & urinary).sum()) / max(float(urinary.sum()), 1.0), 4)
                if name == "on":
                    row["found_ml"] = {k: report["bone"][k] for k in ("kidney_ml", "ureter_ml", "bladder_ml")}
            rows[phase].append(row)
            print(json.dumps(row), flush=True)
    for phase, rs in rows.items():
        def col(key):
            return np.array([r[key] for r in rs])
        print(f"{phase} ({len(rs)} phantoms): urinary voxels bone {col('off_urinary_bone').mean():.2%} "
              f"(max {col('off_urinary_bone').max():.2%}) -> {col('on_urinary_bone').mean():.2%} "
              f"(max {col('on_urinary_bone').max():.2%}, {int((col('on_urinary_bone') > 0.01).sum())} above 1 %); "
              f"bone Dice {col('off_bone_dice').mean():.3f} -> {col('on_bone_dice').mean():.3f} "
              f"(min {col('on_bone_dice').min():.3f}, {int((col('on_bone_dice') >= 0.95).sum())} at 0.95 or more)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
