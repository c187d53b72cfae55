"""Benchmark: lung + bone auto-labelers and the bone step's 25 mm closing vs scipy.ndimage.

Issue #3 goals on the clinical phantom (512x512x300 at 0.8x0.8x1.5 mm): lungs + bone together in
<= 10 s and <= 4 GB peak memory; our closing (FFT / EDT, exact) >= 50x faster than
``scipy.ndimage`` with the same ball, both measured in this run.

    .venv/bin/python benchmarks/bench_autolabel.py            # clinical phantom (renders once, cached)
    .venv/bin/python benchmarks/bench_autolabel.py --quick    # small phantom, a few seconds, writes nothing
    python3 benchmarks/bench_autolabel.py --device cuda --out $OUT/autolabel.md   # + torch.fft on CUDA

Issue 12 adds the whole ``organseg autolabel`` command on a real clinical-size chest
(``--real``): ``../shared/data/ct/chest_lung2.nrrd`` resampled to 1 mm slices (512x512x305),
uncompressed NIfTI in and out, and the same command on the 512x512x300 phantom written the same way;
each is run with this checkout's ``organseglib`` and with a baseline source tree (``--baseline-src``,
e.g. the commit before issue 12 exported with ``git archive``), in the same run:

    git archive <commit> OrganSegLib Resources | tar -x -C /tmp/base   # organs.json links into Resources
    python benchmarks/bench_autolabel.py --real --baseline-src /tmp/base/OrganSegLib --repeats 5

The two trees run alternately (baseline, this checkout, baseline, ...), each run a fresh process.
Peak memory is the child process's ``ru_maxrss`` (the auto-labeler runs in a fresh interpreter that
loads the cached CT array, so the figure includes the CT itself and Python + libraries). scipy's
closing on the full volume would take hours (cost ~ voxels x ball voxels), so both closings are
also timed on the same fixed sub-volume around the spine, and checked voxel for voxel there.

With ``--device cuda`` the closing is also run with ``method="fft-torch", device="cuda"`` on the full
skeleton and on the same sub-volume (best of ``--repeats`` after one untimed warm-up that creates
the CUDA context and the cuFFT plans; the times include the host -> device copy of the mask and the
device -> host copy of the result, since the API takes and returns numpy) and checked voxel for
voxel against the CPU result and scipy. The end-to-end auto-labeler still runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machine_info import cpu_model

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "autolabel.md"


def _cache_paths(size: str) -> tuple[Path, Path]:
    from organseglib.phantom import RENDER_VERSION

    base = Path(os.environ.get("ORGANSEG_BENCH_CACHE", "/tmp")) / f"organseg_bench_phantom_{size}_render{RENDER_VERSION}"
    return base.with_suffix(".npy"), base.with_suffix(".affine.npy")


def load_phantom(size: str):
    """The seed-0 chest+abdomen phantom's CT as a Volume, rendered once and cached as .npy."""
    from organseglib.volume import Volume

    arr_path, aff_path = _cache_paths(size)
    if not arr_path.exists():
        from organseglib.phantom import make_phantom

        t = time.perf_counter()
        p = make_phantom(seed=0, region="both", size=size)
        print(f"rendered {size} phantom {p.ct.array.shape} in {time.perf_counter() - t:.1f} s", flush=True)
        np.save(arr_path, np.asarray(p.ct.array, dtype=np.float32))
        np.save(aff_path, p.ct.ijk_to_ras)
    return Volume(np.load(arr_path), np.load(aff_path))


def child_autolabel(size: str, repeats: int) -> None:
    """Run in a fresh process: time lungs+bone, print JSON with seconds and peak RSS."""
    from organseglib.autolabel import autolabel_with_report

    ct = load_phantom(size)
    times = []
    report = {}
    for _ in range(repeats):
        t = time.perf_counter()
        _, report = autolabel_with_report(ct, "lungs,bone")
        times.append(time.perf_counter() - t)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(json.dumps({"seconds": times, "peak_rss_mb": peak_mb, "shape": list(ct.array.shape),
                      "lungs_ml": report["lungs"]["ml"], "bone_ml": report["bone"]["ml"]}))


def skeleton_mask(ct) -> np.ndarray:
    """The mask the bone labeler closes: largest component of HU >= 200 (table excluded by body)."""
    from organseglib import morphology
    from organseglib.body import body_masks

    a = np.asarray(ct.array, dtype=np.float32)
    body = body_masks(a, ct.array_spacing)
    dense = (a >= 200.0) & body.inner
    kept, _ = morphology.largest_components(dense, 1)
    return kept


def _best(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _best_cuda(fn, repeats: int) -> tuple[float, float, np.ndarray]:
    """(first call, best of ``repeats`` after it) in seconds, each bracketed by cuda.synchronize."""
    import torch

    def once() -> tuple[float, np.ndarray]:
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t, out

    first, out = once()  # CUDA context, cuFFT plans, caching allocator
    best = float("inf")
    for _ in range(repeats):
        t, out = once()
        best = min(best, t)
    return first, best, out


def cuda_status() -> tuple[bool, str]:
    """(usable, GPU name or the reason it is not)."""
    try:
        import torch
    except ImportError as exc:
        return False, f"torch is not installed ({exc})"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device"
    return True, torch.cuda.get_device_name(0)


def machine() -> dict:
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version()}


def real_chest_nifti(folder: Path) -> Path:
    """chest_lung2.nrrd resampled to 1 mm slices, written once as uncompressed NIfTI."""
    out = folder / "chest_lung2_1mm.nii"
    if not out.exists():
        from organseglib.io import read_ct, write_volume
        from organseglib.resample import resample_ct

        ct = read_ct(REPO.parent / "shared" / "data" / "ct" / "chest_lung2.nrrd")
        sx, sy, _ = ct.spacing
        fine, _ = resample_ct(ct, (sx, sy, 1.0))
        write_volume(fine, out)
    return out


def phantom_nifti(folder: Path, size: str) -> Path:
    out = folder / f"phantom_{size}.nii"
    if not out.exists():
        from organseglib.io import write_volume

        write_volume(load_phantom(size), out)
    return out


def child_cli(src: str, ct_path: str, out_path: str) -> None:
    """Run in a fresh process: the whole ``organseg autolabel`` command from source tree ``src``."""
    sys.path.insert(0, src)
    t = time.perf_counter()
    from organseglib.cli import main as cli_main

    rc = cli_main(["autolabel", ct_path, "-o", out_path, "--progress", "none"])
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"rc": rc, "seconds": seconds, "peak_rss_mb": peak_mb}))


def time_cli(src: Path, ct_path: Path, out_path: Path) -> dict:
    """One fresh-process run of the whole command from source tree ``src``."""
    res = subprocess.run([sys.executable, __file__, "--cli-child", str(src), str(ct_path), str(out_path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    if res.returncode != 0:
        raise RuntimeError(f"organseg autolabel from {src} failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def real_rows(args, info) -> list[str]:
    """Issue 12: the whole command on the real chest and on the phantom, baseline vs ours, the two
    trees alternating run by run (the load of a shared machine drifts; alternating spreads it evenly)."""
    import tempfile

    folder = Path(os.environ.get("ORGANSEG_BENCH_CACHE", tempfile.gettempdir()))
    cases = [("chest_lung2 resampled to 1 mm slices (real)", real_chest_nifti(folder)),
             ("phantom seed 0, both regions, clinical", phantom_nifti(folder, "small" if args.quick else "clinical"))]
    trees = [("this checkout", REPO / "OrganSegLib")]
    if args.baseline_src:
        trees.insert(0, ("baseline", Path(args.baseline_src)))
    rows = ["| CT (uncompressed NIfTI in and out) | code | runs (s) | best (s) | median (s) | peak RSS (GB) | "
            "baseline / this (best) | goal |",
            "|---|---|---|---|---|---|---|---|"]
    for name, path in cases:
        runs = {label: [] for label, _ in trees}
        for _ in range(args.repeats):
            for label, src in trees:
                runs[label].append(time_cli(src, path, folder / f"labels_{path.stem}.nii"))
        best = {label: min(r["seconds"] for r in rs) for label, rs in runs.items()}
        for label, _ in trees:
            seconds = [r["seconds"] for r in runs[label]]
            peak = max(r["peak_rss_mb"] for r in runs[label])
            ratio = f"{best['baseline'] / best[label]:.2f}x" if "baseline" in best and label != "baseline" else ""
            print(f"{name} [{label}]: {best[label]:.2f} s best of {[round(x, 2) for x in seconds]}, "
                  f"median {float(np.median(seconds)):.2f} s, peak {peak:.0f} MB {ratio}", flush=True)
            rows.append(f"| {name} | {label} | {', '.join(f'{x:.1f}' for x in seconds)} | {best[label]:.1f} | "
                        f"{float(np.median(seconds)):.1f} | {peak / 1024:.2f} | {ratio} | <= 10 s, <= 4 GB |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small phantom instead of the clinical one")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sub", type=int, nargs=3, default=(48, 96, 96), metavar=("K", "J", "I"),
                    help="sub-volume (voxels) on which scipy and ours are both timed")
    ap.add_argument("--no-write", action="store_true", help="do not write the results file")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="results file to write (default benchmarks/results/autolabel.md)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: also time the closing with torch.fft on the GPU (method fft-torch)")
    ap.add_argument("--real", action="store_true",
                    help="issue 12: the whole `organseg autolabel` command on the real chest and the phantom")
    ap.add_argument("--baseline-src", default=None, help="an OrganSegLib folder to time as the baseline (--real)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cli-child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cli_child:
        child_cli(*args.cli_child)
        return
    if args.real:
        info = machine()
        load = os.getloadavg()[0]
        rows = real_rows(args, info)
        if not (args.no_write or args.quick):
            out = args.out.with_name("autolabel_real.md")
            out.write_text("\n".join([
                "# The whole `organseg autolabel` command on a real chest and the phantom (issue 12)", "",
                f"Machine: {info['cpu']}, {info['cores']} logical CPUs, shared with other jobs (1-min load average "
                f"{load:.2f} before the run, {os.getloadavg()[0]:.2f} after); Python {info['python']}. Command: "
                f"`benchmarks/bench_autolabel.py --real"
                f"{' --baseline-src ' + str(args.baseline_src) if args.baseline_src else ''} --repeats {args.repeats}`. "
                "The two trees run alternately; each run is a fresh process (imports, reading and writing the NIfTI "
                "included).", "", *rows, ""]))
            print(f"wrote {out}")
        return
    size = "small" if args.quick else "clinical"
    if args.child:
        child_autolabel(size, args.repeats)
        return

    from organseglib import morphology
    from organseglib.morphology import make_ball

    sys.path.insert(0, str(REPO / "Testing" / "lib"))
    from morphology_reference import reference  # scipy.ndimage with the same border rules (test-only code)

    ct = load_phantom(size)  # render + cache before the timed child
    info = machine()
    load = os.getloadavg()[0]
    gpu_ok, gpu = cuda_status() if args.device == "cuda" else (False, "")
    if args.device == "cuda":
        print(f"GPU: {gpu}" if gpu_ok else f"--device cuda: no GPU ({gpu}); the CUDA rows are skipped",
              flush=True)
    print(f"machine: {info}", flush=True)

    # 1. lungs + bone, end to end, in a fresh process (peak RSS)
    out = subprocess.run([sys.executable, __file__, "--child", "--repeats", str(args.repeats)]
                         + (["--quick"] if args.quick else []), capture_output=True, text=True, check=True)
    auto = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"autolabel lungs+bone {auto['shape']}: best {min(auto['seconds']):.2f} s "
          f"(runs {[round(s, 2) for s in auto['seconds']]}), peak RSS {auto['peak_rss_mb']:.0f} MB", flush=True)

    # 2. the bone step's closing (25 mm diameter) on the skeleton
    spacing = ct.array_spacing
    radius = 12.5
    skel = skeleton_mask(ct)
    ball = make_ball(radius, spacing)
    t_full, ours_full = _best(lambda: morphology.closing(skel, radius, spacing), args.repeats)
    method = morphology.choose_method(skel.shape, ball)
    t_fft, _ = _best(lambda: morphology.closing(skel, radius, spacing, method="fft"), 1)
    print(f"closing full volume: ours (auto -> {method}) {t_full:.2f} s, fft {t_fft:.2f} s; "
          f"ball {ball.array.shape} {int(ball.array.sum())} voxels", flush=True)

    # same fixed sub-volume for scipy and ours: centred on the skeleton's centre of mass
    centre = np.round(np.argwhere(skel).mean(axis=0)).astype(int)
    box = tuple(slice(max(0, c - n // 2), max(0, c - n // 2) + n) for c, n in zip(centre, args.sub))
    sub = np.ascontiguousarray(skel[box])
    t_ours_sub, ours_sub = _best(lambda: morphology.closing(sub, radius, spacing), args.repeats)
    t_scipy_sub, scipy_sub = _best(lambda: reference("closing")(sub, ball.array), 1)
    same = bool(np.array_equal(ours_sub, scipy_sub))
    ratio = t_scipy_sub / t_ours_sub
    print(f"closing sub-volume {sub.shape} ({int(sub.sum())} fg voxels): scipy.ndimage {t_scipy_sub:.2f} s, "
          f"ours {t_ours_sub:.3f} s, ratio {ratio:.0f}x, identical: {same}", flush=True)
    # scipy's cost scales with the voxels it visits; extrapolate to the full bounding box for context
    bbox = np.argwhere(skel)
    bbox_vox = float(np.prod(bbox.max(0) - bbox.min(0) + 1 + 2 * np.array(ball.array.shape)))
    scipy_full_est = t_scipy_sub * bbox_vox / sub.size
    print(f"scipy on the full skeleton bounding box (extrapolated by voxel count): ~{scipy_full_est:.0f} s, "
          f"ratio vs ours ~{scipy_full_est / t_full:.0f}x", flush=True)

    # 3. the same closing with torch.fft on the GPU (numpy in, numpy out: transfers included)
    gpu_rows = [f"| torch.fft CUDA path | not measured: "
                f"{'no GPU lent' if args.device == 'cpu' else 'no GPU here (' + gpu + ')'} | |"]
    if gpu_ok:
        import torch

        def gpu_closing(m):
            return lambda: morphology.closing(m, radius, spacing, method="fft-torch", device="cuda")

        torch.cuda.reset_peak_memory_stats()
        g_first, g_full, gpu_full = _best_cuda(gpu_closing(skel), args.repeats)
        g_peak_mb = torch.cuda.max_memory_allocated() / 2**20
        g_same_full = bool(np.array_equal(gpu_full, ours_full))
        g_diff_full = int((gpu_full != ours_full).sum())
        g_sub_first, g_sub, gpu_sub = _best_cuda(gpu_closing(sub), args.repeats)
        g_same_sub = bool(np.array_equal(gpu_sub, scipy_sub))
        g_ratio = t_scipy_sub / g_sub
        print(f"closing full volume on {gpu}, fft-torch cuda: best {g_full:.3f} s of {args.repeats} "
              f"(first call {g_first:.2f} s), transfers included, peak GPU memory {g_peak_mb:.0f} MiB; "
              f"identical to ours (CPU, {method}): {g_same_full} ({g_diff_full} voxels differ); "
              f"vs ours CPU {t_full / g_full:.1f}x, vs CPU fft {t_fft / g_full:.1f}x", flush=True)
        print(f"closing sub-volume {sub.shape} on {gpu}: fft-torch cuda {g_sub:.4f} s (first call "
              f"{g_sub_first:.3f} s), scipy.ndimage {t_scipy_sub:.2f} s, ratio {g_ratio:.0f}x, "
              f"identical to scipy: {g_same_sub}", flush=True)
        gpu_rows = [
            f"| closing 25 mm ball, full volume, torch.fft on CUDA ({gpu}; numpy in and out, "
            f"transfers included; best of {args.repeats} after a {g_first:.2f} s first call) | {g_full:.3f} s | |",
            f"| that result identical to ours on the CPU (auto -> {method}), voxel for voxel | "
            f"{g_same_full} ({g_diff_full} voxels differ) | |",
            f"| peak GPU memory of that closing (torch allocator) | {g_peak_mb:.0f} MiB | |",
            f"| closing on the same sub-volume: torch.fft on CUDA | {g_sub:.4f} s | |",
            f"| ratio scipy / torch.fft CUDA, sub-volume (identical output: {g_same_sub}) | {g_ratio:.0f}x | >= 50x |",
        ]

    if args.no_write or args.quick:  # the results file holds the clinical figures only
        return
    t_auto = min(auto["seconds"])
    lines = [
        "# Auto-labelers (issue #3): lungs + bone and the 25 mm closing",
        "",
        f"Machine: {info['cpu']}, {info['cores']} logical CPUs (1-min load average {load:.2f} before the run), "
        f"torch threads {info['torch_threads']}, numpy/scipy default threads; Python {info['python']}"
        f"{'; GPU ' + gpu if gpu_ok else ''}. "
        f"Command: `benchmarks/bench_autolabel.py{' --quick' if args.quick else ''}"
        f"{' --device cuda' if args.device == 'cuda' else ''} --repeats {args.repeats}`; "
        f"phantom seed 0, region both, size {size}, shape (k,j,i) {tuple(auto['shape'])}, "
        f"spacing (k,j,i) {tuple(round(s, 2) for s in spacing)} mm.",
        "",
        "| measurement | value | goal |",
        "|---|---|---|",
        f"| lungs + bone, end to end (best of {len(auto['seconds'])}; runs "
        f"{', '.join(f'{x:.2f}' for x in auto['seconds'])} s) | {t_auto:.2f} s | <= 10 s |",
        f"| peak RSS of that process (includes the {ct.array.nbytes / 1e6:.0f} MB CT) | "
        f"{auto['peak_rss_mb'] / 1024:.2f} GB | <= 4 GB |",
        f"| closing 25 mm ball, full volume, ours (auto -> {method}) | {t_full:.2f} s | |",
        f"| closing, full volume, ours forced to FFT | {t_fft:.2f} s | |",
        f"| closing on sub-volume {tuple(sub.shape)}: scipy.ndimage | {t_scipy_sub:.2f} s | |",
        f"| closing on the same sub-volume: ours | {t_ours_sub:.3f} s | |",
        f"| ratio scipy / ours, sub-volume (identical output: {same}) | {ratio:.0f}x | >= 50x |",
        f"| scipy extrapolated to the skeleton's bounding box / ours full | ~{scipy_full_est / t_full:.0f}x | |",
        *gpu_rows,
        "",
        f"End to end, lungs + bone take {t_auto:.1f} s: the {'goal of 10 s is met' if t_auto <= 10 else 'goal of 10 s is missed'}"
        f" on this {info['cores']}-CPU machine, and peak memory ({auto['peak_rss_mb'] / 1024:.1f} GB) is "
        f"{'within' if auto['peak_rss_mb'] <= 4096 else 'over'} the 4 GB budget. The closing itself is no longer"
        f" the bottleneck ({t_full:.1f} s of the total); the rest is whole-volume passes (thresholds, cc3d"
        " labelling and reconstruction, per-slice border and hole filling) at roughly 0.05-0.5 s each.",
        f"Our exact closing is {ratio:.0f}x faster than scipy.ndimage with the same ball on the same"
        f" sub-volume (outputs identical voxel for voxel); scipy on the full volume was not run (it would"
        f" take about {scipy_full_est / 60:.0f} min by extrapolation from the sub-volume).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
