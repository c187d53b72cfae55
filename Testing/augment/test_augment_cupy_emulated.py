"""The cupy backend's Python side on a CPU stand-in for CuPy (fake_cupy.py), so the launch
arguments, staging, FIFO order, round-robin over two "GPUs" and dtype handling are tested on
every machine. The CUDA C itself is compiled by nvcc in test_augment_kernel_source.py and run
for real by the ``cuda`` tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fake_cupy
from augment_helpers import label_volume, smooth_volume, tie_mask
from cudaaugment import AugmentConfig, AugmentParams, apply, augment_batch, sample_params
from test_augment_backends import CASES, IMAGE_TOL, TEXTURE_TOL


@pytest.fixture
def fake(monkeypatch):
    return fake_cupy.install(monkeypatch)


def _batch(n, seed=0, shape=(20, 18, 14)):
    rng = np.random.default_rng(seed)
    cfg = AugmentConfig(rotation_deg=(-40, 40), noise_sigma=(5, 20), occlusion_max_vox=6,
                        displacement_vox=((-3, 3),) * 3, image_fill=-1000.0, label_fill=2)
    images = np.stack([smooth_volume(shape, seed=i) for i in range(n)])
    labels = np.stack([label_volume(im) for im in images])
    return images, labels, [sample_params(rng, cfg, shape, (12, 16, 10)) for _ in range(n)]


@pytest.mark.parametrize("interpolation, tol", [("software", IMAGE_TOL), ("texture", TEXTURE_TOL)])
@pytest.mark.parametrize("case", ["rotate all axes", "crop out smaller", "pad out larger",
                                  "fills non-zero", "non-cubic 31x9x14"])
def test_emulated_kernel_matches_scipy(fake, case, interpolation, tol):
    p = dataclasses.replace(CASES[case], window=(-800.0, 900.0), occlusion_start=2.0,
                            occlusion_height=3.0)
    image = smooth_volume(p.in_shape)
    label = label_volume(image)
    ref, ref_lab = apply(p, image, label)
    out, lab = apply(p, image, label, backend="cupy", interpolation=interpolation)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    span = float(image.max() - image.min())
    assert np.abs(out - ref).max() <= tol * span / 1700 + 1e-6  # the window maps 1700 HU to 1
    assert not ((lab != ref_lab) & ~tie_mask(p)).any()


def test_pipelined_and_unpipelined_agree_and_alternate_over_two_gpus(fake):
    from cudaaugment import Pipeline

    images, labels, params = _batch(5)
    with Pipeline(streams_per_device=2) as pipe:
        a_img, a_lab = pipe.run(params, images, labels)
    assert [dev for _, dev in fake["launches"]] == [0, 1, 0, 1, 0]
    with Pipeline(pipelined=False, devices=[1]) as pipe:
        b_img, b_lab = pipe.run(params, images, labels)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    quiet = [dataclasses.replace(p, noise_sigma=0.0) for p in params]  # noise RNGs differ
    ref, ref_lab = augment_batch(images, labels, quiet, backend="scipy")
    with Pipeline() as pipe:
        c_img, c_lab = pipe.run(quiet, images, labels)
    assert np.abs(c_img - ref).max() <= 1e-4  # windowed to [0, 1]
    ties = np.stack([tie_mask(p) for p in params])
    assert not ((c_lab != ref_lab) & ~ties).any() and np.array_equal(c_lab, a_lab)


def test_fifo_submit_get_and_staging_reuse(fake):
    from cudaaugment import AugmentError, Pipeline

    images, labels, params = _batch(6)
    with Pipeline(devices=[0], streams_per_device=2) as pipe:
        for i in range(6):  # six jobs through two slots: each staging buffer reused three times
            pipe.submit(params[i], images[i], labels[i])
        got = [pipe.get() for _ in range(6)]
        with pytest.raises(AugmentError, match="no job pending"):
            pipe.get()
    for i in range(6):  # outputs are distinct arrays, in submission order
        one, one_lab = apply(params[i], images[i], labels[i], backend="cupy")
        assert np.array_equal(got[i][0], one) and np.array_equal(got[i][1], one_lab)


def test_pinned_inputs_are_uploaded_without_staging(fake):
    import cupyx

    from cudaaugment import Pipeline

    images, labels, params = _batch(4)
    p_images = cupyx.empty_pinned(images.shape, images.dtype)
    p_labels = cupyx.empty_pinned(labels.shape, labels.dtype)
    p_images[...], p_labels[...] = images, labels
    with Pipeline(devices=[0]) as pipe:
        out, lab = pipe.run(params, p_images, p_labels)
        assert all(not slot.staging for slot in pipe._slots[0])  # no host copy was made
    with Pipeline(devices=[0]) as pipe:
        ref, ref_lab = pipe.run(params, images, labels)
        assert all(slot.staging for slot in pipe._slots[0])  # pageable input went via staging
    assert np.array_equal(out, ref) and np.array_equal(lab, ref_lab)


def test_device_resident_input_and_output(fake):
    import cupy

    from cudaaugment import Pipeline

    images, labels, params = _batch(3)
    with Pipeline(output="device") as pipe:
        outs, labs = pipe.run(params, cupy.asarray(images), cupy.asarray(labels))
    assert all(isinstance(o, cupy.ndarray) for o in outs)
    assert [o.device.id for o in outs] == [0, 1, 0]
    host, host_lab = augment_batch(images, labels, params, backend="cupy")
    for i in range(3):
        assert np.array_equal(outs[i].get(), host[i]) and np.array_equal(labs[i].get(), host_lab[i])
    one, _ = apply(params[0], cupy.asarray(images[0]), backend="cupy")
    assert isinstance(one, cupy.ndarray)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.int64, bool])
def test_label_dtypes_round_trip(fake, dtype):
    image = smooth_volume((12, 10, 8))
    label = label_volume(image)
    label = (label > 2) if dtype is bool else label.astype(dtype) * 1000
    p = AugmentParams.identity((12, 10, 8), rotation_deg=(0, 0, 90))
    ref = apply(p, image, label)[1]
    got = apply(p, image, label, backend="cupy")[1]
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, ref)
    images, labels = np.stack([image, image]), np.stack([label, label])
    out, lab = augment_batch(images, labels, [p, p], backend="cupy")
    assert lab.dtype == np.dtype(dtype) and np.array_equal(lab[1], ref)


def test_bad_options_are_rejected(fake):
    from cudaaugment import AugmentError, Pipeline

    with pytest.raises(AugmentError, match="interpolation"):
        Pipeline(interpolation="cubic")
    with pytest.raises(AugmentError, match="devices"):
        Pipeline(devices=[5])
    with pytest.raises(AugmentError, match="output"):
        Pipeline(output="disk")
