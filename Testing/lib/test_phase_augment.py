"""Label-guided intensity augmentation (issue 22): structures redrawn at other phases' HU, texture and
noise kept, unannotated organs untouched; hand-worked on small synthetic cases, then a real scan."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from organseglib.errors import InputError
from organseglib.extra_structures import EXTRA_STRUCTURES, structure_map, structures_path
from organseglib.phantom import anatomy as T
from organseglib.phantom.hu_table import HU_TABLE, PHASES
from organseglib.training.dataset import TrainingCase
from organseglib.training.phase_augment import (PhaseAugment, PhaseAugmentConfig, PhaseDraw, StructureDraw, apply,
                                                 measure, sample, structure_masks)

SHAPE = (24, 32, 32)


def _case(annotated=None, vessel=False, seed=0):
    """A 3 mm case: a liver block at 120 HU with a smooth left-right ramp (±20 HU) and 10 HU noise,
    fat around it; optionally a 'portal vein' tube through the liver at 160 HU (extra structures)."""
    rng = np.random.default_rng(seed)
    image = np.full(SHAPE, -90.0, np.float32)
    labels = np.zeros(SHAPE, np.uint8)
    liver = (slice(4, 20), slice(6, 26), slice(6, 26))
    labels[liver] = 1
    ramp = np.linspace(-20, 20, SHAPE[2], dtype=np.float32)[None, None, :]
    image[liver] = (120.0 + ramp + np.zeros(SHAPE, np.float32))[liver]
    structures = None
    if vessel:
        structures = np.zeros(SHAPE, np.uint8)
        structures[8:16, 14:18, 6:26] = EXTRA_STRUCTURES["portal_vein"]
        image[structures > 0] = 160.0
    image += rng.normal(0.0, 10.0, SHAPE).astype(np.float32)
    return TrainingCase("c", image, labels, 3.0, annotated, structures)


def _draw(stats, **targets):
    return PhaseDraw("independent", tuple(StructureDraw(s.key, *targets[s.key]) for s in stats if s.key in targets))


def test_structure_moves_to_its_target_keeping_texture_and_noise():
    case = _case()
    cfg = PhaseAugmentConfig(edge_sigma_mm=0.0)
    stats = measure(case.image, structure_masks(case.labels, None, None), 3.0, cfg)
    (liver,) = stats
    out = apply(case.image, stats, _draw(stats, liver=(40.0, 0.5)))
    inside = case.labels == 1
    assert np.median(out[inside]) == pytest.approx(40.0, abs=1.5)
    assert np.array_equal(out[~inside], case.image[~inside])  # no soft edge asked: nothing outside moves
    # the change is (target − median) + (k − 1) · smooth: noise identical, the ramp halved
    change = out - case.image
    smooth = np.zeros(SHAPE, np.float32)
    smooth[liver.box] = liver.smooth
    np.testing.assert_allclose(change[inside], (40.0 - liver.median) - 0.5 * smooth[inside], atol=1e-3)
    assert liver.median == pytest.approx(120.0, abs=1.0)
    core = (slice(8, 16), slice(10, 22), slice(10, 22))
    ramp_before = np.polyfit(np.arange(12), case.image[core].mean(axis=(0, 1)), 1)[0]
    ramp_after = np.polyfit(np.arange(12), out[core].mean(axis=(0, 1)), 1)[0]
    assert ramp_after == pytest.approx(0.5 * ramp_before, rel=0.15)
    noise = lambda a: a - ndimage.uniform_filter(a, 3)  # noqa: E731 (high-pass)
    assert np.corrcoef(noise(out)[core].ravel(), noise(case.image)[core].ravel())[0, 1] > 0.95


def test_soft_edge_fades_over_the_border_and_the_input_is_not_changed():
    case = _case()
    before = case.image.copy()
    stats = measure(case.image, structure_masks(case.labels, None, None), 3.0, PhaseAugmentConfig(edge_sigma_mm=3.0))
    out = apply(case.image, stats, _draw(stats, liver=(20.0, 1.0)))
    assert np.array_equal(case.image, before)
    step = (out - case.image)[12, 16]  # a row across the liver (i = 6..25)
    assert abs(step[0]) < 1.0 and abs(step[-1]) < 1.0  # far outside: unchanged
    assert -100 < step[5] < -1 and -100 < step[26] < -1  # just outside the border: part of the shift
    assert step[16] == pytest.approx(20.0 - stats[0].median, abs=1.0)  # deep inside: the whole shift (k = 1)


def test_vessel_inside_the_liver_takes_the_vessel_value_not_both_shifts():
    case = _case(vessel=True)
    cfg = PhaseAugmentConfig(edge_sigma_mm=0.0, texture_sigma_mm=0.0)
    stats = measure(case.image, structure_masks(case.labels, case.structures, None), 3.0, cfg)
    assert [s.key for s in stats] == ["liver", "portal_vein"]
    out = apply(case.image, stats, _draw(stats, liver=(50.0, 1.0), portal_vein=(40.0, 1.0)))
    vessel = case.structures > 0
    assert np.median(out[vessel]) == pytest.approx(40.0, abs=2.0)
    assert np.median(out[(case.labels == 1) & ~vessel]) == pytest.approx(50.0, abs=2.0)


def test_organs_the_case_does_not_annotate_keep_their_hu():
    case = _case(annotated=("lungs", "bone"))
    aug = PhaseAugment(PhaseAugmentConfig(p_original=0.0))
    assert aug.stats(case) == []
    assert aug.image_of(case, np.random.default_rng(0)) is case.image


def test_sampling_draws_only_from_the_generator_and_discrete_copies_follow_the_table():
    case = _case(vessel=True)
    cfg = PhaseAugmentConfig(p_original=0.0, p_discrete=1.0, spread=0.0)
    stats = measure(case.image, structure_masks(case.labels, case.structures, None), 3.0, cfg)
    a = sample(np.random.default_rng(7), stats, cfg)
    assert a == sample(np.random.default_rng(7), stats, cfg)
    seen = set()
    for seed in range(40):
        d = sample(np.random.default_rng(seed), stats, cfg)
        seen.add(d.phase)
        for s, draw in zip(stats, d.structures):
            base, value = HU_TABLE[s.tissue][0], HU_TABLE[s.tissue][PHASES.index(d.phase)]
            low, high = sorted((base + 0.75 * (value - base), base + 1.25 * (value - base)))
            assert low - 1e-6 <= draw.target_hu <= high + 1e-6, (d.phase, s.key, draw.target_hu)
    assert seen == set(PHASES)
    independent = PhaseAugmentConfig(p_original=0.0, p_discrete=0.0, spread=0.0)
    targets = [sample(np.random.default_rng(s), stats, independent).structures[0].target_hu for s in range(200)]
    row = HU_TABLE[T.LIVER]
    assert min(row) <= min(targets) < min(row) + 10 and max(row) - 10 < max(targets) <= max(row)
    assert sample(np.random.default_rng(0), stats, PhaseAugmentConfig(p_original=1.0)).phase == "original"


def test_excretory_bladder_gets_a_dependent_contrast_layer():
    image = np.full(SHAPE, 30.0, np.float32)
    labels = np.zeros(SHAPE, np.uint8)
    labels[6:18, 8:24, 8:24] = 2  # bladder: j (axis 1, posterior) from 8 to 23
    image[labels == 2] = 14.0
    case = TrainingCase("b", image, labels, 3.0)
    cfg = PhaseAugmentConfig(edge_sigma_mm=0.0)
    stats = measure(image, structure_masks(labels, None, None), 3.0, cfg)
    out = apply(image, stats, PhaseDraw("excretory", (StructureDraw("bladder", 14.0, 1.0, 0.25, 800.0),)))
    assert np.allclose(out[6:18, 20:24, 8:24], 800.0) and np.allclose(out[6:18, 8:20, 8:24], 14.0)
    assert np.array_equal(out[labels == 0], image[labels == 0])
    cfg = PhaseAugmentConfig(p_original=0.0, p_discrete=1.0)
    layered = [d for d in (sample(np.random.default_rng(s), stats, cfg) for s in range(60)) if d.phase == "excretory"]
    assert layered and all(d.structures[0].layer_fraction >= 0.2 for d in layered)
    del case


def test_config_is_checked_and_recorded():
    with pytest.raises(InputError, match="p_original"):
        PhaseAugmentConfig(p_original=1.5)
    with pytest.raises(InputError, match="bladder_contrast_hu"):
        PhaseAugmentConfig(bladder_contrast_hu=(900, 300))
    card = PhaseAugmentConfig().to_card()
    assert card["phases"] == list(PHASES) and "kidneys" in card["structures"] and card["p_original"] == 0.25


def test_structure_map_names_and_priority():
    a = np.zeros((2, 2, 2), bool)
    a[0] = True
    b = np.zeros((2, 2, 2), bool)
    b[:, 0] = True
    m = structure_map({"spleen": a, "Artery": b, "tumor": ~a})
    assert m[0, 0, 0] == EXTRA_STRUCTURES["artery"] and m[0, 1, 0] == EXTRA_STRUCTURES["spleen"] and m[1, 1, 1] == 0
    assert structure_map({"liver": a}) is None
    assert structures_path("/x/labels-3.nii.gz").name == "structures-3.nii.gz"


@pytest.mark.slow
def test_real_contrast_kidneys_as_non_contrast_copy(tmp_path):
    """ircad1_07 (portal venous, hand-drawn masks) at 3 mm: a non-contrast copy of its kidneys reads like
    abdomen_totalseg's unenhanced kidneys (16 HU; hu_table), with its noise kept."""
    from shared_data import shared_file

    from organseglib.io import read_ct, read_volume
    from organseglib.network_space import enter_network_space
    from organseglib.training.dataset import TRAINING_ORIENTATION

    ct_path = shared_file("ircad1_07/ct.nii.gz")
    ct = read_ct(ct_path)
    image, space = enter_network_space(ct, 3.0, TRAINING_ORIENTATION)
    labels = np.zeros(image.shape, np.uint8)
    for name in ("leftkidney", "rightkidney"):
        m = read_volume(ct_path.parent / "masks" / f"{name}.nii.gz")
        labels[space.labels_to_network(m.with_array((m.array > 0).astype(np.uint8))) > 0] = 4
    case = TrainingCase("ircad", image, labels, 3.0, ("kidneys",))
    stats = measure(image, structure_masks(labels, None, case.annotated), 3.0, PhaseAugmentConfig())
    (kid,) = stats
    assert 150 < kid.median < 200
    k = (32.0 - 16.0 + 30.0) / (kid.median - 16.0 + 30.0)
    out = apply(image, stats, PhaseDraw("none", (StructureDraw("kidneys", 32.0, k),)))
    inside = labels == 4
    core = ndimage.binary_erosion(inside)  # the edge voxels are partial volume: part of the shift (soft edge)
    assert np.median(out[core]) == pytest.approx(32.0, abs=3.0)
    full, edge = np.median((out - image)[core]), np.median((out - image)[inside & ~core])
    assert full < edge < 0.3 * full  # the edge voxels (part fat) move part of the way
    assert np.std(out[core]) < 0.75 * np.std(image[core])  # the enhancement's pattern faded (the noise stays)
    far = ndimage.binary_dilation(inside, np.ones((3, 3, 3), bool), iterations=3) == 0
    assert np.array_equal(out[far], image[far])


def test_phase_copy_puts_each_structure_at_the_tables_value_on_an_anisotropic_grid():
    """A native-resolution copy (0.8 × 0.8 × 1.6 mm voxels): the liver's interior at the table's
    non-contrast value, deterministic, nothing far outside moved; an unknown phase is refused."""
    from organseglib.training.phase_augment import phase_copy

    case = _case()
    masks = structure_masks(case.labels, None, None)
    out = phase_copy(case.image, masks, (1.6, 0.8, 0.8), "none")
    core = ndimage.binary_erosion(case.labels == 1, iterations=2)
    assert np.median(out[core]) == pytest.approx(HU_TABLE[T.LIVER][0], abs=4.0)
    assert np.array_equal(out, phase_copy(case.image, masks, (1.6, 0.8, 0.8), "none"))
    np.testing.assert_allclose(out[:, :1], case.image[:, :1], atol=0.2)  # 4σ (6 mm) outside the soft edge
    with pytest.raises(InputError, match="phase"):
        phase_copy(case.image, masks, 3.0, "delayed")
