"""HU of each tissue of the patient-like phantom in each contrast phase, measured on real scans.

``HU_TABLE[tissue] = (no contrast, arterial, portal venous, nephrographic, excretory)`` median HU. Where a value was measured on
the real scans in ``../shared/data`` by ``scripts/measure_real_hu.py`` (median of the eroded mask, run
2026-11-27), the source names the scan and the mask; elsewhere it is a published typical value and says
so. One scan per phase stands behind each measured number: they are single patients, which is why the
sampler spreads each value by ``BETWEEN_PATIENT_SD`` around the table.

Measured (median, IQR):

* ``abdomen_totalseg`` (no contrast, 3 mm; TotalSegmentator labels, model-made): liver 47 (38..55),
  kidney 16 (6..26), bladder 14 (3..23), bone 135 (77..234), lung −809, fat −96 (−110..−74),
  unlabelled soft tissue mode 27 (muscle).
* ``ircad1_07`` (portal venous, 0.78×0.78×1.6 mm; IRCAD hand-drawn masks; 3D-IRCADb-01 patient 1.7,
  © IRCAD, CC BY-NC-ND 4.0: only these summary statistics are used here, no image data): liver 121 (113..130),
  spleen 117 (110..126), kidney 174 (157..189), artery 170 (158..182), portalvein 159 (146..171),
  venoussystem 127 (102..155), bone 285 (187..473), lung −890, fat −90 (−104..−73), muscle mode 51.
* ``chest_cropped_totalseg`` (arterial, 1.5 mm; no labels): blood pool of aorta and left heart
  (threshold 200–800 HU, eroded, largest component) 492 (457..527), fat −87, lung −799, soft-tissue
  mode 57.

Published values (not measurable here: no mask or no scan of that phase):

* [Bae] K.T. Bae, "Intravenous contrast medium administration and scan timing at CT", Radiology
  256(1):32–61, 2010: unenhanced blood 35–45 HU; arterial-phase liver +10–20 HU over baseline; venous
  return in the late arterial phase.
* [Yuh] B.I. Yuh, R.H. Cohan, "Different phases of renal enhancement", AJR 173:747–755, 1999:
  corticomedullary phase cortex ≈ 150–200 HU, medulla ≈ 80–100 HU; nephrographic phase homogeneous.
* [Lu] D.S. Lu et al., "Two-phase helical CT for pancreatic tumors", Radiology 199:697–701, 1996:
  pancreas ≈ 40–50 HU unenhanced, ≈ 110–130 HU pancreatic (late arterial) phase, ≈ 90–100 HU portal.
* [Text] Radiology textbook ranges (e.g. Webb, Brant & Major, *Fundamentals of Body CT*, 4th ed.):
  bile 0–20 HU, urine 0–20 HU, cortical bone 1000+ HU, myocardium like muscle unenhanced and
  ≈ 100–120 HU enhanced, bowel wall mucosal enhancement, positive oral contrast 150–400 HU,
  spleen 40–50 HU unenhanced and heterogeneous (arciform) in the arterial phase, intervertebral disc
  70–100 HU.
* [Caoili] E.M. Caoili, R.H. Cohan, M. Korobkin et al., "Urinary tract abnormalities: initial experience
  with multi-detector row CT urography", Radiology 222(2):353–360, 2002: excretory (5–15 min) phase,
  opacified calyces, renal pelvis, ureters and bladder; parenchyma past its nephrographic peak.
* [Silverman] S.G. Silverman, J.R. Leyendecker, E.S. Amis, "What is the current role of CT urography
  and MR urography in the evaluation of the urinary tract?", Radiology 250(2):309–323, 2009: CT
  urography's nephrographic (≈ 100 s) and excretory phases; excreted contrast dense enough to need a
  wide window (several hundred to over 1000 HU).

The nephrographic (≈ 80–120 s) and excretory (5–15 min) columns are published typical values only:
no scan of those phases is in ``../shared/data``. Kidney parenchyma 150–250 HU in the nephrographic
phase is also what a held-out contrast abdomen of issue 21 showed (≈ 205 HU).
"""

from __future__ import annotations

from . import anatomy as T

PHASES = ("none", "arterial", "portal", "nephrographic", "excretory")
# The phases a patient phantom draws when none is asked for (the urographic phases only on request, so
# the phantoms of earlier seeds are unchanged).
SAMPLED_PHASES = ("none", "arterial", "portal")

# tissue: (no contrast, arterial, portal venous, nephrographic, excretory) median HU, then the source of each.
HU_TABLE = {
    T.FAT: (-96.0, -87.0, -90.0, -90.0, -90.0),            # measured: abdomen_totalseg / chest_cropped / ircad1_07 body fat −190..−30; nephrographic / excretory: as portal (fat does not enhance)
    T.PERICARDIAL_FAT: (-96.0, -87.0, -90.0, -90.0, -90.0),  # as fat; nephrographic / excretory: as fat
    T.MUSCLE: (27.0, 57.0, 51.0, 55.0, 50.0),            # measured: soft-tissue mode of each scan (not a muscle mask); nephrographic / excretory: published [Bae]: muscle enhances 10-30 HU, washes out slowly
    T.PSOAS: (27.0, 57.0, 51.0, 55.0, 50.0),
    T.BACK_MUSCLE: (27.0, 57.0, 51.0, 55.0, 50.0),
    T.LUNG: (-809.0, -799.0, -890.0, -890.0, -890.0),        # measured: abdomen_totalseg lungs / chest_cropped < −500 / ircad1_07 lung masks; nephrographic / excretory: as portal (lung density does not depend on the phase)
    T.LUNG_VESSEL: (40.0, 250.0, 150.0, 140.0, 110.0),     # published [Bae]: blood; arterial value for mixed arteries/veins; nephrographic / excretory: published [Bae]: blood at 100 s / equilibrium
    # Cortical bone is 1000+ HU [Text] but under 1 mm thick in vertebrae and ribs, where the phantom's shells
    # are 1.5-2.5 mm: 650 HU is their partial-volume equivalent (with 800 and solid processes, bone at 3 mm
    # had a second mode at 700-800 HU that abdomen_totalseg's bone, 135 (77..234), does not have).
    T.CORTEX: (650.0, 650.0, 650.0, 650.0, 650.0),
    T.MARROW: (150.0, 150.0, 150.0, 150.0, 150.0),         # measured: trabecular bone 77..234 in abdomen_totalseg bone (q1..q3); phase independent
    T.DISC: (85.0, 90.0, 90.0, 90.0, 90.0),              # published [Text]
    T.LIVER: (47.0, 65.0, 121.0, 115.0, 85.0),            # measured: abdomen_totalseg label 1 / published [Bae] / ircad1_07 liver; nephrographic / excretory: published [Bae]: near the portal peak at 100 s, equilibrium at 5-15 min
    T.LIVER_PORTAL: (40.0, 110.0, 159.0, 150.0, 110.0),    # published [Bae] / published / ircad1_07 portalvein; nephrographic / excretory: published [Bae]
    T.LIVER_VEIN: (40.0, 90.0, 127.0, 140.0, 110.0),       # published [Bae] / published / ircad1_07 venoussystem; nephrographic / excretory: published [Bae]
    T.KIDNEY: (16.0, 180.0, 174.0, 185.0, 130.0),          # cortex: abdomen_totalseg label 4 / published [Yuh] / ircad1_07 kidneys; nephrographic / excretory: published [Yuh]: homogeneous nephrogram 150-250 HU / [Caoili] parenchyma declines as it excretes
    T.KIDNEY_MEDULLA: (16.0, 90.0, 165.0, 185.0, 130.0),   # abdomen_totalseg label 4 / published [Yuh] / ircad1_07 kidneys (a little below cortex); nephrographic / excretory: published [Yuh]: medulla as cortex in the nephrographic phase / [Caoili]
    T.RENAL_PELVIS: (8.0, 8.0, 8.0, 8.0, 900.0),         # published [Text]: urine, no excretion yet in these phases; nephrographic / excretory: published [Text]: urine before excretion / [Caoili, Silverman]: excreted contrast 500-1500 HU
    T.BLADDER: (14.0, 14.0, 14.0, 14.0, 14.0),           # measured: abdomen_totalseg label 2 (urine; no excretion yet); nephrographic / excretory: urine; the excretory bladder's contrast layer is painted on top of it (render)
    T.SPLEEN: (45.0, 110.0, 117.0, 115.0, 90.0),          # published [Text] / published [Text] (arciform) / ircad1_07 spleen; nephrographic / excretory: published [Bae]: homogeneous after 70 s
    T.AORTA: (40.0, 492.0, 170.0, 150.0, 110.0),           # published [Bae] / chest_cropped blood pool / ircad1_07 artery; nephrographic / excretory: published [Bae]: blood at 100 s / equilibrium
    T.BLOOD_LEFT: (40.0, 492.0, 170.0, 150.0, 110.0),      # left heart: as the aorta
    T.BLOOD_RIGHT: (40.0, 250.0, 150.0, 145.0, 110.0),     # published [Bae]: right heart after the bolus / ircad-like venous blood
    T.HEART: (40.0, 110.0, 100.0, 95.0, 80.0),           # myocardium, published [Text]; nephrographic / excretory: myocardium, published [Text]
    T.VENA_CAVA: (40.0, 90.0, 127.0, 140.0, 110.0),        # published [Bae] / published (unopacified infrarenal) / ircad1_07 venoussystem; nephrographic / excretory: published [Bae]
    T.PORTAL_VEIN: (40.0, 110.0, 159.0, 150.0, 110.0),     # published [Bae] / published / ircad1_07 portalvein; nephrographic / excretory: published [Bae]
    T.PANCREAS: (45.0, 120.0, 95.0, 90.0, 75.0),         # published [Lu]; nephrographic / excretory: published [Lu]: washes out after the pancreatic phase
    T.GALLBLADDER: (10.0, 10.0, 10.0, 10.0, 10.0),       # published [Text]: bile
    T.GI_WALL: (35.0, 90.0, 80.0, 80.0, 70.0),           # published [Text]: bowel and stomach wall, mucosal enhancement; nephrographic / excretory: published [Text]
    T.GI_FLUID: (10.0, 10.0, 10.0, 10.0, 10.0),          # published [Text]: water-like content
    T.ORAL_CONTRAST: (250.0, 250.0, 250.0, 250.0, 250.0),  # published [Text]: positive oral contrast (phase independent)
    T.FECES: (-60.0, -60.0, -60.0, -60.0, -60.0),          # published [Text]: mottled stool; the render adds gas speckles
    T.GAS: (-990.0, -990.0, -990.0, -990.0, -990.0),         # air
    T.STOMACH_GAS: (-990.0, -990.0, -990.0, -990.0, -990.0),
    T.TRACHEA: (-990.0, -990.0, -990.0, -990.0, -990.0),
    T.AIR: (-1000.0, -1000.0, -1000.0, -1000.0, -1000.0),
    T.SPINAL_CANAL: (25.0, 25.0, 25.0, 25.0, 25.0),      # published [Text]: CSF and cord
    T.TABLE_CORE: (-550.0, -550.0, -550.0, -550.0, -550.0),  # carbon-fibre table foam core and shell (as the legacy phantom)
    T.TABLE_SHELL: (380.0, 380.0, 380.0, 380.0, 380.0),
    # the urographic anatomy (painted in the nephrographic and excretory phases only, urinary_tract.py):
    T.URETER: (8.0, 8.0, 8.0, 8.0, 900.0),               # the ureter's lumen holds what the renal pelvis holds: urine [Text] / excreted contrast 500-1500 HU [Caoili, Silverman]; sampled as the pelvis (DERIVED)
    T.BLADDER_CONTRAST: (14.0, 14.0, 14.0, 14.0, 700.0),  # contrast urine in the bladder, layered on the dependent side or mixed through it, excretory phase: several hundred to over 1000 HU [Silverman, Caoili]; as bladder urine before excretion
}
# Tissues whose HU is not drawn for each patient but follows another's (the same fluid): the ureters
# carry the renal pelvis's urine or contrast. Tissues listed here or in UNSPREAD draw nothing from the
# patient's random generator, so adding them left the phantoms of earlier seeds unchanged.
DERIVED = {T.URETER: T.RENAL_PELVIS}
UNSPREAD = (T.BLADDER_CONTRAST,)  # the table's value scaled by the patient's dose, no spread of its own

# Between-patient spread (HU, standard deviation) of each tissue's median, around the table: a fixed part
# (scanner calibration, hydration, fat content) plus 12 % of the enhancement (dose, timing, cardiac output).
FIXED_SD = {T.LIVER: 8.0, T.SPLEEN: 6.0, T.KIDNEY: 6.0, T.KIDNEY_MEDULLA: 6.0, T.MARROW: 40.0,
            T.CORTEX: 120.0, T.LUNG: 30.0, T.FAT: 8.0, T.PERICARDIAL_FAT: 8.0, T.MUSCLE: 8.0, T.PSOAS: 8.0,
            T.BACK_MUSCLE: 8.0, T.GAS: 0.0, T.STOMACH_GAS: 0.0,
            T.TRACHEA: 0.0, T.AIR: 0.0, T.TABLE_CORE: 0.0, T.TABLE_SHELL: 0.0, T.ORAL_CONTRAST: 60.0}
DEFAULT_FIXED_SD = 5.0
ENHANCEMENT_SD_FRACTION = 0.12

# Within-organ heterogeneity (HU, standard deviation of a smooth random field, correlation ~4 mm) on top
# of the scanner noise: trabecular bone, lung parenchyma, the spleen's arciform arterial enhancement.
TEXTURE_SD = {T.MARROW: 45.0, T.LUNG: 25.0, T.LIVER: 4.0, T.SPLEEN: 4.0, T.FAT: 6.0, T.MUSCLE: 5.0,
              T.PSOAS: 5.0, T.BACK_MUSCLE: 6.0, T.KIDNEY: 5.0, T.PANCREAS: 8.0, T.FECES: 0.0,
              T.VENA_CAVA: 20.0, T.LIVER_VEIN: 12.0}  # venous: inflow mixing (ircad1_07 venoussystem IQR 53 HU)
ARTERIAL_SPLEEN_TEXTURE_SD = 30.0


def table_hu(tissue: int, phase: str) -> float:
    """The table's median HU of ``tissue`` in ``phase`` (one of ``PHASES``)."""
    return HU_TABLE[tissue][PHASES.index(phase)]
