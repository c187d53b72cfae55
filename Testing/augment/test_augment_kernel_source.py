"""The CUDA kernel without a GPU: it compiles with nvcc, its signature matches the Python launch
arguments, and the NumPy models of its noise and texture sampling behave as documented."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from augment_helpers import CUDA_OK, smooth_volume
from cudaaugment import AugmentParams, BackendUnavailableError, apply
from cudaaugment.backend_cupy import LABEL_KERNELS, kernel_args, kernel_source
from reference_numpy import philox4x32_10, texture_trilinear, voxel_normals

ENTRY_POINTS = ["augment_image", *sorted(set(LABEL_KERNELS.values()))]


def _nvcc() -> str:
    found = shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None)
    if found is None:
        pytest.skip("nvcc not found on PATH nor in /usr/local/cuda/bin: cannot compile the kernel")
    return found


def test_kernel_compiles_with_nvcc_without_warnings(tmp_path: Path):
    src = tmp_path / "augment.cu"
    src.write_text(kernel_source())
    ptx = tmp_path / "augment.ptx"
    result = subprocess.run([_nvcc(), "--std=c++14", "--ptx", "-Werror", "all-warnings",
                             "-o", str(ptx), str(src)], capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    text = ptx.read_text()
    for name in ENTRY_POINTS:  # extern "C": names unmangled, as cupy.RawModule looks them up
        assert re.search(rf"\.entry {name}\(", text), f"{name} missing from the PTX"


def _c_params() -> list[tuple[str, str]]:
    """(type, name) of each kernel parameter, pointers typed "pointer"."""
    src = kernel_source()
    macro = src[src.index("#define AUGMENT_ARGS(L)"):src.index("#define AUGMENT_CALL")]
    body = macro.split("\n", 1)[1].replace("\\", " ")
    out = []
    for decl in (d.strip() for d in body.split(",")):
        words = decl.replace("__restrict__", "").replace("const", "").split()
        out.append(("pointer" if "*" in decl else " ".join(words[:-1]), words[-1]))
    return out


def test_python_launch_arguments_match_the_kernel_signature():
    sentinel = object()
    p = AugmentParams.identity((10, 9, 8), (7, 6, 5), window=(-1.0, 2.0), noise_sigma=3.0,
                               noise_seed=2**40 + 5, occlusion_start=1.0, occlusion_height=2.0)
    args = kernel_args(p, sentinel, sentinel, None, sentinel, sentinel)
    ctype = {np.float32: "float", np.int32: "int", np.uint32: "unsigned int",
             np.uint64: "cudaTextureObject_t"}
    got = ["pointer" if a is sentinel else ctype[type(a)] for a in args]
    params = _c_params()
    assert got == [t for t, _ in params]
    value = {name: a for (_, name), a in zip(params, args)}
    assert (value["seed_lo"], value["seed_hi"]) == (5, 2**8)  # 64-bit seed split in words
    assert (value["occ_k0"], value["occ_k1"]) == (1, 3)
    assert (value["out_d"], value["out_h"], value["out_w"]) == (7, 6, 5)
    assert (value["in_d"], value["in_h"], value["in_w"]) == (10, 9, 8)
    assert (value["b0"], value["b1"], value["b2"]) == (1.5, 1.5, 1.5)  # c_in - c_out
    assert (value["do_window"], value["win_lo"], value["win_scale"]) == (1, -1.0, np.float32(1 / 3))
    assert value["sigma"] == 3.0 and value["use_texture"] == 0


def test_philox_matches_the_random123_known_answers():
    zero = philox4x32_10(np.zeros((1, 4), np.uint32), np.zeros(2, np.uint32))[0]
    assert [hex(v) for v in zero] == ["0x6627e8d5", "0xe169c58d", "0xbc57ac4c", "0x9b00dbd8"]
    ones = philox4x32_10(np.full((1, 4), 0xFFFFFFFF, np.uint32), np.full(2, 0xFFFFFFFF, np.uint32))
    assert [hex(v) for v in ones[0]] == ["0x408f276d", "0x41c83b0e", "0xa20bc7c6", "0x6d5451fd"]
    pi = philox4x32_10(np.array([[0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]], np.uint32),
                       np.array([0xA4093822, 0x299F31D0], np.uint32))
    assert [hex(v) for v in pi[0]] == ["0xd16cfe09", "0x94fdcceb", "0x5001e420", "0x24126ea1"]


def test_counter_based_noise_is_standard_normal_and_seed_dependent():
    z = voxel_normals(seed=2**63 + 17, count=200_000)
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, rel=0.01)
    assert abs(np.mean(z**3)) < 0.03 and np.mean(z**4) == pytest.approx(3.0, rel=0.05)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01
    other = voxel_normals(seed=2**63 + 18, count=200_000)
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.01
    assert np.array_equal(voxel_normals(5, 10, start=100), voxel_normals(5, 110)[100:])


def test_texture_model_exact_mode_equals_scipy_and_8_bit_mode_stays_within_its_bound():
    image = smooth_volume((16, 14, 12), seed=4)
    rng = np.random.default_rng(0)
    coords = rng.uniform(-2, [17, 15, 13], size=(2000, 3)).T
    ref = ndimage.map_coordinates(image.astype(np.float64), coords, order=1,
                                  mode="grid-constant", cval=-1000.0)
    exact = texture_trilinear(image, coords, fill=-1000.0, weight_bits=None)
    np.testing.assert_allclose(exact, ref, atol=1e-9)
    hw = texture_trilinear(image, coords, fill=-1000.0, weight_bits=8)
    span = float(image.max() - image.min())
    err = np.abs(hw - ref).max()
    assert 0 < err <= 3 / 512 * span


@pytest.mark.skipif(CUDA_OK, reason="CuPy and a GPU are present")
def test_cupy_backend_says_clearly_what_is_missing():
    p = AugmentParams.identity((4, 4, 4))
    with pytest.raises(BackendUnavailableError, match="cupy"):
        apply(p, np.zeros((4, 4, 4), np.float32), backend="cupy")
    import cudaaugment

    with pytest.raises(BackendUnavailableError, match="CuPy"):
        cudaaugment.Pipeline()
