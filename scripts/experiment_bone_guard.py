#!/usr/bin/env python
"""Bone labeler variants on phantoms and on the real abdomen: the paper's labeler, a higher tau1,
and the soft-tissue guard (``BoneParams.soft_hu`` / ``enclosure_mm``). Prints a Markdown table of
bone Dice (and precision / recall) for EXPERIMENTS.md.

    .venv/bin/python scripts/experiment_bone_guard.py      # under a minute on 2 CPU cores

The real abdomen (``../shared/data/ct/abdomen_totalseg.nii.gz`` and its reference labels) is used
when present.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from organseglib.autolabel import AutoLabelParams, BoneParams, autolabel
from organseglib.phantom import make_phantom

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "ct"
PHANTOMS = [("chest", 0, False), ("abdomen", 1, True), ("chest", 2, True), ("abdomen", 3, False), ("both", 4, False)]
VARIANTS = [
    ("paper (BoneParams.paper())", BoneParams.paper()),
    ("tau1 = 100, no guard", BoneParams(tau1_hu=100.0, soft_hu=0.0)),
    ("tau1 = 150, no guard", BoneParams(tau1_hu=150.0, soft_hu=0.0)),
    ("tau1 = 199 (just below tau2), no guard", BoneParams(tau1_hu=199.0, soft_hu=0.0)),
    ("guard: soft_hu 80, enclosure 50 mm", BoneParams(soft_hu=80.0)),
    ("guard: soft_hu 100, enclosure 25 mm", BoneParams(enclosure_mm=25.0)),
    ("guard: soft_hu 100, enclosure 50 mm (default)", BoneParams()),
    ("guard: soft_hu 120, enclosure 50 mm", BoneParams(soft_hu=120.0)),
    ("guard: soft_hu 150, enclosure 50 mm", BoneParams(soft_hu=150.0)),
]


def cases():
    for region, seed, contrast in PHANTOMS:
        p = make_phantom(seed=seed, region=region, size="small", contrast=contrast, table=True)
        yield f"{region} {seed}{' +c' if contrast else ''}", p.ct, p.labels.array == 5
    if (REAL / "abdomen_totalseg.nii.gz").exists():
        from organseglib.io import read_ct, read_labels

        ct = read_ct(REAL / "abdomen_totalseg.nii.gz")
        ref = read_labels(REAL / "abdomen_totalseg_labels.nii.gz", reference=ct).array
        yield "real abdomen", ct, ref == 5
    else:
        print("real abdomen skipped: ../shared/data is absent", file=sys.stderr)


def main() -> int:
    t0 = time.time()
    data = list(cases())
    names = [name for name, _, _ in data]
    print("| variant | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, params in VARIANTS:
        cells = []
        for _, ct, truth in data:
            got = autolabel(ct, organs="bone", params=AutoLabelParams(bone=params)).array == 5
            tp = float((got & truth).sum())
            dice = 2 * tp / max(float(got.sum() + truth.sum()), 1.0)
            cells.append(f"{dice:.3f} ({tp / max(got.sum(), 1):.2f} / {tp / max(truth.sum(), 1):.2f})")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nDice (precision / recall); {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
