"""The patient-like phantom's parameters: anatomy, contrast phase and HU, sampled once from a seed.

``PatientParams.sample(rng, phase=None)`` draws everything random about the patient (shapes, habitus,
arms, gut contents, bladder filling, contrast phase, each tissue's HU around ``hu_table``);
``patient_paint.paint_patient`` and ``render.render_patient`` are deterministic given it. The legacy
``Anatomy`` supplies the skeleton, lungs, liver, kidneys and bladder positions; this adds the organs a
network must learn to reject. Coordinates: RAS mm, z = 0 at the liver dome (as ``anatomy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..errors import InputError
from . import anatomy as T
from .anatomy import Anatomy
from .hu_table import (ARTERIAL_SPLEEN_TEXTURE_SD, DEFAULT_FIXED_SD, DERIVED, ENHANCEMENT_SD_FRACTION, FIXED_SD,
                       HU_TABLE, PHASES, SAMPLED_PHASES, TEXTURE_SD, UNSPREAD)

# Bowel loop contents (codes in PatientAnatomy.loops).
COLLAPSED, FLUID, GAS_FILLED, CONTRAST_FILLED = range(4)


@dataclass(frozen=True)
class PatientAnatomy:
    base: Anatomy          # skeleton, lungs, liver, kidneys, bladder (legacy shapes; body = lean body + fat)
    fat_mm: float          # subcutaneous fat thickness (habitus), 5-60 mm
    lean_a: float          # lateral / anterior-posterior semi-axes of the lean body (muscle surface)
    lean_b: float
    wall_mm: float         # abdominal and chest wall muscle thickness
    arms_up: bool          # arms above the head (out of the field) or down along the trunk
    arm_fat_mm: float
    heart_c: tuple         # heart centre and semi-axes (myocardium outer surface)
    heart_r: tuple
    spleen_c: tuple
    spleen_r: tuple
    stomach_c: tuple
    stomach_r: tuple
    stomach_gas: float     # air-fluid level in the stomach: fraction of its AP semi-axis (−1 empty of gas .. 1 all gas)
    stomach_content: int   # FLUID or CONTRAST_FILLED (or COLLAPSED: food-like)
    loops: tuple           # small-bowel loops: (x, y, z, r, content)
    colon_r: float
    colon_gas: float       # air-fluid level in the colon (fraction of radius)
    gallbladder: Optional[tuple]  # (x, y, z, rx, ry, rz) or None (cholecystectomy)
    pancreas_r: float      # radius of the pancreatic head (body and tail taper)
    psoas_r: float         # maximal psoas radius
    bladder_fill: float    # bladder semi-axes scale (0.35 nearly empty .. 1.3 full)
    lung_vessels: tuple = ()  # pulmonary vessel tree: (x0, y0, z0, x1, y1, z1, r0, r1) segments

    @staticmethod
    def sample(rng: np.random.Generator) -> "PatientAnatomy":
        u = rng.uniform
        base = Anatomy.sample(rng)
        fat = float(np.clip(rng.lognormal(np.log(18.0), 0.55), 5.0, 60.0))
        lean_a, lean_b = base.body_a - base.fat, base.body_b - base.fat
        # The vertebral body sits ~65 mm in front of the back's muscle surface (erector spinae between).
        spine_y = -lean_b + 65.0
        fill = u(0.35, 1.3)
        base = replace(base, spine_y=spine_y, body_a=lean_a + fat, body_b=lean_b + fat, fat=fat,
                       bladder_r=tuple(r * fill for r in base.bladder_r),
                       bladder_c=(base.bladder_c[0], spine_y + 70.0 + u(-8, 8), base.bladder_c[2] + 10.0 * (fill - 0.8)),
                       kidney_c=(base.kidney_c[0], spine_y + 15.0 + u(-5, 5), base.kidney_c[2]),
                       table_y=-(lean_b + fat) * 1.02 - 4.0)
        d = base.dome
        hs = u(0.9, 1.1)
        oral = u() < 0.35
        loops = []
        for _ in range(int(rng.integers(130, 200))):
            r = u(8.0, 15.0)
            x = u(-lean_a + 40.0, lean_a - 40.0)
            y = u(spine_y + 25.0, lean_b - 25.0)
            z = u(base.femur_z + 55.0, d - 110.0)
            p = rng.uniform()
            content = (CONTRAST_FILLED if oral and p < 0.45 else GAS_FILLED if p > 0.85
                       else COLLAPSED if p > 0.7 else FLUID)
            loops.append((x, y, z, r, content))
        gb = None
        if u() < 0.88:
            lc, lr = base.liver_c, base.liver_r
            gb = (lc[0] - 5.0 + u(-8, 8), lc[1] + 0.45 * lr[1], lc[2] - 0.55 * lr[2] + u(-5, 5),
                  14.0 * u(0.7, 1.2), 14.0 * u(0.7, 1.2), 32.0 * u(0.7, 1.2))
        ss = u(0.75, 1.25)
        vessels = []  # pulmonary arteries and veins: from each hilum outwards, two generations, tapering
        for side in (1.0, -1.0):
            hilum = np.array([side * 0.3 * lean_a, 0.0, d + 75.0])
            for _ in range(14):
                v = rng.normal(size=3) * (0.6, 1.0, 1.4) + (side * 0.8, 0.0, 0.0)
                v /= np.linalg.norm(v)
                p1 = hilum + v * u(45.0, 80.0)
                r1 = u(2.5, 4.0)
                vessels.append((*hilum, *p1, u(5.0, 7.0), r1))
                for _ in range(3):
                    w = v + rng.normal(size=3) * 0.6
                    w /= np.linalg.norm(w)
                    vessels.append((*p1, *(p1 + w * u(40.0, 80.0)), r1 * 0.8, u(0.8, 1.5)))
        return PatientAnatomy(
            base=base, fat_mm=fat, lean_a=lean_a, lean_b=lean_b, wall_mm=u(8.0, 16.0), arms_up=bool(u() < 0.6),
            arm_fat_mm=float(np.clip(fat * 0.5, 3.0, 25.0)),
            heart_c=(-25.0 + u(-8, 8), 30.0 + u(-5, 5), d + 52.0 + u(-6, 6)), heart_r=(62.0 * hs, 48.0 * hs, 56.0 * hs),
            spleen_c=(-0.6 * lean_a + u(-6, 6), spine_y + 45.0 + u(-8, 8), d - 60.0 + u(-10, 10)),
            spleen_r=(26.0 * ss, 45.0 * ss, 50.0 * ss),
            stomach_c=(-0.33 * lean_a + u(-8, 8), 25.0 + u(-8, 8), d - 65.0 + u(-10, 10)),
            stomach_r=(45.0 * u(0.7, 1.2), 35.0 * u(0.7, 1.2), 50.0 * u(0.7, 1.2)),
            stomach_gas=u(-0.2, 0.8), stomach_content=int(CONTRAST_FILLED if oral else rng.choice([FLUID, COLLAPSED])),
            loops=tuple(loops), colon_r=u(16.0, 26.0), colon_gas=u(-0.3, 0.6), gallbladder=gb,
            pancreas_r=u(11.0, 16.0), psoas_r=u(18.0, 27.0), bladder_fill=fill, lung_vessels=tuple(vessels),
        )


@dataclass(frozen=True)
class PatientParams:
    """Everything random about one patient: anatomy, contrast phase and the HU of each tissue."""

    anatomy: PatientAnatomy
    phase: str                 # one of hu_table.PHASES
    hu: tuple                  # median HU of each tissue class (index = class)
    texture_sd: tuple          # within-organ heterogeneity (HU) of each tissue class
    texture_seed: int
    # excretory phase: the share of the bladder's depth, from its dependent (posterior) wall, that holds
    # contrast urine (1: mixed through, below 1: a layer under the urine; 0: none)
    bladder_contrast: float = 0.0

    def __post_init__(self):
        if self.phase not in PHASES:
            raise InputError(f"phase must be one of {PHASES}; got {self.phase!r}")
        if not 0.0 <= self.bladder_contrast <= 1.0:
            raise InputError(f"bladder_contrast is a fraction of the bladder's depth in [0, 1]; got "
                             f"{self.bladder_contrast!r}")
        if len(self.hu) != T.N_TISSUES or len(self.texture_sd) != T.N_TISSUES:
            raise InputError(f"hu and texture_sd need one value per tissue class ({T.N_TISSUES}); got "
                             f"{len(self.hu)} and {len(self.texture_sd)}")

    @staticmethod
    def sample(rng: np.random.Generator, phase: Optional[str] = None) -> "PatientParams":
        """Draw a patient; ``phase`` None samples one of ``SAMPLED_PHASES`` (none 35 %, arterial 25 %,
        portal venous 40 %); the urographic phases (nephrographic, excretory) only when asked for. In the
        excretory phase the bladder holds contrast urine: mixed through it (40 %) or a dependent layer
        of 15-60 % of its depth."""
        if phase is None:
            phase = str(rng.choice(SAMPLED_PHASES, p=[0.35, 0.25, 0.40]))
        if phase not in PHASES:
            raise InputError(f"phase must be one of {PHASES} or None; got {phase!r}")
        anat = PatientAnatomy.sample(rng)
        hu, texture_seed = sample_hu(rng, phase), int(rng.integers(2 ** 31))
        layer = 0.0
        if phase == "excretory":  # from its own generator: the scan drawn next is the other phases' scan
            own = np.random.default_rng([texture_seed, 3])
            layer = 1.0 if own.uniform() < 0.4 else float(own.uniform(0.15, 0.6))
        return PatientParams(anatomy=anat, phase=phase, hu=hu, texture_sd=_texture(phase), texture_seed=texture_seed,
                             bladder_contrast=layer)


def sample_hu(rng: np.random.Generator, phase: str) -> tuple:
    """Each tissue's median HU for one patient: the table's value for ``phase`` plus between-patient spread.

    The enhancement (phase value − unenhanced value) of all tissues shares one dose/timing factor, so a
    strongly enhanced patient is enhanced everywhere; a small independent part is added per tissue.
    """
    k = PHASES.index(phase)
    dose = float(np.clip(rng.normal(1.0, ENHANCEMENT_SD_FRACTION), 0.75, 1.25)) if k else 1.0
    hu = np.zeros(T.N_TISSUES)
    for cls, values in HU_TABLE.items():
        base, enh = values[0], values[k] - values[0]
        if cls in DERIVED:
            continue
        if cls in UNSPREAD:
            hu[cls] = base + enh * dose
            continue
        sd = FIXED_SD.get(cls, DEFAULT_FIXED_SD)
        hu[cls] = base + enh * dose + rng.normal(0.0, sd) * (1.0 if sd else 0.0)
    # Shared tissues stay shared: the muscles are one muscle, fat one fat.
    hu[T.PSOAS] = hu[T.BACK_MUSCLE] = hu[T.MUSCLE]
    hu[T.PERICARDIAL_FAT] = hu[T.FAT]
    for cls, source in DERIVED.items():
        hu[cls] = hu[source]
    return tuple(float(v) for v in hu)


def _texture(phase: str) -> tuple:
    sd = np.zeros(T.N_TISSUES)
    for cls, v in TEXTURE_SD.items():
        sd[cls] = v
    if phase == "arterial":
        sd[T.SPLEEN] = ARTERIAL_SPLEEN_TEXTURE_SD
    return tuple(float(v) for v in sd)
