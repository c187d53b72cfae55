#!/usr/bin/env python
"""Look at label-guided intensity augmentation on a real case: the scan as it is and as several crops
would see it (one discrete copy per phase), the same axial and coronal slice each, at 3 mm.

    python scripts/phase_augment_figure.py SET_FOLDER CASE_ID OUT.png [--seed 0]

SET_FOLDER is a training set (``scripts/real_cases.py`` builds one from ../shared/data). Never commit a
figure of ``ircad1_07`` (CC BY-NC-ND 4.0: no derived copies); ``abdomen_totalseg`` (Apache-2.0) may be.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment")]


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from organseglib.phantom.hu_table import PHASES
    from organseglib.training.dataset import find_cases, load_case
    from organseglib.training.phase_augment import PhaseAugmentConfig, apply, measure, sample, structure_masks

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set_folder", type=Path)
    ap.add_argument("case_id")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    files = {c.case_id: c for c in find_cases(args.set_folder)}[args.case_id]
    case = load_case(files)
    masks = structure_masks(case.labels, case.structures, case.annotated)
    cfg = PhaseAugmentConfig(p_original=0.0, p_discrete=1.0)
    stats = measure(case.image, masks, case.spacing_mm, cfg)
    rng = np.random.default_rng(args.seed)
    views = [("as scanned", case.image)]
    for phase in PHASES:
        draw = sample(rng, stats, cfg)
        while draw.phase != phase:
            draw = sample(rng, stats, cfg)
        text = ", ".join(f"{d.key} {d.target_hu:.0f}" for d in draw.structures)
        views.append((f"{phase}: {text}", apply(case.image, stats, draw)))
    kid = np.argwhere(case.labels == 4)
    k, j, _ = (kid.mean(axis=0).astype(int) if len(kid) else np.array(case.image.shape) // 2)
    fig, axes = plt.subplots(2, len(views), figsize=(3.2 * len(views), 6.4))
    for col, (title, image) in enumerate(views):
        axes[0, col].imshow(image[k], cmap="gray", vmin=-200, vmax=400)
        axes[1, col].imshow(image[:, j][::-1], cmap="gray", vmin=-200, vmax=400, aspect=1.0)
        axes[0, col].set_title(textwrap.fill(title, 34), fontsize=7)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle(f"label-guided intensity augmentation, case {args.case_id} ({', '.join(s.key for s in stats)}); "
                 "window −200..400 HU", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
