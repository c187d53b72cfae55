"""Cohort throughput: one ``organseg segment IN_DIR -o OUT_DIR`` against N separate ``organseg segment``
commands on the same scans, same machine, one run (issue 20; goal: ≥ 1.5× the cases per hour on the CPU).

    python benchmarks/bench_cohort.py [--n 8] [--size small] [--real] [--device cpu] [--repeats 1]

The scans are N synthetic phantoms (``organseglib.phantom``, seeds 0..N-1, written as NIfTI to a
temporary folder that is deleted afterwards) and, with ``--real``, the real scans of ../shared/data
(read where they are, through a list file; nothing derived from them is kept). Each command is a fresh
process (``python -m organseglib``), as a user or a scheduler would run it, with the default (hybrid)
segmentation and the default model unless ``--model``. Three runs, alternating when ``--repeats`` > 1
(the best of each is reported): the N separate commands, the cohort with ``--jobs 1`` (the model loaded
once, the next scan read ahead) and the cohort as it comes (two scans at once). All must write the same
labels (checked voxel for voxel). Prints cases per hour for each, the ratios, and the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine_info import cpu_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REAL_SCANS = ["ct/abdomen_totalseg.nii.gz", "ct/chest_lung1.nrrd", "ct/chest_lung2.nrrd", "ircad1_07/ct.nii.gz"]
ORGANSEG = [sys.executable, "-m", "organseglib"]


def _env() -> dict:
    paths = [str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")])}


def _run(args: list) -> float:
    """Seconds of one ``organseg segment`` command (exit 0 or 3, written with warnings, count as done)."""
    start = time.perf_counter()
    done = subprocess.run(ORGANSEG + ["segment"] + [str(a) for a in args] + ["--progress", "none"], env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"organseg {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def write_scans(folder: Path, n: int, size: str, real: bool) -> list[Path]:
    """N phantoms in ``folder`` and, with ``real``, the real scans that are present (by path)."""
    from organseglib.io import write_volume
    from organseglib.phantom import make_phantom

    folder.mkdir(parents=True)
    scans = []
    for seed in range(n):
        path = folder / f"phantom_{seed:03d}.nii.gz"
        write_volume(make_phantom(seed=seed, region="abdomen", size=size).ct, path)
        scans.append(path)
    if real:
        scans += [DATA / rel for rel in REAL_SCANS if (DATA / rel).exists()]
    return scans


def _name(path: Path) -> str:
    """The name the cohort gives the scan (its output's stem)."""
    from organseglib.cohort.inputs import find_scans

    return find_scans([path])[0].name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8, help="phantom scans (default %(default)s)")
    parser.add_argument("--size", default="small", help="phantom size: tiny, small, clinical (default %(default)s)")
    parser.add_argument("--real", action="store_true", help="add the real scans of ../shared/data")
    parser.add_argument("--model", default=None, help="model package (default: organseg's default model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    options = ["--device", args.device] + (["--model", args.model] if args.model else [])
    with tempfile.TemporaryDirectory(prefix="organseg-bench-cohort-") as tmp:
        root = Path(tmp)
        scans = write_scans(root / "in", args.n, args.size, args.real)
        listing = root / "cohort.txt"
        listing.write_text("".join(f"{p}\n" for p in scans))
        best = {"separate": float("inf"), "jobs1": float("inf"), "cohort": float("inf")}
        for repeat in range(args.repeats):
            folders = {k: root / f"{k}{repeat}" for k in best}
            folders["separate"].mkdir()
            seconds = {"separate": sum(_run([p, "-o", folders["separate"] / f"{_name(p)}.nii.gz", *options])
                                       for p in scans),
                       "jobs1": _run([listing, "-o", folders["jobs1"], "--jobs", "1", *options]),
                       "cohort": _run([listing, "-o", folders["cohort"], *options])}
            best = {k: min(best[k], seconds[k]) for k in best}
            print(f"repeat {repeat + 1}: {len(scans)} separate commands {seconds['separate']:.1f} s, one cohort "
                  f"{seconds['cohort']:.1f} s (--jobs 1: {seconds['jobs1']:.1f} s)", flush=True)
        from organseglib.io import read_labels

        for p in scans:  # the same labels every way
            name = _name(p)
            reference = read_labels(folders["separate"] / f"{name}.nii.gz").array
            for kind in ("jobs1", "cohort"):
                if not np.array_equal(reference, read_labels(folders[kind] / f"{name}.nii.gz").array):
                    raise SystemExit(f"{name}: the cohort's labels ({kind}) differ from the single command's")
    per_hour = lambda seconds: 3600.0 * len(scans) / seconds  # noqa: E731
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; device {args.device}; "
          f"{args.n} phantoms ({args.size}){' + real scans' if args.real else ''}: {len(scans)} scans")
    print("| run | seconds | cases per hour | vs separate |")
    print("|---|---|---|---|")
    rows = [("separate", f"{len(scans)} separate `organseg segment`"),
            ("jobs1", "one `organseg segment IN -o OUT --jobs 1` (model once, read-ahead)"),
            ("cohort", "one `organseg segment IN -o OUT` (default: 2 scans at once)")]
    for key, label in rows:
        print(f"| {label} | {best[key]:.1f} | {per_hour(best[key]):.0f} | {best['separate'] / best[key]:.2f}× |")
    print(f"cohort / separate: {best['separate'] / best['cohort']:.2f}× the cases per hour (labels identical)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
