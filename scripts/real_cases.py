"""Build the training set of the real labelled CT cases in ../shared/data (never inside the repository).

    python scripts/real_cases.py OUT_FOLDER [--data ../shared/data] [--chest]

Case ``ircad1_07``: 3D-IRCADb-01 patient 1.7, hand-drawn masks imported with ``organseg import-labels``
(annotates liver, lungs (bases), kidneys, bone; bladder unknown); its spleen and vessel masks are kept as
``structures-N.nii.gz`` (``organseglib.extra_structures``) for label-guided intensity augmentation. Licence CC BY-NC-ND 4.0: the case is
*referenced* (``ct_mode="reference"``), never copied into a folder that could be shared, and weights
trained on it are for non-commercial research use only.
Case ``abdomen_totalseg``: TotalSegmentator's example CT with its five-organ reference (model-made,
Apache-2.0), every organ annotated.
With ``--chest``: the unlabelled chest scans (``chest_lung1``, ``chest_lung2``) as cases annotating only
the auto-labelled lungs and bone (the paper's unsupervised labels).
Prints the manifest; the case ids are in the order above (``source`` names the scan).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment")]

from organseglib.io import read_labels  # noqa: E402
from organseglib.label_import import autolabel_case, import_case  # noqa: E402
from organseglib.training_set import add_case_files, read_manifest  # noqa: E402

REAL_CASES = ("ircad1_07", "abdomen_totalseg")
CHEST_CASES = ("chest_lung1", "chest_lung2")


def build(out: Path, data: Path, chest: bool = False) -> dict:
    """Write the set; returns ``{scan name: case id}``. An existing non-empty set is reused as is."""
    existing = read_manifest(out)
    if existing:
        return {c.source.split(":", 1)[0]: c.id for c in existing}
    ids = {}
    entry, _ = import_case(data / "ircad1_07" / "masks", data / "ircad1_07" / "ct.nii.gz", out, ct_mode="reference",
                           source="ircad1_07: 3D-IRCADb-01 patient 1.7, hand-drawn masks (CC BY-NC-ND 4.0, IRCAD)",
                           keep_structures=True)
    ids["ircad1_07"] = entry.id
    ct = data / "ct" / "abdomen_totalseg.nii.gz"
    labels = read_labels(data / "ct" / "abdomen_totalseg_labels.nii.gz")
    entry = add_case_files(ct, labels, out, "abdomen_totalseg: TotalSegmentator example CT + reference (Apache-2.0)",
                           ("liver", "bladder", "lungs", "kidneys", "bone"), ct_mode="reference")
    ids["abdomen_totalseg"] = entry.id
    if chest:
        for name in CHEST_CASES:
            entry, _ = autolabel_case(data / "ct" / f"{name}.nrrd", out, ct_mode="reference",
                                      source=f"{name}: pyradiomics test CT (BSD-3), auto-labelled lungs and bone")
            ids[name] = entry.id
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--chest", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(build(args.out, args.data, args.chest))
    print((args.out / "manifest.json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
