"""Every fast backend against the scipy reference on a table of transforms.

Images must agree within IMAGE_TOL (relative to the intensity range; float32 coordinate rounding
is the only difference); labels must be identical except where a sampling coordinate is within
1e-3 voxel of a half-integer (a nearest-neighbour tie, resolved differently by each library).
Noise is off here; its statistics are tested per backend in test_augment_properties.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from augment_helpers import (CUDA_OK, CUDA_REASON, FAST_BACKENDS, label_volume, smooth_volume,
                             tie_mask, to_numpy)
from cudaaugment import AugmentConfig, AugmentParams, apply, sample_params

IMAGE_TOL = 1e-5  # x (max - min) of the input; torch measured worst case 2e-6 on CPU
# Hardware trilinear: weights with 8 fractional bits, so each of 3 weights is off by <= 1/256
# (truncation; 1/512 if rounded), error <= 3/256 x range.
TEXTURE_TOL = 3 / 256

P = AugmentParams.identity
CASES = {
    "identity": P((24, 20, 16)),
    "integer shift": P((24, 20, 16), displacement=(2, -3, 1)),
    "fractional shift": P((24, 20, 16), displacement=(0.3, -1.7, 2.25)),
    "rotate 90 about z": P((20, 20, 16), rotation_deg=(90, 0, 0)),
    "rotate 30 about y": P((24, 20, 16), rotation_deg=(0, 30, 0)),
    "rotate all axes": P((24, 20, 16), rotation_deg=(17, -41, 73)),
    "reflect x": P((24, 20, 16), reflect=(False, False, True)),
    "reflect all": P((24, 20, 16), reflect=(True, True, True)),
    "scale": P((24, 20, 16), scale=(1.3, 0.7, 1.1)),
    "shear and generic": P((24, 20, 16), shear=(0.1, -0.2, 0.15),
                           generic=((0.02, -0.01, 0.03), (0.0, -0.03, 0.01), (0.02, 0.0, 0.01))),
    "non-cubic 31x9x14": P((31, 9, 14), rotation_deg=(5, 10, -15), displacement=(1, 0.5, -0.5)),
    "crop out smaller": P((30, 26, 22), (12, 10, 18), rotation_deg=(0, 0, 20),
                          displacement=(4, -3, 1)),
    "pad out larger": P((12, 10, 8), (20, 16, 14), rotation_deg=(10, 0, 0)),
    "fills non-zero": P((24, 20, 16), (24, 20, 16), rotation_deg=(45, 0, 0), scale=(1.5, 1.5, 1),
                        image_fill=-1000.0, label_fill=7),
}


def _inputs(shape, seed=0):
    image = smooth_volume(shape, seed=seed)
    return image, label_volume(image)


def _compare(params, backend, image_tol=IMAGE_TOL, **options):
    image, label = _inputs(params.in_shape)
    ref_img, ref_lab = apply(params, image, label, backend="scipy")
    out, lab = apply(params, image, label, backend=backend, **options)
    out, lab = to_numpy(out), to_numpy(lab)
    assert out.shape == params.out_shape and out.dtype == np.float32
    assert lab.shape == params.out_shape and lab.dtype == label.dtype
    span = float(image.max() - image.min())
    err = np.abs(out - ref_img).max() / span
    assert err <= image_tol, f"image error {err:.2e} x range > {image_tol:.0e}"
    ties = tie_mask(params)
    assert ties.mean() < 0.5
    mismatch = (lab != ref_lab) & ~ties
    assert not mismatch.any(), f"{mismatch.sum()} label voxels differ away from ties"
    return err


@pytest.mark.parametrize("backend", FAST_BACKENDS, indirect=True)
@pytest.mark.parametrize("case", list(CASES))
def test_backend_matches_scipy(backend, case):
    _compare(CASES[case], backend)


@pytest.mark.parametrize("backend", FAST_BACKENDS, indirect=True)
def test_backend_matches_scipy_on_random_draws(backend):
    rng = np.random.default_rng(11)
    cfg = AugmentConfig(rotation_deg=(-180, 180), scale=(0.7, 1.4), shear=(-0.2, 0.2),
                        reflect_prob=(0.5, 0.5, 0.5), generic=(-0.05, 0.05),
                        displacement_vox=((-4, 4),) * 3, window_low=None, window_high=None,
                        image_fill=-1000, label_fill=3)
    for _ in range(6):
        _compare(sample_params(rng, cfg, (22, 18, 26), (16, 20, 12)), backend)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)
@pytest.mark.parametrize("case", list(CASES))
def test_cupy_texture_path_within_its_stated_error(case):
    _compare(CASES[case], "cupy", image_tol=TEXTURE_TOL, interpolation="texture")


def test_labels_of_other_integer_dtypes_keep_their_dtype():
    image, label = _inputs((12, 10, 8))
    p = P((12, 10, 8), rotation_deg=(0, 0, 90))
    for dtype in (np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, bool):
        scale = 20 if dtype is np.int8 else 1000
        lab = (label > 2) if dtype is bool else label.astype(dtype) * dtype(scale)
        ref = apply(p, image, lab)[1]
        got = to_numpy(apply(p, image, lab, backend="torch")[1])
        assert got.dtype == np.dtype(dtype) and np.array_equal(got, ref)


def test_torch_handles_a_batch_of_different_input_shapes():
    from cudaaugment import augment_batch

    a, la = _inputs((14, 12, 10), 1)
    b, lb = _inputs((18, 12, 16), 2)
    params = [P(a.shape, (10, 10, 10), rotation_deg=(5, 0, 0)), P(b.shape, (10, 10, 10))]
    out, lab = augment_batch([a, b], [la, lb], params, backend="torch")
    for i, (img, l) in enumerate(((a, la), (b, lb))):
        ref, ref_lab = apply(params[i], img, l)
        np.testing.assert_allclose(to_numpy(out[i]), ref, atol=IMAGE_TOL * 2000)
        assert np.array_equal(to_numpy(lab[i]), ref_lab)
