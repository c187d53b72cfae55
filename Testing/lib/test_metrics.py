"""Metrics on hand-worked cubes and spheres, spacing-aware, with explicit empty cases."""

import math

import numpy as np
import pytest

from organseglib.metrics import dice, evaluate_labels, format_table, score_masks, scores_to_json
from organseglib.volume import Volume


def cube(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_overlapping_cubes_by_hand():
    p = cube((8, 8, 8), (2, 2, 2), (4, 4, 4))      # 8 voxels
    r = cube((8, 8, 8), (3, 2, 2), (5, 4, 4))      # shifted one voxel along axis 0: overlap 4
    s = score_masks(p, r, spacing=(2.0, 1.0, 1.0))
    assert s.dice == pytest.approx(2 * 4 / 16)
    assert s.jaccard == pytest.approx(4 / 12) and s.voe == pytest.approx(8 / 12)
    assert s.rvd == 0.0
    # all 8 voxels of each 2-voxel cube are surface; 4 of each lie on the other's surface, 4 are one
    # axis-0 step (2 mm) away
    assert s.assd_mm == pytest.approx(1.0) and s.mssd_mm == pytest.approx(2.0)
    assert s.rmssd_mm == pytest.approx(math.sqrt(2.0))
    assert s.pred_ml == pytest.approx(8 * 2 / 1000)


def test_single_voxels_apart():
    p, r = np.zeros((1, 1, 9), bool), np.zeros((1, 1, 9), bool)
    p[0, 0, 1], r[0, 0, 4] = True, True
    s = score_masks(p, r, spacing=(1.0, 1.0, 2.5))
    assert s.dice == 0.0
    assert s.assd_mm == s.mssd_mm == s.rmssd_mm == pytest.approx(7.5)


def test_concentric_spheres_surface_distance_is_the_radius_gap():
    g = np.mgrid[:61, :61, :61] - 30
    d = np.sqrt((g ** 2).sum(0))
    s = score_masks(d <= 12, d <= 20, spacing=(1.0, 1.0, 1.0))
    assert s.assd_mm == pytest.approx(8.0, abs=0.7)
    assert s.rvd == pytest.approx((12 / 20) ** 3 - 1, abs=0.03)


def test_empty_cases_are_explicit():
    z, one = np.zeros((4, 4, 4), bool), cube((4, 4, 4), (1, 1, 1), (2, 2, 2))
    both = score_masks(z, z, (1, 1, 1))
    assert both.status == "both empty" and both.dice == 1.0 and both.assd_mm == 0.0
    miss = score_masks(z, one, (1, 1, 1))
    assert miss.status == "prediction empty" and miss.dice == 0.0 and math.isinf(miss.assd_mm)
    extra = score_masks(one, z, (1, 1, 1))
    assert extra.status == "reference empty" and math.isinf(extra.rvd)
    assert '"assd_mm": null' in scores_to_json([miss])
    assert dice(z, z) == 1.0


def test_evaluate_labels_per_organ():
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[1:3, 1:3, 1:3] = 1
    ref[4:6, 4:6, 4:6] = 5
    pred = ref.copy()
    pred[4:6, 4:6, 4:6] = 0
    v = Volume.from_geometry(ref, spacing=(1, 1, 1))
    scores = {s.organ: s for s in evaluate_labels(v.with_array(pred), v)}
    assert scores["Liver"].dice == 1.0 and scores["Bone"].status == "prediction empty"
    assert scores["Lungs"].status == "both empty"
    assert "Liver" in format_table(list(scores.values()))
