"""The parameters of the urinary-tract rules (``urinary``, ``urinary_bladder``; described in
``urinary``'s docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class UrinaryParams:
    """The urinary-tract rules (module docstring); HU, mm, mL. ``UrinaryParams.off()``: none (the paper)."""

    kidneys: bool = True
    kidney_min_hu: float = 90.0  # enhancing parenchyma: excretory ~100-150, nephrographic 150-250 [Yuh, Caoili]
    kidney_max_hu: float = 350.0  # excreted contrast (500-1500 HU) and cortex are denser
    kidney_core_mm: float = 6.0  # a kidney is 30-50 mm thick
    kidney_min_ml: float = 20.0  # the parenchyma grown back from its core
    kidney_max_ml: float = 450.0  # an adult kidney is 120-250 mL; a liver is 1-2 L
    kidney_offset_mm: tuple = (35.0, 140.0)  # centre beside the spine (vertebral body, aorta, cava: within 30 mm)
    kidney_dorsal: float = 0.4  # retroperitoneal: in the back part of the body (depth front to back)
    kidney_shell_hu: float = 150.0  # a block whose maximum is this much denser than the core's median is cortex
    kidney_shell_mm: float = 60.0  # and encloses what lies between two such blocks this close (a vertebra is 45 mm)
    kidney_shell: float = 0.1  # at most this share of the core enclosed along two axes (marrow: all of it)
    kidney_sinus: float = 0.015  # at least this share of the closed outline is the sinus
    kidney_sinus_mm: float = 12.0  # the in-plane closing that closes the hilum
    ureters: bool = True
    ureter_max_area_mm2: float = 120.0  # a lumen up to ~12 mm across in a slice
    ureter_min_length_mm: float = 25.0
    ureter_max_slope: float = 0.6  # in-plane drift per mm of height (ribs: about 1 and more)
    ureter_offset_mm: tuple = (10.0, 110.0)
    ureter_depth: tuple = (0.3, 0.72)  # in front of the transverse processes (facet columns: ~0.8)
    contrast_min_hu: float = 250.0  # blocks of excreted contrast (ureter, bladder) read at least this on average
    bladder: bool = True
    bladder_min_hu: float = 300.0  # contrast urine, layered or mixed: several hundred HU and more [Silverman]; marrow is less
    bladder_half_width_mm: float = 50.0
    bladder_max_depth: float = 0.75
    bladder_core_mm: float = 4.5
    bladder_max_elongation: float = 2.0  # a sac's height per width at most (the aorta: 5-10)
    # "above the pubis": bone in front of the sac on the midline, from this far below its bottom
    bladder_pubis_mm: float = 50.0
    bladder_pubis_hu: float = 450.0  # a block's maximum: cortex (oral contrast in bowel: 150-400)
    bladder_pubis_half_width_mm: float = 30.0
    bladder_wall_max_hu: float = 200.0  # the sac's wall (bladder wall, fat, urine) is below bone density ...
    bladder_dense_wall: float = 0.25  # ... but where it rests on the pubis (share of the blocks round it)
    bladder_urine_hu: tuple = (-10.0, 35.0)  # urine 0-20 HU; muscle (40-60) is not urine
    bladder_level_mm: float = 3.0
    # a layer lies on the bladder's dependent (back) wall, in front of the rectum, sacrum and spine: on
    # the excretory phantoms the layers sit at depths 0.33-0.37 and the vertebral endplates that pass the
    # level test at 0.64-0.75
    bladder_layer_max_depth: float = 0.55
    bladder_min_ml: float = 2.0
    bladder_min_depth: float = 0.15  # behind the abdominal wall
    bladder_below_lungs_mm: float = 100.0  # a pelvic organ: well below the lungs' lowest voxel (when in view)
    # ... and, without a lung label (`autolabel bone`), no lungs beside it: at least this much aerated
    # tissue (blocks at most bladder_lung_hu) on each side of the midline within the sac's slices is a
    # chest (the heart full of contrast blood, with the sternum in front as a pubis); pelvic bowel gas
    # at the bladder's height is rarely on both sides, and seldom 100 mL on one
    bladder_lung_hu: float = -500.0
    bladder_lungs_beside_ml: float = 100.0

    @classmethod
    def off(cls) -> "UrinaryParams":
        return cls(kidneys=False, ureters=False, bladder=False)

    @property
    def any(self) -> bool:
        return self.kidneys or self.ureters or self.bladder

    def __post_init__(self) -> None:
        if not (-200.0 <= self.kidney_min_hu < self.kidney_max_hu and self.kidney_core_mm > 0
                and 0 <= self.kidney_min_ml <= self.kidney_max_ml and 0.0 <= self.kidney_dorsal <= 1.0
                and 0.0 <= self.kidney_shell <= 1.0 and 0.0 <= self.kidney_sinus < 1.0 and self.kidney_sinus_mm > 0
                and 0 <= self.kidney_offset_mm[0] < self.kidney_offset_mm[1]):
            raise InputError("kidney rule: need kidney_min_hu < kidney_max_hu, kidney_core_mm > 0, 0 <= kidney_min_ml "
                             "<= kidney_max_ml, kidney_dorsal, kidney_shell in [0, 1], kidney_sinus in [0, 1), "
                             f"kidney_sinus_mm > 0, kidney_offset_mm (low, high); got {self!r}")
        if not (self.ureter_max_area_mm2 > 0 and self.ureter_min_length_mm > 0 and self.ureter_max_slope > 0
                and 0 <= self.ureter_offset_mm[0] < self.ureter_offset_mm[1]
                and 0.0 <= self.ureter_depth[0] < self.ureter_depth[1] <= 1.0):
            raise InputError(f"ureter rule: need positive area, length and slope, offsets (low, high) and depths "
                             f"(low, high) in [0, 1]; got {self!r}")
        if not (self.bladder_half_width_mm > 0 and 0.0 < self.bladder_max_depth <= 1.0 and self.bladder_core_mm > 0
                and self.bladder_urine_hu[0] < self.bladder_urine_hu[1] < self.bladder_min_hu
                and self.bladder_level_mm > 0 and self.bladder_min_ml >= 0
                and self.bladder_min_depth < self.bladder_layer_max_depth <= self.bladder_max_depth):
            raise InputError(f"bladder rule: need bladder_half_width_mm > 0, bladder_max_depth in (0, 1], "
                             f"bladder_core_mm > 0, urine (low, high) below bladder_min_hu, bladder_level_mm > 0, "
                             f"bladder_min_depth < bladder_layer_max_depth <= bladder_max_depth; got {self!r}")


__all__ = ["UrinaryParams"]
