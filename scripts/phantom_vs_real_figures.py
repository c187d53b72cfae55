"""Figures comparing the patient-like phantom with the real scans in ../shared/data.

    python scripts/phantom_vs_real_figures.py            # the two committed figures
    python scripts/phantom_vs_real_figures.py --ircad    # also /tmp/phantom_vs_ircad_slices.png (never commit it)

* ``benchmarks/results/phantom_vs_real_hu.png``: per-structure HU histograms (eroded masks) of the real
  scans (abdomen_totalseg no contrast, ircad1_07 portal venous, chest_cropped_totalseg arterial blood
  pool) against patient-like phantoms of the same phase rendered at a similar voxel size. Histograms are
  statistics, not images of the scans.
* ``benchmarks/results/phantom_vs_real_slices.png``: axial and coronal slices of patient-like phantoms
  beside abdomen_totalseg and chest_cropped_totalseg at one window (W 400, L 40). ircad1_07's pixels
  are shown only in the local ``--ircad`` figure (CC BY-NC-ND: no modified copies redistributed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "OrganSegLib"))
sys.path.insert(0, str(REPO / "scripts"))

from organseglib.phantom import anatomy as T  # noqa: E402
from organseglib.phantom import make_phantom  # noqa: E402
from measure_real_hu import DATA, _erode  # noqa: E402

WINDOW = (-160.0, 240.0)  # W 400, L 40


def _read_display(path: Path):
    """Array (K, J, I) flipped to RAS display order (i to patient left, j posterior, k superior), spacing (i, j, k)."""
    im = sitk.ReadImage(str(path))
    a = sitk.GetArrayFromImage(im)
    d = np.asarray(im.GetDirection()).reshape(3, 3)
    if d[0, 0] < 0:   # LPS: +i must point to patient left
        a = a[:, :, ::-1]
    if d[1, 1] < 0:   # +j posterior
        a = a[:, ::-1, :]
    if d[2, 2] < 0:
        a = a[::-1]
    return a, im.GetSpacing()


def hu_figure(out: Path, seeds=(0, 1, 2)) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from measure_real_hu import measure_chest, measure_ircad, measure_totalseg

    real: dict = {}
    measure_totalseg(DATA / "ct/abdomen_totalseg.nii.gz", DATA / "ct/abdomen_totalseg_labels.nii.gz", real)
    measure_ircad(DATA / "ircad1_07", real)
    measure_chest(DATA / "ct/chest_cropped_totalseg.nii.gz", real)
    kidney = [T.KIDNEY, T.KIDNEY_MEDULLA, T.RENAL_PELVIS]
    panels = [  # (title, real key, phase, phantom classes, voxel mm)
        ("liver, no contrast", "abdomen_totalseg/liver", "none", [T.LIVER, T.LIVER_PORTAL, T.LIVER_VEIN], 3.0),
        ("kidneys, no contrast", "abdomen_totalseg/kidney", "none", kidney, 3.0),
        ("bladder, no contrast", "abdomen_totalseg/bladder", "none", [T.BLADDER], 3.0),
        ("bone, no contrast", "abdomen_totalseg/bone", "none", [T.CORTEX, T.MARROW], 3.0),
        ("fat, no contrast", "abdomen_totalseg/fat", "none", [T.FAT], 3.0),
        ("liver, portal venous", "ircad1_07/liver", "portal", [T.LIVER, T.LIVER_PORTAL, T.LIVER_VEIN], 1.0),
        ("spleen, portal venous", "ircad1_07/spleen", "portal", [T.SPLEEN], 1.0),
        ("kidneys, portal venous", "ircad1_07/kidney", "portal", kidney, 1.0),
        ("aorta, portal venous", "ircad1_07/aorta_artery", "portal", [T.AORTA], 1.0),
        ("portal vein, portal venous", "ircad1_07/portal_vein", "portal", [T.PORTAL_VEIN, T.LIVER_PORTAL], 1.0),
        ("venous system, portal venous", "ircad1_07/vena_cava_veins", "portal", [T.VENA_CAVA, T.LIVER_VEIN], 1.0),
        ("blood pool, arterial", "chest_cropped_totalseg/blood_pool_arterial", "arterial", [T.AORTA, T.BLOOD_LEFT], 1.5),
    ]
    phantom: dict = {}
    for phase, mm in (("none", 3.0), ("portal", 1.0), ("arterial", 1.5)):
        wanted = {p[1]: p[3] for p in panels if p[2] == phase}
        # a 1 mm whole abdomen is large: render a 120 mm slab through the liver and kidneys instead
        phantom.update(_phantom_values_slab(phase, mm, seeds, wanted))
    fig, axes = plt.subplots(3, 4, figsize=(13, 8.4))
    for ax, (title, key, phase, _, mm) in zip(axes.ravel(), panels):
        r, q = real[key], phantom[key]
        lo, hi = np.percentile(np.concatenate([r, q]), [1, 99])
        bins = np.linspace(lo - 10, hi + 10, 50)
        scan = key.split("/")[0]
        ax.hist(r, bins, density=True, histtype="stepfilled", alpha=0.45, color="tab:blue",
                label=f"{scan}: median {np.median(r):.0f}")
        ax.hist(q, bins, density=True, histtype="step", lw=1.6, color="tab:red",
                label=f"phantom {mm:g} mm: median {np.median(q):.0f}")
        ax.set_title(title, fontsize=10)
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.suptitle("HU inside eroded masks: real scans (blue, named) vs patient-like phantoms of the same phase "
                 f"(red, seeds {list(seeds)})", fontsize=11)
    for ax in axes[-1]:
        ax.set_xlabel("HU")
    fig.tight_layout()
    fig.savefig(out, dpi=70)


def _phantom_values_slab(phase, mm, seeds, wanted) -> dict:
    from organseglib.phantom import PatientParams, ScanParams
    out = {k: [] for k in wanted}
    for seed in seeds:
        rng = np.random.default_rng([seed, 11])
        patient = PatientParams.sample(rng, phase)
        a = patient.anatomy.base
        z = (a.dome + 150.0, a.dome + 30.0) if phase == "arterial" else (a.dome - 190.0, a.dome - 60.0)
        if phase == "none":
            z = (a.femur_z + 10.0, a.dome - 40.0)
        scan = ScanParams(z_range=(z[1], z[0]) if z[0] > z[1] else z, fov_mm=420.0, centre_y=-15.0,
                          slice_mm=mm, psf_mm=0.6, noise_sd=14.0 if phase != "arterial" else 45.0,
                          noise_fc=0.4, noise_seed=seed)
        p = make_phantom(seed, "abdomen", "small", spacing=(mm,) * 3, realism="patient", patient=patient, scan=scan)
        for name, classes in wanted.items():
            m = _erode(np.isin(p.tissue, classes))
            out[name].append(p.ct.array[m])
    return {k: np.concatenate(v) if sum(x.size for x in v) else np.zeros(1) for k, v in out.items()}


def slices_figure(out: Path, with_ircad: bool = False, seeds=(0, 5)) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = []  # (title, axial liver, axial kidney, coronal, aspect of coronal)
    a, sp = _read_display(DATA / "ct/abdomen_totalseg.nii.gz")
    lab, _ = _read_display(DATA / "ct/abdomen_totalseg_labels.nii.gz")
    cols.append(("abdomen_totalseg (real, no contrast, 3 mm)",) + _views(a, lab, sp))
    if with_ircad:
        a, sp = _read_display(DATA / "ircad1_07/ct.nii.gz")
        lab = np.zeros(a.shape, np.uint8)
        for name, v in (("liver", 1), ("leftkidney", 4), ("rightkidney", 4)):
            lab[_read_display(DATA / f"ircad1_07/masks/{name}.nii.gz")[0] > 0] = v
        cols.append(("ircad1_07 (real, portal venous) LOCAL ONLY",) + _views(a, lab, sp))
    for seed, phase in zip(seeds, ("none", "portal")):
        p = make_phantom(seed, "abdomen", "small", spacing=(1.5, 1.5, 3.0), realism="patient", phase=phase,
                         slice_mm=3.0)
        sp = p.ct.array_spacing[::-1]
        cols.append((f"phantom seed {seed} ({phase}, {p.scan.slice_mm:.1f} mm slices)",)
                    + _views(p.ct.array, p.labels.array, sp))
    chest, csp = _read_display(DATA / "ct/chest_cropped_totalseg.nii.gz")
    pc = make_phantom(3, "chest", "small", spacing=(1.5, 1.5, 1.5), realism="patient", phase="arterial", slice_mm=1.5)
    fig, axes = plt.subplots(3, len(cols) + 2, figsize=(3.1 * (len(cols) + 2), 9.6))
    for c, (title, ax_liver, ax_kid, cor, aspect) in enumerate(cols):
        for r, (img, asp) in enumerate(((ax_liver, 1.0), (ax_kid, 1.0), (cor, aspect))):
            axes[r, c].imshow(img, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=asp, interpolation="nearest")
            axes[r, c].axis("off")
        axes[0, c].set_title(title, fontsize=8)
    for c, (img, sp, title) in enumerate(((chest, csp, "chest_cropped_totalseg (real, arterial)"),
                                          (pc.ct.array, pc.ct.array_spacing[::-1], "phantom seed 3 (arterial, chest)"))):
        col = len(cols) + c
        K, J, I = img.shape
        heart_k = K // 2 if c == 0 else int(np.argmin(np.abs(_z(pc) - pc.patient.anatomy.heart_c[2])))
        axes[0, col].imshow(img[heart_k], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
        axes[1, col].imshow(img[min(K - 1, heart_k + int(40 / sp[2]))], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
        j = J // 2 - int(15 / sp[1]) if c == 0 else int(np.argmin(np.abs(_y(pc) - pc.patient.anatomy.heart_c[1])))
        axes[2, col].imshow(img[:, j, :][::-1], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=sp[2] / sp[0])
        axes[0, col].set_title(title, fontsize=8)
        for r in range(3):
            axes[r, col].axis("off")
    fig.suptitle("Axial (liver, kidneys / heart, +40 mm) and coronal slices, window W 400 L 40", fontsize=11)
    fig.tight_layout()
    _save_grey(fig, out, dpi=60)


def _y(p):
    m = p.ct.ijk_to_ras
    return m[1, 1] * np.arange(p.ct.shape[1]) + m[1, 3]


def _save_grey(fig, out: Path, dpi: int) -> None:
    """Save as an 8-bit greyscale PNG (the figures are grey images and black text: a third of RGBA's size)."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    buf.seek(0)
    Image.open(buf).convert("L").save(out, optimize=True)


def _z(p):
    m = p.ct.ijk_to_ras
    return m[2, 2] * np.arange(p.ct.shape[0]) + m[2, 3]


def _views(a, lab, sp):
    """Axial slice with the most liver, axial with the most kidney, coronal through the kidneys."""
    k_liver = int(np.argmax((lab == 1).sum(axis=(1, 2))))
    k_kid = int(np.argmax((lab == 4).sum(axis=(1, 2))))
    kid = np.nonzero(lab == 4)
    j = int(np.median(kid[1])) if kid[0].size else a.shape[1] // 2
    return a[k_liver], a[k_kid], a[:, j, :][::-1], sp[2] / sp[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--ircad", action="store_true", help="also write /tmp/phantom_vs_ircad_slices.png (local only)")
    ap.add_argument("--only", choices=("hu", "slices"), default=None)
    args = ap.parse_args(argv)
    if args.only != "slices":
        hu_figure(args.out / "phantom_vs_real_hu.png")
    if args.only != "hu":
        slices_figure(args.out / "phantom_vs_real_slices.png")
        if args.ircad:
            slices_figure(Path("/tmp/phantom_vs_ircad_slices.png"), with_ircad=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
