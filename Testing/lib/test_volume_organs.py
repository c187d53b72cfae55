"""Volume geometry and the organ table."""

import numpy as np
import pytest

from organseglib.errors import GeometryError, InputError, LabelValueError
from organseglib.organs import check_label_values, organ_by_key, organ_table, parse_organ_list
from organseglib.volume import Volume


def rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def test_geometry_is_derived_from_the_matrix():
    d = rotation(30, 10)
    v = Volume.from_geometry(np.zeros((4, 5, 6)), spacing=(0.5, 0.7, 2.0), origin=(1, 2, 3), direction=d)
    assert v.shape == (4, 5, 6)
    np.testing.assert_allclose(v.spacing, (0.5, 0.7, 2.0))
    np.testing.assert_allclose(v.array_spacing, (2.0, 0.7, 0.5))
    np.testing.assert_allclose(v.origin, (1, 2, 3))
    np.testing.assert_allclose(v.direction, d, atol=1e-12)
    # voxel (i, j, k) = (1, 0, 0) is one i-step of 0.5 mm along the first direction column
    np.testing.assert_allclose(v.ijk_to_ras_points([[1, 0, 0]])[0], np.array([1, 2, 3]) + 0.5 * d[:, 0])
    np.testing.assert_allclose(v.ras_to_ijk @ v.ijk_to_ras, np.eye(4), atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 4, 5)])
def test_non_3d_arrays_are_refused(shape):
    with pytest.raises(GeometryError, match="3D"):
        Volume(np.zeros(shape), np.eye(4))


@pytest.mark.parametrize("spacing", [(1, 0, 1), (1, -1, 1)])
def test_bad_spacing_is_refused(spacing):
    with pytest.raises(GeometryError, match="spacing"):
        Volume.from_geometry(np.zeros((2, 2, 2)), spacing=spacing)


def test_matrix_must_be_affine_and_finite():
    m = np.eye(4)
    m[3, 0] = 1
    with pytest.raises(GeometryError, match="affine"):
        Volume(np.zeros((2, 2, 2)), m)
    m = np.eye(4)
    m[0, 0] = np.nan
    with pytest.raises(GeometryError, match="finite"):
        Volume(np.zeros((2, 2, 2)), m)


def test_with_array_keeps_grid_and_checks_shape():
    v = Volume.from_geometry(np.zeros((2, 3, 4)), spacing=(1, 2, 3))
    lab = v.with_array(np.ones((2, 3, 4), np.uint8))
    assert lab.same_grid(v)
    with pytest.raises(GeometryError):
        v.with_array(np.zeros((3, 3, 3)))
    other = Volume.from_geometry(np.zeros((2, 3, 4)), spacing=(1, 2, 3.1))
    with pytest.raises(GeometryError, match="not on the CT's grid"):
        v.require_same_grid(other)


def test_organ_table_follows_ct_org():
    assert {o.key: o.value for o in organ_table()} == {"liver": 1, "bladder": 2, "lungs": 3, "kidneys": 4, "bone": 5}
    assert organ_by_key("Lungs").type == ("SCT", "39607008", "Lung")
    assert organ_by_key("bone").category[1] == "85756007"
    entry = organ_by_key("liver").terminology_entry
    assert entry.split("~")[2] == "SCT^10200004^Liver" and len(entry.split("~")) == 7
    assert [o.key for o in parse_organ_list("bone, lungs,bone")] == ["bone", "lungs"]
    with pytest.raises(InputError, match="unknown organ 'spleen'"):
        parse_organ_list("spleen")


def test_label_values_outside_the_table_are_named():
    check_label_values(np.array([0, 1, 5], np.uint8))
    with pytest.raises(LabelValueError, match=r"\[6, 9\]"):
        check_label_values(np.array([0, 6, 9, 3]))
