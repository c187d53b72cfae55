#!/usr/bin/env python
"""Training benchmarks: network size, memory of one 120×120×160 forward/backward, iteration speed.

* Parameter count of the Table I network at width 1.0 (built on the meta device) and smaller widths.
* Peak memory of one forward + backward pass of one 120×120×160 crop at a given width, measured in a
  fresh child process (peak RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA).
* Training iterations per second (batch 4) with plain random crops (the baseline) and with
  ``cudaaugment`` batches, printed as a ratio.

Writes ``benchmarks/results/training.md``. Usage::

    python benchmarks/bench_training.py [--width 1.0] [--speed-width 0.125] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from machine_info import cpu_model

REPO = Path(__file__).resolve().parents[1]


def _machine() -> str:
    model = cpu_model()
    import os

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{model}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, {platform.python_version()}"


def memory_child(width: float, device: str, amp: bool = False) -> dict:
    """Run in a child: one forward/backward of a (1, 1, 160, 120, 120) crop; report peak memory
    (``amp``: bfloat16 autocast, as ``organseg train`` uses on CUDA)."""
    from organseglib.losses import segmentation_loss
    from organseglib.network import build_network

    dev = torch.device(device)
    model = build_network(width=width).to(dev)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    x = torch.rand(1, 1, 160, 120, 120, device=dev)
    y = torch.randint(0, 6, (1, 160, 120, 120), device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)
    loss = segmentation_loss("iou", logits, y)
    loss.backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"width": width, "device": device, "amp": amp, "seconds": seconds, "model_and_runtime_mib": base,
           "peak_rss_mib": peak, "forward_backward_mib": peak - base}
    if dev.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def measure_memory(width: float, device: str, threads: int, amp: bool = False) -> dict:
    code = (f"import json, torch, sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); torch.set_num_threads({threads}); "
            f"import bench_training as b; print(json.dumps(b.memory_child({width}, {device!r}, {amp})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return {"width": width, "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def iteration_speed(width: float, crop: tuple, iterations: int, augment: bool, device: torch.device,
                    amp: bool = False) -> float:
    """Median training iterations per second (batch 4, IOU loss, Adam), first iteration excluded."""
    from organseglib.training.batches import AugmentedBatches, plain_batch
    from organseglib.training.dataset import phantom_cases
    from organseglib.losses import segmentation_loss
    from organseglib.network import build_network

    cases = phantom_cases([0, 1])
    model = build_network(width=width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = AugmentedBatches() if augment else plain_batch
    rng = np.random.default_rng(0)
    times = []
    for i in range(iterations + 1):
        t = time.perf_counter()
        x, y = sampler(cases, 4, crop, rng, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = segmentation_loss("iou", logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first iteration warms up
            times.append(time.perf_counter() - t)
    return 1.0 / float(np.median(times))


def step_seconds(width: float, crop: tuple, memory_format: torch.memory_format, iterations: int,
                 seed: int = 0) -> float:
    """Median seconds of one forward + backward + Adam step on a fixed batch of 4 crops (no data loading),
    with the network and the batch in ``memory_format`` (issue 22: the plain layout against channels_last_3d)."""
    from organseglib.losses import segmentation_loss
    from organseglib.network import build_network

    torch.manual_seed(seed)
    model = build_network(width=width).to(memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 1, *crop, generator=gen).contiguous(memory_format=memory_format)
    y = torch.randint(0, 6, (4, *crop), generator=gen)
    times = []
    for i in range(iterations + 1):
        t = time.perf_counter()
        loss = segmentation_loss("iou", model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def train_iteration_seconds(width: float, crop: tuple, iterations: int, augment: str = "always") -> float:
    """Median seconds per iteration of ``organseglib.training.trainer.train`` itself (batch 4, IOU loss,
    batches sampled and augmented as ``organseg train`` does), timed from its per-iteration progress calls;
    the first iteration is left out."""
    import tempfile

    from organseglib.training.dataset import phantom_cases
    from organseglib.training.trainer import TrainConfig, train

    cases = phantom_cases([0, 1])
    stamps = []
    cfg = TrainConfig(iterations=iterations + 1, crop_shape=crop, width=width, augment=augment,
                      validate_every=10 ** 9, checkpoint_every=10 ** 9)
    with tempfile.TemporaryDirectory() as work:
        train(cfg, cases, [], work, resume=False, progress=lambda *a, **k: stamps.append(time.perf_counter()))
    return float(np.median(np.diff(stamps)))


def layout_section(width: float, crop: tuple, iterations: int, threads: int) -> list[str]:
    """Issue 22's goal: one training iteration ≤ 0.75× the plain network step, measured in one run."""
    plain = step_seconds(width, crop, torch.contiguous_format, iterations)
    cl = step_seconds(width, crop, torch.channels_last_3d, iterations)
    whole = train_iteration_seconds(width, crop, iterations)
    print(f"step plain {plain:.3f} s, channels_last_3d {cl:.3f} s ({cl / plain:.2f}x); "
          f"whole organseg-train iteration {whole:.3f} s ({whole / plain:.2f}x of the plain step)")
    return [f"## Training step layout (issue 22): width {width}, batch 4, crops {crop}, CPU, {threads} threads", "",
            "| what | seconds (median) | ratio to the plain step |", "|---|---|---|",
            f"| forward + backward + Adam, plain layout (baseline) | {plain:.3f} | 1.00 |",
            f"| the same in channels_last_3d | {cl:.3f} | {cl / plain:.2f} |",
            f"| a whole `train()` iteration (sampling, cudaaugment, step; as `organseg train`) | {whole:.3f} | "
            f"{whole / plain:.2f} |", ""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=1.0, help="width for the memory measurement")
    ap.add_argument("--speed-width", type=float, default=0.125)
    ap.add_argument("--speed-crop", type=int, nargs=3, default=(64, 80, 80))
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training.md"))
    ap.add_argument("--layout-only", action="store_true",
                    help="only the plain vs channels_last step and a whole train() iteration (issue 22)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.layout_only:
        lines = [f"Machine: {_machine()}.", ""] + layout_section(args.speed_width, tuple(args.speed_crop),
                                                                 args.iterations, args.threads)
        print("\n".join(lines))
        return 0
    from organseglib.network import build_network, count_parameters

    device = "cuda" if torch.cuda.is_available() else "cpu"
    params = {}
    for w in (1.0, 0.5, 0.25, 0.125):
        with torch.device("meta"):
            params[w] = count_parameters(build_network(width=w))
    for w, n in params.items():
        print(f"parameters at width {w}: {n:,}")
    amp = device == "cuda"  # organseg train's default: bf16 autocast on CUDA, float32 on the CPU
    mem = measure_memory(args.width, device, args.threads)
    print("memory (float32):", mem)
    mem_amp = measure_memory(args.width, device, args.threads, amp=True) if amp else None
    if mem_amp:
        print("memory (bf16 autocast):", mem_amp)
    dev = torch.device(device)
    plain = iteration_speed(args.speed_width, tuple(args.speed_crop), args.iterations, False, dev, amp)
    aug = iteration_speed(args.speed_width, tuple(args.speed_crop), args.iterations, True, dev, amp)
    print(f"iterations/s plain {plain:.3f}, augmented {aug:.3f}, ratio {aug / plain:.2f}")
    lines = [
        "# Training benchmarks", "", f"Machine: {_machine()}; {args.threads} torch thread(s).", "",
        "## Network size (Table I, 3D GoogLeNet FCN)", "", "| width | parameters | float32 weights |", "|---|---|---|",
        *[f"| {w} | {n:,} | {4 * n / 2**20:.1f} MiB |" for w, n in params.items()], "",
        f"## One forward + backward of a 120×120×160 crop (batch 1, width {args.width}, {device})", "",
    ]
    for m in (mem, mem_amp):
        if m is None:
            continue
        kind = "bf16 autocast" if m.get("amp") else "float32"
        if "error" in m:
            lines.append(f"- {kind}: could not measure: {m['error']}")
            continue
        lines += [f"- {kind}: peak process memory {m['peak_rss_mib']:.0f} MiB, of which the forward/backward pass "
                  f"added {m['forward_backward_mib']:.0f} MiB (model and runtime before it: "
                  f"{m['model_and_runtime_mib']:.0f} MiB); time {m['seconds']:.2f} s (first pass, not warmed up)"]
        if "cuda_peak_mib" in m:
            lines.append(f"- {kind}: CUDA peak allocated {m['cuda_peak_mib']:.0f} MiB")
    lines += [
        "", f"## Training speed (batch 4, crops {tuple(args.speed_crop)}, width {args.speed_width}, {device})", "",
        f"Mixed precision: {'bf16 autocast' if amp else 'off (float32 on the CPU)'}.", "",
        "| batches | iterations/s | ratio to plain |", "|---|---|---|",
        f"| plain random crops (baseline) | {plain:.3f} | 1.00 |",
        f"| cudaaugment (torch backend) | {aug:.3f} | {aug / plain:.2f} |", "",
    ]
    if device == "cpu":
        lines += layout_section(args.speed_width, tuple(args.speed_crop), args.iterations, args.threads)
        lines += ["GPU figures: not measured in this run (no GPU on this machine); run this script on a CUDA "
                  "machine (it then uses bf16 autocast, as `organseg train` does by default).", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
