"""AugmentConfig / AugmentParams validation, sampling and the coordinate convention (no arrays)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cudaaugment import AugmentConfig, AugmentError, AugmentParams, sample_params
from cudaaugment.params import rotation_matrix


@pytest.mark.parametrize("field, value, words", [
    ("rotation_deg", (10, -10), "low <= high"),
    ("rotation_deg", (0, float("nan")), "finite"),
    ("scale", (0.0, 1.0), "low > 0"),
    ("shear", "wide", "pair"),
    ("reflect_prob", (0.0, 1.5, 0.0), "probability"),
    ("reflect_prob", (-0.1, 0.0, 0.0), "probability"),
    ("reflect_prob", (0.5, 0.5), "one entry per array axis"),
    ("displacement_vox", ((0, 1), (0, 1)), "one entry per array axis"),
    ("occlusion_max_vox", -1.0, ">= 0"),
    ("noise_sigma", (-1.0, 2.0), "low >= 0"),
    ("window_low", (100.0, 300.0), "a < b"),  # overlaps the default window_high (230, 1500)
    ("window_low", None, "both"),
    ("label_fill", 0.5, "integer"),
])
def test_config_rejects_bad_ranges_with_the_parameter_name(field, value, words):
    with pytest.raises(AugmentError) as err:
        AugmentConfig(**{field: value})
    assert field.split("_")[0] in str(err.value) and words in str(err.value)


def test_config_defaults_are_valid_and_window_always_ordered():
    cfg = AugmentConfig()
    assert cfg.window_low[1] < cfg.window_high[0]
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = sample_params(rng, cfg, (30, 20, 10))
        assert p.window[0] < p.window[1]


@pytest.mark.parametrize("fields, words", [
    (dict(window=(5.0, 5.0)), "a < b"),
    (dict(window=(6.0, 5.0)), "a < b"),
    (dict(noise_sigma=-1.0), "noise_sigma"),
    (dict(occlusion_height=-2.0), "occlusion_height"),
    (dict(in_shape=(10, 10)), "three integers"),
    (dict(out_shape=(10, 1, 10)), ">= 2"),
    (dict(scale=(1.0, 0.0, 1.0)), "non-zero"),
    (dict(generic=((0, 0), (0, 0))), "3x3"),
    (dict(noise_seed=-1), "noise_seed"),
])
def test_params_reject_bad_values(fields, words):
    base = dict(in_shape=(10, 10, 10), out_shape=(10, 10, 10))
    base.update(fields)
    with pytest.raises(AugmentError, match=words):
        AugmentParams(**base)


def test_sample_params_needs_a_generator_and_valid_shapes():
    with pytest.raises(AugmentError, match="numpy.random.Generator"):
        sample_params(np.random.RandomState(0), AugmentConfig(), (10, 10, 10))
    with pytest.raises(AugmentError, match=">= 2"):
        sample_params(np.random.default_rng(0), AugmentConfig(), (10, 1, 10))


def test_same_seed_same_params_and_different_seed_different_params():
    cfg = AugmentConfig(noise_sigma=(0, 10), occlusion_max_vox=5, reflect_prob=(0.5, 0.5, 0.5))
    a = sample_params(np.random.default_rng(7), cfg, (40, 30, 20), (20, 20, 20))
    b = sample_params(np.random.default_rng(7), cfg, (40, 30, 20), (20, 20, 20))
    c = sample_params(np.random.default_rng(8), cfg, (40, 30, 20), (20, 20, 20))
    assert a == b and a != c


def test_draws_stay_inside_the_user_ranges():
    cfg = AugmentConfig(rotation_deg=(-5, 20), scale=(0.8, 1.3), shear=(-0.1, 0.2),
                        generic=(-0.01, 0.03), displacement_vox=((-1, 2), (3, 4), (0, 0)),
                        occlusion_max_vox=6, noise_sigma=(2, 9))
    rng = np.random.default_rng(1)
    for _ in range(300):
        p = sample_params(rng, cfg, (16, 16, 16))
        assert all(-5 <= v <= 20 for v in p.rotation_deg)
        assert all(0.8 <= v <= 1.3 for v in p.scale)
        assert all(-0.1 <= v <= 0.2 for v in p.shear)
        assert np.all((np.array(p.generic) >= -0.01) & (np.array(p.generic) <= 0.03))
        assert -1 <= p.displacement[0] <= 2 and 3 <= p.displacement[1] <= 4
        assert p.displacement[2] == 0
        assert 0 <= p.occlusion_height <= 6 and -6 <= p.occlusion_start <= 16
        assert 2 <= p.noise_sigma <= 9


def test_reflection_probabilities_zero_and_one_are_honoured():
    rng = np.random.default_rng(2)
    cfg = AugmentConfig.identity(reflect_prob=(1.0, 0.0, 1.0))
    for _ in range(50):
        assert sample_params(rng, cfg, (8, 8, 8)).reflect == (True, False, True)


def test_default_displacement_is_a_uniform_random_crop_inside_the_input():
    rng = np.random.default_rng(3)
    cfg = AugmentConfig.identity(displacement_vox=None)
    d = np.array([sample_params(rng, cfg, (40, 30, 20), (20, 20, 30)).displacement
                  for _ in range(500)])
    half = np.array([10, 5, 0])
    assert np.all(np.abs(d) <= half + 1e-12)
    assert np.all(d.max(axis=0)[:2] > 0.9 * half[:2]) and np.all(d.min(axis=0)[:2] < -0.9 * half[:2])


def test_output_centre_maps_to_input_centre_plus_displacement():
    rng = np.random.default_rng(4)
    cfg = AugmentConfig(rotation_deg=(-180, 180), reflect_prob=(0.5, 0.5, 0.5),
                        displacement_vox=((-5, 5),) * 3)
    for _ in range(20):
        p = sample_params(rng, cfg, (31, 24, 17), (12, 20, 9))
        c_out = (np.array(p.out_shape) - 1) / 2
        c_in = (np.array(p.in_shape) - 1) / 2
        np.testing.assert_allclose(p.matrix @ c_out + p.offset, c_in + np.array(p.displacement),
                                   atol=1e-12)


def test_matrix_components():
    r = rotation_matrix((30, -50, 170))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # 90 degrees about axis 0 maps axis 2 onto axis 1: R e2 = -e1.
    np.testing.assert_allclose(rotation_matrix((90, 0, 0)) @ [0, 0, 1], [0, -1, 0], atol=1e-12)
    p = AugmentParams.identity((8, 8, 8), reflect=(True, False, True), scale=(2, 1, 0.5))
    np.testing.assert_allclose(p.matrix, np.diag([-2.0, 1.0, -0.5]))
    twice = p.matrix @ dataclasses.replace(p, scale=(0.5, 1, 2)).matrix
    np.testing.assert_allclose(twice, np.eye(3))  # reflecting twice (with inverse scale) = I
    assert np.array_equal(AugmentParams.identity((9, 6, 4)).matrix, np.eye(3))
    np.testing.assert_allclose(AugmentParams.identity((9, 6, 4), (5, 6, 8)).offset, [2, 0, -2])


def test_occlusion_hits_every_z_equally_often():
    # P(row k occluded) = E[δ] / (n + δmax) = (δmax / 2) / (n + δmax) for every k in [0, n-1].
    n, dmax, draws = 20, 8.0, 20000
    cfg = AugmentConfig.identity(occlusion_max_vox=dmax)
    rng = np.random.default_rng(5)
    hits = np.zeros(n)
    for _ in range(draws):
        hits += sample_params(rng, cfg, (n, 4, 4)).occluded_rows()
    freq = hits / draws
    expected = (dmax / 2) / (n + dmax)
    sd = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(freq - expected) < 5 * sd), (freq, expected)


def test_occluded_range_is_ceil_of_start_and_end():
    p = AugmentParams.identity((10, 4, 4), occlusion_start=2.3, occlusion_height=3.0)
    assert p.occluded_range() == (3, 6)  # rows 3, 4, 5 satisfy 2.3 <= k < 5.3
    assert AugmentParams.identity((10, 4, 4), occlusion_start=-9, occlusion_height=3.0
                                  ).occluded_range() == (0, 0)
    assert not AugmentParams.identity((10, 4, 4), occlusion_start=3).occluded_rows().any()
