"""Speed and peak memory of one-click segmentation (``segment_ct``) with the full-width network.

    python benchmarks/bench_inference.py [--threads 2] [--cases abdomen3mm,clinical] [--out PATH]

Cases:
  * ``abdomen3mm``: the real abdomen CT ``../shared/data/ct/abdomen_totalseg.nii.gz`` (3 mm,
    122×101×112) — "a 3 mm abdomen-sized scan" (skipped when the file is absent);
  * ``clinical``: a 512×512×300 synthetic chest + abdomen phantom at 0.8×0.8×1.5 mm (the memory goal's
    input; ``make_phantom(seed=0, region="both", size="clinical")``, rendered once, ~60 s, and cached).

Variants, each run in a fresh child process so ``ru_maxrss`` is that run's peak resident memory:
  * ``plain`` (the baseline): network only, no body crop, one whole-volume accumulator;
  * ``network``: network only, cropped to the body, z-slabs (what the network part of segment does);
  * ``onetile``: as ``network`` with one tile as large as the body box (``SegmentConfig.tile_shape``,
    ``--tile``) instead of the card's 160×120×120: fewer voxels computed twice in overlaps;
  * ``hybrid``: the default one-click segmentation (``SegmentConfig()``: network liver/kidneys/bladder,
    auto-labelled lungs and bone, cleaning).

The network is the paper's full-width 3D GoogLeNet (width 1.0, 16.9 M parameters; ``--width 0.125`` for
the bundled models' size) with random weights: speed does not depend on the weights. Stage times come from the progress messages. On CUDA
(``--device cuda``) each child runs the segmentation once to warm up (cuDNN autotuning, allocator)
and reports the second run, plus ``torch.cuda.max_memory_allocated``.
Writes the figures, with the machine, to ``benchmarks/results/inference.md``.

With ``--baseline-src DIR`` (an ``OrganSegLib`` folder of an earlier commit, e.g. exported with
``git archive 2c94fcd OrganSegLib | tar -x -C /tmp/base``) each variant also runs with that tree, the
two alternating ``--repeats`` times in the same run; the best of each is kept and the report adds the
ratio baseline / ours (issue 11: segment's CPU speed and memory within ±10 % of the figures before it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine_info import cpu_model

REPO = Path(__file__).resolve().parents[1]
SHARED_CT = Path(os.environ.get("ORGANSEG_SHARED_DATA", REPO.parent / "shared" / "data")) / "ct" / "abdomen_totalseg.nii.gz"
VARIANTS = ("plain", "network", "onetile", "hybrid")
def _cache_suffix(case: str) -> str:
    """Which phantom the cached file holds (and which renderer made it), '' for real scans."""
    from organseglib.phantom import RENDER_VERSION

    return f"_both_seed0_render{RENDER_VERSION}" if case == "clinical" else ""


def machine() -> str:
    model = cpu_model()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"{model}, {os.cpu_count()} cores; GPU: {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def prepare(case: str, cache: Path) -> Path | None:
    """The case's CT as an .npz (array + matrix) in ``cache``; None when unavailable."""
    path = cache / f"{case}{_cache_suffix(case)}.npz"
    if path.exists():
        return path
    if case == "abdomen3mm":
        if not SHARED_CT.exists():
            return None
        from organseglib.io import read_ct

        ct = read_ct(SHARED_CT)
    elif case == "clinical":
        from organseglib.phantom import make_phantom

        ct = make_phantom(seed=0, region="both", size="clinical").ct
    else:
        raise SystemExit(f"unknown case {case!r}")
    tmp = path.with_suffix(".part.npz")
    np.savez(tmp, array=ct.array.astype(np.float32), matrix=ct.ijk_to_ras)
    os.replace(tmp, path)
    return path


def child(npz: Path, variant: str, threads: int, device: str = "cpu", width: float = 1.0) -> dict:
    """Run one segmentation and report seconds, stage times and peak RSS (this process)."""
    import torch

    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    from organseglib.model_package import ModelCard
    from organseglib.network import build_network
    from organseglib.resample import grid_with_spacing
    from organseglib.segment import SegmentConfig, segment_ct
    from organseglib.volume import Volume

    data = np.load(npz)
    ct = Volume(data["array"], data["matrix"])
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(0)
    model = (build_network(width=width).eval(), ModelCard(name=f"width-{width:g}-random", width=width,
                                                          training_data="none: random weights (speed only)"))
    grid = grid_with_spacing(ct, 3.0).shape
    one_tile = tuple(8 * -(-n // 8) for n in grid)  # the whole 3 mm grid in one tile (shrunk to the body box)
    config = {"plain": SegmentConfig(autolabel_organs=(), crop_to_body=False, slabs=False, clean=False),
              "network": SegmentConfig(autolabel_organs=()),
              "onetile": SegmentConfig(autolabel_organs=(), tile_shape=one_tile),
              "hybrid": SegmentConfig()}[variant]
    marks: list[tuple[float, str]] = []
    notes: list[str] = []

    def progress(fraction: float, message: str = "") -> None:
        stage = message.split(":")[0].split(" ")[0] if message else ""
        if message.startswith("body mask"):
            stage = "body-mask"
        if "tiles of" in message:
            notes.append(message.split(": ", 1)[-1])
        if not marks or marks[-1][1] != stage:
            marks.append((time.perf_counter(), stage))

    if cuda:  # warm-up run: cuDNN autotuning and the caching allocator
        segment_ct(ct, model, config, device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    labels = segment_ct(ct, model, config, device=device, progress=progress)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    marks.append((time.perf_counter(), "end"))
    stages: dict[str, float] = {}
    for (t0, name), (t1, _) in zip(marks, marks[1:]):
        stages[name] = stages.get(name, 0.0) + round(t1 - t0, 2)
    tiles = notes[0] if notes else ""
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_after_input_mb": round(rss_input), "shape_kji": list(ct.shape),
            "spacing_ijk": [round(s, 3) for s in ct.spacing], "stages_s": stages,
            "labelled_voxels": int((labels.array != 0).sum()), "tiles": tiles,
            "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None}


BASELINE = " (baseline src)"


def ratios(rows: dict, variant: str) -> tuple[str, str]:
    """(speed, memory) of ``variant`` relative to the ``plain`` baseline of the same case and run, or,
    for a row of ours with a ``--baseline-src`` row beside it, relative to that row."""
    r = rows[variant]
    if variant + BASELINE in rows and "seconds" in rows[variant + BASELINE]:
        base = rows[variant + BASELINE]
        return (f"{base['seconds'] / r['seconds']:.2f}× vs baseline src",
                f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}× vs baseline src")
    base = rows.get("plain", {})
    if variant.endswith(BASELINE):
        return "baseline src", "baseline src"
    if variant == "plain" or "seconds" not in base:
        return "baseline", "baseline"
    return f"{base['seconds'] / r['seconds']:.2f}×", f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}×"


def write_report(path: Path, header: str, results: dict, threads: int, device: str, command: str,
                 width: float = 1.0) -> None:
    cuda = device.startswith("cuda")
    network = ("the paper's full-width 3D GoogLeNet (width 1.0, 16.9 M parameters)" if width == 1.0 else
               f"the 3D GoogLeNet at width {width:g} (the paper's is 1.0)")
    lines = [f"# One-click segmentation speed and memory (issue 5), {'CUDA, bf16 autocast' if cuda else 'CPU'}", "",
             f"Machine: {header}; {threads} torch thread(s).  ",
             f"Run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, `{command}`.", "",
             f"Network: {network} with **random-initialised "
             "weights** (speed and memory do not depend on the weights), "
             + ("bf16 autocast on the GPU, timed on the second of two runs in the same process" if cuda else
                "float32 on the CPU, one cold run (no warm-up)")
             + "; tile 160×120×120 (K×J×I) shrunk to the body box, 25 % overlap. Each row is one run in a fresh "
             "child process; peak RSS is that process's `ru_maxrss` (it includes the input CT held in memory, "
             "`input` column). Ratios are against the `plain` baseline (network only, no body crop, one "
             "whole-volume accumulator) of the same case in the same run.", "",
             "| case | input K×J×I (mm i×j×k) | variant | tiles | seconds per CT | speed-up vs plain | peak RSS MB "
             "(input) | RSS vs plain |" + (" GPU peak MB |" if cuda else "") + " stages (s) |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if cuda else "") + "---|"]
    for case, rows in results.items():
        for variant, r in rows.items():
            if "error" in r:
                lines.append(f"| {case} | | {variant} | | failed: {r['error']} | | | |" + (" |" if cuda else "") + " |")
                continue
            speed, memory = ratios(rows, variant)
            stages = ", ".join(f"{k or 'setup'} {v:g}" for k, v in r["stages_s"].items())
            lines.append(f"| {case} | {'×'.join(map(str, r['shape_kji']))} ({'×'.join(map(str, r['spacing_ijk']))}) | "
                         f"{variant} | {r['tiles']} | {r['seconds']:.2f} | {speed} | {r['peak_rss_mb']} "
                         f"({r['rss_after_input_mb']}) | {memory} |" + (f" {r['gpu_peak_mb']} |" if cuda else "")
                         + f" {stages} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--cases", default="abdomen3mm,clinical")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "organseg_bench"))
    parser.add_argument("--out", default=None,
                        help="report path (default benchmarks/results/inference.md, inference_cuda.md on CUDA)")
    parser.add_argument("--baseline-src", default=None, help="an OrganSegLib folder to time beside this checkout")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant (and tree); the best is kept")
    parser.add_argument("--width", type=float, default=1.0,
                        help="network width (1.0: Table I; 0.125: the bundled models' width)")
    parser.add_argument("--child", nargs=2, metavar=("NPZ", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.threads, args.device, args.width)))
        return 0
    out = Path(args.out or REPO / "benchmarks" / "results" /
               ("inference_cuda.md" if args.device.startswith("cuda") else "inference.md"))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    header = machine()
    print(header)
    results: dict = {}
    for case in args.cases.split(","):
        npz = prepare(case, cache)
        if npz is None:
            print(f"{case}: skipped ({SHARED_CT} is absent)")
            continue
        results[case] = {}
        trees = [("", None)] + ([(BASELINE, Path(args.baseline_src).resolve())] if args.baseline_src else [])
        for variant in args.variants.split(","):
            runs: dict = {}
            for _ in range(max(1, args.repeats)):
                for tag, src in reversed(trees):  # the baseline first, then ours, alternating
                    env = dict(os.environ)
                    if src is not None:
                        env["PYTHONPATH"] = os.pathsep.join([str(src), str(REPO / "CUDAAugment")])
                    proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--device",
                                           args.device, "--width", str(args.width), "--child", str(npz), variant],
                                          capture_output=True, text=True, env=env)
                    if proc.returncode != 0:
                        runs.setdefault(tag, []).append({"error": proc.stderr.strip().splitlines()[-1]
                                                         if proc.stderr else "?"})
                        print(case, variant + tag, "failed:", proc.stderr[-2000:], flush=True)
                        continue
                    runs.setdefault(tag, []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
            for tag, _ in reversed(trees):
                ok = [r for r in runs.get(tag, []) if "seconds" in r]
                best = min(ok, key=lambda r: r["seconds"]) if ok else runs.get(tag, [{"error": "?"}])[0]
                if ok:
                    best = dict(best, all_seconds=[r["seconds"] for r in ok],
                                peak_rss_mb=max(r["peak_rss_mb"] for r in ok))
                results[case][variant + tag] = best
            for tag, _ in reversed(trees):
                r = results[case][variant + tag]
                if "seconds" not in r:
                    continue
                speed, memory = ratios(results[case], variant + tag)
                print(f"{case} {variant + tag}: {r['seconds']:.2f} s {r.get('all_seconds', '')} (speed-up {speed}), "
                      f"peak RSS {r['peak_rss_mb']} MB ({memory})"
                      + (f", GPU peak {r['gpu_peak_mb']} MB" if r.get("gpu_peak_mb") else "") + f"; {json.dumps(r)}",
                      flush=True)
    command = "python benchmarks/bench_inference.py " + " ".join(a for a in sys.argv[1:])
    write_report(out, header, results, args.threads, args.device, command.strip(), args.width)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
