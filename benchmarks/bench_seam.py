"""Speed on the way through the network's door (issue 14), each part against its peer in one process.

    python benchmarks/bench_seam.py [--parts resample,identity,window,count] [--threads 1,2] [--out PATH]

Parts:
  * ``resample``: the separable anti-alias + linear resampling of a 512×512×300 CT at 0.8×0.8×1.5 mm to
    3 mm. One child process per BLAS thread count (``OPENBLAS_NUM_THREADS``, set before numpy loads);
    in each, side by side: the former product order (axis j as a batch of ~300 small products, the
    reference kept in the tests), the new one (one 2-D GEMM per axis), and SimpleITK's resampler on the
    same grid (``sitk.Resample`` linear, after ``sitk.DiscreteGaussian`` with the same σ for the whole
    step), with as many ITK threads;
  * ``identity``: a CT already on the 3 mm grid: ``resample_ct`` (detects the identity and copies)
    against the full separable path it used to take;
  * ``window``: sliding-window inference with the paper's full-width network (random weights: speed
    does not depend on them), tile 160×120×120, 25 % overlap, uniform weights: this project's
    ``predict_channels`` one tile per forward call and ``tile_batch`` per call, against MONAI's
    ``sliding_window_inference`` (``sw_batch_size`` 1 and the same batch), same network, same windowing
    and softmax; MONAI is an optional benchmark dependency (``pip install monai``), skipped with a
    message when absent;
  * ``count``: organ voxel counts of a 512×512×300 label map, ``np.unique`` against fastremap
    (``morphology.count_values``, what ``organseg segment`` prints).

Writes the figures with the machine to ``benchmarks/results/seam.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLINICAL_SHAPE = (300, 512, 512)
CLINICAL_SPACING = (0.8, 0.8, 1.5)  # i, j, k mm


def _best(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def _clinical_ct(seed: int = 0):
    import numpy as np

    from organseglib.volume import Volume

    rng = np.random.default_rng(seed)
    array = rng.normal(0.0, 300.0, size=CLINICAL_SHAPE).astype(np.float32)
    return Volume.from_geometry(array, CLINICAL_SPACING, origin=(-200.0, -180.0, -220.0),
                                direction=np.diag([-1.0, -1.0, 1.0]))


# --- resample (child process: the BLAS thread count is fixed before numpy loads) -----------------------
def _batched_apply(image, operators):
    """The former product order: axis j as a batch of one small product per slice."""
    import numpy as np

    a_k, a_j, a_i = (np.asarray(op, dtype=np.float32) for op in operators)
    k, j, i = image.shape
    y = image.reshape(k * j, i) @ a_i.T.copy()
    y = a_j @ y.reshape(k, j, a_i.shape[0])
    y = a_k @ y.reshape(k, a_j.shape[0] * a_i.shape[0])
    return y.reshape(a_k.shape[0], a_j.shape[0], a_i.shape[0])


def child_resample(threads: int, repeats: int) -> dict:
    import numpy as np
    import SimpleITK as sitk

    import organseglib.resample as rs
    from organseglib.io import volume_to_sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    ct = _clinical_ct()
    target = rs.grid_with_spacing(ct, 3.0)
    matrix, offset = rs._index_map(ct, target)
    sigma = rs.antialias_sigma(ct.array_spacing, np.asarray(target.array_spacing))
    ops = [rs.linear_operator(n, sc, off, m) for n, sc, off, m in
           zip(ct.shape, np.diag(matrix), offset, target.shape)]
    mats = [op[0] @ rs.gaussian_operator(n, sd) for op, n, sd in zip(ops, ct.shape, sigma)]
    image = np.asarray(ct.array, dtype=np.float32)
    # the j step alone (the "one step"): batched over K slices vs one GEMM
    k, j, i = image.shape
    a_j = np.asarray(mats[1], np.float32)
    y = image.reshape(k * j, i) @ np.asarray(mats[2], np.float32).T.copy()
    mi = y.shape[1]
    t_step_old, _ = _best(lambda: a_j @ y.reshape(k, j, mi), repeats)
    t_step_new, _ = _best(lambda: rs._contract_first_axis(
        np.ascontiguousarray(y.reshape(k, j, mi).transpose(1, 0, 2)), a_j, None), repeats)
    t_old, old = _best(lambda: _batched_apply(image, mats), repeats)
    t_new, new = _best(lambda: rs.apply_separable(image, mats), repeats)
    t_full, full = _best(lambda: rs.resample_ct(ct, 3.0)[0], repeats)
    # SimpleITK: the same target grid, linear; the anti-alias as a discrete Gaussian of the same σ
    img = volume_to_sitk(ct)
    ref = volume_to_sitk(rs.Volume.on_grid(np.zeros(target.shape, np.float32), target))
    variance = [float((s * sp) ** 2) for s, sp in zip(sigma[::-1], ct.spacing)]  # i, j, k in mm²

    def itk_resample_only():
        return sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)

    def itk_whole():
        smooth = sitk.DiscreteGaussian(sitk.Cast(img, sitk.sitkFloat32), variance, 32, 0.01, True)
        return sitk.Resample(smooth, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)

    sigma_mm = [float(s * sp) for s, sp in zip(sigma[::-1], ct.spacing)]  # i, j, k

    def itk_recursive():
        smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(img, sitk.sitkFloat32), sigma_mm)
        return sitk.Resample(smooth, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)

    t_itk_lin, _ = _best(itk_resample_only, repeats)
    t_itk, itk = _best(itk_whole, repeats)
    t_itk_rec, _ = _best(itk_recursive, repeats)
    itk_arr = sitk.GetArrayFromImage(itk)
    inside = full.array != -1000.0
    return {
        "threads": threads, "shape": list(ct.shape), "target": list(target.shape),
        "step_j_batched_s": t_step_old, "step_j_gemm_s": t_step_new,
        "separable_batched_s": t_old, "separable_gemm_s": t_new,
        "max_abs_diff_gemm_vs_batched_hu": float(np.max(np.abs(new - old))),
        "resample_ct_s": t_full, "sitk_linear_only_s": t_itk_lin, "sitk_gaussian_plus_linear_s": t_itk,
        "sitk_recursive_gaussian_plus_linear_s": t_itk_rec,
        "median_abs_diff_vs_sitk_hu": float(np.median(np.abs(itk_arr[inside] - full.array[inside]))),
    }


def run_resample(threads: list[int], repeats: int) -> list[dict]:
    out = []
    for t in threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
        proc = subprocess.run([sys.executable, __file__, "--child-resample", str(t), "--repeats", str(repeats)],
                              env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"resample child ({t} threads) failed:\n{proc.stderr}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


# --- identity ----------------------------------------------------------------------------------------------
def run_identity(repeats: int) -> list[dict]:
    import numpy as np

    import organseglib.resample as rs
    from organseglib.volume import Volume

    cases = []
    rng = np.random.default_rng(1)
    cases.append(("synthetic 3 mm 200×170×170", Volume.from_geometry(
        rng.normal(0, 300, size=(200, 170, 170)).astype(np.float32), (3.0, 3.0, 3.0))))
    shared = REPO.parent / "shared" / "data" / "ct" / "abdomen_totalseg.nii.gz"
    if shared.exists():
        from organseglib.io import read_ct

        cases.append(("real abdomen_totalseg.nii.gz (3 mm)", read_ct(shared)))
    else:
        print(f"skipping the real 3 mm scan: {shared} not found")
    rows = []
    for name, ct in cases:
        def full_path():
            m, off = rs._index_map(ct, ct)
            return rs._linear_separable(ct.array, np.diag(m), off, ct.shape, -1000.0)

        t_full, ref = _best(full_path, repeats)
        t_skip, (out, mapping) = _best(lambda: rs.resample_ct(ct, 3.0), repeats)
        rows.append({"case": name, "shape": list(ct.shape), "identity": mapping.identity,
                     "full_path_s": t_full, "skipped_s": t_skip,
                     "max_abs_diff_hu": float(np.max(np.abs(ref - out.array)))})
    return rows


# --- sliding window -----------------------------------------------------------------------------------------
def run_window(shape, tile_batch: int, threads: int, width: float) -> dict | None:
    import numpy as np
    import torch

    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        print("skipping MONAI's sliding window: monai is not installed (pip install monai; optional, "
              "benchmarks only)")
        sliding_window_inference = None
    from organseglib.inference import TorchPredictor, predict_channels
    from organseglib.network import build_network, window_hu

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_network(width=width).eval()
    tile = (160, 120, 120)
    window = (-1000.0, 1000.0)
    image = np.random.default_rng(2).normal(-100, 400, size=shape).astype(np.float32)
    predictor = TorchPredictor(net, window, "cpu")
    with torch.inference_mode():
        net(torch.zeros((1, 1, *tile)))  # warm-up (oneDNN primitives)

    def ours(batch):
        return predict_channels(image, predictor, tile, 6, 0.25, "uniform", True, None, batch)

    def monai(batch):
        x = torch.from_numpy(image)[None, None]

        def fn(t):
            return torch.softmax(net(window_hu(t, window)).float(), dim=1)

        with torch.inference_mode():
            probs = sliding_window_inference(x, tile, batch, fn, overlap=0.25, mode="constant",
                                             padding_mode="constant", cval=-1000.0)
        return probs[0].argmax(0).to(torch.uint8).numpy()

    row = {"shape": list(shape), "tile": list(tile), "threads": threads, "width": width, "tile_batch": tile_batch}
    row["ours_1_s"], ref = _best(lambda: ours(1), 1)
    row[f"ours_{tile_batch}_s"], lab = _best(lambda: ours(tile_batch), 1)
    row["ours_batched_equal_voxels"] = float(np.mean(lab == ref))
    if sliding_window_inference is not None:
        row["monai_1_s"], m1 = _best(lambda: monai(1), 1)
        row[f"monai_{tile_batch}_s"], _ = _best(lambda: monai(tile_batch), 1)
        row["monai_equal_voxels"] = float(np.mean(m1 == ref))
    return row


# --- label counting ------------------------------------------------------------------------------------------
def run_count(repeats: int) -> dict:
    import numpy as np

    from organseglib.morphology import count_values

    rng = np.random.default_rng(3)
    labels = rng.choice(np.arange(6, dtype=np.uint8), p=[0.75, 0.05, 0.01, 0.1, 0.01, 0.08], size=CLINICAL_SHAPE)
    t_np, (v, c) = _best(lambda: np.unique(labels, return_counts=True), repeats)
    t_fr, counts = _best(lambda: count_values(labels), repeats)
    assert counts == {int(a): int(b) for a, b in zip(v, c)}  # benchmark sanity, not an input check
    return {"shape": list(labels.shape), "np_unique_s": t_np, "fastremap_s": t_fr}


def _machine() -> str:
    import platform

    import numpy as np
    import torch

    from machine_info import cpu_model

    return (f"{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}, "
            f"torch {torch.__version__}")


def _report(results: dict) -> str:
    lines = ["# Network-space speed (issue 14)", "", f"Machine: {results['machine']}", "",
             f"Command: `{results['command']}`", ""]
    if "resample" in results:
        lines += ["## Resampling 512×512×300 (0.8×0.8×1.5 mm) to 3 mm", "",
                  "| BLAS/ITK threads | j step batched | j step one GEMM | ratio | separable batched | separable GEMM | "
                  "ratio | resample_ct (anti-alias + linear) | SimpleITK linear only | SimpleITK discrete Gaussian + "
                  "linear | SimpleITK recursive Gaussian + linear | SimpleITK (discrete) / ours | SimpleITK (recursive) / "
                  "ours | max diff GEMM vs batched (HU) | median diff vs SimpleITK discrete (HU) |", "|" + "---|" * 15]
        for r in results["resample"]:
            lines.append(
                f"| {r['threads']} | {r['step_j_batched_s']:.3f} s | {r['step_j_gemm_s']:.3f} s | "
                f"{r['step_j_batched_s'] / r['step_j_gemm_s']:.1f}× | {r['separable_batched_s']:.2f} s | "
                f"{r['separable_gemm_s']:.2f} s | {r['separable_batched_s'] / r['separable_gemm_s']:.1f}× | "
                f"{r['resample_ct_s']:.2f} s | {r['sitk_linear_only_s']:.2f} s | {r['sitk_gaussian_plus_linear_s']:.2f} s | "
                f"{r['sitk_recursive_gaussian_plus_linear_s']:.2f} s | "
                f"{r['sitk_gaussian_plus_linear_s'] / r['resample_ct_s']:.1f}× | "
                f"{r['sitk_recursive_gaussian_plus_linear_s'] / r['resample_ct_s']:.1f}× | "
                f"{r['max_abs_diff_gemm_vs_batched_hu']:.2e} | "
                f"{r['median_abs_diff_vs_sitk_hu']:.2f} |")
        lines.append("")
    if "identity" in results:
        lines += ["## A CT already on the 3 mm grid", "", "| case | identity detected | full path | skipped | ratio | "
                  "max diff (HU) |", "|---|---|---|---|---|---|"]
        for r in results["identity"]:
            lines.append(f"| {r['case']} {tuple(r['shape'])} | {r['identity']} | {r['full_path_s']:.3f} s | "
                         f"{r['skipped_s']:.3f} s | {r['full_path_s'] / r['skipped_s']:.1f}× | {r['max_abs_diff_hu']:.1e} |")
        lines.append("")
    if results.get("window"):
        r = results["window"]
        b = r["tile_batch"]
        lines += [f"## Sliding window, {tuple(r['shape'])} at 3 mm, tile {tuple(r['tile'])}, 25 % overlap, "
                  f"width {r['width']}, {r['threads']} torch threads", "",
                  "| variant | seconds | MONAI / ours (same batch) |", "|---|---|---|"]
        for who in ("ours", "monai"):
            for n in (1, b):
                key = f"{who}_{n}_s"
                if key in r:
                    ratio = r.get(f"monai_{n}_s", float("nan")) / r[f"ours_{n}_s"]
                    lines.append(f"| {'this project' if who == 'ours' else 'MONAI'}, {n} tile(s) per call | "
                                 f"{r[key]:.2f} | {ratio:.2f} |" if who == "ours" else
                                 f"| MONAI, {n} tile(s) per call | {r[key]:.2f} | |")
        lines.append("")
        lines.append(f"Batched labels equal one-at-a-time on {100 * r['ours_batched_equal_voxels']:.4f} % of voxels; "
                     + (f"MONAI's on {100 * r['monai_equal_voxels']:.4f} %." if "monai_equal_voxels" in r
                        else "MONAI not installed."))
        lines.append("")
    if "count" in results:
        r = results["count"]
        lines += ["## Organ voxel counts of a 512×512×300 label map", "",
                  f"np.unique {r['np_unique_s']:.3f} s, fastremap {r['fastremap_s']:.3f} s: "
                  f"{r['np_unique_s'] / r['fastremap_s']:.1f}×.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="resample,identity,window,count")
    p.add_argument("--threads", default="1,2", help="BLAS/ITK thread counts for the resampling")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window-shape", default="160,200,200", help="K,J,I of the sliding-window image (3 mm)")
    p.add_argument("--tile-batch", type=int, default=4)
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--width", type=float, default=1.0, help="network width (1.0: the paper's)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "seam.md"))
    p.add_argument("--child-resample", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO / "OrganSegLib"))
    if args.child_resample is not None:
        print(json.dumps(child_resample(args.child_resample, args.repeats)))
        return 0
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    results: dict = {"machine": _machine(), "command": "python benchmarks/bench_seam.py " + " ".join(argv or sys.argv[1:])}
    if "resample" in parts:
        results["resample"] = run_resample([int(t) for t in args.threads.split(",")], args.repeats)
    if "identity" in parts:
        results["identity"] = run_identity(args.repeats)
    if "window" in parts:
        shape = tuple(int(v) for v in args.window_shape.split(","))
        results["window"] = run_window(shape, args.tile_batch, args.torch_threads, args.width)
    if "count" in parts:
        results["count"] = run_count(args.repeats)
    text = _report(results)
    print(text)
    print(json.dumps(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
