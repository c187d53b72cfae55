"""Properties every backend must have (run on each backend present; scipy is the reference)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from augment_helpers import BACKENDS, label_volume, smooth_volume, to_numpy
from cudaaugment import AugmentError, AugmentParams, apply, augment_batch

SHAPE = (24, 20, 16)


@pytest.fixture(scope="module")
def volume():
    image = smooth_volume(SHAPE, seed=1)
    return image, label_volume(image)


def run(params, image, label=None, backend="scipy"):
    out, lab = apply(params, image, label, backend=backend)
    return to_numpy(out), to_numpy(lab)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_identity_returns_the_input(backend, volume):
    image, label = volume
    out, lab = run(AugmentParams.identity(SHAPE), image, label, backend)
    np.testing.assert_allclose(out, image, atol=1e-3)
    assert lab.dtype == label.dtype and np.array_equal(lab, label)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_centre_maps_to_c_plus_d_on_a_linear_ramp(backend):
    # Trilinear interpolation reproduces a linear ramp exactly, so out(o) = u · (A o + b) + 7
    # wherever the sample is inside the volume; at the output centre that is u · (c_in + d) + 7.
    u = np.array([3.0, -2.0, 0.5])
    grid = np.indices(SHAPE, dtype=np.float64)
    ramp = (np.tensordot(u, grid, axes=1) + 7).astype(np.float32)
    p = AugmentParams.identity(SHAPE, (9, 11, 7), rotation_deg=(10, -20, 5), scale=(1.1, 0.9, 1),
                               displacement=(1.5, -2.25, 0.75))
    out, _ = run(p, ramp, None, backend)
    c_in = (np.array(SHAPE) - 1) / 2
    assert out[4, 5, 3] == pytest.approx(u @ (c_in + np.array(p.displacement)) + 7, abs=2e-3)
    o = np.indices(p.out_shape).reshape(3, -1)
    expect = u @ (p.matrix @ o + p.offset[:, None]) + 7
    np.testing.assert_allclose(out.ravel(), expect, atol=5e-3)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_reflecting_twice_is_the_identity(backend, volume):
    image, label = volume
    p = AugmentParams.identity(SHAPE, reflect=(True, True, False))
    once, lab1 = run(p, image, label, backend)
    assert np.array_equal(lab1, label[::-1, ::-1, :])
    np.testing.assert_allclose(once, image[::-1, ::-1, :], atol=1e-3)
    twice, lab2 = run(p, once, lab1, backend)
    np.testing.assert_allclose(twice, image, atol=1e-3)
    assert np.array_equal(lab2, label)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_out_of_bounds_fill_values(backend, volume):
    image, label = volume
    p = AugmentParams.identity(SHAPE, displacement=(30.0, 0.0, 0.0), image_fill=-1000.0,
                               label_fill=9)
    out, lab = run(p, image, label, backend)
    assert np.all(out == -1000.0) and np.all(lab == 9)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_occlusion_sets_the_slab_before_noise_and_window(backend, volume):
    image, label = volume
    p = AugmentParams.identity(SHAPE, occlusion_start=4.5, occlusion_height=6.0,
                               occlusion_value=-1000.0, window=(-1000.0, 1000.0))
    out, lab = run(p, image, label, backend)
    rows = p.occluded_rows()
    assert rows.tolist() == [5 <= k <= 10 for k in range(SHAPE[0])]
    assert np.all(out[rows] == 0.0)  # -1000 HU at the bottom of the window
    np.testing.assert_allclose(out[~rows], (image[~rows] + 1000) / 2000, atol=1e-5)
    assert np.array_equal(lab, label)  # labels are not occluded


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_noise_has_mean_zero_and_std_sigma(backend):
    shape = (40, 40, 40)
    p = AugmentParams.identity(shape, noise_sigma=25.0, noise_seed=12345)
    out, _ = run(p, np.full(shape, 100.0, np.float32), None, backend)
    noise = out - 100.0
    n = noise.size
    assert abs(noise.mean()) < 4 * 25.0 / np.sqrt(n)
    assert noise.std() == pytest.approx(25.0, rel=0.01)
    # independent per voxel: neighbours along every axis uncorrelated
    for axis in range(3):
        a = np.moveaxis(noise, axis, 0)
        assert abs(np.corrcoef(a[:-1].ravel(), a[1:].ravel())[0, 1]) < 0.02


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_window_maps_to_unit_interval(backend, volume):
    image, _ = volume
    p = AugmentParams.identity(SHAPE, window=(-150.0, 230.0), noise_sigma=300.0, noise_seed=3)
    out, _ = run(p, image, None, backend)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert (out == 0).any() and (out == 1).any()
    exact = AugmentParams.identity((2, 2, 2), window=(-100.0, 300.0))
    vals = np.array([-500, -100, 0, 100, 200, 300, 301, 1000], np.float32).reshape(2, 2, 2)
    out, _ = run(exact, vals, None, backend)
    np.testing.assert_allclose(out.ravel(), [0, 0, 0.25, 0.5, 0.75, 1, 1, 1], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_same_params_same_result_and_seed_changes_noise(backend, volume):
    image, label = volume
    p = AugmentParams.identity(SHAPE, (16, 16, 16), rotation_deg=(20, 0, 0), noise_sigma=10.0,
                               noise_seed=99, occlusion_start=2, occlusion_height=3)
    a, la = run(p, image, label, backend)
    b, lb = run(p, image, label, backend)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = run(dataclasses.replace(p, noise_seed=100), image, label, backend)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_batch_equals_one_by_one(backend, volume):
    image, label = volume
    rng = np.random.default_rng(0)
    images = np.stack([image, image[::-1].copy(), image + 5])
    labels = np.stack([label, label[::-1].copy(), label])
    params = [AugmentParams.identity(SHAPE, (12, 14, 10), rotation_deg=tuple(rng.uniform(-30, 30, 3)),
                                     noise_sigma=5.0, noise_seed=i) for i in range(3)]
    out, lab = augment_batch(images, labels, params, backend=backend)
    out, lab = to_numpy(out), to_numpy(lab)
    for i in range(3):
        one, one_lab = run(params[i], images[i], labels[i], backend)
        np.testing.assert_allclose(out[i], one, atol=1e-5)
        assert np.array_equal(lab[i], one_lab)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_bad_inputs_raise_clear_errors(backend, volume):
    image, label = volume
    p = AugmentParams.identity(SHAPE)
    with pytest.raises(AugmentError, match="3D"):
        apply(p, image[0], None, backend=backend)
    with pytest.raises(AugmentError, match="real numeric dtype"):
        apply(p, image.astype(np.complex64), None, backend=backend)
    with pytest.raises(AugmentError, match="integer"):
        apply(p, image, label.astype(np.float32), backend=backend)
    with pytest.raises(AugmentError, match="label shape"):
        apply(p, image, label[:, :, :-1], backend=backend)
    with pytest.raises(AugmentError, match="in_shape"):
        apply(AugmentParams.identity((10, 10, 10)), image, None, backend=backend)
    with pytest.raises(AugmentError, match="one AugmentParams per example"):
        augment_batch(image[None], None, [p, p], backend=backend)


def test_unknown_backend_and_non_params_are_rejected(volume):
    image, _ = volume
    with pytest.raises(AugmentError, match="backend must be one of"):
        apply(AugmentParams.identity(SHAPE), image, backend="opencl")
    with pytest.raises(AugmentError, match="AugmentParams"):
        apply({"rotation": 3}, image)
