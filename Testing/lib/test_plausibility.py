"""Plausibility of a segmentation: volumes, sides, components and missing organs against adult ranges."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organseglib.errors import InputError
from organseglib.plausibility import PlausibilityConfig, check_plausibility
from organseglib.volume import Volume
from shared_data import shared_file

# A 4 mm grid whose affine makes array axis i run towards the patient's right (+x RAS), j anterior,
# k superior.
SP = 4.0
VOX_ML = SP ** 3 / 1000.0  # 0.064 mL


def _labels(shape=(80, 60, 100)):
    affine = np.diag([SP, SP, SP, 1.0])  # i → +x (patient's right), j → +y (anterior), k → +z (superior)
    return Volume(np.zeros(shape, np.uint8), affine)


def _box(arr, value, k, j, i):
    arr[k[0]:k[1], j[0]:j[1], i[0]:i[1]] = value


def _normal():
    """A plausible abdomen: spine at the midline (i = 50), liver right, kidneys either side."""
    v = _labels()
    a = v.array
    _box(a, 5, (0, 80), (10, 20), (45, 55))                 # spine: the midline at i = 49.5
    _box(a, 1, (40, 60), (20, 50), (60, 90))                # liver 20·30·30 = 18000 vox = 1152 mL, right
    _box(a, 4, (42, 50), (12, 20), (62, 75))                # right kidney 8·8·13 = 832 vox = 53 mL
    _box(a, 4, (42, 50), (12, 20), (25, 38))
    return v


def test_plausible_case_has_no_warning_except_small_kidneys():
    v = _normal()
    a = v.array
    # make the kidneys adult-sized: 10·10·20 = 2000 vox = 128 mL each
    a[a == 4] = 0
    _box(a, 4, (40, 50), (10, 20), (60, 80))
    _box(a, 4, (40, 50), (10, 20), (20, 40))
    report = check_plausibility(v, ("liver", "kidneys", "bone"))
    assert report.warnings == [], report.warnings
    assert report.organs["liver"].sides == ["right"] and sorted(report.organs["kidneys"].sides) == ["left", "right"]
    assert report.organs["kidneys"].expected is True  # the whole liver is in view


def test_one_small_kidney_is_flagged_with_its_volume():
    v = _normal()
    a = v.array
    a[a == 4] = 0
    _box(a, 4, (42, 48), (12, 20), (62, 72))  # 6·8·10 = 480 vox = 30.72 mL
    report = check_plausibility(v, ("liver", "kidneys", "bone"))
    assert report.warnings == ["kidneys: one 31 mL component — implausible, check"]
    assert "kidneys: one 31 mL component" in report.status_line()


def test_two_kidneys_on_one_side_and_liver_on_the_left():
    v = _normal()
    a = v.array
    a[a == 1] = 0
    _box(a, 1, (40, 60), (20, 50), (10, 40))  # liver 1152 mL on the patient's left
    a[a == 4] = 0
    _box(a, 4, (40, 50), (10, 20), (60, 80))
    _box(a, 4, (60, 70), (10, 20), (60, 80))  # both on the right
    text = " | ".join(check_plausibility(v, ("liver", "kidneys", "bone")).warnings)
    assert "liver: lies on the patient's left" in text
    assert "not one on each side" in text


def test_missing_kidneys_with_whole_liver_in_view_and_empty_result():
    v = _normal()
    v.array[v.array == 4] = 0
    report = check_plausibility(v, ("liver", "kidneys", "bone"))
    assert report.warnings == ["kidneys: not found although the field of view should contain it — check"]
    empty = check_plausibility(_labels())
    assert empty.warnings and empty.warnings[0].startswith("no organ found")
    assert not empty.ok


def test_truncated_organ_skips_the_lower_bound_but_not_the_upper():
    v = _labels()
    _box(v.array, 1, (0, 5), (20, 50), (60, 90))  # a 288 mL sliver of liver at the bottom slice: cut by the FOV
    assert check_plausibility(v, ("liver",)).warnings == []
    _box(v.array, 1, (0, 80), (0, 60), (50, 100))  # 80·60·50 vox = 15360 mL: too big even if truncated
    assert "implausible" in check_plausibility(v, ("liver",)).warnings[0]


def test_speck_components_ignored_and_extra_parts_flagged():
    v = _normal()
    a = v.array
    a[a == 4] = 0
    a[79, 59, 99] = 1  # a 0.064 mL speck: ignored (< 5 mL)
    report = check_plausibility(v, ("liver",))
    assert report.organs["liver"].components_ml == [pytest.approx(18000 * VOX_ML)]
    _box(a, 1, (5, 15), (40, 50), (60, 90))  # a 192 mL second part
    assert any("2 separate parts" in w for w in check_plausibility(v, ("liver",)).warnings)


def test_config_validation_and_json():
    with pytest.raises(InputError, match="tolerance"):
        PlausibilityConfig(tolerance=-1)
    payload = json.dumps(check_plausibility(_normal()).to_json())
    assert '"kidneys"' in payload


def _liver_ct(labels, mass_fraction, mass_hu=30.0, noise=15.0, seed=0):
    """A CT for ``_normal()``'s labels: liver 120 HU with white noise; its first ``mass_fraction`` of
    slices (k from 40) at ``mass_hu`` (a mass taken for liver)."""
    rng = np.random.default_rng(seed)
    ct = np.full(labels.shape, 40.0, np.float32) + rng.normal(0.0, noise, labels.shape).astype(np.float32)
    liver = labels.array == 1
    ct[liver] += 80.0
    k_mass = 40 + int(round(20 * mass_fraction))
    ct[40:k_mass][liver[40:k_mass]] = mass_hu
    return labels.with_array(ct)


def test_liver_covering_a_mass_is_flagged_with_its_share():
    """Hand-worked: on the 4 mm grid a block of about 3 mm is one voxel. The liver spans k 40-60; its
    interior (wholly inside, less one block) k 41-58: 18 slices. A mass filling k 40-48 at 30 HU: the
    smoothing within the label (sigma 3 mm = 0.75 voxel, neighbour weight 0.41) puts the mass's last
    slice (k 47) at (30 + 0.41·30 + 0.41·120) / 1.82 = 50 HU, low; the first parenchyma slice (k 48) at
    (120 + 0.41·120 + 0.41·30) / 1.82 = 100 HU, 20 HU below: not low. So 7 of the 18 slices: 39 %."""
    v = _normal()
    report = check_plausibility(v, ct=_liver_ct(v, 0.4))
    share, median = report.organs["liver"].low_density
    # the median of all interior blocks is near the parenchyma's 20th percentile (120 HU, smoothed noise)
    assert share == pytest.approx(7 / 18, abs=1e-6) and 110.0 < median < 121.0
    assert any("liver: 39 % of its interior reads 30 HU or more below the rest" in w for w in report.warnings)
    assert report.to_json()["organs"]["liver"]["low_density_fraction"] == pytest.approx(0.389, abs=1e-3)
    # homogeneous parenchyma (noise of 15 HU: a voxel 2 sd below the median is no mass) passes
    clean = check_plausibility(v, ct=_liver_ct(v, 0.0))
    assert clean.organs["liver"].low_density[0] < 0.05 and not any("interior" in w for w in clean.warnings)
    # no CT: not read; a CT on another grid: refused
    assert check_plausibility(v).organs["liver"].low_density is None
    with pytest.raises(InputError, match="not on the CT's grid"):
        check_plausibility(v, ct=Volume(np.zeros((10, 10, 10), np.float32), v.ijk_to_ras))
    # a small interior (a liver tip at the edge of the view) is not judged
    tip = check_plausibility(v, config=PlausibilityConfig(liver_interior_min_ml=5000.0), ct=_liver_ct(v, 0.4))
    assert tip.organs["liver"].low_density is None


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["ct/abdomen_totalseg_labels.nii.gz"])
def test_real_reference_labels_pass(labels):
    from organseglib.io import read_ct, read_labels

    ct = read_ct(shared_file("ct/abdomen_totalseg.nii.gz"))
    report = check_plausibility(read_labels(shared_file(labels), reference=ct), ct=ct)
    assert report.warnings == []
    assert report.organs["kidneys"].sides in (["right", "left"], ["left", "right"])
    assert report.organs["liver"].low_density[0] < 0.02  # measured 0.0


@pytest.mark.slow
def test_real_ircad_reference_masks_pass_and_the_mass_taken_for_liver_is_flagged():
    """The hand-drawn liver passes (0.0 % of its interior well below the rest). The same liver with
    the 670 mL retroperitoneal mass added, as the leave-one-out model labelled 404 mL of it (liver
    volume still in the adult range), is flagged (measured 34 %) before the cleaning, which then cuts
    the mass (``organ_cleaning``) and keeps the liver."""
    from organseglib.io import read_ct, read_labels
    from organseglib.label_import import import_masks

    ct = read_ct(shared_file("ircad1_07/ct.nii.gz"))
    labels = import_masks(shared_file("ircad1_07/masks"), ct).labels
    report = check_plausibility(labels, ct=ct)
    assert report.warnings == []
    assert report.organs["liver"].sides == ["right"] and report.organs["lungs"].truncated
    tumor = read_labels(shared_file("ircad1_07/masks/tumor.nii.gz"), reference=ct).array > 0
    both = labels.with_array(np.where(tumor, np.uint8(1), labels.array))
    flagged = check_plausibility(both, ct=ct)
    assert flagged.organs["liver"].low_density[0] >= 0.2
    assert any(w.startswith("liver: ") and "a mass, or a neighbouring organ labelled liver" in w
               for w in flagged.warnings)


def test_missing_bladder_flagged_when_the_pelvis_is_in_view():
    v = _normal()
    a = v.array
    a[a == 4] = 0
    _box(a, 4, (60, 70), (10, 20), (60, 80))  # kidneys' lower poles at k = 60 (z = 240 mm)
    _box(a, 4, (60, 70), (10, 20), (20, 40))
    a[a == 1] = 0
    _box(a, 1, (62, 80), (20, 50), (60, 90))
    # the view reaches z = 0: 240 mm below the kidneys (> 180 mm), so the bladder should be there
    report = check_plausibility(v, ("liver", "kidneys", "bladder", "bone"))
    assert any(w.startswith("bladder: not found") and "empty bladder is possible" in w for w in report.warnings)
    _box(a, 2, (5, 15), (30, 40), (45, 55))  # 10·10·10 = 64 mL, on the midline
    assert check_plausibility(v, ("kidneys", "bladder", "bone")).organs["bladder"].warnings == []


def test_every_requested_empty_organ_is_a_warning_even_where_the_view_need_not_hold_it():
    """Plausibility is segment's one owner of empty-organ warnings: an empty organ is never silent,
    worded by whether the field of view should contain it; an all-empty result is one line."""
    v = _normal()  # no bladder and no lungs; nothing implies them (kidneys' poles, liver dome near the top)
    report = check_plausibility(v, ("liver", "bladder", "lungs", "bone"))
    assert [w.split(":")[0] for w in report.warnings] == ["bladder", "lungs"], report.warnings
    assert all(": not found" in w for w in report.warnings) and not report.ok
    assert "bladder: not found (0 voxels)" in report.warnings[0]  # the view need not hold it: warned anyway
    v.array[v.array == 5] = 0
    assert check_plausibility(v, ("bone",)).warnings[0].startswith("bone: not found")  # bone too
    empty = check_plausibility(_labels(), ("liver", "kidneys"))
    assert len(empty.warnings) == 1 and empty.warnings[0].startswith("no organ found")
    assert "liver, kidneys" in empty.warnings[0]
