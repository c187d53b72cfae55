"""Measure per-structure HU (median, IQR) and noise on the real scans in ../shared/data.

The phantom's HU table (organseglib/phantom/hu_table.py) cites these numbers. Run from the repository
root::

    python scripts/measure_real_hu.py [--json /tmp/real_hu.json] [--samples /tmp/real_hu_samples.npz]

Scans and masks (see ../shared/data/README.md):

* ``ircad1_07`` (portal venous phase): hand-drawn masks liver, spleen, left/right kidney, artery,
  portalvein, venoussystem, bone, left/right lung, skin (body).
* ``ct/abdomen_totalseg`` (no contrast): five-organ labels (model-made) liver, bladder, lungs, kidneys,
  bone.
* ``ct/chest_cropped_totalseg`` (contrast chest, arterial phase: the blood pool is 400-500 HU): no
  labels; the blood pool of the aorta and left heart is segmented here by a threshold (200-800 HU),
  a 2-voxel erosion and the largest connected component.

Masks are eroded by one voxel (in-plane) before measuring so that partial volume at the edges does not
bias the medians. Fat is the body's voxels between -190 and -30 HU (the usual adipose window, e.g.
Yoshizumi et al., Radiology 1999); muscle is the mode (2 HU bins, smoothed) of unmasked body voxels
between 0 and 100 HU, mostly abdominal wall, back and psoas muscle: an estimate, not a mask.

Noise: the residual of a masked Gaussian detrend (sigma 3 voxels) inside an eroded homogeneous organ;
its SD and its lag-1 autocorrelation along i (in-plane) and k (between slices). Texture adds to it,
so the SD is an upper bound on the scanner noise.

Reads only; never writes next to the data. The ircad1_07 numbers are statistics, not image copies.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
log = logging.getLogger("measure_real_hu")


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _erode(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    inplane = np.zeros((3, 3, 3), bool)
    inplane[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_erosion(mask, inplane, iterations=iterations) if mask.any() else mask


def _body(ct: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(ct > -500)
    if n == 0:
        return np.zeros(ct.shape, bool)
    big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    body = lab == big
    return np.stack([ndimage.binary_fill_holes(s) for s in body])


def _mode(values: np.ndarray, lo: float, hi: float) -> float:
    hist, edges = np.histogram(values, bins=np.arange(lo, hi + 2, 2))
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0)
    return float(edges[np.argmax(hist)] + 1.0)


def _stats(values: np.ndarray) -> dict:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1), "n": int(values.size)}


def _noise(ct: np.ndarray, mask: np.ndarray) -> dict:
    """SD and lag-1 autocorrelation (i and k) of the detrended image inside ``mask``."""
    m = _erode(mask, 2).astype(np.float32)
    x = ct.astype(np.float32)
    trend = ndimage.gaussian_filter(x * m, 3.0) / np.maximum(ndimage.gaussian_filter(m, 3.0), 1e-6)
    r = (x - trend) * m
    inside = m > 0
    res = r[inside]
    sd = float(res.std())
    both_i = inside[:, :, 1:] & inside[:, :, :-1]
    both_k = inside[1:] & inside[:-1]
    rho_i = float((r[:, :, 1:] * r[:, :, :-1])[both_i].mean() / res.var())
    rho_k = float((r[1:] * r[:-1])[both_k].mean() / res.var())
    return {"sd": sd, "lag1_i": rho_i, "lag1_k": rho_k, "n": int(inside.sum())}


def measure_ircad(root: Path, samples: dict) -> dict:
    ct = _read(root / "ct.nii.gz").astype(np.float32)
    masks = {p.name[:-7]: _read(p) > 0 for p in sorted((root / "masks").glob("*.nii.gz"))}
    structures = {
        "liver": masks["liver"], "spleen": masks["spleen"],
        "kidney": masks["leftkidney"] | masks["rightkidney"],
        "aorta_artery": masks["artery"], "portal_vein": masks["portalvein"],
        "vena_cava_veins": masks["venoussystem"], "bone": masks["bone"],
        "lung": masks["leftlung"] | masks["rightlung"],
    }
    body = masks["skin"]
    labelled = np.zeros_like(body)
    for name, m in masks.items():
        if name != "skin":
            labelled |= m
    out = {}
    for name, m in structures.items():
        v = ct[_erode(m)]
        out[name] = _stats(v)
        samples[f"ircad1_07/{name}"] = v[:: max(1, v.size // 20000)]
    body_only = body & ~ndimage.binary_dilation(labelled, iterations=2)
    fat = ct[body_only & (ct >= -190) & (ct <= -30)]
    out["fat"] = _stats(fat)
    samples["ircad1_07/fat"] = fat[:: max(1, fat.size // 20000)]
    soft = ct[body_only & (ct >= 0) & (ct <= 100)]
    out["muscle_mode"] = {"median": _mode(soft, 0, 100), "note": "mode of unmasked soft tissue 0-100 HU"}
    out["noise_liver"] = _noise(ct, masks["liver"] & (ct > 60) & (ct < 200))
    return out


def measure_totalseg(path: Path, labels_path: Path, samples: dict) -> dict:
    ct = _read(path).astype(np.float32)
    lab = _read(labels_path)
    names = {1: "liver", 2: "bladder", 3: "lung", 4: "kidney", 5: "bone"}
    out = {}
    for value, name in names.items():
        v = ct[_erode(lab == value)]
        out[name] = _stats(v)
        samples[f"abdomen_totalseg/{name}"] = v[:: max(1, v.size // 20000)]
    body = _body(ct) & ~ndimage.binary_dilation(lab > 0, iterations=1)
    fat = ct[body & (ct >= -190) & (ct <= -30)]
    out["fat"] = _stats(fat)
    samples["abdomen_totalseg/fat"] = fat[:: max(1, fat.size // 20000)]
    soft = ct[body & (ct >= 0) & (ct <= 100)]
    out["muscle_mode"] = {"median": _mode(soft, 0, 100), "note": "mode of unmasked soft tissue 0-100 HU"}
    samples["abdomen_totalseg/soft_tissue"] = soft[:: max(1, soft.size // 20000)]
    out["noise_liver"] = _noise(ct, (lab == 1) & (ct > 20) & (ct < 120))
    return out


def measure_chest(path: Path, samples: dict) -> dict:
    ct = _read(path).astype(np.float32)
    pool = _erode((ct >= 200) & (ct <= 800), 2)
    lab, n = ndimage.label(pool)
    out = {}
    if n:
        big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
        blood = ndimage.binary_dilation(lab == big, iterations=1) & (ct >= 200) & (ct <= 800)
        v = ct[_erode(blood)]
        out["blood_pool_arterial"] = _stats(v)
        samples["chest_cropped_totalseg/blood_pool_arterial"] = v[:: max(1, v.size // 20000)]
        out["noise_blood_pool"] = _noise(ct, _erode(blood, 1))
    body = ct > -500
    fat = ct[body & (ct >= -190) & (ct <= -30)]
    out["fat"] = _stats(fat)
    samples["chest_cropped_totalseg/fat"] = fat[:: max(1, fat.size // 20000)]
    lung = ct[(ct < -500) & (ct > -1000)]
    out["lung"] = _stats(lung)
    soft = ct[body & (ct >= 0) & (ct <= 150)]
    out["soft_tissue_mode"] = {"median": _mode(soft, 0, 150), "note": "mode of soft tissue 0-150 HU (myocardium, muscle)"}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, default=None, help="write the table as JSON here")
    ap.add_argument("--samples", type=Path, default=None,
                    help="write subsampled HU values per structure (.npz, for the histogram figure; keep it out of the repo)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    samples: dict = {}
    table = {}
    if (args.data / "ircad1_07" / "ct.nii.gz").exists():
        table["ircad1_07 (portal venous)"] = measure_ircad(args.data / "ircad1_07", samples)
    if (args.data / "ct" / "abdomen_totalseg.nii.gz").exists():
        table["abdomen_totalseg (no contrast)"] = measure_totalseg(
            args.data / "ct" / "abdomen_totalseg.nii.gz", args.data / "ct" / "abdomen_totalseg_labels.nii.gz", samples)
    if (args.data / "ct" / "chest_cropped_totalseg.nii.gz").exists():
        table["chest_cropped_totalseg (arterial)"] = measure_chest(args.data / "ct" / "chest_cropped_totalseg.nii.gz", samples)
    lines = ["| scan (phase) | structure | median HU | IQR (q1..q3) | voxels |", "|---|---|---|---|---|"]
    for scan, rows in table.items():
        for name, s in rows.items():
            if name.startswith("noise"):
                lines.append(f"| {scan} | {name} | SD {s['sd']:.1f} | lag-1 ρ: i {s['lag1_i']:.2f}, k {s['lag1_k']:.2f} | {s['n']} |")
            elif "q1" in s:
                lines.append(f"| {scan} | {name} | {s['median']:.0f} | {s['iqr']:.0f} ({s['q1']:.0f}..{s['q3']:.0f}) | {s['n']} |")
            else:
                lines.append(f"| {scan} | {name} | {s['median']:.0f} | {s['note']} | |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    if args.samples:
        np.savez_compressed(args.samples, **samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
