"""The CUDA kernel and the pipelined queue on a GPU (skipped, with the reason, without one).

The comparisons with scipy on the table of transforms are in test_augment_backends.py and the
properties in test_augment_properties.py (both parametrized over the cupy backend too).
"""

from __future__ import annotations

import numpy as np
import pytest

from augment_helpers import CUDA_OK, CUDA_REASON, label_volume, smooth_volume, to_numpy
from cudaaugment import AugmentConfig, AugmentParams, apply, augment_batch, sample_params
from reference_numpy import texture_trilinear, voxel_normals

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)]

SHAPE = (24, 20, 16)


def _batch(n=5, seed=0):
    rng = np.random.default_rng(seed)
    cfg = AugmentConfig(rotation_deg=(-40, 40), noise_sigma=(5, 20), occlusion_max_vox=6,
                        displacement_vox=((-3, 3),) * 3, image_fill=-1000.0)
    images = np.stack([smooth_volume(SHAPE, seed=i) for i in range(n)])
    labels = np.stack([label_volume(im) for im in images])
    params = [sample_params(rng, cfg, SHAPE, (16, 18, 12)) for _ in range(n)]
    return images, labels, params


def test_kernel_noise_is_the_counter_based_reference_bit_for_bit():
    p = AugmentParams.identity(SHAPE, noise_sigma=1.0, noise_seed=2**62 + 3)
    out, _ = apply(p, np.zeros(SHAPE, np.float32), backend="cupy")
    ref = voxel_normals(p.noise_seed, int(np.prod(SHAPE))).reshape(SHAPE)
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_texture_error_against_software_matches_the_8_bit_weight_model():
    image = smooth_volume(SHAPE, seed=3)
    p = AugmentParams.identity(SHAPE, rotation_deg=(23, -11, 37), displacement=(0.3, 0.2, -0.4),
                               image_fill=-1000.0)
    soft, _ = apply(p, image, backend="cupy", interpolation="software")
    tex, _ = apply(p, image, backend="cupy", interpolation="texture")
    grid = np.indices(SHAPE, dtype=np.float64).reshape(3, -1)
    coords = p.matrix @ grid + p.offset[:, None]
    model = texture_trilinear(image, coords, fill=-1000.0, weight_bits=8).reshape(SHAPE)
    span = float(image.max() - image.min())
    assert np.abs(tex - soft).max() <= 3 / 256 * span
    # the emulation predicts the hardware to within a weight quantum
    assert np.abs(tex - model).max() <= 3 / 256 * span


def test_pipelined_unpipelined_and_one_by_one_agree_exactly():
    from cudaaugment import Pipeline

    images, labels, params = _batch()
    with Pipeline(pipelined=True, streams_per_device=3) as pipe:
        a_img, a_lab = pipe.run(params, images, labels)
    with Pipeline(pipelined=False) as pipe:
        b_img, b_lab = pipe.run(params, images, labels)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    for i, p in enumerate(params):
        one, one_lab = apply(p, images[i], labels[i], backend="cupy")
        assert np.array_equal(one, a_img[i]) and np.array_equal(one_lab, a_lab[i])


def test_fifo_order_with_submit_and_get():
    from cudaaugment import Pipeline

    images, labels, params = _batch(4)
    with Pipeline() as pipe:
        for i in range(4):
            pipe.submit(params[i], images[i], labels[i])
        assert len(pipe) == 4
        got = [pipe.get() for _ in range(4)]
    ref, ref_lab = augment_batch(images, labels, params, backend="cupy")
    for i in range(4):
        assert np.array_equal(got[i][0], ref[i]) and np.array_equal(got[i][1], ref_lab[i])


def test_device_output_goes_to_torch_without_a_copy():
    import cupy
    import torch

    from cudaaugment import Pipeline, as_torch

    images, labels, params = _batch(2)
    d_images, d_labels = cupy.asarray(images), cupy.asarray(labels)
    with Pipeline(output="device", devices=[0]) as pipe:
        outs, labs = pipe.run(params, d_images, d_labels)
    tensor = as_torch(outs[0])
    assert tensor.is_cuda and tensor.data_ptr() == outs[0].data.ptr
    host, host_lab = augment_batch(images, labels, params, backend="cupy")
    np.testing.assert_array_equal(to_numpy(tensor), host[0])
    assert np.array_equal(labs[1].get(), host_lab[1])
    assert torch.equal(as_torch(labs[1]).cpu(), torch.from_numpy(host_lab[1]))


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, bool])
def test_label_dtypes_round_trip(dtype):
    image = smooth_volume(SHAPE, seed=5)
    label = label_volume(image)
    label = (label > 2) if dtype is bool else label.astype(dtype) * 100
    p = AugmentParams.identity(SHAPE, rotation_deg=(0, 0, 90))
    ref = apply(p, image, label)[1]
    got = apply(p, image, label, backend="cupy")[1]
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, ref)


def test_round_robin_over_two_gpus_gives_the_same_results():
    import cupy

    from cudaaugment import Pipeline

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs for round-robin")
    images, labels, params = _batch(6)
    with Pipeline(devices=[0, 1], output="device") as pipe:
        outs, _ = pipe.run(params, images, labels)
    assert [o.device.id for o in outs] == [0, 1, 0, 1, 0, 1]
    ref, _ = augment_batch(images, labels, params, backend="cupy", devices=[0])
    for i in range(6):
        assert np.array_equal(outs[i].get(), ref[i])
