"""The patient-like phantom preset (realism="patient", issue 11): structures, labels, HU per phase,
correlated noise, slice thickness, field of view and truncation, determinism; the legacy default kept."""

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from organseglib.errors import InputError
from organseglib.phantom import HU_TABLE, PHASES, PatientParams, ScanParams, make_phantom, table_hu
from organseglib.phantom import anatomy as T
from organseglib.phantom.hu_table import DEFAULT_FIXED_SD, ENHANCEMENT_SD_FRACTION, FIXED_SD
from organseglib.phantom.patient import CONTRAST_FILLED, sample_hu
from organseglib.phantom.scanner import correlated_noise, scanner_blur, slice_kernel

CONFOUNDERS = [T.SPLEEN, T.HEART, T.BLOOD_LEFT, T.BLOOD_RIGHT, T.PERICARDIAL_FAT, T.AORTA, T.VENA_CAVA,
               T.PORTAL_VEIN, T.PANCREAS, T.GI_WALL, T.FECES, T.PSOAS, T.BACK_MUSCLE]


def _params(seed, phase="portal", **scan_changes):
    """A patient and a whole-trunk scan that sees all of it (no truncation), noise-free unless changed."""
    rng = np.random.default_rng([seed, 11])
    patient = PatientParams.sample(rng, phase)
    scan = ScanParams(z_range=(-345.0, 255.0), fov_mm=520.0, centre_y=-15.0, slice_mm=3.0, psf_mm=0.5,
                      noise_sd=0.0, noise_fc=0.4, noise_seed=seed)
    return patient, replace(scan, **scan_changes)


@pytest.fixture(scope="module")
def whole_trunk():
    patient, scan = _params(5, "portal")
    return make_phantom(5, "both", "small", realism="patient", patient=patient, scan=scan)


def test_labels_are_ct_org_values_only():
    for seed, region in ((0, "both"), (1, "any"), (2, "slab"), (3, "chest")):
        p = make_phantom(seed, region, "tiny", realism="patient")
        assert p.labels.array.dtype == np.uint8
        assert set(np.unique(p.labels.array)) <= {0, 1, 2, 3, 4, 5}
        np.testing.assert_array_equal(p.labels.array, T.TISSUE_TO_LABEL[p.tissue])


@pytest.mark.slow
def test_every_structure_is_present_and_confounders_are_background(whole_trunk):
    p = whole_trunk
    t, lab = p.tissue, p.labels.array
    present = set(np.unique(t))
    wanted = CONFOUNDERS + [T.LIVER, T.LIVER_PORTAL, T.LIVER_VEIN, T.KIDNEY, T.KIDNEY_MEDULLA, T.RENAL_PELVIS,
                            T.BLADDER, T.LUNG, T.LUNG_VESSEL, T.CORTEX, T.MARROW, T.FAT, T.MUSCLE, T.TRACHEA]
    missing = [c for c in wanted if c not in present]
    assert not missing, f"tissue classes missing: {missing}"
    a = p.patient.anatomy
    assert (T.GALLBLADDER in present) == (a.gallbladder is not None)
    assert any(c in present for c in (T.GI_FLUID, T.GAS, T.ORAL_CONTRAST))  # bowel contents
    if a.stomach_content == CONTRAST_FILLED:
        assert T.ORAL_CONTRAST in present
    for c in CONFOUNDERS + [T.GALLBLADDER, T.GI_FLUID, T.GAS, T.ORAL_CONTRAST, T.STOMACH_GAS]:
        assert not lab[t == c].any(), f"confounder {c} carries an organ label"
    for c in (T.KIDNEY, T.KIDNEY_MEDULLA, T.RENAL_PELVIS):  # kidney = cortex + medulla + pelvis
        assert (lab[t == c] == 4).all()
    assert (lab[t == T.LIVER_PORTAL] == 1).all() and (lab[t == T.LIVER_VEIN] == 1).all()
    # anatomy: spleen on the patient's left (x < 0, i.e. high i), liver on the right, kidneys on both sides
    i_of = lambda c: np.nonzero(t == c)[2].mean()  # noqa: E731
    assert i_of(T.SPLEEN) > t.shape[2] / 2 > i_of(T.LIVER)
    kid = np.nonzero(lab == 4)[2]
    assert (kid < t.shape[2] / 2).sum() > 100 and (kid > t.shape[2] / 2).sum() > 100


def test_bladder_filling_and_habitus_vary():
    vols, fats = [], []
    for seed in range(8):
        patient, _ = _params(seed)
        a = patient.anatomy
        vols.append(np.prod(a.base.bladder_r))
        fats.append(a.fat_mm)
    assert max(vols) > 3 * min(vols)
    assert min(fats) >= 5.0 and max(fats) <= 60.0 and max(fats) > 1.8 * min(fats)


@pytest.mark.slow
def test_subcutaneous_fat_has_the_sampled_thickness(whole_trunk):
    p = whole_trunk
    a = p.patient.anatomy
    m = p.ct.ijk_to_ras
    z = m[2, 2] * np.arange(p.ct.shape[0]) + m[2, 3]
    k = int(np.argmin(np.abs(z - (a.base.dome - 150.0))))
    j = int(np.argmin(np.abs(m[1, 1] * np.arange(p.ct.shape[1]) + m[1, 3])))  # y = 0 row: flanks
    x = m[0, 0] * np.arange(p.ct.shape[2]) + m[0, 3]
    row = np.where(np.abs(x) <= a.lean_a + a.fat_mm + 4.0, p.tissue[k, j], T.AIR)  # the trunk, not the arms
    inside = np.nonzero(row != T.AIR)[0]
    first_muscle = np.nonzero(np.isin(row, [T.MUSCLE, T.BACK_MUSCLE]))[0][0]
    fat_mm = (first_muscle - inside[0]) * p.ct.array_spacing[2]
    assert abs(fat_mm - a.fat_mm) <= 2 * p.ct.array_spacing[2]


def test_sampled_hu_medians_follow_the_table():
    """Over many patients, each tissue's sampled median HU is the table's value for the phase."""
    for phase in PHASES:
        rng = np.random.default_rng(123)
        draws = np.array([sample_hu(rng, phase) for _ in range(200)])
        for cls in HU_TABLE:
            want = table_hu(cls, phase)
            sd = FIXED_SD.get(cls, DEFAULT_FIXED_SD) + ENHANCEMENT_SD_FRACTION * abs(want - HU_TABLE[cls][0])
            got = float(np.median(draws[:, cls]))
            assert abs(got - want) <= 0.35 * sd + 1.0, f"tissue {cls} in {phase}: median {got:.1f}, table {want}"


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
def test_rendered_hu_medians_match_the_patient_and_the_table(phase):
    patient, scan = _params(2, phase, z_range=(-250.0, 100.0))
    p = make_phantom(2, "both", "small", realism="patient", patient=patient, scan=scan)
    big = [T.LIVER, T.SPLEEN, T.FAT, T.BLADDER, T.BACK_MUSCLE, T.LUNG, T.AORTA]
    for cls in big:
        m = ndimage.binary_erosion(p.tissue == cls, iterations=1)
        if m.sum() < 20:
            continue
        got = float(np.median(p.ct.array[m]))
        assert abs(got - patient.hu[cls]) <= 8.0, f"{phase} tissue {cls}: rendered {got:.0f}, sampled {patient.hu[cls]:.0f}"
        enh = abs(table_hu(cls, phase) - HU_TABLE[cls][0])
        tol = 3 * (FIXED_SD.get(cls, DEFAULT_FIXED_SD) + ENHANCEMENT_SD_FRACTION * enh) + 10.0
        assert abs(got - table_hu(cls, phase)) <= tol


def test_phases_enhance_as_on_real_scans():
    hu = {ph: np.array(sample_hu(np.random.default_rng(0), ph)) for ph in PHASES}
    assert hu["arterial"][T.AORTA] > hu["portal"][T.AORTA] + 150 > hu["none"][T.AORTA] + 200
    assert hu["portal"][T.LIVER] > hu["arterial"][T.LIVER] > hu["none"][T.LIVER]
    assert hu["arterial"][T.KIDNEY] > hu["arterial"][T.KIDNEY_MEDULLA] + 50   # corticomedullary phase
    assert hu["portal"][T.PORTAL_VEIN] > hu["portal"][T.LIVER]


def test_slice_kernel_hand_worked():
    np.testing.assert_allclose(slice_kernel(0.6, 3.0), [1.0])
    np.testing.assert_allclose(slice_kernel(5.0, 1.0), [0.2] * 5)
    np.testing.assert_allclose(slice_kernel(3.0, 2.0), [1 / 6, 2 / 3, 1 / 6])


def test_slice_thickness_is_honoured_on_an_edge():
    step = np.zeros((21, 4, 4), np.float32)
    step[10:] = 100.0
    out = scanner_blur(step.copy(), (1.0, 1.0, 1.0), psf_mm=0.0, slice_mm=5.0)[:, 2, 2]
    # a 5 mm box over 1 mm voxels averages voxels k-2..k+2: the edge at k = 10 rises in steps of 20 %
    # from k = 7 (none of it) to k = 12 (all of it)
    np.testing.assert_allclose(out[7:13], [0, 20, 40, 60, 80, 100], atol=1e-3)
    thin = scanner_blur(step.copy(), (1.0, 1.0, 1.0), psf_mm=0.0, slice_mm=0.6)[:, 2, 2]
    np.testing.assert_allclose(thin, step[:, 2, 2], atol=1e-3)


@pytest.mark.slow
def test_thick_slices_smooth_the_rendered_phantom_along_z():
    patient, scan = _params(1, "none", z_range=(-160.0, -100.0))
    edges = {}
    for mm in (0.6, 5.0):
        p = make_phantom(1, "abdomen", "small", spacing=(3.0, 3.0, 1.0), realism="patient", patient=patient,
                         scan=replace(scan, slice_mm=mm))
        edges[mm] = float((np.diff(p.ct.array, axis=0) ** 2).mean())  # edge energy: h^2/n for a ramp n voxels long
    assert edges[5.0] < 0.5 * edges[0.6]


def test_noise_is_correlated_with_the_requested_sd():
    noise = correlated_noise((24, 128, 128), (0.8, 0.8, 1.0), sd=20.0, fc=0.35, slice_mm=3.0, seed=3)
    assert abs(noise.std() - 20.0) < 0.5
    r = noise - noise.mean()
    lag_i = float((r[:, :, 1:] * r[:, :, :-1]).mean() / r.var())
    lag_k = float((r[1:] * r[:-1]).mean() / r.var())
    assert lag_i > 0.2 and lag_k > 0.3
    # not white: the spectrum is low at f -> 0 (ramp) and rises towards mid frequencies
    spec = (np.abs(np.fft.fft2(r, axes=(1, 2))) ** 2).mean(axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128, 0.8), np.fft.fftfreq(128, 0.8), indexing="ij"))
    assert spec[(f > 0.15) & (f < 0.3)].mean() > 2.0 * spec[(f > 0) & (f < 0.04)].mean()
    white = np.random.default_rng(0).standard_normal((24, 128, 128))
    assert abs(float((white[:, :, 1:] * white[:, :, :-1]).mean())) < 0.02


@pytest.mark.slow
def test_rendered_noise_has_the_requested_sd():
    patient, scan = _params(4, "portal", z_range=(-130.0, -110.0))
    spacing = (1.5, 1.5, 2.0)
    clean = make_phantom(4, "abdomen", "small", spacing=spacing, realism="patient", patient=patient, scan=scan)
    noisy = make_phantom(4, "abdomen", "small", spacing=spacing, realism="patient", patient=patient,
                         scan=replace(scan, noise_sd=18.0))
    body = (clean.ct.array > -900) & (clean.ct.array < 1000)
    diff = (noisy.ct.array - clean.ct.array)[body]
    assert abs(diff.std() - 18.0) < 1.5
    d = noisy.ct.array - clean.ct.array
    both = body[:, :, 1:] & body[:, :, :-1]
    assert (d[:, :, 1:] * d[:, :, :-1])[both].mean() / diff.var() > 0.05


@pytest.mark.slow
def test_truncation_cuts_the_body_at_the_reconstruction_circle():
    patient, scan = _params(6, "none", z_range=(-200.0, -100.0))
    width = 2 * (patient.anatomy.lean_a + patient.anatomy.fat_mm)
    p = make_phantom(6, "abdomen", "small", realism="patient", patient=patient, scan=replace(scan, fov_mm=0.8 * width))
    ct, lab = p.ct.array, p.labels.array
    m = p.ct.ijk_to_ras
    x = m[0, 0] * np.arange(ct.shape[2]) + m[0, 3]
    y = m[1, 1] * np.arange(ct.shape[1]) + m[1, 3]
    rr = np.hypot(x[None, :], y[:, None] - p.scan.centre_y)
    outside, rim = rr > p.scan.fov_mm / 2, (rr <= p.scan.fov_mm / 2) & (rr > p.scan.fov_mm / 2 - 6.0)
    assert (ct[:, outside] == -1024).all() and not lab[:, outside].any()
    assert (ct[:, rim] > -500).mean() > 0.3  # the body reaches the edge of the field of view: cut
    full = make_phantom(6, "abdomen", "small", realism="patient", patient=patient, scan=scan)
    assert (full.ct.array > -500).sum() > (ct > -500).sum() * 1.1


def test_fields_of_view_and_slice_thickness_are_sampled_in_range():
    rng = np.random.default_rng(0)
    scans = [ScanParams.sample(rng, "any") for _ in range(200)]
    lengths = [s.z_range[1] - s.z_range[0] for s in scans]
    assert min(lengths) < 100 and max(lengths) > 550            # slabs to chest-abdomen-pelvis
    thick = [s.slice_mm for s in scans]
    assert 0.6 <= min(thick) < 1.0 and 4.0 < max(thick) <= 5.0
    p = make_phantom(0, "abdomen", "small", realism="patient", slice_mm=2.5)
    assert p.scan.slice_mm == 2.5


@pytest.mark.slow
def test_arms_down_add_tissue_beside_the_trunk():
    patient, scan = _params(7, "none", z_range=(-150.0, -100.0), fov_mm=700.0)
    up = make_phantom(7, "abdomen", "small", realism="patient", scan=scan,
                      patient=replace(patient, anatomy=replace(patient.anatomy, arms_up=True)))
    down = make_phantom(7, "abdomen", "small", realism="patient", scan=scan,
                        patient=replace(patient, anatomy=replace(patient.anatomy, arms_up=False)))
    m = up.ct.ijk_to_ras
    x = m[0, 0] * np.arange(up.ct.shape[2]) + m[0, 3]
    beside = np.abs(x) > patient.anatomy.lean_a + patient.anatomy.fat_mm + 10.0
    assert not (up.tissue[:, :, beside] == T.MUSCLE).any()
    assert (down.tissue[:, :, beside] == T.MUSCLE).sum() > 100
    assert (down.labels.array[:, :, beside] == 5).any()      # humerus / forearm bones are bone


def test_same_seed_same_phantom_other_seed_other_phantom():
    a = make_phantom(3, "any", "tiny", realism="patient")
    b = make_phantom(3, "any", "tiny", realism="patient")
    c = make_phantom(4, "any", "tiny", realism="patient")
    assert a.patient == b.patient and a.scan == b.scan
    np.testing.assert_array_equal(a.ct.array, b.ct.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert a.patient != c.patient


def test_bad_options():
    with pytest.raises(InputError, match="realism"):
        make_phantom(0, "abdomen", "tiny", realism="photo")
    with pytest.raises(InputError, match="phase"):
        make_phantom(0, "abdomen", "tiny", realism="patient", phase="delayed")
    with pytest.raises(InputError, match="region"):
        make_phantom(0, "head", "tiny", realism="patient")
    with pytest.raises(InputError, match="region"):
        make_phantom(0, "slab", "tiny")  # slabs are the patient preset's
    with pytest.raises(InputError, match="z_range"):
        ScanParams(z_range=(10.0, 0.0), fov_mm=400, centre_y=0, slice_mm=1, psf_mm=0.5, noise_sd=10,
                   noise_fc=0.4, noise_seed=0)


def test_legacy_default_is_unchanged():
    """The default preset renders as RENDER_VERSION 2 did (the demo model and tests depend on it)."""
    p = make_phantom(0, "chest", "tiny")
    assert hashlib.sha256(p.labels.array.tobytes()).hexdigest()[:16] == "24821dee31177125"
    assert p.tissue is None and p.patient is None
    q = make_phantom(0, "both", "tiny")
    assert hashlib.sha256(q.labels.array.tobytes()).hexdigest()[:16] == "3ef782a814b04ee4"


@pytest.mark.slow
def test_training_code_can_use_the_patient_preset():
    from organseglib.training.dataset import phantom_cases

    cases = phantom_cases([0, 1], region="any", realism="patient")
    for case in cases:
        assert case.image.dtype == np.float32 and case.image.shape == case.labels.shape
        assert case.labels.max() <= 5
