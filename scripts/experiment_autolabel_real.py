#!/usr/bin/env python
"""Lung and bone auto-labels on the real scans of ``../shared/data`` (issue 12): Dice against the
hand-drawn masks of ircad1_07 and the model-made labels of abdomen_totalseg, bone left in the blood
pools and organs, lung voxels far from lung-density tissue, and border-touching lung tissue.

    python scripts/experiment_autolabel_real.py                 # our defaults
    python scripts/experiment_autolabel_real.py --paper         # the paper's labelers exactly
    python scripts/experiment_autolabel_real.py --png /tmp/rev  # also write PNG overlays there
    python scripts/experiment_autolabel_real.py --bone-off canal,discs,cartilage,fill_before_guard  # without
        # the bone rules of issue 12's second round (BoneParams switches set to False)

Nothing derived from ircad1_07 is written into the repository (its licence is CC BY-NC-ND): PNGs go
where ``--png`` says (keep them out of the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from organseglib.autolabel import AutoLabelParams, autolabel_with_report
from organseglib.io import read_ct, read_labels
from organseglib.metrics import dice
from organseglib.volume import Volume

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
LUNGS, BONE = 3, 5
FAR_MM = 10.0
LUNG_DENSITY_HU = -500.0  # lung parenchyma is -950..-600 HU; fat -120..-60


def ml(mask: np.ndarray, ct: Volume) -> float:
    return float(mask.sum()) * float(np.prod(ct.spacing)) / 1000.0


def lung_density(ct: np.ndarray, spacing) -> np.ndarray:
    """Lung-density tissue: the CT smoothed over ~3 mm (so single noisy fat voxels do not count) at
    or below -500 HU."""
    sigma = [1.5 / s for s in spacing]
    return ndi.gaussian_filter(ct.astype(np.float32), sigma) <= LUNG_DENSITY_HU


def far_from_lung_density(lungs: np.ndarray, ct: np.ndarray, spacing) -> np.ndarray:
    dens = lung_density(ct, spacing)
    dist = ndi.distance_transform_edt(~dens, sampling=spacing)
    return lungs & (dist > FAR_MM)


def border_lung_tissue(lungs: np.ndarray, ct: np.ndarray, spacing, body_hull: np.ndarray):
    """mL of lung-density tissue on the in-plane border faces (inside the body's hull) and the
    fraction of it labelled lung."""
    dens = lung_density(ct, spacing) & (ct > -980) & body_hull
    faces = np.zeros(ct.shape, bool)
    faces[:, :2] = faces[:, -2:] = faces[:, :, :2] = faces[:, :, -2:] = True
    tissue = dens & faces
    return tissue, float((tissue & lungs).sum()) / max(float(tissue.sum()), 1.0)


def case_metrics(name: str, ct: Volume, labels: np.ndarray, report: dict, masks: dict) -> dict:
    lungs, bone = labels == LUNGS, labels == BONE
    arr = ct.array
    sp = ct.array_spacing
    out = {"case": name, "lungs_ml": round(ml(lungs, ct), 1), "bone_ml": round(ml(bone, ct), 1)}
    if "bone" in masks:
        out["bone_dice"] = round(dice(bone, masks["bone"]), 3)
        tp = float((bone & masks["bone"]).sum())
        out["bone_prec_rec"] = (round(tp / max(bone.sum(), 1), 3), round(tp / max(masks["bone"].sum(), 1), 3))
    if "lungs" in masks:
        out["lung_dice"] = round(dice(lungs, masks["lungs"]), 3)
    for organ in ("artery", "venoussystem", "portalvein", "spleen", "liver", "leftkidney", "rightkidney"):
        if organ in masks:
            out[f"bone_in_{organ}_ml"] = round(ml(bone & masks[organ], ct), 2)
    far = far_from_lung_density(lungs, arr, sp)
    out["lung_far_ml"] = round(ml(far, ct), 2)
    if name == "chest_cropped_totalseg":
        # thick blood-density regions (heart chambers, aorta: 400-650 HU after 2 mm smoothing, >= 4 mm
        # from their edge, grown 3 voxels within the band), independent of the labeler's own pool mask
        sm = ndi.gaussian_filter(arr.astype(np.float32), [2.0 / s for s in sp])
        band = (sm >= 400) & (sm <= 650)
        thick = ndi.binary_dilation(ndi.distance_transform_edt(band, sampling=sp) >= 4.0, iterations=3) & band
        out["blood_ml"] = round(ml(thick, ct), 1)
        out["bone_in_blood_ml"] = round(ml(bone & thick, ct), 2)
    if lungs.any():
        ends = [k for k in range(arr.shape[0]) if lungs[k].any()]
        out["lung_end_slices_median_hu"] = [round(float(np.median(arr[k][lungs[k]]))) for k in (ends[0], ends[-1])]
    out["warnings"] = report["warnings"]
    out["report"] = {o: {k: v for k, v in r.items() if k != "warnings"} for o, r in report.items() if o != "warnings"}
    return out


def load_cases(names):
    if "ircad1_07" in names:
        d = DATA / "ircad1_07"
        if d.exists():
            ct = read_ct(d / "ct.nii.gz")
            m = {p.name.split(".")[0]: read_labels(p, reference=ct).array > 0 for p in sorted((d / "masks").glob("*.nii.gz"))}
            m["lungs"] = m["leftlung"] | m["rightlung"]
            yield "ircad1_07", ct, m
    if "abdomen_totalseg" in names and (DATA / "ct/abdomen_totalseg.nii.gz").exists():
        ct = read_ct(DATA / "ct/abdomen_totalseg.nii.gz")
        ref = read_labels(DATA / "ct/abdomen_totalseg_labels.nii.gz", reference=ct).array
        yield "abdomen_totalseg", ct, {"bone": ref == BONE, "lungs": ref == LUNGS, "liver": ref == 1}
    for stem, file in (("chest_cropped_totalseg", "chest_cropped_totalseg.nii.gz"),
                       ("chest_lung1", "chest_lung1.nrrd"), ("chest_lung2", "chest_lung2.nrrd")):
        if stem in names and (DATA / "ct" / file).exists():
            yield stem, read_ct(DATA / "ct" / file), {}


ALL = ("ircad1_07", "abdomen_totalseg", "chest_cropped_totalseg", "chest_lung1", "chest_lung2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", action="store_true", help="the paper's labelers exactly")
    ap.add_argument("--png", type=Path, default=None, help="write PNG overlays into this folder")
    ap.add_argument("--cases", default=",".join(ALL))
    ap.add_argument("--bone-off", default="", help="comma-separated BoneParams switches to set False")
    args = ap.parse_args()
    params = AutoLabelParams.paper() if args.paper else AutoLabelParams()
    off = [o for o in args.bone_off.split(",") if o]
    if off:
        import dataclasses

        params = dataclasses.replace(params, bone=dataclasses.replace(params.bone, **{o: False for o in off}))
    rows = []
    for name, ct, masks in load_cases(args.cases.split(",")):
        t = time.perf_counter()
        labels, report = autolabel_with_report(ct, params=params)
        seconds = time.perf_counter() - t
        row = case_metrics(name, ct, labels.array, report, masks)
        row["seconds"] = round(seconds, 1)
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
        if args.png:
            from organseglib.overlay import save_overlay_png

            args.png.mkdir(parents=True, exist_ok=True)
            save_overlay_png(args.png / f"{name}.png", ct, labels, title=f"{name} ({'paper' if args.paper else 'ours'})",
                             level=300, width=1600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
