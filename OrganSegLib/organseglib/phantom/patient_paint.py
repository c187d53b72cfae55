"""Paint the patient-like phantom's tissue classes on an axis-aligned grid, deterministically.

Shapes are drawn inside their bounding boxes only (a ``Canvas`` of 1-D coordinate axes), so dozens of
bowel loops and vessel segments cost little. Each shape may overwrite only the classes it is allowed
to (``over``): organs take the visceral fat, vessels run through the liver, bone overrides all.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import anatomy as T
from .anatomy import _body_profile, _paint_skeleton, diaphragm
from .patient import COLLAPSED, CONTRAST_FILLED, FLUID, GAS_FILLED, PatientAnatomy
from .urinary_tract import paint_urinary_tract, psoas_path

_CONTENT = {COLLAPSED: T.GI_WALL, FLUID: T.GI_FLUID, GAS_FILLED: T.GAS, CONTRAST_FILLED: T.ORAL_CONTRAST}
SOFT = (T.FAT, T.MUSCLE)
VESSEL_OVER = (T.FAT, T.MUSCLE, T.LUNG, T.LUNG_VESSEL, T.LIVER, T.PERICARDIAL_FAT, T.HEART, T.PSOAS,
               T.BACK_MUSCLE, T.PANCREAS)


class Canvas:
    """A tissue array (K, J, I) with its 1-D RAS axes x (I,), y (J,), z (K,), painted shape by shape."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, tissue: np.ndarray):
        self.x, self.y, self.z, self.tissue = x, y, z, tissue

    @staticmethod
    def _span(axis, lo, hi):
        idx = np.nonzero((axis >= lo) & (axis <= hi))[0]
        return slice(idx[0], idx[-1] + 1) if idx.size else None

    def put(self, lo, hi, inside, cls: int, over=None) -> None:
        """Set ``cls`` where ``inside(X, Y, Z)`` holds within the box [lo, hi] (mm), on classes in ``over``."""
        sx, sy, sz = (self._span(a, l, h) for a, l, h in zip((self.x, self.y, self.z), lo, hi))
        if sx is None or sy is None or sz is None:
            return
        X, Y, Z = self.x[sx][None, None, :], self.y[sy][None, :, None], self.z[sz][:, None, None]
        mask = np.broadcast_to(inside(X, Y, Z), (Z.shape[0], Y.shape[1], X.shape[2]))
        view = self.tissue[sz, sy, sx]
        if over is not None:
            allowed = np.zeros(T.N_TISSUES, bool)
            allowed[list(over)] = True
            mask = mask & allowed[view]
        view[mask] = cls

    def ellipsoid(self, c, r, cls, over=None, where=None) -> None:
        c, r = np.asarray(c, float), np.asarray(r, float)

        def inside(X, Y, Z):
            m = ((X - c[0]) / r[0]) ** 2 + ((Y - c[1]) / r[1]) ** 2 + ((Z - c[2]) / r[2]) ** 2 <= 1.0
            return m & where(X, Y, Z) if where is not None else m
        self.put(c - r, c + r, inside, cls, over)

    def capsule(self, p0, p1, r0, r1, cls, over=None) -> None:
        """A tube from p0 to p1 whose radius goes linearly from r0 to r1 (rounded ends)."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        L2 = max(float(d @ d), 1e-9)
        rmax = max(r0, r1)

        def inside(X, Y, Z):
            t = np.clip(((X - p0[0]) * d[0] + (Y - p0[1]) * d[1] + (Z - p0[2]) * d[2]) / L2, 0.0, 1.0)
            dist2 = (X - p0[0] - t * d[0]) ** 2 + (Y - p0[1] - t * d[1]) ** 2 + (Z - p0[2] - t * d[2]) ** 2
            return dist2 <= (r0 + (r1 - r0) * t) ** 2
        self.put(np.minimum(p0, p1) - rmax, np.maximum(p0, p1) + rmax, inside, cls, over)

    def tube(self, points, radii, cls, over=None) -> None:
        for n in range(len(points) - 1):
            self.capsule(points[n], points[n + 1], radii[n], radii[n + 1], cls, over)


def paint_patient(p: PatientAnatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray, table: bool = True,
                  urography: bool = False, bladder_contrast: float = 0.0) -> np.ndarray:
    """Tissue classes (K, J, I) of the patient ``p`` at the axes x (I,), y (J,), z (K,) in RAS mm; with
    ``urography`` (the nephrographic and excretory phases) also the calyces, the ureters and the
    bladder's contrast urine (``bladder_contrast``: share of its depth; ``urinary_tract.py``)."""
    a = p.base
    tissue = np.full((z.size, y.size, x.size), T.AIR, dtype=np.uint8)
    cv = Canvas(x, y, z, tissue)
    X, Y, Z = x[None, None, :], y[None, :, None], z[:, None, None]
    la, lb = _body_profile(a, Z)
    if table:
        ty = a.table_y - 0.0008 * X ** 2
        slab = (Y <= ty) & (Y >= ty - 40.0) & (np.abs(X) <= 230.0)
        tissue[np.broadcast_to(slab, tissue.shape)] = T.TABLE_CORE
        tissue[np.broadcast_to(slab & ((Y >= ty - 3.0) | (Y <= ty - 37.0)), tissue.shape)] = T.TABLE_SHELL
    lla, llb = la - p.fat_mm, lb - p.fat_mm                    # lean body (muscle surface)
    pelvis = np.clip((a.femur_z + 120.0 - Z) / 80.0, 0.0, 1.0)  # gluteal muscles thicken the pelvic wall
    wall = p.wall_mm + 25.0 * pelvis
    ell = lambda A, B: (X / A) ** 2 + (Y / B) ** 2 <= 1.0  # noqa: E731
    tissue[np.broadcast_to(ell(la, lb), tissue.shape)] = T.FAT
    tissue[np.broadcast_to(ell(lla, llb), tissue.shape)] = T.MUSCLE
    tissue[np.broadcast_to(ell(lla - wall, llb - wall), tissue.shape)] = T.FAT  # visceral / mediastinal fat
    sy = a.spine_y
    for side in (1.0, -1.0):  # erector spinae beside and behind the spine, the whole trunk long
        cv.put((side * 36.0 - 32.0, sy - 64.0, a.femur_z + 30.0), (side * 36.0 + 32.0, sy - 16.0, 1e4),
               lambda X_, Y_, Z_, s=side: ((X_ - s * 36.0) / 32.0) ** 2 + ((Y_ - sy + 40.0) / 24.0) ** 2 <= 1.0,
               T.BACK_MUSCLE, over=SOFT)
    dia = diaphragm(a, X, Y)
    _paint_chest(cv, p, X, Y, Z, dia)
    below = lambda X_, Y_, Z_: Z_ < diaphragm(a, X_, Y_) - 4.0  # noqa: E731
    _paint_kidneys(cv, p)
    cv.ellipsoid(p.spleen_c, p.spleen_r, T.SPLEEN, over=(T.FAT,), where=below)
    cv.ellipsoid(a.liver_c, a.liver_r, T.LIVER, over=(T.FAT,),
                 where=lambda X_, Y_, Z_: below(X_, Y_, Z_) & (X_ > -60.0 - 0.4 * (Y_ - 20.0)))
    _paint_psoas(cv, p)
    cv.ellipsoid(a.bladder_c, a.bladder_r, T.BLADDER, over=SOFT)
    if urography:
        paint_urinary_tract(cv, p, bladder_contrast)
    _paint_vessels(cv, p)
    if p.gallbladder is not None:
        g = p.gallbladder
        cv.ellipsoid(g[:3], g[3:], T.GALLBLADDER, over=(T.LIVER, T.FAT, T.LIVER_PORTAL))
    _paint_gut(cv, p)
    _paint_skeleton(a, tissue, X, Y, Z, tissue.shape, lla, llb)
    # the neural arch as a ring of bone (pedicles, laminae) around the spinal canal, along the whole spine
    ring = lambda rx, ry: lambda X_, Y_, Z_: (X_ / rx) ** 2 + ((Y_ - sy + 27.0) / ry) ** 2 <= 1.0  # noqa: E731
    zs = (a.femur_z + 40.0, a.dome + 300.0)
    cv.put((-15.0, sy - 39.0, zs[0]), (15.0, sy - 15.0, zs[1]), ring(15.0, 12.0), T.CORTEX,
           over=(T.FAT, T.MUSCLE, T.BACK_MUSCLE, T.PSOAS, T.MARROW))
    cv.put((-9.0, sy - 34.0, zs[0]), (9.0, sy - 20.0, zs[1]), ring(9.0, 7.0), T.SPINAL_CANAL)
    _hollow_cortex(tissue, float(abs(x[1] - x[0])) if x.size > 1 else 1.0, float(abs(y[1] - y[0])) if y.size > 1 else 1.0)
    if not p.arms_up:
        _paint_arms(cv, p, la)
    return tissue


def _hollow_cortex(tissue: np.ndarray, dx: float, dy: float, cortex_mm: float = 1.5) -> None:
    """Cortex more than ``cortex_mm`` inside the bone (in-plane) becomes marrow: the legacy skeleton's
    processes and bars are solid cortex, real ones a thin shell around trabecular bone."""
    rx, ry = max(int(round(cortex_mm / dx)), 1), max(int(round(cortex_mm / dy)), 1)
    gy, gx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    disk = (gx * dx) ** 2 + (gy * dy) ** 2 <= max(cortex_mm, dx, dy) ** 2 + 1e-6
    bone = np.isin(tissue, (T.CORTEX, T.MARROW))
    if not bone.any():
        return
    inner = ndimage.binary_erosion(bone, disk[None], border_value=1)
    tissue[inner & (tissue == T.CORTEX)] = T.MARROW


def _paint_chest(cv: Canvas, p: PatientAnatomy, X, Y, Z, dia) -> None:
    a = p.base
    cx_off = 0.42 * p.lean_a
    for side in (1.0, -1.0):  # lungs (legacy shape, on the lean body), then their vessels
        cx, zc = side * cx_off, a.dome - 20.0
        lung = (((X - cx) / (0.38 * p.lean_a)) ** 2 + ((Y + 5.0) / (0.72 * p.lean_b)) ** 2 +
                ((Z - zc) / (a.lung_apex - zc)) ** 2 <= 1.0) & (Z > dia) & (Z > zc)
        cv.tissue[np.broadcast_to(lung, cv.tissue.shape) & (cv.tissue == T.FAT)] = T.LUNG
    for v in a.vessels:  # the legacy lung vessels: 120 mm segments
        c, d = np.asarray(v[:3]), np.asarray(v[3:6])
        cv.capsule(c - 60.0 * d, c + 60.0 * d, v[6], v[6], T.LUNG_VESSEL, over=(T.LUNG,))
    for v in p.lung_vessels:
        cv.capsule(v[0:3], v[3:6], v[6], v[7], T.LUNG_VESSEL, over=(T.LUNG,))
    c, r = np.asarray(p.heart_c), np.asarray(p.heart_r)
    chest = (T.FAT, T.LUNG, T.LUNG_VESSEL, T.MUSCLE)
    cv.ellipsoid(c, r + 6.0, T.PERICARDIAL_FAT, over=chest)    # pericardial and epicardial fat
    cv.ellipsoid(c, r, T.HEART, over=chest + (T.PERICARDIAL_FAT,))  # myocardium
    inner = lambda X_, Y_, Z_: (((X_ - c[0]) / (r[0] - 9)) ** 2 + ((Y_ - c[1]) / (r[1] - 7)) ** 2  # noqa: E731
                                + ((Z_ - c[2]) / (r[2] - 7)) ** 2 <= 1.0)
    # chambers: left ventricle (left, posterior-inferior), left atrium (posterior, superior), right
    # ventricle (anterior, right), right atrium (right); the septum stays myocardium.
    cv.ellipsoid(c + (-0.3 * r[0], -0.15 * r[1], -0.1 * r[2]), (0.45 * r[0], 0.45 * r[1], 0.55 * r[2]), T.BLOOD_LEFT, (T.HEART,), inner)
    cv.ellipsoid(c + (-0.05 * r[0], -0.6 * r[1], 0.45 * r[2]), (0.45 * r[0], 0.3 * r[1], 0.35 * r[2]), T.BLOOD_LEFT, (T.HEART,), inner)
    cv.ellipsoid(c + (0.2 * r[0], 0.45 * r[1], -0.05 * r[2]), (0.45 * r[0], 0.28 * r[1], 0.5 * r[2]), T.BLOOD_RIGHT, (T.HEART,), inner)
    cv.ellipsoid(c + (0.65 * r[0], 0.05 * r[1], 0.25 * r[2]), (0.3 * r[0], 0.4 * r[1], 0.4 * r[2]), T.BLOOD_RIGHT, (T.HEART,), inner)
    carina = a.dome + 120.0
    cv.put((-8, 12, carina + 12), (8, 28, 1e4), lambda X_, Y_, Z_: X_ ** 2 + (Y_ - 20.0) ** 2 <= 64.0, T.TRACHEA)
    for side in (1.0, -1.0):
        cv.capsule((0, 20, carina + 12), (side * 48, 20, carina), 2.5, 2.5, T.TRACHEA, over=(T.FAT, T.LUNG, T.LUNG_VESSEL))


def _paint_kidneys(cv: Canvas, p: PatientAnatomy) -> None:
    a = p.base
    kc, kr = np.asarray(a.kidney_c), np.asarray(a.kidney_r)
    for side, dz in ((1.0, 0.0), (-1.0, 15.0)):
        c = np.array([side * kc[0], kc[1], kc[2] + dz])
        env = lambda X_, Y_, Z_, c=c: (((X_ - c[0]) / kr[0]) ** 2 + ((Y_ - c[1]) / kr[1]) ** 2  # noqa: E731
                                       + ((Z_ - c[2]) / kr[2]) ** 2 <= 1.0)
        cv.ellipsoid(c, kr, T.KIDNEY, over=(T.FAT, T.MUSCLE))  # cortex
        med = (T.KIDNEY,)
        for n in range(6):  # medullary pyramids in a ring 6-8 mm under the surface
            ang = np.pi * (n / 5.0 - 0.5)
            pc = c + (side * kr[0] * 0.2 * np.cos(ang), 0.0, kr[2] * 0.62 * np.sin(ang))
            pc = pc + (side * 0.25 * kr[0], 0.0, 0.0)
            cv.ellipsoid(pc, (0.32 * kr[0], 0.45 * kr[1], 0.16 * kr[2]), T.KIDNEY_MEDULLA, med, env)
        # renal pelvis (urine) at the medial hilum, opening towards the spine
        cv.ellipsoid(c - (side * 0.4 * kr[0], 0.0, 0.0), (0.38 * kr[0], 0.25 * kr[1], 0.3 * kr[2]),
                     T.RENAL_PELVIS, (T.KIDNEY, T.KIDNEY_MEDULLA, T.FAT))
        hilum = c - (side * 0.9 * kr[0], 0.0, 0.0)
        cv.capsule(c - (side * 0.4 * kr[0], 0.0, 0.0), hilum, 0.25 * kr[1], 0.2 * kr[1], T.FAT, over=(T.KIDNEY,))


def _paint_psoas(cv: Canvas, p: PatientAnatomy) -> None:
    for pts, rad in psoas_path(p).values():
        cv.tube(pts, rad, T.PSOAS, over=(T.FAT,))


def _paint_vessels(cv: Canvas, p: PatientAnatomy) -> None:
    a = p.base
    sy, d, fz = a.spine_y, a.dome, a.femur_z
    hc, hr = np.asarray(p.heart_c), np.asarray(p.heart_r)
    bif = fz + 125.0
    ao_x = -18.0
    # aorta: ascending from the left ventricle, arch, descending in front of the spine, iliac arteries
    asc0 = hc + (-0.1 * hr[0], 0.2 * hr[1], 0.3 * hr[2])
    arch_top = (-5.0, 20.0, d + 150.0)
    pts = [asc0, (asc0[0] + 10.0, 35.0, d + 120.0), arch_top, (ao_x, sy + 30.0, d + 135.0), (ao_x, sy + 32.0, d + 40.0),
           (ao_x + 4.0, sy + 30.0, d - 80.0), (ao_x + 10.0, sy + 30.0, bif)]
    cv.tube(pts, [14.0, 15.0, 13.0, 12.0, 12.0, 10.5, 9.0], T.AORTA, over=VESSEL_OVER)
    for side in (1.0, -1.0):
        cv.tube([(ao_x + 10.0, sy + 30.0, bif), (side * 35.0, sy + 40.0, bif - 50.0), (side * 70.0, sy + 60.0, fz + 15.0)],
                [7.0, 6.5, 6.0], T.AORTA, over=VESSEL_OVER)
        kc = a.kidney_c  # renal arteries and veins
        cv.capsule((ao_x, sy + 30.0, kc[2] + 25.0), (side * kc[0] * 0.75, kc[1], kc[2] + (0 if side > 0 else 15.0)), 3.0, 3.0,
                   T.AORTA, over=VESSEL_OVER)
        cv.capsule((22.0, sy + 34.0, kc[2] + 18.0), (side * kc[0] * 0.75, kc[1] + 6.0, kc[2] + (0 if side > 0 else 15.0)), 4.5, 4.5,
                   T.VENA_CAVA, over=VESSEL_OVER)
        cv.tube([(22.0, sy + 32.0, bif - 10.0), (side * 40.0, sy + 35.0, bif - 55.0), (side * 78.0, sy + 55.0, fz + 15.0)],
                [8.0, 7.5, 7.0], T.VENA_CAVA, over=VESSEL_OVER)
    # inferior vena cava from the right atrium down through the liver's back; superior vena cava above
    ra = hc + (0.7 * hr[0], 0.0, 0.0)
    cv.tube([ra, (22.0, sy + 45.0, d - 20.0), (22.0, sy + 36.0, d - 110.0), (22.0, sy + 32.0, bif - 10.0)],
            [11.0, 12.0, 11.0, 10.0], T.VENA_CAVA, over=VESSEL_OVER)
    cv.capsule(ra + (0.0, 0.0, 0.3 * hr[2]), (22.0, 25.0, d + 190.0), 9.0, 9.0, T.VENA_CAVA, over=VESSEL_OVER)
    # hepatic veins into the IVC (liver label)
    for dx, dy in ((60.0, 10.0), (25.0, 55.0), (-25.0, 45.0)):
        cv.capsule((22.0, sy + 45.0, d - 20.0), (22.0 + dx, sy + 45.0 + dy, d - 55.0), 6.0, 2.5, T.LIVER_VEIN, over=(T.LIVER,))
    # portal venous system: confluence behind the pancreatic neck, portal vein to the hilum, branches
    conf = np.array([5.0, sy + 58.0, a.kidney_c[2] + 35.0])
    hilum = np.array([a.liver_c[0] - 5.0, a.liver_c[1] - 10.0, a.liver_c[2] - 5.0])
    cv.capsule(conf, hilum, 7.5, 7.0, T.PORTAL_VEIN, over=(T.FAT, T.PANCREAS))
    cv.capsule(conf, hilum, 7.5, 7.0, T.LIVER_PORTAL, over=(T.LIVER,))
    for end, r in (((a.liver_c[0] + 45.0, a.liver_c[1] - 5.0, a.liver_c[2] + 10.0), 5.0),
                   ((a.liver_c[0] + 20.0, a.liver_c[1] + 40.0, a.liver_c[2] + 25.0), 4.0),
                   ((a.liver_c[0] - 40.0, a.liver_c[1] + 30.0, a.liver_c[2] + 10.0), 5.0),
                   ((a.liver_c[0] + 30.0, a.liver_c[1] - 30.0, a.liver_c[2] - 30.0), 4.0)):
        cv.capsule(hilum, end, r, 2.0, T.LIVER_PORTAL, over=(T.LIVER,))
    cv.tube([conf, (conf[0] - 40.0, sy + 50.0, conf[2] + 12.0), (p.spleen_c[0] + 15.0, p.spleen_c[1] + 10.0, p.spleen_c[2] - 5.0)],
            [5.0, 4.5, 4.5], T.PORTAL_VEIN, over=(T.FAT,))  # splenic vein
    cv.capsule(conf, (conf[0] + 5.0, sy + 62.0, conf[2] - 90.0), 6.0, 4.5, T.PORTAL_VEIN, over=(T.FAT,))  # SMV
    # pancreas: head by the duodenum, neck over the confluence, body and tail to the splenic hilum
    pr = p.pancreas_r
    cv.tube([(35.0, sy + 62.0, conf[2] - 15.0), (5.0, sy + 72.0, conf[2] + 2.0), (-40.0, sy + 62.0, conf[2] + 14.0),
             (p.spleen_c[0] + 20.0, p.spleen_c[1] + 5.0, p.spleen_c[2] - 5.0)],
            [pr, 0.75 * pr, 0.7 * pr, 0.6 * pr], T.PANCREAS, over=(T.FAT,))


def _paint_gut(cv: Canvas, p: PatientAnatomy) -> None:
    a = p.base
    sc, sr = np.asarray(p.stomach_c), np.asarray(p.stomach_r)
    below = lambda X_, Y_, Z_: Z_ < diaphragm(a, X_, Y_) - 4.0  # noqa: E731
    cv.ellipsoid(sc, sr, T.GI_WALL, over=(T.FAT,), where=below)
    content = _CONTENT[p.stomach_content]
    cv.ellipsoid(sc, sr - 4.0, content, over=(T.GI_WALL,), where=below)
    level = sc[1] + p.stomach_gas * sr[1]  # supine: gas rises anteriorly
    cv.ellipsoid(sc, sr - 4.0, T.STOMACH_GAS, over=(content,), where=lambda X_, Y_, Z_: Y_ > level)
    # colon frame: caecum and ascending (right), transverse (anterior), descending (left), sigmoid, rectum
    sy, fz, lx = a.spine_y, a.femur_z, p.lean_a - p.wall_mm - p.colon_r - 5.0
    tz = a.kidney_c[2] + 10.0
    frame = [(lx * 0.85, sy + 55.0, fz + 70.0), (lx, sy + 40.0, tz - 20.0), (lx * 0.6, 45.0, tz + 15.0),
             (0.0, p.lean_b - p.wall_mm - p.colon_r - 10.0, tz - 5.0), (-lx * 0.6, 40.0, tz + 25.0),
             (-lx, sy + 40.0, tz), (-lx * 0.9, sy + 45.0, fz + 80.0), (-30.0, sy + 70.0, fz + 55.0),
             (0.0, sy + 15.0, fz + 20.0), (0.0, sy + 20.0, fz - 40.0)]
    rc = p.colon_r
    radii = [rc * 1.2, rc, rc, rc * 0.9, rc, rc, rc * 0.85, rc * 0.7, rc * 0.8, rc * 0.7]
    cv.tube(frame, radii, T.GI_WALL, over=(T.FAT,))
    cv.tube(frame, [r - 3.0 for r in radii], T.FECES, over=(T.GI_WALL,))
    for n in range(len(frame) - 1):  # a gas cap in each segment, anterior (upper when supine)
        lvl = 0.5 * (frame[n][1] + frame[n + 1][1]) + p.colon_gas * 0.5 * (radii[n] + radii[n + 1])
        seg = lambda X_, Y_, Z_, lvl=lvl: Y_ > lvl  # noqa: E731
        lo = np.minimum(frame[n], frame[n + 1]) - max(radii[n], radii[n + 1])
        hi = np.maximum(frame[n], frame[n + 1]) + max(radii[n], radii[n + 1])
        cv.put(lo, hi, seg, T.GAS, over=(T.FECES,))
    # duodenum: C-loop around the pancreatic head; small-bowel loops fill the remaining visceral fat
    conf_z = a.kidney_c[2] + 35.0
    cv.tube([(sc[0] + 0.8 * sr[0], sc[1], sc[2] - 0.5 * sr[2]), (45.0, sy + 70.0, conf_z), (55.0, sy + 60.0, conf_z - 40.0),
             (0.0, sy + 55.0, conf_z - 55.0)], [11.0, 12.0, 12.0, 10.0], T.GI_WALL, over=(T.FAT,))
    for (x, y, z, r, content) in p.loops:
        cv.ellipsoid((x, y, z), (r, r, r * 1.3), T.GI_WALL, over=(T.FAT,))
        if content != COLLAPSED:
            cv.ellipsoid((x, y, z), (r - 2.5, r - 2.5, r * 1.3 - 2.5), _CONTENT[content], over=(T.GI_WALL,))


def _paint_arms(cv: Canvas, p: PatientAnatomy, la) -> None:
    a = p.base
    top, elbow, wrist = a.lung_apex - 20.0, a.dome - 170.0, a.femur_z - 10.0
    half_width = float(np.max(la))
    for side in (1.0, -1.0):
        for z0, z1, r_arm, bones in ((top, elbow, 42.0, ((0.0, 11.0),)), (elbow, wrist, 33.0, ((-9.0, 7.0), (9.0, 6.5)))):
            ra = r_arm + p.arm_fat_mm * 0.5
            cx = side * (half_width + 8.0 + ra)
            cv.capsule((cx, -15.0, z0), (cx, -15.0, z1), ra, ra, T.FAT, over=(T.AIR,))
            cv.capsule((cx, -15.0, z0), (cx, -15.0, z1), r_arm - 6.0, r_arm - 6.0, T.MUSCLE, over=(T.FAT,))
            for dx, rb in bones:
                cv.capsule((cx + dx, -15.0, z0), (cx + dx, -15.0, z1), rb, rb, T.CORTEX, over=(T.MUSCLE,))
                cv.capsule((cx + dx, -15.0, z0), (cx + dx, -15.0, z1), rb - 3.0, rb - 3.0, T.MARROW, over=(T.CORTEX,))
