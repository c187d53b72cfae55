"""What issue 19's checks cost beside the reading they guard, measured in the same run.

    python benchmarks/bench_safety_checks.py [--repeats 3] [--slices 300] [--masks 60]

* ``import_masks`` (binary check of every mask, overlaps found and painted box by box) against reading
  the same masks and nothing else, on a TotalSegmentator-like folder of ``--masks`` uint8 masks on a
  512×512×``--slices`` grid (boxes of ribs, vertebrae, lobes and organs; written to a temporary folder).
* ``series_geometry.check_series`` (every slice header: positions, duplicates, gaps) against
  SimpleITK reading the series, on a ``--slices``-slice DICOM series.
* ``atomic.check_outputs`` for a ``segment`` call (CT, model package) and ``training.resources.step_bytes``
  (the network on PyTorch's meta device) for the paper's crop at width 1.

Prints seconds (best of ``--repeats``) and each check's ratio to the reading it guards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "Testing")]

from bench_file_checks import best  # noqa: E402
from machine_info import cpu_model  # noqa: E402
from organseglib.io import read_volume, write_volume  # noqa: E402
from organseglib.label_import import import_masks  # noqa: E402
from organseglib.volume import Volume  # noqa: E402


def mask_folder(folder: Path, shape, count: int) -> Volume:
    """``count`` masks named as TotalSegmentator does (ribs, vertebrae, lobes, liver, kidneys ...), each a
    box somewhere in the grid; returns the CT grid."""
    rng = np.random.default_rng(0)
    grid = Volume(np.zeros(shape, np.int16), np.diag([0.8, 0.8, 1.5, 1.0]))
    names = (["liver", "kidney_left", "kidney_right", "urinary_bladder", "spleen"]
             + [f"lung_{lobe}" for lobe in ("upper_lobe_left", "lower_lobe_left", "upper_lobe_right",
                                            "middle_lobe_right", "lower_lobe_right")]
             + [f"rib_{side}_{n}" for side in ("left", "right") for n in range(1, 13)]
             + [f"vertebrae_{v}" for v in ["C7"] + [f"T{n}" for n in range(1, 13)] + [f"L{n}" for n in range(1, 6)]]
             + ["hip_left", "hip_right", "sacrum", "femur_left", "femur_right", "humerus_left", "humerus_right",
                "scapula_left", "scapula_right", "clavicula_left", "clavicula_right", "sternum"])[:count]
    k, j, i = shape
    for n, name in enumerate(names):
        size = (k // 8, j // 6, i // 6) if n < 10 else (k // 30, j // 20, i // 20)
        corner = [int(rng.integers(0, max(1, d - s))) for d, s in zip(shape, size)]
        array = np.zeros(shape, np.uint8)
        array[tuple(slice(c, c + s) for c, s in zip(corner, size))] = 1
        write_volume(grid.with_array(array), folder / f"{name}.nii.gz")
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--masks", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}")
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    from organseglib.label_import import ImportConfig, list_masks

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "masks").mkdir()
        grid = mask_folder(tmp / "masks", (args.slices, 512, 512), args.masks)
        paths = list(list_masks(tmp / "masks").values())
        read = best(lambda: [read_volume(p) for p in paths], args.repeats)
        config = ImportConfig(overlap="first")  # random boxes overlap: counted and reported, not refused
        full = best(lambda: import_masks(tmp / "masks", grid, config), args.repeats)
        print(f"import_masks, {len(paths)} masks of 512×512×{args.slices}: {full:.2f} s; reading them alone "
              f"{read:.2f} s; ratio {full / read:.2f}")

        from dicom_series import write_ct_series

        from organseglib.series_geometry import check_series

        hu = np.full((args.slices, 512, 512), -1000, np.int16)
        hu[:, 100:400, 100:400] = 40
        write_ct_series(tmp / "series", hu, (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 1.5))
        reader = sitk.ImageSeriesReader()
        files = reader.GetGDCMSeriesFileNames(str(tmp / "series"))
        checked = best(lambda: check_series(tmp / "series", files), args.repeats)
        reader.SetFileNames(files)
        whole = best(reader.Execute, args.repeats)
        print(f"check_series, {len(files)} slices: {checked:.3f} s; SimpleITK reading the series {whole:.2f} s; "
              f"ratio {checked / whole:.3f}")

    from organseglib.atomic import check_outputs
    from organseglib.model_package import default_model_path
    from organseglib.training.resources import step_bytes

    ct = REPO.parent / "shared" / "data" / "ct" / "abdomen_totalseg.nii.gz"
    with tempfile.TemporaryDirectory() as out:
        guard = best(lambda: check_outputs({"-o": Path(out) / "l.nii.gz", "--report": Path(out) / "r.json"},
                                           [ct, default_model_path()]), args.repeats)
    print(f"check_outputs for a segment call: {guard * 1000:.1f} ms")
    meta = best(lambda: step_bytes(1.0, (160, 120, 120), 4), args.repeats)
    print(f"step_bytes (meta-device network, width 1, 4 crops of 160×120×120): {meta:.2f} s")


if __name__ == "__main__":
    main()
