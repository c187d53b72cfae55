#!/usr/bin/env python
"""The spine cut by a crop border (issue 21, item 3): ``chest_cropped_totalseg`` (contrast, 1.5 mm)
with its posterior border moved into the vertebral bodies; the share of the uncropped scan's vertebral
bone (its bone label behind the heart, within 20 mm of the midline) that stays bone in view.

    python scripts/experiment_border_spine.py                  # rows 100, 104, 108, 112 kept
    python scripts/experiment_border_spine.py --stops 96,116 --without   # also with the vertebra rule off
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from organseglib.autolabel import AutoLabelParams, autolabel_with_report
from organseglib.autolabel.bone import BoneParams
from organseglib.io import read_ct
from organseglib.orientation import reorient
from organseglib.volume import Volume

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "ct" / "chest_cropped_totalseg.nii.gz"
BONE = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stops", default="100,104,108,112", help="rows j kept: 0..stop (LPS, j grows to the back)")
    ap.add_argument("--without", action="store_true", help="also with BoneParams.piece_marrow_share off")
    args = ap.parse_args()
    ct = reorient(read_ct(CT), "LPS")[0]
    full, _ = autolabel_with_report(ct, "bone")
    K, J, I = ct.shape
    half = int(round(20.0 / ct.array_spacing[2]))
    zone = np.zeros(ct.shape, bool)
    zone[:, 90:, I // 2 - half:I // 2 + half] = True
    vertebrae = (full.array == BONE) & zone
    settings = [("ours", AutoLabelParams())]
    if args.without:
        settings.append(("without the vertebra rule", AutoLabelParams(bone=BoneParams(piece_marrow_share=float("inf")))))
    for stop in (int(s) for s in args.stops.split(",")):
        cut = Volume(np.ascontiguousarray(ct.array[:, :stop]), ct.ijk_to_ras)
        in_view = vertebrae[:, :stop]
        for name, params in settings:
            labels, report = autolabel_with_report(cut, "bone", params=params)
            print(json.dumps({"rows_kept": stop, "labeler": name, "vertebral_voxels_in_view": int(in_view.sum()),
                              "kept_as_bone": round(float((labels.array == BONE)[in_view].mean()), 3),
                              "bone_ml": report["bone"]["ml"], "pieces": report["bone"]["pieces"],
                              "blood_level_hu": report["bone"]["blood_level_hu"]}, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
