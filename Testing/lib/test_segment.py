"""One-click segmentation: geometry back to the native grid, hybrid sources, cleaning, configuration."""

import numpy as np
import pytest
import torch
from torch import nn

from organseglib.autolabel import autolabel
from organseglib.errors import InputError, ModelPackageError
from organseglib.model_package import ModelCard
from organseglib.organ_cleaning import CleaningRules, clean_organs
from organseglib.segment import SegmentConfig, segment_ct
from organseglib.volume import Volume


class ThresholdNet(nn.Module):
    """A per-voxel fake network: channel ``c`` wins where ``lo < HU < hi`` (window −1000..1000)."""

    def __init__(self, rules):
        super().__init__()
        self.rules = rules

    def forward(self, x):
        hu = x * 2000.0 - 1000.0
        logits = torch.zeros((x.shape[0], 6, *x.shape[2:]), device=x.device)
        logits[:, 0] = 1.0
        for channel, lo, hi in self.rules:
            logits[:, channel] += 10.0 * ((hu > lo) & (hu < hi)).float()[:, 0]
        return logits


def fake(rules, tile=(64, 64, 64), spacing_mm=3.0):
    return ThresholdNet(rules), ModelCard(name="threshold", width=0.0625, tile_shape=tile, spacing_mm=spacing_mm,
                                          training_data="none: a fixed threshold rule (test)")


LIVER_ONLY = SegmentConfig(organs=("liver",), autolabel_organs=())


@pytest.mark.parametrize("direction", [np.diag([-1.0, -1.0, 1.0]), np.eye(3)], ids=["LPS", "RAS"])
@pytest.mark.parametrize("spacing, shape, cell", [
    ((1.0, 1.0, 1.0), (90, 60, 63), (3, 3, 3)),        # (i, j, k) mm; shape (K, J, I); native voxels per 3 mm
    ((0.75, 0.75, 1.5), (40, 80, 84), (2, 4, 4)),
])
def test_labels_land_on_the_native_voxels_without_a_half_voxel_shift(spacing, shape, cell, direction):
    """A block whose faces lie on 3 mm cell boundaries comes back exactly: any half-voxel shift of the
    network grid would move a face by a native voxel or more."""
    K, J, I = shape
    ct = np.full(shape, -1000.0, np.float32)
    ct[:, 5:J - 5, 5:I - 5] = -100.0  # body (fat)
    block = np.zeros(shape, bool)
    # the 3 mm grid keeps the field-of-view centre; with these shapes its cells start at native index 0
    block[10 * cell[0]:20 * cell[0], 6 * cell[1]:13 * cell[1], 8 * cell[2]:15 * cell[2]] = True
    ct[block] = 100.0
    vol = Volume.from_geometry(ct, spacing, origin=(12.3, -40.1, 7.7), direction=direction)
    out = segment_ct(vol, fake([(1, 0, 500)]), LIVER_ONLY, device="cpu")
    assert out.same_grid(vol) and out.array.dtype == np.uint8
    assert np.array_equal(out.array == 1, block)


@pytest.fixture(scope="module")
def chest():
    """A 6 mm phantom; the fake models below work at 6 mm too (card spacing), which keeps tests fast."""
    from organseglib.phantom import make_phantom

    return make_phantom(seed=1, region="both", size="tiny")


# lungs (< −500 HU inside), liver (40..80 HU), bone (> 300 HU) from thresholds
RULES = [(3, -950, -500), (1, 55, 70), (5, 300, 3000)]


def test_hybrid_takes_lungs_and_bone_from_the_auto_labelers(chest):
    ct = chest.ct
    auto = autolabel(ct).array
    out = segment_ct(ct, fake(RULES, spacing_mm=6.0), device="cpu").array
    has_auto = auto != 0
    assert np.array_equal(out[has_auto], auto[has_auto])          # auto-labels override
    assert not np.isin(out[~has_auto], [3, 5]).any()              # network lungs/bone dropped
    assert (out == 1).any()                                       # liver from the network
    from organseglib.morphology import label
    assert label(out == 1)[1].size - 1 == 1                       # cleaned to one component


def test_network_only_uses_network_lungs_and_bone(chest):
    out = segment_ct(chest.ct, fake(RULES, spacing_mm=6.0), SegmentConfig(autolabel_organs=()), device="cpu").array
    assert {1, 3, 5} <= set(np.unique(out).tolist())
    network_lungs = out == 3
    truth_lungs = chest.labels.array == 3
    assert (network_lungs & truth_lungs).sum() > 0.5 * truth_lungs.sum()


def test_requested_organs_only_and_autolabel_only_needs_no_model(chest):
    out = segment_ct(chest.ct, "no-such-model", SegmentConfig(organs=("lungs",)), device="cpu").array
    assert set(np.unique(out).tolist()) == {0, 3}
    with pytest.raises(ModelPackageError, match="no-such-model"):
        segment_ct(chest.ct, "no-such-model", SegmentConfig(organs=("liver",)), device="cpu")


def test_crop_to_body_removes_only_what_lies_outside_the_patient(chest):
    base = SegmentConfig(autolabel_organs=(), clean=False)
    a = segment_ct(chest.ct, fake(RULES, spacing_mm=6.0), base, device="cpu").array
    from dataclasses import replace
    b = segment_ct(chest.ct, fake(RULES, spacing_mm=6.0), replace(base, slabs=False, crop_to_body=False), device="cpu").array
    inside = a != 0
    assert np.array_equal(a[inside], b[inside])          # a per-voxel rule gives the same labels in the box
    dropped = (b != 0) & ~inside                        # what the crop removed: the table's foam core ...
    assert dropped.any() and not (dropped & (chest.labels.array != 0)).any()  # ... and no organ voxel


def test_clean_organs_keeps_plausible_components():
    lab = np.zeros((20, 20, 40), np.uint8)
    lab[2:8, 2:8, 2:8] = 1          # liver, big
    lab[2:4, 2:4, 30:32] = 1        # liver, small island
    lab[10:14, 10:14, 2:6] = 4      # kidney 64 voxels
    lab[10:14, 10:14, 10:13] = 4    # kidney 48
    lab[10:13, 10:13, 20:23] = 4    # third "kidney" 27
    lab[16:17, 16:17, 30:31] = 4    # speck, 1 voxel
    lab[15:19, 2:4, 2:4] = 5        # bone pieces stay
    lab[15:19, 2:4, 10:12] = 5
    vol = Volume(lab, np.eye(4))
    out = clean_organs(vol, ("liver", "kidneys", "bone"), CleaningRules(anatomy=False, min_kidney_ml=0.03))
    assert (out == 1).sum() == 216 and out[2, 2, 30] == 0
    assert (out == 4).sum() == 64 + 48 and out[11, 11, 21] == 0 and out[16, 16, 30] == 0
    assert (out == 5).sum() == (lab == 5).sum()
    # min volume: 50 µL (50 voxels of 1 mm³) drops the 48-voxel kidney too
    assert (clean_organs(vol, ("kidneys",), CleaningRules(anatomy=False, min_kidney_ml=0.05)) == 4).sum() == 64


def test_model_without_a_requested_organ_is_refused(chest):
    net, _ = fake(RULES)
    bad = ModelCard(name="nokid", width=0.0625, tile_shape=(64, 64, 64), num_classes=5,
                    classes=[dict(channel=i, value=v, key=str(v), name=str(v), color=[0, 0, 0], terminology="")
                             for i, v in enumerate((0, 1, 2, 3, 5))])
    with pytest.raises(InputError, match=r"no output for label values \[4\]"):
        segment_ct(chest.ct, (net, bad), SegmentConfig(autolabel_organs=()), device="cpu")


@pytest.mark.parametrize("kwargs, match", [
    ({"autolabel_organs": ("liver",)}, "autolabel_organs must be among"),
    ({"organs": ("spleen",)}, "unknown organ"),
    ({"overlap": 1.0}, "overlap"),
    ({"weighting": "max"}, "weighting"),
    ({"min_kidney_ml": -1}, "min_kidney_ml"),
    ({"tile_shape": (160, 120, 100)}, "multiples of 8"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        SegmentConfig(**kwargs)


def test_tile_batch_is_validated():
    with pytest.raises(InputError, match="tile_batch"):
        SegmentConfig(tile_batch=0)
    assert SegmentConfig().tile_batch is None and SegmentConfig(tile_batch=3).tile_batch == 3


def test_config_network_organs():
    assert SegmentConfig().network_organs == ("liver", "bladder", "kidneys")
    assert SegmentConfig(organs=("lungs", "liver")).autolabel_organs == ("lungs",)
    assert SegmentConfig(autolabel_organs="").network_organs == ("liver", "bladder", "lungs", "kidneys", "bone")


class Spy(ThresholdNet):
    """ThresholdNet that records the shape and value range of every tile it is given, and how many
    tiles each forward call held."""

    def __init__(self, rules):
        super().__init__(rules)
        self.seen = []
        self.batches = []

    def forward(self, x):
        self.batches.append(int(x.shape[0]))
        self.seen.extend((tuple(t.shape[1:]), float(t.min()), float(t.max())) for t in x)
        return super().forward(x)


def _block_ct(shape=(90, 60, 63), spacing=(1.0, 1.0, 1.0)):
    ct = np.full(shape, -1000.0, np.float32)
    ct[:, 5:-5, 5:-5] = -100.0
    return Volume.from_geometry(ct, spacing, origin=(0.0, 0.0, 0.0), direction=np.eye(3))


def test_network_sees_windowed_tiles_of_the_3mm_grid_with_25_percent_overlap_by_default():
    """90×60×63 voxels of 1 mm → a 30×20×21 grid at 3 mm. Tiles of 16³ at 25 % overlap (step 12):
    3 × 2 × 2 = 12 tiles; at 0 % overlap 2 × 2 × 2 = 8 (hand-worked from ``tile_starts``)."""
    from dataclasses import replace

    ct = _block_ct()
    card = ModelCard(name="spy", width=0.0625, tile_shape=(16, 16, 16), spacing_mm=3.0, training_data="none (test)")
    config = SegmentConfig(organs=("liver",), autolabel_organs=(), crop_to_body=False)
    assert config.overlap == 0.25 and SegmentConfig().overlap == 0.25
    spy = Spy([(1, 0, 500)])
    segment_ct(ct, (spy, card), config, device="cpu")
    assert len(spy.seen) == 12 and {s[0] for s in spy.seen} == {(16, 16, 16)}
    assert spy.batches == [1] * 12  # on the CPU one tile per forward call by default
    labels_one = segment_ct(ct, (spy, card), config, device="cpu").array
    spy.batches.clear()
    labels_batched = segment_ct(ct, (spy, card), replace(config, tile_batch=5), device="cpu").array
    assert spy.batches == [5, 5, 2] and np.array_equal(labels_batched, labels_one)
    assert min(s[1] for s in spy.seen) >= 0.0 and max(s[2] for s in spy.seen) <= 1.0   # HU windowed (eq. 3)
    spy.seen.clear()
    segment_ct(ct, (spy, card), replace(config, overlap=0.0), device="cpu")
    assert len(spy.seen) == 8
    # one tile larger than the grid: fitted to the grid rounded up to multiples of 8, padded with air
    spy.seen.clear()
    segment_ct(ct, (spy, ModelCard(name="spy", width=0.0625, tile_shape=(64, 64, 64))), config, device="cpu")
    assert [s[0] for s in spy.seen] == [(32, 24, 24)]


def test_device_choice_reaches_the_network():
    """``device`` is resolved once (auto → CUDA when present) and an unavailable CUDA is refused."""
    ct = _block_ct((30, 30, 30), (3.0, 3.0, 3.0))
    model = fake([(1, 0, 500)], tile=(32, 32, 32))
    assert segment_ct(ct, model, LIVER_ONLY, device="auto").same_grid(ct)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            segment_ct(ct, model, LIVER_ONLY, device="cuda")


def test_the_network_sees_the_same_array_whatever_the_files_axis_order():
    """The same phantom stored LPS-ordered (as rendered) and RAS-ordered (i and j reversed, as a NIfTI
    often is) reaches the network as the same tiles, and the labels come back mirrored with the scan."""
    from organseglib.phantom import make_phantom

    lps = make_phantom(seed=2, region="abdomen", size="tiny").ct
    m = np.array(lps.ijk_to_ras)
    K, J, I = lps.shape
    m[:3, 3] += m[:3, 0] * (I - 1) + m[:3, 1] * (J - 1)
    m[:3, :2] *= -1
    ras = Volume(lps.array[:, ::-1, ::-1].copy(), m)
    card = ModelCard(name="spy", width=0.0625, tile_shape=(64, 64, 64), spacing_mm=6.0, training_data="none (test)")
    config = SegmentConfig(organs=("liver",), autolabel_organs=(), clean=False)

    class Recorder(Spy):
        def forward(self, x):
            self.tiles = getattr(self, "tiles", []) + [x.clone()]
            return super().forward(x)

    a, b = Recorder([(1, 55, 70)]), Recorder([(1, 55, 70)])
    out_lps = segment_ct(lps, (a, card), config, device="cpu").array
    out_ras = segment_ct(ras, (b, card), config, device="cpu").array
    assert len(a.tiles) == len(b.tiles) and all(torch.equal(x, y) for x, y in zip(a.tiles, b.tiles))
    assert (out_lps == 1).any() and np.array_equal(out_ras, out_lps[:, ::-1, ::-1])


def test_card_orientation_is_validated():
    assert ModelCard(name="x", width=0.0625).orientation == "LPS"
    assert ModelCard(name="x", width=0.0625, orientation="ras").orientation == "RAS"
    with pytest.raises(ModelPackageError, match="orientation"):
        ModelCard(name="x", width=0.0625, orientation="LPA")


def test_a_nan_voxel_is_reported_as_bad_input_not_as_corrupt_weights(chest):
    from organseglib.errors import NotCTError

    array = chest.ct.array.astype(np.float32).copy()
    array[3, 4, 5] = np.nan
    with pytest.raises(NotCTError, match="1 NaN or infinite voxels"):
        segment_ct(chest.ct.with_array(array), fake(RULES), SegmentConfig(autolabel_organs=()), device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("stored", ["LPS", "RAS"])
def test_a_hybrid_run_computes_the_body_mask_once_and_reorients_the_ct_once(chest, stored, monkeypatch):
    """The native body mask is computed once and serves every auto-labeler (the network's crop is found
    on its coarse grid, as without the auto-labelers); the CT is put into the working axis order once
    (the auto-labelers receive it already in that order: no second copy)."""
    import organseglib.body as body_mod
    import organseglib.network_space as network_space_mod
    import organseglib.orientation as orientation_mod
    from organseglib.body import body_masks
    from organseglib.network_space import find_body_on_network_grid
    from organseglib.orientation import reorient

    ct, _ = reorient(chest.ct, stored)
    expected = segment_ct(ct, fake(RULES, spacing_mm=6.0), device="cpu").array
    calls = {"body": 0, "copies": 0}

    on_network_grid = []

    def counting_body(*args, **kwargs):
        calls["body"] += not on_network_grid  # the native mask, not the crop's coarse one
        return body_masks(*args, **kwargs)

    def crop_finder(volume):
        on_network_grid.append(True)
        try:
            return find_body_on_network_grid(volume)
        finally:
            on_network_grid.pop()

    def counting_reorient(volume, code="LPS"):
        out = reorient(volume, code)
        if volume.shape == ct.shape and np.issubdtype(volume.array.dtype, np.floating) \
                and not np.shares_memory(out[0].array, volume.array):
            calls["copies"] += 1  # a native-size CT array rearranged
        return out

    monkeypatch.setattr(body_mod, "body_masks", counting_body)
    monkeypatch.setattr(network_space_mod, "find_body_on_network_grid", crop_finder)
    monkeypatch.setattr(orientation_mod, "reorient", counting_reorient)
    out = segment_ct(ct, fake(RULES, spacing_mm=6.0), device="cpu").array
    assert calls["body"] == 1
    assert calls["copies"] == (0 if stored == "LPS" else 1)
    np.testing.assert_array_equal(out, expected)
    # the auto-labelers given the body mask label exactly as when they compute it themselves
    lps, _ = reorient(ct, "LPS")
    masks = body_masks(np.asarray(lps.array, np.float32), lps.array_spacing)
    np.testing.assert_array_equal(autolabel(lps, body=masks).array, autolabel(lps).array)


@pytest.mark.slow
def test_the_network_sees_the_same_input_with_and_without_the_auto_labelers(chest, monkeypatch):
    """One crop for both paths (issue 21): the hybrid's network input is --network-only's, voxel for
    voxel, so a kidney the network finds alone it finds in the hybrid (the merge decides the rest).
    Before, the hybrid cropped to the native body mask and tiled a different box."""
    import organseglib.segment as segment_mod

    seen = []
    real = segment_mod.network_labels

    def recording(image, *args, **kwargs):
        seen.append(np.array(image, copy=True))
        return real(image, *args, **kwargs)

    monkeypatch.setattr(segment_mod, "network_labels", recording)
    # a table-like band under the patient, where a native and a coarse body mask draw the box differently
    ct = chest.ct.array.copy()
    ct[:, -4:, :] = 300.0
    ct = chest.ct.with_array(ct)
    segment_ct(ct, fake(RULES, spacing_mm=6.0), device="cpu")
    segment_ct(ct, fake(RULES, spacing_mm=6.0), SegmentConfig(autolabel_organs=()), device="cpu")
    assert len(seen) == 2 and seen[0].shape == seen[1].shape
    np.testing.assert_array_equal(seen[0], seen[1])


def test_the_auto_labelers_warnings_come_back_with_the_labels(chest, caplog):
    """A hybrid run passes the labelers' warnings up (here: a scan without bone) instead of only
    logging them; ``segment_ct`` keeps its Volume return and logs them."""
    from organseglib.segment import segment_ct_with_report

    ct = chest.ct.with_array(np.minimum(chest.ct.array, 100.0).astype(chest.ct.array.dtype))  # no bone left
    config = SegmentConfig(organs=("lungs", "bone"))
    labels, warnings = segment_ct_with_report(ct, None, config, device="cpu")
    assert labels.same_grid(ct) and (labels.array == 3).any() and not (labels.array == 5).any()
    assert [w for w in warnings if w.startswith("bone: no bone found")], warnings
    caplog.set_level("WARNING", logger="organseglib")
    assert np.array_equal(segment_ct(ct, None, config, device="cpu").array, labels.array)
    assert any("no bone found" in r.getMessage() for r in caplog.records)
