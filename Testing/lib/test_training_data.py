"""Training data: CT-ORG / exported folders, label folding, the 3 mm cache, crops, tiles, batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from organseglib.errors import InputError, LabelValueError, MissingFileError
from organseglib.io import write_volume
from organseglib.training import dataset as ds
from organseglib.training.batches import AugmentedBatches, make_augmenter, plain_batch


@pytest.fixture()
def ct_org_folder(tmp_path, tiny_abdomen):
    """Two CT-ORG style cases; case 1 carries CT-ORG's brain label 6."""
    root = tmp_path / "ctorg"
    root.mkdir()
    for n in (0, 1):
        labels = tiny_abdomen.labels.array.copy()
        if n == 1:
            labels[:3] = 6
        write_volume(tiny_abdomen.ct, root / f"volume-{n}.nii.gz")
        write_volume(tiny_abdomen.labels.with_array(labels), root / f"labels-{n}.nii.gz")
    return root


def test_find_cases_reads_the_ct_org_layout_in_numeric_order(ct_org_folder):
    (ct_org_folder / "volume-10.nii.gz").write_bytes((ct_org_folder / "volume-0.nii.gz").read_bytes())
    (ct_org_folder / "labels-10.nii.gz").write_bytes((ct_org_folder / "labels-0.nii.gz").read_bytes())
    assert [c.case_id for c in ds.find_cases(ct_org_folder)] == ["0", "1", "10"]


def test_manifest_lists_the_cases_when_present(ct_org_folder):
    manifest = {"cases": [{"id": 1, "volume": "volume-1.nii.gz", "labels": "labels-1.nii.gz",
                           "source": "x", "date": "2026-01-01", "corrected_organs": ["liver"]}]}
    (ct_org_folder / "manifest.json").write_text(json.dumps(manifest))
    cases = ds.find_cases(ct_org_folder)
    assert [(c.case_id, c.volume.name) for c in cases] == [("1", "volume-1.nii.gz")]


def test_missing_and_empty_folders_raise(tmp_path, ct_org_folder):
    with pytest.raises(MissingFileError, match="does not exist"):
        ds.find_cases(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no training cases"):
        ds.find_cases(tmp_path / "empty")
    (ct_org_folder / "labels-0.nii.gz").unlink()
    with pytest.raises(MissingFileError, match="labels-0"):
        ds.find_cases(ct_org_folder)


def test_fold_ct_org_labels():
    out = ds.fold_ct_org_labels(np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.int16))
    assert out.dtype == np.uint8 and out.tolist() == [0, 1, 2, 3, 4, 5, 0]
    with pytest.raises(LabelValueError):
        ds.fold_ct_org_labels(np.array([0, 7]))


def test_load_case_resamples_folds_and_caches_outside_the_input(ct_org_folder, tmp_path, monkeypatch, tiny_abdomen):
    cache = tmp_path / "cache"
    case = ds.find_cases(ct_org_folder)[1]
    first = ds.load_case(case, spacing_mm=12.0, cache_dir=cache)
    # 6 mm -> 12 mm halves every axis (rounded): the 3 mm cache is a resampled copy
    assert first.image.shape == tuple(int(round(n / 2)) for n in tiny_abdomen.ct.shape)
    assert first.labels.max() <= 5 and 6 not in np.unique(first.labels)
    assert len(list(cache.glob("case-*.npz"))) == 1
    assert sorted(p.name for p in ct_org_folder.iterdir()) == sorted(
        ["volume-0.nii.gz", "labels-0.nii.gz", "volume-1.nii.gz", "labels-1.nii.gz"])
    import organseglib.io as io_mod

    monkeypatch.setattr(io_mod, "read_ct", lambda *a, **k: pytest.fail("cache not used"))
    second = ds.load_case(case, spacing_mm=12.0, cache_dir=cache)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.labels, second.labels)


def test_load_dataset_phantom_spec_and_errors():
    cases = ds.load_dataset("phantoms:2", spacing_mm=6.0)
    assert [c.case_id for c in cases] == ["phantom-0", "phantom-1"]
    assert cases[0].image.dtype == np.float32 and cases[0].labels.dtype == np.uint8
    with pytest.raises(InputError, match="phantoms:COUNT"):
        ds.load_dataset("phantoms:zero")


def test_random_crop_is_a_window_of_the_scan_or_padded_with_air():
    image = np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8)
    labels = (image % 6).astype(np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(5):
        img, lab = ds.random_crop(image, labels, (4, 7, 8), rng)
        k0 = int(img[0, 0, 0]) // 56
        np.testing.assert_array_equal(img, image[k0:k0 + 4])
        np.testing.assert_array_equal(lab, labels[k0:k0 + 4])
    img, lab = ds.random_crop(image, labels, (8, 8, 8), rng)
    assert (img == ds.AIR_HU).sum() == 8 ** 3 - image.size and lab.sum() == labels.sum()


def test_batches_are_windowed_and_reproducible_from_the_generator_state():
    cases = ds.phantom_cases([0], spacing_mm=6.0)
    dev = torch.device("cpu")
    for sampler in (plain_batch, AugmentedBatches()):
        a = sampler(cases, 2, (16, 24, 32), np.random.default_rng(3), dev)
        b = sampler(cases, 2, (16, 24, 32), np.random.default_rng(3), dev)
        x, y = a
        assert x.shape == (2, 1, 16, 24, 32) and x.dtype == torch.float32
        assert y.shape == (2, 16, 24, 32) and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3, 4, 5}
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_resample_case_puts_a_ras_ordered_file_in_the_training_axis_order(tiny_abdomen):
    """A NIfTI stored right-to-left must train the network on the same anatomy array as the LPS
    phantom: the cached arrays are in ``TRAINING_ORIENTATION`` whatever order the file stored."""
    from organseglib.orientation import axis_codes, reorient

    ras_ct, _ = reorient(tiny_abdomen.ct, "RAS")
    ras_labels, _ = reorient(tiny_abdomen.labels, "RAS")
    assert axis_codes(tiny_abdomen.ct) == "LPS" and axis_codes(ras_ct) == "RAS"
    assert not np.array_equal(ras_labels.array, tiny_abdomen.labels.array)
    img_lps, lab_lps = ds.resample_case(tiny_abdomen.ct, tiny_abdomen.labels, 6.0)
    img_ras, lab_ras = ds.resample_case(ras_ct, ras_labels, 6.0)
    assert lab_ras.shape == lab_lps.shape and np.array_equal(lab_ras, lab_lps)
    np.testing.assert_allclose(img_ras, img_lps, atol=1e-3)


def test_augmented_batches_use_the_models_window():
    """Fine-tuning a model with its own window must not switch windows when augmentation starts."""
    from cudaaugment.config import AugmentConfig

    cases = ds.phantom_cases([0], spacing_mm=6.0)
    dev = torch.device("cpu")
    # no random window (the fixed model window applies), and no warp, so the two runs see the same HU
    still = AugmentConfig(rotation_deg=(0.0, 0.0), scale=(1.0, 1.0), shear=(0.0, 0.0), generic=(0.0, 0.0),
                          window_low=None, window_high=None, image_fill=-1000.0)
    wide = make_augmenter("cudaaugment", config=still, window=(-1000.0, 1000.0))
    narrow = make_augmenter("cudaaugment", config=still, window=(-200.0, 300.0))
    x_wide, _ = wide(cases, 1, (16, 24, 32), np.random.default_rng(3), dev)
    x_narrow, _ = narrow(cases, 1, (16, 24, 32), np.random.default_rng(3), dev)
    hu = x_wide * 2000.0 - 1000.0  # undo the wide window (nothing is clipped by it in this phantom)
    expected = torch.clamp((hu + 200.0) / 500.0, 0.0, 1.0)
    assert torch.allclose(x_narrow, expected, atol=1e-4)


def test_training_cases_enter_through_the_networks_door(tiny_abdomen, monkeypatch):
    """Training arrays are what ``network_space`` gives inference (same grid, same axis order), and
    phantoms rendered on the network grid are reordered, never resampled."""
    import organseglib.resample as rs
    from organseglib.network_space import enter_network_space

    img, lab = ds.resample_case(tiny_abdomen.ct, tiny_abdomen.labels, 6.0)
    image, space = enter_network_space(tiny_abdomen.ct, 6.0, ds.TRAINING_ORIENTATION)
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(lab, space.labels_to_network(tiny_abdomen.labels))
    assert lab.shape == space.grid.shape and space.grid.same_grid(space.uncropped)  # training: no crop

    def no_resampling(*args, **kwargs):
        raise AssertionError("a phantom rendered on the network grid was resampled")

    monkeypatch.setattr(rs, "_linear_separable", no_resampling)
    case = ds.phantom_cases([0], spacing_mm=6.0)[0]
    from organseglib.phantom import make_phantom

    p = make_phantom(seed=0, region="abdomen", size="small", spacing=(6.0,) * 3)
    np.testing.assert_array_equal(case.image, p.ct.array.astype(np.float32))  # phantoms are LPS-ordered
    np.testing.assert_array_equal(case.labels, p.labels.array)


def _lateral_case(annotated=None):
    """A 12×16×20 case: liver (1) on the patient's right (low i in LPS), one kidney (4) on the left."""
    labels = np.zeros((12, 16, 20), np.uint8)
    labels[3:9, 4:12, 1:7] = 1
    labels[4:8, 6:10, 13:17] = 4
    image = np.where(labels == 1, 60.0, np.where(labels == 4, 30.0, -100.0)).astype(np.float32)
    return ds.TrainingCase("lateral", image, labels, 3.0, annotated)


@pytest.mark.parametrize("annotated", [None, ("liver", "kidneys")])
def test_a_mirrored_crop_leaves_the_liver_unannotated_and_moves_the_kidney(annotated):
    """Training-time mirroring (``mirror``): the crop and its labels flip left-right together; the
    liver, one-sided, becomes background with its class unannotated (the loss's marginal takes it),
    the paired kidney stays annotated on the other side; without mirroring nothing of this happens."""
    from cudaaugment.config import AugmentConfig

    from organseglib.losses import segmentation_loss
    from organseglib.network_space import LEFT_RIGHT_AXIS

    case = _lateral_case(annotated)
    still = AugmentConfig(rotation_deg=(0.0, 0.0), scale=(1.0, 1.0), shear=(0.0, 0.0), generic=(0.0, 0.0),
                          noise_sigma=(0.0, 0.0), occlusion_max_vox=0.0,
                          window_low=None, window_high=None, image_fill=-1000.0)
    dev = torch.device("cpu")
    plain = AugmentedBatches(config=still)(
        [case], 2, case.labels.shape, np.random.default_rng(0), dev)
    mirrored = AugmentedBatches(config=still, mirror=1.0)(
        [case], 2, case.labels.shape, np.random.default_rng(0), dev)
    (x0, y0), (x1, y1) = plain, mirrored
    assert LEFT_RIGHT_AXIS == 2
    np.testing.assert_array_equal(y0.numpy(), np.broadcast_to(case.labels, y0.shape))
    assert plain.annotated is None or bool(plain.annotated[:, 1].all())
    torch.testing.assert_close(x1, torch.flip(x0, dims=(4,)))
    expected = np.flip(case.labels, axis=2).copy()
    expected[expected == 1] = 0
    np.testing.assert_array_equal(y1.numpy(), np.broadcast_to(expected, y1.shape))
    assert mirrored.annotated is not None
    assert not bool(mirrored.annotated[:, 1].any()) and bool(mirrored.annotated[:, 4].all())
    # the loss accepts the batch (a labelled class it is told is unannotated would raise)
    logits = torch.zeros(2, 6, *case.labels.shape)
    assert torch.isfinite(segmentation_loss("iou", logits, y1, mirrored.annotated))


def test_mirror_must_be_a_probability():
    from organseglib.training.trainer import TrainConfig

    with pytest.raises(InputError, match="mirror"):
        AugmentedBatches(mirror=1.5)
    with pytest.raises(InputError, match="mirror"):
        TrainConfig(mirror=-0.1, crop_shape=(16, 16, 16))
