#!/usr/bin/env bash
# GPU device check, run from the repository root on a machine with one NVIDIA GPU:
#   a. nvidia-smi, Python / torch / CuPy versions, a CUDA smoke test  -> $OUT/env.txt
#   b. the cuda-marked tests (cudaaugment kernel, torch.fft morphology, resampling, inference) -> $OUT/pytest_cuda.txt
#   c. benchmarks/bench_augment.py                -> $OUT/bench_augment.md, $OUT/bench_augment.log
#   d. benchmarks/bench_autolabel.py --device cuda -> $OUT/bench_autolabel.md, $OUT/bench_autolabel.log
# and the exit status and seconds of each step -> $OUT/summary.txt (7 files in all).
#
# A failing step does not stop the next ones; the script exits with the first non-zero status.
# Each step has a time limit (b: 240 s, c: 150 s, d: 240 s), cut further so that all of them
# together stay within DEVICE_CHECK_BUDGET_S (default 360 s) while keeping 200 s for c + d after b
# and 110 s for d after c. The clinical phantom for step d is rendered in the background during b.
#
# The machine has no internet and lacks cc3d, fill_voids, fastremap and edt: their cp312
# manylinux wheels travel in .whl/ (git-ignored via .git/info/exclude) and are installed into
# /tmp/site. SimpleITK, slicer-core, slicerio and pynrrd are not needed by these steps.
# Local dry run (packages already installed, python3 = the venv's python, no GPU: the GPU parts
# are skipped): DEVICE_CHECK_NO_WHEELS=1 OUT=/tmp/devout PATH=$PWD/.venv/bin:$PATH bash scripts/device_check.sh
set -o pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.." || exit 1
if [ -z "${DEVICE_CHECK_NO_WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/OrganSegLib:$PWD/CUDAAugment || exit 1
else
    export PYTHONPATH=$PWD/OrganSegLib:$PWD/CUDAAugment
fi

OUT=${OUT:-/tmp/device_check_out}
mkdir -p "$OUT" || exit 1
BUDGET=${DEVICE_CHECK_BUDGET_S:-360}
T0=$(date +%s)
FIRST_RC=0
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

# step NAME LOG LIMIT_S RESERVE_S COMMAND...: run COMMAND with its output tee'd to LOG, limited to
# LIMIT_S and to what is left of the budget minus RESERVE_S (kept for the later steps); record rc.
step() {
    local name=$1 log=$2 limit=$3 reserve=$4
    shift 4
    local left=$((BUDGET - ($(date +%s) - T0) - reserve))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then
        echo "$name: skipped (budget of $BUDGET s spent)" | tee -a "$log" "$SUMMARY"
        [ "$FIRST_RC" -eq 0 ] && FIRST_RC=124
        return
    fi
    local start
    start=$(date +%s)
    echo "=== $name (limit $limit s): $*" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=$?
    local secs=$(($(date +%s) - start))
    [ "$rc" -eq 124 ] && echo "=== $name: TIMED OUT after $limit s" | tee -a "$log"
    echo "=== $name: rc=$rc in $secs s" | tee -a "$log"
    echo "$name: rc=$rc in $secs s (limit $limit s)" >> "$SUMMARY"
    [ "$FIRST_RC" -eq 0 ] && [ "$rc" -ne 0 ] && FIRST_RC=$rc
}

# --- a. environment -------------------------------------------------------------------------------
env_info() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S') UTC; host CPUs: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
    free -g | head -2
    git rev-parse HEAD 2>/dev/null || echo "git: no repository here"
    nvidia-smi || echo "nvidia-smi: rc=$?"
    python3 - <<'EOF'
import platform, sys
print("python", platform.python_version(), sys.executable)
import organseglib.autolabel, organseglib.morphology, organseglib.phantom, organseglib.volume, cudaaugment
print("organseglib", organseglib.__file__, "cudaaugment", cudaaugment.__file__,
      "SimpleITK imported by them:", "SimpleITK" in sys.modules)
import numpy, scipy
print("numpy", numpy.__version__, "scipy", scipy.__version__)
from importlib.metadata import version
for name, dist in (("cc3d", "connected-components-3d"), ("fill_voids", "fill_voids"),
                   ("fastremap", "fastremap"), ("edt", "edt"), ("hypothesis", "hypothesis"),
                   ("pytest", "pytest"), ("SimpleITK", "SimpleITK")):
    try:
        mod = __import__(name)
        print(name, version(dist), mod.__file__)
    except Exception as exc:
        print(name, "NOT IMPORTABLE:", exc)
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "threads", torch.get_num_threads(), "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("GPU", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
    x = torch.rand(64, 64, 64, dtype=torch.float64, device="cuda")
    err = (torch.fft.irfftn(torch.fft.rfftn(x), s=x.shape) - x).abs().max().item()
    print("torch.fft float64 round trip on CUDA: max error", err)
try:
    import cupy
    print("cupy", cupy.__version__, "runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "driver", cupy.cuda.runtime.driverGetVersion(), "devices", cupy.cuda.runtime.getDeviceCount())
    print("cupy sum on GPU:", int(cupy.arange(1000).sum()))
except Exception as exc:
    print("cupy: NOT USABLE:", type(exc).__name__, exc)
EOF
}
export -f env_info
step env "$OUT/env.txt" 60 0 bash -c env_info

# render the clinical phantom for step d now (CPU, ~40 s), cached in /tmp, while step b uses the GPU
timeout 150 python3 -c "import sys; sys.path.insert(0, 'benchmarks'); import bench_autolabel as b; b.load_phantom('clinical')" \
    > "$OUT/bench_autolabel.log" 2>&1 &
RENDER_PID=$!

# --- b. the cuda-marked tests ---------------------------------------------------------------------
step pytest_cuda "$OUT/pytest_cuda.txt" 240 200 \
    python3 -m pytest -q -m cuda Testing/augment Testing/lib/test_morphology_cuda.py Testing/lib/test_resample_fast.py \
    Testing/lib/test_inference.py -p no:cacheprovider \
    --durations=15

wait "$RENDER_PID"
echo "=== phantom pre-render: rc=$?" >> "$OUT/bench_autolabel.log"

# --- c. cudaaugment benchmark ---------------------------------------------------------------------
step bench_augment "$OUT/bench_augment.log" 150 110 \
    python3 benchmarks/bench_augment.py --batches 1,8,32 --repeat 3 --threads 16 --out "$OUT/bench_augment.md"

# --- d. auto-labels and the 25 mm closing, CPU and torch.fft on CUDA -------------------------------
step bench_autolabel "$OUT/bench_autolabel.log" 240 0 \
    python3 benchmarks/bench_autolabel.py --device cuda --repeats 2 --out "$OUT/bench_autolabel.md"

echo "total: $(($(date +%s) - T0)) s; first non-zero status: $FIRST_RC" | tee -a "$SUMMARY"
exit "$FIRST_RC"
