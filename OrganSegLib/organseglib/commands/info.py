"""``organseg info FILE``: geometry, intensity range (exact, over every voxel) and a warning when the image
does not look like CT."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..atomic import double_suffix
from ..ct_checks import ct_problems, summarize_intensities
from ..io import read_labels, read_volume


def register(sub) -> None:
    p = sub.add_parser("info", help="print geometry and intensity range of an image, warn when it is not CT",
                       description=__doc__)
    p.add_argument("file", help="image (.nii.gz, .nrrd, .mha, DICOM folder) or labels (.seg.nrrd)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def describe(path: str) -> dict:
    """Everything ``info`` reports, as a dict."""
    is_seg = double_suffix(path) == ".seg.nrrd"
    vol = read_labels(path) if is_seg else read_volume(path)
    info = {
        "file": str(path), "shape_kji": list(vol.shape), "size_ijk": list(vol.shape[::-1]),
        "spacing_mm": [round(s, 6) for s in vol.spacing], "origin_ras": [round(o, 4) for o in vol.origin],
        "direction_ras": np.round(vol.direction, 6).tolist(), "dtype": str(vol.array.dtype),
    }
    if is_seg or np.issubdtype(vol.array.dtype, np.integer) and vol.array.max() <= 255 and vol.array.min() >= 0 \
            and len(np.unique(vol.array[::4, ::4, ::4])) <= 16:
        values, counts = np.unique(vol.array, return_counts=True)
        info["label_values"] = {int(v): int(c) for v, c in zip(values, counts)}
    s = summarize_intensities(vol.array, exact=True)  # every voxel: a subsample misses the extremes
    info["intensity"] = {"min": s.minimum, "p01": s.p01, "median": s.p50, "p99": s.p99, "max": s.maximum}
    info["ct_warnings"] = [] if "label_values" in info else ct_problems(vol.array)
    return info


def run(args: argparse.Namespace) -> int:
    info = describe(args.file)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"file       {info['file']}")
    print(f"size       {' x '.join(map(str, info['size_ijk']))} voxels (i x j x k), {info['dtype']}")
    print(f"spacing    {' x '.join(f'{s:g}' for s in info['spacing_mm'])} mm")
    print(f"origin     {info['origin_ras']} (RAS mm)")
    print("direction  " + "  ".join(str(row) for row in info["direction_ras"]))
    i = info["intensity"]
    print(f"intensity  min {i['min']:g}, 1% {i['p01']:g}, median {i['median']:g}, 99% {i['p99']:g}, max {i['max']:g}")
    if "label_values" in info:
        print(f"labels     {info['label_values']}")
    for w in info["ct_warnings"]:
        print(f"warning    {w}")
    return 0
