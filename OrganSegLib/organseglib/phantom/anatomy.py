"""Randomised anatomy of the synthetic CT phantom, in RAS millimetres.

``Anatomy.sample(rng)`` draws every shape parameter once (seeded); ``paint(anatomy, X, Y, Z)`` then
deterministically assigns a tissue class to each point of broadcastable coordinate arrays. Shapes are
simple (ellipsoids, tubes, shells) but arranged like a supine adult: +x patient right, +y anterior,
+z superior, z = 0 at the liver dome. Tissue classes map to HU in ``render.py`` and to organ labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue classes (uint8). Order does not matter; paint() decides overrides. The classes from BLOOD_LEFT
# on are painted only by the patient-like preset (patient_paint.py); there HEART is the myocardium and
# KIDNEY the renal cortex. URETER and BLADDER_CONTRAST (the ureters' lumen and the bladder's layer of
# contrast urine) only in the urographic phases (urinary_tract.py).
AIR, FAT, MUSCLE, LUNG, LUNG_VESSEL, CORTEX, MARROW, LIVER, KIDNEY, BLADDER, AORTA, HEART, SPLEEN, \
    DISC, TABLE_CORE, TABLE_SHELL, GAS, TRACHEA, \
    BLOOD_LEFT, BLOOD_RIGHT, VENA_CAVA, PORTAL_VEIN, LIVER_PORTAL, LIVER_VEIN, PANCREAS, GALLBLADDER, \
    GI_WALL, GI_FLUID, ORAL_CONTRAST, FECES, KIDNEY_MEDULLA, RENAL_PELVIS, PERICARDIAL_FAT, PSOAS, \
    BACK_MUSCLE, STOMACH_GAS, SPINAL_CANAL, URETER, BLADDER_CONTRAST = range(39)
N_TISSUES = 39

# Organ label (CT-ORG values) of each tissue class; 0 = background. Vessels inside the liver are liver
# (as in CT-ORG's liver masks); cortex, medulla and pelvis are kidney; the bladder's contrast layer is
# bladder; every other new class (spleen, heart, great vessels, gut, pancreas, gallbladder, muscles,
# ureters) is background: a confounder.
TISSUE_TO_LABEL = np.zeros(N_TISSUES, dtype=np.uint8)
TISSUE_TO_LABEL[[LIVER, LIVER_PORTAL, LIVER_VEIN]] = 1
TISSUE_TO_LABEL[[BLADDER, BLADDER_CONTRAST]] = 2
TISSUE_TO_LABEL[[LUNG, LUNG_VESSEL]] = 3
TISSUE_TO_LABEL[[KIDNEY, KIDNEY_MEDULLA, RENAL_PELVIS]] = 4
TISSUE_TO_LABEL[[CORTEX, MARROW]] = 5

# z ranges (mm) of the fields of view: chest includes the lung bases and the liver dome, the abdomen
# includes the lung bases (as abdominal CTs do) down to the femoral heads.
REGION_Z = {"chest": (-60.0, 250.0), "abdomen": (-335.0, 25.0), "both": (-335.0, 250.0)}


@dataclass(frozen=True)
class Anatomy:
    body_a: float        # lateral semi-axis of the body (mm)
    body_b: float        # anterior-posterior semi-axis
    fat: float           # subcutaneous fat thickness
    spine_y: float       # y of the vertebral body axis
    lung_apex: float     # z of the lung apices
    dome: float          # z of the right diaphragm dome (left is lower)
    lung_ax: float       # lung semi-axes
    lung_ay: float
    liver_c: tuple       # liver centre and semi-axes
    liver_r: tuple
    kidney_c: tuple      # right kidney centre (left is mirrored, a little higher)
    kidney_r: tuple
    bladder_c: tuple
    bladder_r: tuple
    femur_z: float       # z of the femoral head centres
    rib_levels: tuple    # z of each rib pair at the spine
    vessels: tuple       # lung vessels: (x0, y0, z0, dx, dy, dz, radius)
    gas: tuple           # bowel gas bubbles: (x, y, z, r)
    table_y: float       # y of the table top

    @staticmethod
    def sample(rng: np.random.Generator) -> "Anatomy":
        u = rng.uniform
        s = u(0.92, 1.08)
        body_a, body_b = 160.0 * s * u(0.95, 1.05), 110.0 * s * u(0.95, 1.05)
        spine_y = -body_b + 42.0
        dome = u(-5.0, 5.0)
        liver_c = (55.0 + u(-8, 8), 5.0 + u(-8, 8), dome - 65.0 + u(-6, 6))
        liver_r = (85.0 * u(0.88, 1.12), 80.0 * u(0.88, 1.12), 72.0 * u(0.88, 1.12))
        kidney_c = (72.0 + u(-6, 6), spine_y + 18.0 + u(-5, 5), dome - 150.0 + u(-10, 10))
        kidney_r = (24.0 * u(0.85, 1.15), 20.0 * u(0.85, 1.15), 50.0 * u(0.85, 1.15))
        femur_z = -300.0 + u(-8, 8)
        bladder_c = (u(-6, 6), 25.0 + u(-8, 8), femur_z + 22.0 + u(-6, 6))
        bladder_r = (40.0 * u(0.75, 1.25), 32.0 * u(0.75, 1.25), 30.0 * u(0.75, 1.25))
        first_rib = dome - 55.0 + u(-8, 8)
        rib_levels = tuple(first_rib + 24.0 * n for n in range(12))
        vessels = []
        for side in (1.0, -1.0):
            for _ in range(10):
                x0, y0, z0 = side * (body_a * 0.42 + u(-25, 25)), u(-50, 50), dome + u(15, 170)
                d = rng.normal(size=3)
                vessels.append((x0, y0, z0, *(d / np.linalg.norm(d)), u(1.5, 3.5)))
        gas = tuple((u(-90, 60), u(-10, 70), dome + u(-260, -110), u(6, 16)) for _ in range(int(rng.integers(3, 8))))
        return Anatomy(
            body_a=body_a, body_b=body_b, fat=u(10.0, 22.0), spine_y=spine_y, lung_apex=dome + u(215, 245),
            dome=dome, lung_ax=body_a * 0.38 * u(0.92, 1.05), lung_ay=body_b * 0.72 * u(0.92, 1.05),
            liver_c=liver_c, liver_r=liver_r, kidney_c=kidney_c, kidney_r=kidney_r, bladder_c=bladder_c,
            bladder_r=bladder_r, femur_z=femur_z, rib_levels=rib_levels, vessels=tuple(vessels), gas=gas,
            table_y=-body_b * 1.02 - 4.0,
        )


def _ellipsoid(X, Y, Z, c, r):
    return ((X - c[0]) / r[0]) ** 2 + ((Y - c[1]) / r[1]) ** 2 + ((Z - c[2]) / r[2]) ** 2 <= 1.0


def _body_profile(a: Anatomy, Z):
    """Body semi-axes along z: chest widest, waist narrower, pelvis wide again."""
    t = np.clip((Z - (a.dome - 150.0)) / 200.0, -1.0, 1.0)
    lateral = a.body_a * (1.0 - 0.06 * np.cos(np.pi * t))
    return lateral, a.body_b * (1.0 - 0.04 * np.cos(np.pi * t))


def diaphragm(a: Anatomy, X, Y):
    """z of the diaphragm under each (x, y): domes over each lung, the right one higher."""
    xc = np.where(X >= 0, a.body_a * 0.4, -a.body_a * 0.4)
    top = np.where(X >= 0, a.dome, a.dome - 15.0)
    return top - 0.004 * (X - xc) ** 2 - 0.003 * (Y - 10.0) ** 2 - 0.1 * np.maximum(-Y, 0)


def paint(a: Anatomy, X, Y, Z, contrast: bool, table: bool) -> np.ndarray:
    """Tissue class at every point of the broadcast of (X, Y, Z), mm, RAS."""
    shape = np.broadcast_shapes(X.shape, Y.shape, Z.shape)
    tissue = np.full(shape, AIR, dtype=np.uint8)
    la, lb = _body_profile(a, Z)
    rho = np.sqrt((X / la) ** 2 + (Y / lb) ** 2)
    if table:
        ty = a.table_y - 0.0008 * X ** 2
        slab = (Y <= ty) & (Y >= ty - 40.0) & (np.abs(X) <= 230.0)
        shell = slab & ((Y >= ty - 3.0) | (Y <= ty - 37.0))
        tissue[np.broadcast_to(slab, shape)] = TABLE_CORE
        tissue[np.broadcast_to(shell, shape)] = TABLE_SHELL
    body = rho <= 1.0
    tissue[np.broadcast_to(body, shape)] = FAT
    inner = np.sqrt((X / (la - a.fat)) ** 2 + (Y / (lb - a.fat)) ** 2) <= 1.0
    tissue[np.broadcast_to(inner, shape)] = MUSCLE
    dia = diaphragm(a, X, Y)

    def put(mask, cls):
        tissue[np.broadcast_to(mask, shape) & np.broadcast_to(inner, shape)] = cls

    put(_ellipsoid(X, Y, Z, (-30.0, 25.0, a.dome + 70.0), (50.0, 45.0, 55.0)), HEART)
    put(_ellipsoid(X, Y, Z, (-70.0, -30.0, a.dome - 70.0), (35.0, 40.0, 50.0)), SPLEEN)
    put(_ellipsoid(X, Y, Z, a.liver_c, a.liver_r) & (Z < dia - 4.0) & (X > -60.0), LIVER)
    for g in a.gas:
        put(_ellipsoid(X, Y, Z, g[:3], (g[3],) * 3), GAS)
    kc, kr = a.kidney_c, a.kidney_r
    put(_ellipsoid(X, Y, Z, kc, kr), KIDNEY)
    put(_ellipsoid(X, Y, Z, (-kc[0], kc[1], kc[2] + 15.0), kr), KIDNEY)
    put(_ellipsoid(X, Y, Z, a.bladder_c, a.bladder_r), BLADDER)
    aorta_x, aorta_y = -22.0, a.spine_y + 32.0
    put(((X - aorta_x) ** 2 + (Y - aorta_y) ** 2 <= 11.0 ** 2) & (Z > a.femur_z + 100.0) & (Z < a.dome + 120), AORTA)
    # Lungs: two half-ellipsoids above the diaphragm, with vessels; the trachea joins them by thin bronchi.
    for side in (1.0, -1.0):
        cx = side * a.body_a * 0.42
        zc = a.dome - 20.0
        lung = (((X - cx) / a.lung_ax) ** 2 + ((Y + 5.0) / a.lung_ay) ** 2 +
                ((Z - zc) / (a.lung_apex - zc)) ** 2 <= 1.0) & (Z > dia) & (Z > zc)
        lung &= ~_ellipsoid(X, Y, Z, (-30.0, 25.0, a.dome + 70.0), (56.0, 50.0, 60.0))
        put(lung, LUNG)
    lungs = tissue == LUNG
    for v in a.vessels:
        p = np.stack(np.broadcast_arrays(X - v[0], Y - v[1], Z - v[2]))
        along = p[0] * v[3] + p[1] * v[4] + p[2] * v[5]
        dist2 = (p ** 2).sum(axis=0) - along ** 2
        tissue[lungs & (dist2 <= v[6] ** 2) & (np.abs(along) < 60.0)] = LUNG_VESSEL
    carina = a.dome + 120.0
    put((X ** 2 + (Y - 20.0) ** 2 <= 8.0 ** 2) & (Z > carina + 12.0), TRACHEA)
    for side in (1.0, -1.0):  # bronchi: 2.5 mm tubes from the trachea to each lung
        t = (X * side) / 40.0
        on = (t >= 0) & (t <= 1.2)
        put(on & ((Y - 20.0) ** 2 + (Z - (carina + 12.0 - 10.0 * t)) ** 2 <= 2.5 ** 2), TRACHEA)
    _paint_skeleton(a, tissue, X, Y, Z, shape, la, lb)
    return tissue


def _paint_skeleton(a: Anatomy, tissue, X, Y, Z, shape, la, lb) -> None:
    def bone(outer, inner=None):
        tissue[np.broadcast_to(outer, shape)] = CORTEX
        if inner is not None:
            tissue[np.broadcast_to(inner & outer, shape)] = MARROW

    sy = a.spine_y
    period, disc = 30.0, 5.0
    phase = np.mod(Z - a.dome, period)
    in_body = phase > disc
    r2 = ((X / 20.0) ** 2 + ((Y - sy) / 16.0) ** 2)
    sacrum = Z < a.femur_z + 90.0
    vb_outer = (r2 <= 1.0) & (Z < a.dome + 300) & (Z > a.femur_z + 40)
    tissue[np.broadcast_to(vb_outer & ~in_body, shape)] = DISC
    inner2 = ((X / 17.5) ** 2 + ((Y - sy) / 13.5) ** 2 <= 1.0) & (phase > disc + 2.5) & (phase < period - 2.5)
    bone(vb_outer & in_body, inner2)
    arch = (np.abs(X) <= 9.0) & (Y <= sy - 14.0) & (Y >= sy - 42.0) & (Z > a.femur_z + 40)
    transverse = (np.abs(X) <= 42.0) & (np.abs(Y - sy + 20.0) <= 5.0) & (np.abs(phase - 17.0) <= 5.0)
    bone((arch | transverse) & (Z > a.femur_z + 40))
    # Ribs: tubes of radius 5 mm following the body wall from the spine, sloping down anteriorly.
    ra, rb = la * 0.86, lb * 0.84
    ang = np.arctan2(Y / rb, X / ra)
    rho = np.sqrt((X / ra) ** 2 + (Y / rb) ** 2)
    radial = (rho - 1.0) * np.sqrt(ra * rb)
    front = (np.sin(ang) + 1.0) / 2.0
    lateral_ok = ~((np.sin(ang) > 0.55) & (np.abs(X) < 45.0))
    for z0 in a.rib_levels:
        zr = z0 - 35.0 * front
        d2 = radial ** 2 + (Z - zr) ** 2
        bone((d2 <= 5.0 ** 2) & lateral_ok, d2 <= 3.0 ** 2)
        # costovertebral joint: a short bar from the rib to the transverse process
        bone((np.abs(Z - z0) <= 4.0) & (np.abs(Y - sy + 20.0) <= 5.0) & (np.abs(X) <= ra * 0.35))
    # Pelvis: sacrum plate, iliac wings (curved plates), pubic rami, acetabula; femoral heads and shafts.
    fz = a.femur_z
    sac = sacrum & (Z > fz + 5.0) & (np.abs(X) <= 45.0) & (Y <= sy + 12.0) & (Y >= sy - 20.0)
    bone(sac, sac & (np.abs(X) <= 41.0) & (Y <= sy + 8.0) & (Y >= sy - 16.0))
    wing_r = np.sqrt((X / 120.0) ** 2 + ((Y - sy - 35.0) / 80.0) ** 2)
    wing = (np.abs(wing_r - 1.0) * 100.0 <= 5.0) & (Z > fz + 10.0) & (Z < fz + 120.0) & (Y < sy + 75.0)
    bone(wing, np.abs(wing_r - 1.0) * 100.0 <= 2.5)
    for side in (1.0, -1.0):
        hc = (side * 88.0, sy + 55.0, fz)
        dist = np.sqrt((X - hc[0]) ** 2 + (Y - hc[1]) ** 2 + (Z - hc[2]) ** 2)
        bone(dist <= 23.0, dist <= 20.5)
        cup = (dist >= 25.0) & (dist <= 32.0) & (Z > fz - 5.0)
        bone(cup, (dist >= 27.0) & (dist <= 30.0))
        link = (np.abs(X - side * 70.0) <= 7.0) & (Y > sy - 5.0) & (Y < sy + 60.0) & (np.abs(Z - fz - 30.0) <= 12.0)
        bone(link)
        t = np.clip((fz - Z) / 60.0, 0.0, None)
        shaft_x = hc[0] + side * 22.0 * np.minimum(t, 1.0)
        shaft = ((X - shaft_x) ** 2 + (Y - hc[1]) ** 2 <= 13.0 ** 2) & (Z < fz)
        bone(shaft, (X - shaft_x) ** 2 + (Y - hc[1]) ** 2 <= 9.0 ** 2)
    ramus = (np.abs(Z - fz + 5.0) <= 7.0) & (np.abs(Y - sy - 85.0) <= 8.0) & (np.abs(X) <= 75.0)
    bone(ramus, ramus & (np.abs(Z - fz + 5.0) <= 4.0) & (np.abs(Y - sy - 85.0) <= 5.0))
