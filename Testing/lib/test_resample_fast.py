"""The separable fast path of organseglib.resample against scipy.ndimage (its slow reference)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from organseglib.resample import (_index_map, antialias_sigma, grid_with_spacing, resample_ct, resample_to_grid)
from organseglib.volume import Volume


def scipy_resample(volume: Volume, target: Volume, order: int, fill: float) -> np.ndarray:
    matrix, offset = _index_map(volume, target)
    arr = volume.array if order == 0 else volume.array.astype(np.float32)
    return ndimage.affine_transform(arr, np.diag(matrix), offset=offset, output_shape=target.shape, order=order,
                                    mode="constant", cval=fill, output=arr.dtype, prefilter=False)


def scipy_resample_ct(ct: Volume, spacing, fill: float) -> np.ndarray:
    target = grid_with_spacing(ct, spacing)
    image = ct.array.astype(np.float32, copy=True)
    sigma = antialias_sigma(ct.array_spacing, np.asarray(target.array_spacing))
    if np.any(sigma > 0):
        ndimage.gaussian_filter(image, sigma=sigma, output=image, mode="nearest", truncate=3.0)
    return scipy_resample(Volume(image, ct.ijk_to_ras), target, 1, fill)


def ct_like(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(40, 300, size=shape).astype(np.float32)
    a[rng.random(shape) < 0.1] = 1500.0  # sharp bright voxels test the edges of the kernels
    return a


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(*[st.integers(2, 23)] * 3),
       spacing=st.tuples(*[st.sampled_from([0.7, 0.8, 1.25, 1.5, 3.0, 5.0])] * 3),
       target=st.sampled_from([3.0, 2.0, 1.0, (3.0, 2.5, 4.0)]), seed=st.integers(0, 999))
def test_resample_ct_equals_scipy(shape, spacing, target, seed):
    ct = Volume.from_geometry(ct_like(shape, seed), spacing=spacing, origin=(1.5, -2.0, 7.0))
    out, mapping = resample_ct(ct, target, fill_hu=-1000.0)
    ref = scipy_resample_ct(ct, target, -1000.0)
    assert out.array.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out.array, ref, rtol=0, atol=0.02)  # HU; float32 rounding only
    assert mapping.network.same_grid(out)


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 13)] * 3), tshape=st.tuples(*[st.integers(1, 17)] * 3),
       spacing=st.tuples(*[st.sampled_from([0.5, 1.0, 3.0])] * 3),
       tspacing=st.tuples(*[st.sampled_from([0.7, 1.0, 3.0])] * 3),
       shift=st.tuples(*[st.floats(-6.0, 6.0)] * 3), seed=st.integers(0, 999))
def test_nearest_and_linear_equal_scipy_on_axis_aligned_grids(shape, tshape, spacing, tspacing, shift, seed):
    rng = np.random.default_rng(seed)
    labels = Volume.from_geometry(rng.integers(0, 6, size=shape).astype(np.uint8), spacing=spacing)
    target = Volume.from_geometry(np.zeros(tshape, np.uint8), spacing=tspacing, origin=shift)
    np.testing.assert_array_equal(resample_to_grid(labels, target, order=0).array,
                                  scipy_resample(labels, target, 0, 0))
    image = labels.with_array(rng.normal(size=shape).astype(np.float32))
    np.testing.assert_allclose(resample_to_grid(image, target, order=1, fill=-7.0).array,
                               scipy_resample(image, target, 1, -7.0), rtol=0, atol=1e-5)


def test_label_ties_half_way_between_voxels_follow_scipy():
    # 1 mm labels sampled at 0.5 mm: every other target centre lies exactly between two source voxels
    labels = Volume.from_geometry(np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6), spacing=(1, 1, 1))
    target = Volume.from_geometry(np.zeros((9, 11, 13), np.uint8), spacing=(0.5, 0.5, 0.5), origin=(-0.25, 0, 0.25))
    np.testing.assert_array_equal(resample_to_grid(labels, target, order=0).array, scipy_resample(labels, target, 0, 0))


def test_torch_device_path_equals_numpy():
    torch = pytest.importorskip("torch")
    ct = Volume.from_geometry(ct_like((30, 41, 37), 3), spacing=(0.8, 0.8, 1.5))
    on_numpy, _ = resample_ct(ct, 3.0)
    on_torch, _ = resample_ct(ct, 3.0, device=torch.device("cpu"))
    np.testing.assert_allclose(on_torch.array, on_numpy.array, rtol=0, atol=0.02)


def test_bad_order_is_refused():
    from organseglib.errors import InputError

    v = Volume.from_geometry(np.zeros((2, 2, 2), np.float32), spacing=(1, 1, 1))
    with pytest.raises(InputError, match="order"):
        resample_to_grid(v, v, order=3)


@pytest.mark.cuda
def test_cuda_device_path_equals_numpy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"needs a CUDA GPU (torch {torch.__version__} sees none)")
    ct = Volume.from_geometry(ct_like((60, 81, 77), 4), spacing=(0.8, 0.8, 1.5))
    on_numpy, _ = resample_ct(ct, 3.0)
    torch.backends.cuda.matmul.allow_tf32 = True  # as a training script may leave it
    try:
        on_cuda, _ = resample_ct(ct, 3.0, device=torch.device("cuda"))
        assert torch.backends.cuda.matmul.allow_tf32  # restored
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    np.testing.assert_allclose(on_cuda.array, on_numpy.array, rtol=0, atol=0.02)


def batched_apply_separable(image: np.ndarray, operators) -> np.ndarray:
    """The former product order (slow reference): axis j as a batch of one small product per slice."""
    a_k, a_j, a_i = (np.asarray(op, dtype=np.float32) for op in operators)
    k, j, i = image.shape
    y = image.astype(np.float32).reshape(k * j, i) @ a_i.T.copy()
    y = a_j @ y.reshape(k, j, a_i.shape[0])
    y = a_k @ y.reshape(k, a_j.shape[0] * a_i.shape[0])
    return y.reshape(a_k.shape[0], a_j.shape[0], a_i.shape[0])


@pytest.mark.parametrize("shape,out_shape,seed", [((7, 9, 11), (3, 4, 5), 0), ((13, 5, 8), (20, 7, 3), 1),
                                                  ((1, 6, 6), (2, 1, 4), 2)])
def test_separable_product_as_one_gemm_per_axis_equals_the_batched_reference(shape, out_shape, seed):
    from organseglib.resample import apply_separable

    rng = np.random.default_rng(seed)
    image = ct_like(shape, seed)
    ops = [rng.normal(size=(m, n)) for m, n in zip(out_shape, shape)]
    ref = batched_apply_separable(image, ops)
    np.testing.assert_allclose(apply_separable(image, ops), ref, rtol=1e-5, atol=1e-2)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(apply_separable(image, ops, device=torch.device("cpu")), ref, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("spacing,direction", [((3.0, 3.0, 3.0), None),
                                               ((3.0, 3.0, 3.0), np.diag([-1.0, -1.0, 1.0])),
                                               ((3.0, 3.0, 3.0), np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]]))])
def test_a_ct_already_on_the_target_grid_is_copied_not_resampled(spacing, direction, monkeypatch):
    import organseglib.resample as rs

    ct = Volume.from_geometry(ct_like((6, 7, 8), 5), spacing=spacing, origin=(10.5, -3.0, 7.25), direction=direction)
    ref = scipy_resample_ct(ct, 3.0, -1000.0)  # the slow path samples every voxel centre: the voxels
    np.testing.assert_allclose(ref, ct.array, rtol=0, atol=1e-3)

    def no_resampling(*args, **kwargs):
        raise AssertionError("resampled a CT that is already on the target grid")

    monkeypatch.setattr(rs, "_linear_separable", no_resampling)
    out, mapping = rs.resample_ct(ct, 3.0)
    assert mapping.identity and out.same_grid(ct)
    np.testing.assert_array_equal(out.array, ct.array)
    assert out.array.dtype == np.float32 and not np.shares_memory(out.array, ct.array)
    labels = out.with_array((out.array > 0).astype(np.uint8))
    np.testing.assert_array_equal(mapping.labels_to_native(labels).array, labels.array)


def test_identity_is_detected_to_float_rounding_not_beyond():
    """Float rounding of the geometry (1e-6 voxel) is still the identity (a float32-stored spacing
    must not trigger a resampling); a thousandth of a voxel is not (IDENTITY_TOLERANCE_VOXELS = 1e-4)."""
    from organseglib.resample import is_identity_map

    ct = Volume.from_geometry(np.zeros((4, 5, 6), np.float32), spacing=(3.0, 3.0, 3.0))
    assert is_identity_map(ct, ct.grid)
    shifted = ct.grid.cropped((slice(0, 4), slice(0, 5), slice(0, 6)))
    assert is_identity_map(ct, shifted)
    nudged = np.array(ct.ijk_to_ras)
    nudged[0, 3] += 3.0 * 1e-6  # a millionth of a voxel: float rounding, the same centres
    assert is_identity_map(ct, Volume(ct.array, nudged))
    nudged[0, 3] += 3.0 * 1e-3  # a thousandth of a voxel: no longer the same centres
    assert not is_identity_map(ct, Volume(ct.array, nudged))
    assert not is_identity_map(ct, Volume.from_geometry(np.zeros((4, 5, 7)), spacing=(3.0, 3.0, 3.0)))
    out, mapping = __import__("organseglib.resample", fromlist=["resample_ct"]).resample_ct(ct, 2.9)
    assert not mapping.identity and out.shape != ct.shape
