"""The urinary tract that the urographic phases show: calyces, ureters, contrast urine in the bladder.

In the nephrographic (about 100 s) and excretory (5-15 min) phases of a CT urogram [Silverman, Caoili in
``hu_table``] the collecting system fills: first with urine, then with excreted contrast, from the
calyces through the renal pelvis and down each ureter into the bladder, where contrast urine either
mixes through or, heavier than urine, forms a layer on the dependent (posterior, supine) wall. So in
those phases the patient-like phantom also has

* **calyces**: short tubes (2 mm to 1.5 mm radius) from the renal pelvis towards each pyramid's tip,
  painted as the pelvis (kidney label, as the pelvis; CT-ORG's kidney masks hold the collecting system);
* **ureters**: 2.5 mm-radius tubes from the renal pelvis out through the hilum, down the anterior
  surface of the psoas, over the pelvic brim and along the pelvic side wall into the bladder's
  posterolateral base (label background: the ureter is none of the five organs);
* **contrast urine** in the bladder (excretory phase; ``PatientParams.bladder_contrast``): the part of
  the bladder within that share of its depth from the dependent wall (bladder label).

The other phases leave them out, so that their phantoms are those of earlier seeds: the collapsed
ureter of those phases is a few millimetres of soft tissue in fat.
"""

from __future__ import annotations

import numpy as np

from . import anatomy as T

UROGRAPHIC_PHASES = ("nephrographic", "excretory")
URETER_RADIUS_MM = 2.5  # a distended ureter's lumen is 3-6 mm across
URETER_OVER = (T.FAT, T.MUSCLE, T.PSOAS)


def psoas_path(p) -> dict:
    """Per side (``1.0`` right, ``-1.0`` left) the psoas centre line and radii: ``{side: (points, radii)}``."""
    a = p.base
    sy, top, fz = a.spine_y, a.kidney_c[2] + 45.0, a.femur_z
    out = {}
    for side in (1.0, -1.0):
        pts = [(side * 22.0, sy + 2.0, top), (side * 30.0, sy + 5.0, top - 60.0), (side * 45.0, sy + 15.0, fz + 90.0),
               (side * 62.0, sy + 40.0, fz + 40.0), (side * 72.0, sy + 62.0, fz)]
        rad = [6.0, 0.6 * p.psoas_r, p.psoas_r, 0.85 * p.psoas_r, 0.6 * p.psoas_r]
        out[side] = (pts, rad)
    return out


def kidney_centres(p) -> dict:
    """Centre of each kidney, ``{side: (x, y, z)}`` (the left one 15 mm higher)."""
    kc = p.base.kidney_c
    return {side: np.array([side * kc[0], kc[1], kc[2] + dz]) for side, dz in ((1.0, 0.0), (-1.0, 15.0))}


def _on_psoas(pts, rad, z: float, side: float, gap_mm: float = 3.0) -> np.ndarray:
    """The point on the anterior-medial surface of the psoas at height ``z`` (``gap_mm`` outside it)."""
    zs = np.array([q[2] for q in pts])
    order = np.argsort(zs)
    x = np.interp(z, zs[order], np.array([q[0] for q in pts])[order])
    y = np.interp(z, zs[order], np.array([q[1] for q in pts])[order])
    r = np.interp(z, zs[order], np.array(rad)[order])
    d = np.array([-side * 0.45, 0.9])  # anterior, a little medial
    d /= np.linalg.norm(d)
    return np.array([x + d[0] * (r + gap_mm), y + d[1] * (r + gap_mm), z])


def ureter_points(p) -> dict:
    """Each ureter's centre line, ``{side: [points]}`` (RAS mm): renal pelvis, hilum, along the psoas,
    over the pelvic brim, down the side wall, into the bladder's posterolateral base."""
    a = p.base
    kr, fz = np.asarray(a.kidney_r), a.femur_z
    bc, br = np.asarray(a.bladder_c), np.asarray(a.bladder_r)
    psoas = psoas_path(p)
    out = {}
    for side, c in kidney_centres(p).items():
        pts, rad = psoas[side]
        pelvis = c - (side * 0.4 * kr[0], 0.0, 0.0)
        hilum = c - (side * 1.05 * kr[0], -4.0, 0.35 * kr[2])
        below = _on_psoas(pts, rad, c[2] - 0.9 * kr[2] - 10.0, side)
        mid = _on_psoas(pts, rad, 0.5 * (below[2] + fz + 95.0), side)
        brim = _on_psoas(pts, rad, fz + 95.0, side)
        wall = np.array([side * 50.0, a.spine_y + 45.0, fz + 48.0])
        entry = bc + (side * 0.45 * br[0], -0.75 * br[1], -0.35 * br[2])
        out[side] = [pelvis, hilum, below, mid, brim, wall, entry]
    return out


def paint_urinary_tract(cv, p, bladder_contrast: float = 0.0) -> None:
    """Calyces, ureters and (``bladder_contrast`` > 0) contrast urine in the bladder, on ``cv`` (a
    ``patient_paint.Canvas``): after the kidneys, psoas and bladder, before the vessels and the gut."""
    a = p.base
    kr = np.asarray(a.kidney_r)
    for side, c in kidney_centres(p).items():
        pelvis = c - (side * 0.4 * kr[0], 0.0, 0.0)
        for n in range(6):  # the pyramids' positions in patient_paint._paint_kidneys
            ang = np.pi * (n / 5.0 - 0.5)
            tip = c + (side * kr[0] * 0.2 * np.cos(ang), 0.0, kr[2] * 0.62 * np.sin(ang)) + (side * 0.25 * kr[0], 0.0, 0.0)
            cv.capsule(pelvis, pelvis + 0.6 * (tip - pelvis), 2.0, 1.5, T.RENAL_PELVIS,
                       over=(T.KIDNEY, T.KIDNEY_MEDULLA, T.FAT))
    for side, pts in ureter_points(p).items():
        cv.tube(pts, [URETER_RADIUS_MM] * len(pts), T.URETER, over=URETER_OVER)
    if bladder_contrast > 0:
        bc, br = np.asarray(a.bladder_c), np.asarray(a.bladder_r)
        level = bc[1] - br[1] + 2.0 * br[1] * bladder_contrast  # supine: the posterior wall is dependent
        cv.ellipsoid(bc, br, T.BLADDER_CONTRAST, over=(T.BLADDER,), where=lambda X, Y, Z: Y <= level)


__all__ = ["UROGRAPHIC_PHASES", "URETER_RADIUS_MM", "kidney_centres", "paint_urinary_tract", "psoas_path",
           "ureter_points"]
