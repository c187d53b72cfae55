"""The synthetic CT phantom: seeded, anatomy-like HU, exact and consistent labels."""

import numpy as np
import pytest

from organseglib.errors import InputError
from organseglib.phantom import make_phantom, phantom_grid


def test_same_seed_same_phantom_other_seed_other_phantom():
    a = make_phantom(3, "chest", "tiny")
    b = make_phantom(3, "chest", "tiny")
    c = make_phantom(4, "chest", "tiny")
    np.testing.assert_array_equal(a.ct.array, b.ct.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert not np.array_equal(a.labels.array, c.labels.array)


def test_every_organ_has_its_intensity(tiny_abdomen):
    p = make_phantom(1, "both", "small", noise_hu=0.0)
    ct, lab = p.ct.array, p.labels.array
    med = {v: float(np.median(ct[lab == v])) for v in range(1, 6)}
    assert med[3] < -750                     # lungs ≈ −850 with vessels
    assert 40 <= med[1] <= 80                # liver ≈ 60
    assert -10 <= med[2] <= 30               # bladder ≈ 10
    assert 10 <= med[4] <= 60                # kidneys (no contrast)
    assert np.percentile(ct[lab == 5], 90) > 600  # cortical bone
    assert ct.min() >= -1024 and (ct[lab == 0] < -950).mean() > 0.3  # outside air


def test_contrast_enhances_kidneys_and_liver():
    plain = make_phantom(2, "abdomen", "tiny", contrast=False, noise_hu=0)
    enh = make_phantom(2, "abdomen", "tiny", contrast=True, noise_hu=0)
    np.testing.assert_array_equal(plain.labels.array, enh.labels.array)
    kid = plain.labels.array == 4
    assert np.median(enh.ct.array[kid]) > np.median(plain.ct.array[kid]) + 100


def test_table_is_under_the_patient_and_not_labelled():
    p = make_phantom(0, "abdomen", "small", noise_hu=0)
    ct, lab = p.ct.array, p.labels.array
    # j grows towards posterior on this grid: the table is the dense material below the body
    dense_unlabelled = (ct > 200) & (lab == 0)
    rows = np.nonzero(dense_unlabelled.any(axis=(0, 2)))[0]
    body_rows = np.nonzero((lab > 0).any(axis=(0, 2)))[0]
    assert rows.max() > body_rows.max()
    below = np.zeros_like(dense_unlabelled)
    below[:, body_rows.max() + 1:, :] = True
    table = (ct > -700) & below          # foam core −550 HU inside a dense shell
    assert table[:, :, 0].any() and table[:, :, -1].any()  # the table reaches both side borders


def test_regions():
    chest = make_phantom(0, "chest", "tiny")
    abdomen = make_phantom(0, "abdomen", "tiny")
    assert (chest.labels.array == 3).sum() > 3 * (abdomen.labels.array == 3).sum()
    assert (chest.labels.array == 2).sum() == 0 and (abdomen.labels.array == 2).sum() > 0
    assert (abdomen.labels.array == 4).sum() > 0


def test_cropped_field_of_view_cuts_the_body():
    p = make_phantom(0, "chest", "tiny", cropped=True)
    body = p.ct.array > -500
    assert body[:, :, 0].any() and body[:, :, -1].any()   # body touches left and right borders
    assert (p.labels.array[0] == 3).any() or (p.labels.array[-1] == 3).any()  # lungs cut in z


def test_clinical_grid_size():
    g = phantom_grid("both", "clinical")
    assert g.shape == (300, 512, 512)
    np.testing.assert_allclose(g.spacing, (0.8, 0.8, 1.5))


def test_bad_options():
    with pytest.raises(InputError, match="region"):
        make_phantom(0, "head")
    with pytest.raises(InputError, match="size"):
        make_phantom(0, "chest", "huge")
    with pytest.raises(InputError, match="noise"):
        make_phantom(0, "chest", "tiny", noise_hu=-1)
