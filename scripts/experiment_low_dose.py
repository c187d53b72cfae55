#!/usr/bin/env python
"""Lung labels on real CT with low-dose noise added (issue 21, item 4): Dice against the clean scan's
own lung label, and the share of the label that reads above -300 HU once smoothed (a leak into fat).

    python scripts/experiment_low_dose.py                      # chest_lung1, chest_lung2, ircad1_07
    python scripts/experiment_low_dose.py --sd 32,45,60 --seeds 0,1
    python scripts/experiment_low_dose.py --png /tmp/review    # overlays (keep them out of the repository)

The noise is ``organseglib.phantom.low_dose.LowDoseNoise`` (correlated noise of ``--sd`` HU plus
streaks). "Smoothed" is a mean over 5 voxels in-plane and over as many slices as span the same
millimetres (at least one): the partial-volume rim of a lung stays below -300 HU, a leak into fat
(-100 HU) does not. Nothing derived from ircad1_07 is written into the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from organseglib.autolabel import autolabel_with_report
from organseglib.io import read_ct
from organseglib.metrics import dice
from organseglib.phantom.low_dose import LowDoseNoise, add_low_dose_noise

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FILES = {"chest_lung1": "ct/chest_lung1.nrrd", "chest_lung2": "ct/chest_lung2.nrrd", "ircad1_07": "ircad1_07/ct.nii.gz",
         "chest_cropped_totalseg": "ct/chest_cropped_totalseg.nii.gz", "abdomen_totalseg": "ct/abdomen_totalseg.nii.gz"}
LUNGS = 3
DENSE_HU = -300.0  # the lung labeler's leak threshold (LungParams.leak_hu)


def smoothing_size(spacing) -> list[int]:
    """5 voxels in-plane, and along the slices as many as span the same millimetres (at least one)."""
    sk, sj, si = (float(s) for s in spacing)
    return [max(1, int(round(5 * min(si, sj) / sk)) | 1), 5, 5]


def dense_share(lungs: np.ndarray, ct: np.ndarray, spacing) -> float:
    """Share of the lung label whose smoothed HU is above -300 (LPS-ordered arrays, k the slice axis)."""
    if not lungs.any():
        return 0.0
    mean = ndi.uniform_filter(ct.astype(np.float32), size=smoothing_size(spacing), mode="nearest")
    return float((mean[lungs] > DENSE_HU).mean())


def lungs_of(ct, params=None):
    from organseglib.orientation import reorient

    labels, report = autolabel_with_report(ct, "lungs", params=params)
    lps, _ = reorient(labels, "LPS")
    return lps.array == LUNGS, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="chest_lung1,chest_lung2,ircad1_07")
    ap.add_argument("--sd", default="32", help="noise SD (HU), comma-separated")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--no-streaks", action="store_true")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--smoothed-air-hu", type=float, default=None,
                    help="LungParams.smoothed_air_hu (-150: the labeler before issue 21)")
    args = ap.parse_args()
    from organseglib.orientation import reorient

    from organseglib.autolabel import AutoLabelParams, LungParams

    labeler = None if args.smoothed_air_hu is None else AutoLabelParams(lungs=LungParams(smoothed_air_hu=args.smoothed_air_hu))
    for name in args.cases.split(","):
        path = DATA / FILES[name]
        if not path.exists():
            print(json.dumps({"case": name, "skipped": f"{path} absent"}))
            continue
        ct = read_ct(path)
        clean, _ = lungs_of(ct)
        lps = reorient(ct, "LPS")[0]
        row0 = {"case": name, "sd": 0, "lungs_ml": round(float(clean.sum()) * float(np.prod(ct.spacing)) / 1000, 1),
                "dense_share": round(dense_share(clean, lps.array, lps.array_spacing), 4)}
        print(json.dumps(row0), flush=True)
        for sd in (float(v) for v in args.sd.split(",")):
            for seed in (int(v) for v in args.seeds.split(",")):
                params = LowDoseNoise(sd_hu=sd)
                if args.no_streaks:
                    params = dataclasses.replace(params, streaks=0)
                noisy = add_low_dose_noise(ct, params, seed)
                lungs, report = lungs_of(noisy, labeler)
                noisy_lps = reorient(noisy, "LPS")[0]
                row = {"case": name, "sd": sd, "seed": seed, "streaks": not args.no_streaks,
                       "noise_sd_measured": report["lungs"].get("noise_sd_hu"),
                       "lungs_ml": round(float(lungs.sum()) * float(np.prod(ct.spacing)) / 1000, 1),
                       "dice_vs_clean": round(dice(lungs, clean), 4),
                       "dense_share": round(dense_share(lungs, noisy_lps.array, noisy_lps.array_spacing), 4),
                       "dense_beyond_clean": round(dense_share(lungs & ~clean, noisy_lps.array, noisy_lps.array_spacing)
                                                   * float((lungs & ~clean).sum()) / max(float(lungs.sum()), 1.0), 4),
                       "warnings": report["warnings"]}
                print(json.dumps(row), flush=True)
                if args.png:
                    from organseglib.overlay import save_overlay_png

                    args.png.mkdir(parents=True, exist_ok=True)
                    out = np.zeros(lungs.shape, np.uint8)
                    out[lungs] = LUNGS
                    out[clean & ~lungs] = 2  # missed: bladder colour
                    save_overlay_png(args.png / f"lowdose_{name}_{sd:g}_{seed}.png", noisy_lps, noisy_lps.with_array(out),
                                     title=f"{name} + {sd:g} HU", level=-400, width=1400)
    return 0


if __name__ == "__main__":
    sys.exit(main())
