"""A seeded synthetic CT phantom with exact five-organ truth: the built-in default input, the test
workhorse and the training data of the demo model.

Two presets. The default (``realism="legacy"``) is five organs in a uniform body, as the demo model was
trained on. ``realism="patient"`` looks like a patient: the organs a network must learn to reject
(spleen, heart chambers, great and portal vessels, stomach and bowel with gas, fluid and oral
contrast, gallbladder, pancreas, muscles), kidney cortex, medulla and pelvis, contrast phases with HU
measured on real scans (``hu_table``), correlated noise, slice thickness, habitus, arms, field of view
and truncation; every random choice is sampled into ``PatientParams`` and ``ScanParams`` first.

>>> from organseglib.phantom import make_phantom
>>> p = make_phantom(seed=0, region="abdomen", size="tiny")
>>> p.ct.array.dtype, p.labels.array.dtype
(dtype('float32'), dtype('uint8'))
>>> q = make_phantom(seed=0, region="abdomen", size="tiny", realism="patient", phase="portal")
>>> q.patient.phase, int(q.labels.array.max()) <= 5
('portal', True)
"""

from .hu_table import HU_TABLE, PHASES, SAMPLED_PHASES, table_hu
from .patient import PatientAnatomy, PatientParams
from .render import REALISMS, RENDER_VERSION, SIZES, Phantom, make_phantom, phantom_grid
from .scanner import ScanParams

__all__ = ["HU_TABLE", "PHASES", "SAMPLED_PHASES", "PatientAnatomy", "PatientParams", "Phantom", "REALISMS", "RENDER_VERSION",
           "SIZES", "ScanParams", "make_phantom", "phantom_grid", "table_hu"]
