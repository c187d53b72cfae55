#!/usr/bin/env python
"""Kidneys through the hybrid (issue 21): `organseg segment`'s hybrid against the network alone, and
against the hybrid before issue 21 (the auto-labels override the network; no urinary rules), with the
shipped default model, on the real labelled scans as they are and with their kidneys enhanced as in
the urographic phases, and on patient phantoms in the nephrographic and excretory phases.

    python scripts/experiment_kidneys.py                                # real scans and their variants
    python scripts/experiment_kidneys.py --phantoms 0,1,2 --no-real     # phantoms
    python scripts/experiment_kidneys.py --model demo
    python scripts/experiment_kidneys.py --model LOO/without-ircad1_07 --cases ircad1_07   # a held-out fold

Variants of a real scan (label-guided intensity changes, the anatomy untouched): ``nephro``, the
kidney masks' voxels moved so that their median reads 205 HU (a held-out nephrographic abdomen of
issue 21); ``excretory``, the kidney masks' sinus (below 100 HU, 3 voxels inside the mask) set to
900 HU (excreted contrast in the collecting system). One case per row. Nothing derived from ircad1_07
is written into the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from organseglib.autolabel import AutoLabelParams
from organseglib.autolabel.urinary import UrinaryParams
from organseglib.io import read_ct, read_labels
from organseglib.metrics import dice
from organseglib.segment import SegmentConfig, segment_ct_with_report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ORGANS = {"liver": 1, "bladder": 2, "lungs": 3, "kidneys": 4, "bone": 5}


@contextlib.contextmanager
def before_issue_21():
    """The hybrid as it was: no urinary rules, and the auto-labels override the network everywhere."""
    import organseglib.autolabel as autolabel_module
    import organseglib.evidence_merge as merge_module

    old_params, old_merge = autolabel_module.AutoLabelParams, merge_module.merge_by_evidence
    off = dataclasses.replace(AutoLabelParams(), bone=dataclasses.replace(AutoLabelParams().bone,
                                                                          urinary=UrinaryParams.off()))
    autolabel_module.AutoLabelParams = lambda: off
    merge_module.merge_by_evidence = lambda network, auto, ct, spacing, evidence, rules=None: old_merge(
        network, auto, ct, spacing, None, rules)
    try:
        yield
    finally:
        autolabel_module.AutoLabelParams, merge_module.merge_by_evidence = old_params, old_merge


def real_cases(wanted=("ircad1_07", "abdomen_totalseg")):
    d = DATA / "ircad1_07"
    if d.exists() and "ircad1_07" in wanted:
        ct = read_ct(d / "ct.nii.gz")
        ref = np.zeros(ct.shape, np.uint8)
        for organ, value in (("liver", 1), ("leftlung", 3), ("rightlung", 3), ("leftkidney", 4), ("rightkidney", 4),
                             ("bone", 5)):
            ref[read_labels(d / "masks" / f"{organ}.nii.gz", reference=ct).array > 0] = value
        yield "ircad1_07", ct, ref, ("liver", "kidneys", "bone")
    if (DATA / "ct/abdomen_totalseg.nii.gz").exists() and "abdomen_totalseg" in wanted:
        ct = read_ct(DATA / "ct/abdomen_totalseg.nii.gz")
        ref = read_labels(DATA / "ct/abdomen_totalseg_labels.nii.gz", reference=ct).array
        yield "abdomen_totalseg", ct, ref, ("liver", "kidneys", "bone", "bladder")


def variant(ct, ref, how: str):
    a = ct.array.astype(np.float32)
    kidneys = ref == ORGANS["kidneys"]
    if how == "nephro":  # parenchyma (not the sinus fat) moved to a median of 205 HU
        parenchyma = kidneys & (a > -20)
        return ct.with_array(np.where(parenchyma, a + 205.0 - float(np.median(a[parenchyma])), a).astype(np.float32))
    if how == "excretory":  # a contrast scan's renal sinus (below 100 HU inside enhancing parenchyma)
        if float(np.median(a[kidneys])) < 100.0:
            return None  # unenhanced kidneys: their sinus cannot be told from their parenchyma
        sinus = ndi.binary_erosion(kidneys, iterations=3) & (a < 100)
        if not sinus.any():
            return None
        return ct.with_array(np.where(sinus, a + 900.0 - float(np.median(a[sinus])), a).astype(np.float32))
    return ct


def scores(labels: np.ndarray, ref: np.ndarray, organs) -> dict:
    out = {o: round(dice(labels == ORGANS[o], ref == ORGANS[o]), 3) for o in organs}
    kidneys = ref == ORGANS["kidneys"]
    out["kidney_voxels_bone"] = round(float((labels[kidneys] == ORGANS["bone"]).mean()), 4) if kidneys.any() else None
    return out


def run(name, ct, ref, organs, model, device) -> dict:
    row = {"case": name}
    moved: list = []
    labels, _ = segment_ct_with_report(ct, model, SegmentConfig(), device, reassignments=moved)
    row["hybrid"] = scores(labels.array, ref, organs)
    row["reassignments"] = [m.to_json() for m in moved]
    labels, _ = segment_ct_with_report(ct, model, SegmentConfig(autolabel_organs=()), device)
    row["network_only"] = scores(labels.array, ref, organs)
    with before_issue_21():
        labels, _ = segment_ct_with_report(ct, model, SegmentConfig(), device)
    row["hybrid_before"] = scores(labels.array, ref, organs)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model package (default: the shipped default model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default="as is,nephro,excretory")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--cases", default="ircad1_07,abdomen_totalseg",
                    help="real scans (a leave-one-out fold model: only the scan it was trained without)")
    ap.add_argument("--phantoms", default="", help="patient phantom seeds (nephrographic and excretory), e.g. 0,1,2")
    args = ap.parse_args()
    from organseglib.model_package import load_model_package, resolve_model

    model = load_model_package(resolve_model(args.model), device="cpu")
    if not args.no_real:
        for name, ct, ref, organs in real_cases(tuple(args.cases.split(","))):
            for how in args.variants.split(","):
                v = variant(ct, ref, how)
                if v is not None:
                    print(json.dumps(run(f"{name} ({how})", v, ref, organs, model, args.device)), flush=True)
    from organseglib.phantom import make_phantom

    for seed in (int(s) for s in args.phantoms.split(",") if s):
        for phase in ("nephrographic", "excretory"):
            p = make_phantom(seed=seed, region="abdomen", size="small", realism="patient", phase=phase)
            print(json.dumps(run(f"patient phantom {seed} {phase}", p.ct, p.labels.array,
                                 ("liver", "kidneys", "bone", "bladder"), model, args.device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
