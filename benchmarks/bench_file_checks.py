"""What the file checks of issue 13 cost: ``file_checks.check_nifti`` (and the NRRD size check) beside
SimpleITK's own read of the same file, on the real scans in ../shared/data, and exact vs sampled
``info`` statistics.

    python benchmarks/bench_file_checks.py [--repeats 3]

Float32 copies of the scans (the case where every voxel is scanned for NaN) are written to a
temporary folder and deleted; nothing derived from the scans is kept.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from machine_info import cpu_model
from organseglib.ct_checks import summarize_intensities
from organseglib.file_checks import check_nifti
from organseglib.io import _declared_bytes, read_volume
from organseglib.file_checks import check_declared_size

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCANS = ["ct/abdomen_totalseg.nii.gz", "ircad1_07/ct.nii.gz", "ct/chest_lung1.nrrd"]


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def check(path: Path) -> None:
    if path.name.endswith((".nii", ".nii.gz")):
        check_nifti(path)
    else:
        check_declared_size(path, _declared_bytes(path, str(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}")
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for rel in SCANS:
            path = DATA / rel
            if not path.exists():
                print(f"{rel}: absent, skipped")
                continue
            files.append((rel, path))
            if rel.endswith(".nii.gz"):
                image = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32)
                for ext, compress in ((".nii.gz", True), (".nii", False)):
                    copy = Path(tmp) / (Path(rel).parent.name + "_float32" + ext)
                    sitk.WriteImage(image, str(copy), compress)
                    files.append((f"{rel} as float32{ext}", copy))
        print("| file | voxels | check | SimpleITK read | check / read |")
        print("|---|---|---|---|---|")
        for name, path in files:
            t_check = best(lambda: check(path), args.repeats)
            t_read = best(lambda: sitk.ReadImage(str(path)), args.repeats)
            size = sitk.ReadImage(str(path)).GetSize()
            print(f"| {name} | {'×'.join(map(str, size))} | {t_check:.3f} s | {t_read:.3f} s | "
                  f"{t_check / t_read:.2f} |")
        print("\n| file | info statistics exact | sampled (2 M voxels) | ratio |")
        print("|---|---|---|---|")
        for name, path in files[:1] + [f for f in files if f[0] == "ircad1_07/ct.nii.gz"]:
            array = read_volume(path).array
            t_exact = best(lambda: summarize_intensities(array, exact=True), args.repeats)
            t_sampled = best(lambda: summarize_intensities(array), args.repeats)
            print(f"| {name} | {t_exact:.3f} s | {t_sampled:.3f} s | {t_exact / t_sampled:.1f}× |")


if __name__ == "__main__":
    main()
