"""Sliding-window inference: tile placement by hand, stitching invariants, slabs identical to whole."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from organseglib.errors import InputError
from organseglib.inference import (NonFiniteOutputError, TorchPredictor, iter_slabs, predict_channels,
                                   stitch_slabs, stitch_whole)
from organseglib.network import build_network
from organseglib.boxes import mask_bounding_box
from organseglib.tiling import fitted_tile, pad_to, tile_grid, tile_starts, tile_weights


# --- tile placement ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, tile, overlap, starts", [
    (10, 4, 0.25, (0, 3, 6)),          # step 3 keeps 1 voxel (25 %) shared
    (10, 4, 0.0, (0, 3, 6)),           # 3 tiles of 4 can't tile 10 exactly: evenly spread, last ends at 10
    (12, 4, 0.0, (0, 4, 8)),           # exact tiling, no overlap
    (12, 4, 0.5, (0, 2, 4, 6, 8)),     # step 2
    (4, 4, 0.25, (0,)),                # one tile fits exactly
    (3, 4, 0.25, (0,)),                # smaller than a tile: padded
    (160, 160, 0.25, (0,)),
    (200, 160, 0.25, (0, 40)),         # the paper's depth on a 600 mm scan: 2 tiles
    (300, 120, 0.25, (0, 90, 180)),    # step 90 exactly
])
def test_tile_starts_hand_worked(size, tile, overlap, starts):
    assert tile_starts(size, tile, overlap) == starts


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 400), tile=st.integers(2, 160), overlap=st.floats(0.0, 0.9))
def test_tiles_cover_every_voxel_inside_with_the_requested_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and list(starts) == sorted(set(starts))
    end = max(size, tile)
    assert all(0 <= s and s + tile <= end for s in starts)          # inside the (padded) axis
    covered = np.zeros(end, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()                                             # every voxel
    need = min(int(np.ceil(overlap * tile)), tile - 1)
    assert all(tile - (b - a) >= need for a, b in zip(starts, starts[1:]))  # overlap ≥ requested


def test_tile_grid_is_z_major_and_fitted_tile_shrinks_to_multiples_of_8():
    assert fitted_tile((100, 30, 7), (160, 120, 120)) == (104, 32, 8)
    assert fitted_tile((300, 200, 200), (160, 120, 120)) == (160, 120, 120)
    boxes = tile_grid((10, 4, 7), (4, 4, 4), 0.25)
    assert [(b[0].start, b[1].start, b[2].start) for b in boxes] == [
        (0, 0, 0), (0, 0, 3), (3, 0, 0), (3, 0, 3), (6, 0, 0), (6, 0, 3)]


def test_tile_weights():
    assert np.array_equal(tile_weights((4, 4, 4)), np.ones((4, 4, 4), np.float32))
    g = tile_weights((9, 9, 9), "gaussian")
    assert g[4, 4, 4] == 1.0 and g.min() >= 1e-3 and g[0, 0, 0] < g[2, 2, 2] < g[4, 4, 4]
    assert np.allclose(g, g[::-1, ::-1, ::-1])
    with pytest.raises(InputError, match="uniform' or 'gaussian"):
        tile_weights((4, 4, 4), "cosine")
    with pytest.raises(InputError, match="overlap must be"):
        tile_starts(10, 4, 1.0)


def test_bounding_box_and_padding():
    m = np.zeros((10, 10, 10), bool)
    m[2:4, 5, 6:9] = True
    assert mask_bounding_box(m) == (slice(2, 4), slice(5, 6), slice(6, 9))
    assert mask_bounding_box(m, (1, 1, 3)) == (slice(1, 5), slice(4, 7), slice(3, 10))  # clipped at 10
    assert mask_bounding_box(np.zeros((3, 3, 3), bool)) is None
    p = pad_to(np.ones((2, 3, 4), np.float32), (4, 3, 2), -1000.0)
    assert p.shape == (4, 3, 4) and p[2:].max() == -1000.0 and p[:2].min() == 1.0


# --- stitching -----------------------------------------------------------------------------------------
def per_voxel(tile):
    """A translation-equivariant fake network: class probabilities from each voxel's HU alone."""
    t = np.clip((tile + 1000.0) / 2000.0, 0, 1)
    logits = np.stack([np.sin(3 * t + c) * (c + 1) for c in range(4)])
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def position_dependent(tile):
    """Depends on the tile's content and its position inside the tile (not translation-equivariant)."""
    k = np.linspace(0, 1, tile.shape[0], dtype=np.float32)[:, None, None]
    a = per_voxel(tile)
    a[0] += k * 0.3 + 0.01 * np.tanh(tile.mean() / 100)
    return (a / a.sum(0)).astype(np.float32)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.normal(0, 400, size=(45, 21, 19)).astype(np.float32)


def test_per_voxel_network_stitches_to_the_single_pass_output(image):
    single = per_voxel(image)
    for weighting in ("uniform", "gaussian"):
        probs = stitch_whole(image, per_voxel, (16, 8, 8), 4, overlap=0.25, weighting=weighting)
        np.testing.assert_allclose(probs, single, rtol=1e-6, atol=1e-7)
        assert np.array_equal(np.argmax(probs, 0), np.argmax(single, 0))
    assert np.array_equal(stitch_slabs(image, per_voxel, (16, 8, 8), 4), np.argmax(single, 0))


@pytest.mark.parametrize("tile, overlap, weighting", [
    ((16, 8, 8), 0.25, "uniform"), ((16, 8, 8), 0.5, "gaussian"), ((8, 24, 8), 0.0, "uniform"),
    ((64, 8, 8), 0.25, "uniform"),  # taller than the image: one padded row
])
def test_slabs_equal_whole_volume_bit_for_bit(image, tile, overlap, weighting):
    whole = stitch_whole(image, position_dependent, tile, 4, overlap, weighting)
    slabs = list(iter_slabs(image, position_dependent, tile, 4, overlap, weighting))
    assert slabs[0][0] == 0 and slabs[-1][1] == image.shape[0]
    assert all(a[1] == b[0] for a, b in zip(slabs, slabs[1:]))      # consecutive, no gap
    stitched = np.concatenate([s[2] for s in slabs], axis=1)
    assert np.array_equal(stitched, whole)                          # identical, not just close
    np.testing.assert_allclose(whole.sum(0), 1.0, atol=1e-5)
    assert np.array_equal(predict_channels(image, position_dependent, tile, 4, overlap, weighting, slabs=True),
                          predict_channels(image, position_dependent, tile, 4, overlap, weighting, slabs=False))


def test_overlap_averages_two_tiles_by_hand():
    """Tiles of 4 on an axis of 6 at 50 %: starts 0, 2; slices 2–3 average both tiles' outputs."""
    calls = []

    def constant(tile):
        calls.append(tile.shape)
        p = np.zeros((2, *tile.shape), np.float32)
        p[len(calls) - 1] = 1.0  # first tile says class 0, second class 1
        return p

    probs = stitch_whole(np.zeros((6, 8, 8), np.float32), constant, (4, 8, 8), 2, overlap=0.5)
    assert calls == [(4, 8, 8), (4, 8, 8)]
    assert np.array_equal(probs[1, :, 0, 0], [0, 0, 0.5, 0.5, 1, 1])


def test_non_finite_output_is_reported_with_a_fix(image):
    def broken(tile):
        p = per_voxel(tile)
        p[0, 0, 0, 0] = np.nan
        return p

    with pytest.raises(NonFiniteOutputError, match="non-finite.*--device cpu"):
        stitch_slabs(image, broken, (16, 8, 8), 4)
    with pytest.raises(InputError, match="classes first"):
        stitch_whole(image, lambda t: per_voxel(t)[:3], (16, 8, 8), 4)


# --- torch ---------------------------------------------------------------------------------------------
def test_torch_predictor_windows_and_softmaxes():
    torch.manual_seed(0)
    net = build_network(width=0.0625).eval()
    predictor = TorchPredictor(net, (-1000, 1000), "cpu")
    tile = np.random.default_rng(1).normal(0, 500, (16, 16, 16)).astype(np.float32)
    probs = predictor(tile)
    assert probs.shape == (6, 16, 16, 16) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    with torch.no_grad():
        x = torch.from_numpy(np.clip((tile + 1000) / 2000, 0, 1))[None, None]
        expected = torch.softmax(net(x), 1)[0].numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_matches_cpu_labels_mostly():
    torch.manual_seed(0)
    net = build_network(width=0.0625).eval()
    img = np.random.default_rng(2).normal(0, 400, (32, 32, 32)).astype(np.float32)
    cpu = predict_channels(img, TorchPredictor(net, (-1000, 1000), "cpu"), (16, 16, 16), 6)
    gpu = predict_channels(img, TorchPredictor(net, (-1000, 1000), "cuda"), (16, 16, 16), 6)
    assert (cpu == gpu).mean() > 0.95


# --- fast paths against slow references ----------------------------------------------------------------
def naive_average(image, predict, tile, num_classes, overlap, weighting):
    """Slow reference: every tile's prediction pasted into its own full-size float64 array, then the
    weighted mean over the tiles that cover each voxel (no accumulator reuse, no slabs)."""
    tile = fitted_tile(image.shape, tile)
    padded = pad_to(image.astype(np.float32), tile, -1000.0)
    weights = tile_weights(tile, weighting).astype(np.float64)
    num = np.zeros((num_classes, *padded.shape))
    den = np.zeros(padded.shape)
    for box in tile_grid(padded.shape, tile, overlap):
        full_p = np.zeros((num_classes, *padded.shape))
        full_w = np.zeros(padded.shape)
        full_p[(slice(None), *box)] = predict(padded[box]).astype(np.float64)
        full_w[box] = weights
        num += full_p * full_w
        den += full_w
    assert den.min() > 0  # every voxel covered
    return (num / den)[(slice(None), *(slice(0, s) for s in image.shape))]


@pytest.mark.parametrize("shape, tile, overlap, weighting", [
    ((45, 21, 19), (16, 8, 8), 0.25, "uniform"),
    ((45, 21, 19), (16, 8, 8), 0.25, "gaussian"),
    ((30, 30, 12), (8, 16, 16), 0.5, "uniform"),     # padded on i (12 < 16)
    ((5, 40, 9), (16, 16, 8), 0.1, "gaussian"),      # padded on k
])
def test_stitchers_equal_the_naive_per_tile_average(shape, tile, overlap, weighting):
    img = np.random.default_rng(3).normal(-200, 500, size=shape).astype(np.float32)
    ref = naive_average(img, position_dependent, tile, 4, overlap, weighting)
    whole = stitch_whole(img, position_dependent, tile, 4, overlap, weighting)
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-6)
    slabs = stitch_slabs(img, position_dependent, tile, 4, overlap, weighting)
    # argmax agrees except where the reference's top two classes tie to float32 precision
    top2 = np.sort(ref, axis=0)[-2:]
    decided = top2[1] - top2[0] > 1e-5
    assert np.array_equal(slabs[decided], np.argmax(ref, 0)[decided])


class PointwiseNet(torch.nn.Module):
    """A fully-convolutional toy network with 1³ kernels: its output at a voxel depends on that voxel only,
    so a tiled pass must reproduce one whole-volume forward pass exactly (up to float rounding)."""

    def __init__(self, classes=6):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = torch.nn.Conv3d(1, 8, 1)
        self.b = torch.nn.Conv3d(8, classes, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("overlap, weighting", [(0.25, "uniform"), (0.5, "gaussian"), (0.0, "uniform")])
def test_tiled_torch_inference_equals_one_whole_volume_forward_pass(overlap, weighting):
    net = PointwiseNet().eval()
    img = np.random.default_rng(4).normal(0, 600, size=(37, 29, 22)).astype(np.float32)
    predictor = TorchPredictor(net, (-1000, 1000), "cpu")
    with torch.no_grad():
        x = torch.from_numpy(np.clip((img + 1000) / 2000, 0, 1))[None, None]
        single = torch.softmax(net(x), 1)[0].numpy()
    tiled = stitch_whole(img, predictor, (16, 16, 8), 6, overlap, weighting)
    np.testing.assert_allclose(tiled, single, atol=2e-6)
    labels = predict_channels(img, predictor, (16, 16, 8), 6, overlap, weighting, slabs=True)
    top2 = np.sort(single, axis=0)[-2:]
    decided = top2[1] - top2[0] > 1e-5
    assert np.array_equal(labels[decided], np.argmax(single, 0)[decided])
    assert decided.mean() > 0.99


def test_slab_stitching_memory_does_not_grow_with_the_scan_length():
    """tracemalloc sees numpy's buffers: the whole-volume accumulator grows with K (C float32 values per
    voxel), the slab accumulator spans at most two tile depths; only the uint8 output grows."""
    import tracemalloc

    def peak(fn, K):
        img = np.zeros((K, 16, 16), np.float32)
        tracemalloc.start()
        fn(img, per_voxel, (16, 16, 16), 4, 0.25)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    plane = 16 * 16
    slab_growth = peak(stitch_slabs, 480) - peak(stitch_slabs, 240)
    whole_growth = peak(stitch_whole, 480) - peak(stitch_whole, 240)
    assert whole_growth >= 240 * plane * 4 * 4                       # ≥ one [C, ΔK, J, I] float32 accumulator
    assert slab_growth <= 240 * plane * 1 + 64 * 1024                # the uint8 output (+ allocator noise)


# --- several tiles per forward call -------------------------------------------------------------------------
class _Counting:
    """A predictor wrapper counting forward calls and tiles (TorchPredictor underneath)."""

    def __init__(self, predictor):
        self.inner, self.calls, self.tiles = predictor, [], 0

    def predict_batch(self, tiles):
        self.calls.append(len(tiles))
        return self.inner.predict_batch(tiles)

    def __call__(self, tile):
        return self.predict_batch(tile[None])[0]


@pytest.mark.parametrize("tile_batch", [2, 3, 4, 64])
@pytest.mark.parametrize("overlap, weighting", [(0.25, "uniform"), (0.5, "gaussian")])
def test_batched_tiles_equal_one_tile_at_a_time(tile_batch, overlap, weighting):
    """The real (small) network, BN and all: tiles in batches give the one-at-a-time probabilities to
    float tolerance, slabs and whole volume alike, and the batches cross rows of tiles."""
    torch.manual_seed(0)
    net = build_network(width=0.0625).eval()
    img = np.random.default_rng(5).normal(-200, 500, size=(40, 24, 20)).astype(np.float32)
    one = stitch_whole(img, TorchPredictor(net, (-1000, 1000), "cpu"), (16, 16, 16), 6, overlap, weighting)
    counting = _Counting(TorchPredictor(net, (-1000, 1000), "cpu"))
    batched = stitch_whole(img, counting, (16, 16, 16), 6, overlap, weighting, tile_batch=tile_batch)
    n_tiles = len(tile_grid(img.shape, (16, 16, 16), overlap))
    assert sum(counting.calls) == n_tiles and max(counting.calls) == min(tile_batch, n_tiles)
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-5)
    slabs = np.concatenate([p for _, _, p in iter_slabs(img, counting, (16, 16, 16), 6, overlap, weighting,
                                                         tile_batch=tile_batch)], axis=1)
    np.testing.assert_array_equal(slabs, batched)  # same batches, same sums: bit for bit
    top2 = np.sort(one, axis=0)[-2:]
    decided = top2[1] - top2[0] > 1e-4
    labels = predict_channels(img, counting, (16, 16, 16), 6, overlap, weighting, tile_batch=tile_batch)
    assert np.array_equal(labels[decided], np.argmax(one, 0)[decided])


def test_tile_batch_is_validated_and_plain_callables_still_work(image):
    with pytest.raises(InputError, match="tile_batch"):
        stitch_whole(image, TorchPredictor(PointwiseNet().eval(), (-1000, 1000), "cpu"), (16, 8, 8), 6,
                     tile_batch=0)
    # a predictor without predict_batch is called one tile at a time, whatever tile_batch says
    np.testing.assert_array_equal(stitch_whole(image, per_voxel, (16, 8, 8), 4, tile_batch=4),
                                  stitch_whole(image, per_voxel, (16, 8, 8), 4))


def test_on_tile_sees_every_tile_once_with_its_probabilities(image):
    seen = []
    stitch_whole(image, position_dependent, (16, 8, 8), 4, 0.25, on_tile=lambda box, p: seen.append((box, p)))
    boxes = tile_grid(image.shape, (16, 8, 8), 0.25)
    assert [b for b, _ in seen] == boxes
    padded = pad_to(image, (16, 8, 8), -1000.0)
    for box, p in seen:
        np.testing.assert_array_equal(p, position_dependent(padded[box]))
