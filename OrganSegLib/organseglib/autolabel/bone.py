"""Bone auto-labeler (paper III-C): dense components, closed, thresholded, filled.

Steps, with the paper's parameters in ``BoneParams`` (``BoneParams.paper()`` is the paper's labeler
exactly; every deviation below is a named parameter):

1. dense = HU >= tau2 = 200 inside the body (the exam table's shell is cut off by ``body.py``);
   on a noisy (low-dose) CT the thresholds may read a lightly smoothed CT (``smooth``, ``noise.py``);
1b. ours, noise speckle (``despeckle``, ``noise.py``): a dense voxel below ``speckle_below_hu`` whose
   3×3×3 neighbourhood averages below tau2 and spreads no more than ``speckle_sd`` times the scan's
   noise is noise in homogeneous tissue (portal venous blood at 180 HU: one voxel in four or five
   crosses 200 HU, and the specks join up and touch the spine), not bone;
1c. ours, the urinary tract (``urinary.py``, ``urinary``): enhancing kidneys and a contrast-filled
   bladder (before the blood pools: neither is blood setting the contrast level) and, after them,
   ureters full of contrast, are not bone;
2. minus contrast-filled blood pools (ours, ``blood.py``): on a contrast CT the heart and aorta
   exceed 200 HU and touch the spine and sternum, so "largest component" alone would make them bone;
3. the paper keeps the largest 26-connected component (the skeleton). Ours (``keep_pieces``) also
   keeps every other piece that looks like bone: at least ``piece_min_ml`` and a 90th percentile of at
   least ``piece_p90_hu`` and ``piece_above_blood_hu`` above the blood's contrast level (cortex is
   denser than contrast blood; an enhancing kidney or spleen is a plateau just above 200 HU), or at
   least the skeleton's own 90th percentile less ``piece_below_skeleton_hu`` where that is lower
   (ribs as dense as the spine, on a scan whose bone is barely denser than the blood). Ribs,
   clavicles, scapulae, humeri and a sternum that the field of view cuts off the spine are such pieces;
   so is a fainter piece where the spine is whose cortex encloses marrow (``piece_marrow_*``: a
   vertebra a field of view cuts off its ribs, where a face of the view it touches counts as cortex;
   ``pieces.py``);
4. closing by a 25 mm-diameter ball, to fill the gaps in the cortex (exact, ``organseglib.morphology``);
5. keep the voxels >= tau1 = 0 HU (removes the fat the closing filled between bones);
6. ours, the soft-tissue guard: of the voxels the closing added, those of muscle or fluid density
   (tau1 <= HU < ``soft_hu`` = 100) stay only where the skeleton encloses them along at least two
   axes within ``enclosure_mm`` (marrow), not in the muscle the closing bridges between bones;
7. fill the holes of each axial slice (marrow), up to ``max_hole_mm2`` (ours, ``fill_before_guard``:
   also before step 6, so that the marrow of a vertebra whose cortical ring has gaps of muscle density
   is not opened by the guard; measured on abdomen_totalseg's osteoporotic vertebrae);
7b. ours, the spinal canal (``spine.py``, ``canal_*``): fluid ringed by the vertebra in the slice but
   open along the body axis, on the midline in the back half of the body, is not marrow;
7c. ours, the intervertebral discs (``spine.py``, ``disc_*``): soft tissue between two endplates close
   together, with no cortical ring in its slice, is not bone;
8. ours, the partial-volume edge (``edge.py``): the 200 HU contour lies inside the bone's surface, and
   readers draw the visible edge, about ``edge_halo_mm`` outside it. A voxel next to the bone
   (``edge_voxels`` steps of 6-neighbours) of at least ``edge_hu`` is bone when its bone fraction,
   read off its HU between ``edge_soft_hu`` and the neighbouring bone's, puts that edge beyond its
   centre: every such voxel at 0.8 mm, only those a third bone or more at 3 mm;
9. ours, costal cartilage (``cartilage.py``, ``cartilage_*``): thin bars of 90-200 HU continuing the
   ribs in the front third of the body, beside the midline, which hand-drawn masks count as bone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import morphology
from ..errors import InputError
from ..progress import ProgressCallback, null_progress
from .blood import find_blood_pools
from .coarse_ct import coarse_ct
from .urinary import UrinaryParams, UrinaryTract, find_contrast_bladder_tract, find_kidney_tract, find_ureter_tract
from .spine import intervertebral_discs, spinal_canal
from .cartilage import costal_cartilage
from .edge import partial_volume_edge
from .noise import NoiseParams, noise_sd, noise_speckle, smoothed_if_noisy
from .pieces import select_pieces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoneParams:
    """Bone labeler parameters; defaults from the paper where it gives them, ours marked (see the
    module docstring); ``BoneParams.paper()`` switches every addition off."""

    tau1_hu: float = 0.0  # paper III-C: "almost all bone tissue is greater than tau1 = 0"
    tau2_hu: float = 200.0  # paper III-C: "the hard exterior of each bone is usually greater than tau2 = 200 HU"
    closing_diameter_mm: float = 25.0  # paper III-C: "spherical structuring element with a diameter of 2.5 cm"
    # ours, step 1b (noise.py): noise speckle among the dense voxels; blood at 180 HU (portal venous
    # phase) has one voxel in four or five above tau2, and the specks join the skeleton
    despeckle: bool = True
    speckle_below_hu: float = 300.0  # denser voxels are tissue, not noise (6 sd above 180 HU blood at 20 HU)
    speckle_sd: float = 1.5  # the neighbourhood's spread at most this many times the scan's noise
    max_hole_mm2: float = 4000.0  # ours: marrow up to ~70 mm across; the thorax or pelvic cavity is larger
    # ours, soft-tissue guard (step 6): a lumbar vertebral body is ~45 mm across
    soft_hu: float = 100.0
    enclosure_mm: float = 50.0
    # ours, blood-pool guard (blood.py): cores thicker than 2 x blood_core_mm, of >= blood_min_ml,
    # median below blood_max_hu, with at most blood_rim_cortex of their rim as bright as cortex
    blood_core_mm: float = 6.0
    blood_min_ml: float = 5.0
    blood_max_hu: float = 600.0
    blood_rim_cortex: float = 0.1
    blood_large_ml: float = 30.0  # a core this large (heart, aorta) may touch more bright tissue:
    blood_large_rim_cortex: float = 0.25  # up to this fraction of its rim
    blood_level_tol_hu: float = 100.0  # a smaller core this close to the pools' level: the same blood
    blood_follow_mm: float = 3.0  # pools are followed along lumen this thick (2x) from the sure cores
    coarse_mm: float = 3.0  # working voxel size of the blood-pool guard
    # ours, step 3: bony pieces besides the largest component
    keep_pieces: bool = True
    piece_min_ml: float = 1.0  # smaller dense specks: vessel calcifications, clips, noise
    piece_p90_hu: float = 280.0  # measured: bone pieces 295-850 HU (3 mm and 0.8 mm scans), kidneys 225
    piece_above_blood_hu: float = 150.0  # contrast blood ~ level; its leftovers stay below level + 150
    piece_below_skeleton_hu: float = 50.0  # ... or reach the largest component's 90th percentile minus this
    # ours (issue 21): a piece below that p90 is still bone when it lies where the spine is (the disc
    # rule's zone) and its dense voxels enclose marrow (tau1 to tau2, along two axes within enclosure_mm)
    # of at least this share of its own volume: a vertebra that a field of view cut off its ribs on a
    # contrast scan (inf: off)
    piece_marrow_share: float = 0.5
    piece_marrow_min_ml: float = 2.0
    piece_pool_mm: float = 3.0  # a piece with more than piece_pool_fraction of its voxels this close
    piece_pool_fraction: float = 0.3  # to a blood pool is its wall or rim (1.0: test off)
    # ours, step 8: partial-volume edge
    edge_voxels: int = 1
    edge_hu: float = 100.0  # a voxel a tenth cortex and the rest muscle reads about 100 HU
    edge_soft_hu: float = 40.0  # muscle, the tissue the bone's fraction is read against
    edge_halo_mm: float = 0.5  # the visible edge outside the surface (inf: every voxel >= edge_hu)
    # thresholds read a smoothed CT when the noise is high (noise.py): off by default, as on a
    # low-dose phantom (3 mm, 80 HU) smoothing blurred thin cortex below tau2 (bone Dice 0.53 against
    # 0.81 without); noise speckle is dropped with the small components and trimmed by tau1
    smooth: bool = False
    # ours: the closing on blocks of about this size (morphology.coarse; 0: exact on the native grid,
    # the paper); tau1 and the soft-tissue guard trim its blocky edge
    grid_mm: float = 1.6
    # ours, step 7 also before step 6: fill the holes of each slice before the soft-tissue guard too,
    # so that marrow whose cortical ring has gaps below soft_hu (an osteoporotic vertebra) is kept
    fill_before_guard: bool = True
    # ours, step 7b (spine.py): the spinal canal, ringed by the vertebra but not marrow
    canal: bool = True
    canal_min_hu: float = -150.0  # epidural fat (-100) counts, gas does not
    canal_max_hu: float = 60.0  # CSF 0-15, cord 30-40 HU; measured: what the rule removes has median 9-32 HU
    canal_smooth_mm: float = 2.0  # in-plane half-width of the mean that must stay below canal_max_hu
    canal_half_width_mm: float = 15.0  # the lumbar canal is 20-25 mm wide
    canal_dorsal: float = 0.5  # in the back half of the body (depth front to back, 0-1)
    canal_rim_mm: float = 1.0  # its partial-volume rim goes with it (0 steps on 3 mm voxels)
    canal_rim_hu: float = 150.0
    # ours, step 7c (spine.py): the intervertebral discs the closing bridges
    discs: bool = True
    disc_max_hu: float = 120.0  # fibrocartilage 70-120 HU (nucleus to annulus)
    disc_span_mm: float = 20.0  # endplate to endplate across a disc (about 10 mm high), not a vertebra (25-30)
    disc_half_width_mm: float = 30.0  # where the spine is: a lumbar vertebral body is about 45 mm wide
    disc_dorsal: float = 0.4  # and its front lies about halfway back (depth front to back, 0-1)
    # ours, step 9 (cartilage.py): costal cartilage continuing the ribs
    cartilage: bool = True
    cartilage_min_hu: float = 90.0  # measured: costal cartilage median 100-101 HU on both references
    cartilage_max_hu: float = 200.0  # above it, tau2: bone
    cartilage_thick_mm: float = 8.0  # in-plane radius of what is too thick to be a costal cartilage
    cartilage_margin_mm: float = 3.0  # nor this close to such thick tissue (an organ's fringe)
    cartilage_rim_mm: float = 3.0  # the bone's partial-volume rim, crossed to reach it
    cartilage_grid_mm: float = 2.0  # block means of about this size
    cartilage_min_ml: float = 1.0
    cartilage_max_ml: float = 50.0  # measured pieces 1-26 mL; leaks along bowel walls 48-570 mL
    cartilage_front: float = 0.33  # mean depth front to back at most (measured 0.09-0.24)
    cartilage_lateral_mm: float = 12.0  # mean offset from the midline at least (measured 18-103 mm)
    # ours (urinary.py, issue 21): kidneys, ureters and a contrast bladder are not bone
    urinary: UrinaryParams = field(default_factory=UrinaryParams)

    @classmethod
    def paper(cls) -> "BoneParams":
        """The paper's labeler exactly (III-C): largest component, closing, tau1, slice holes."""
        return cls(soft_hu=0.0, blood_core_mm=0.0, keep_pieces=False, edge_voxels=0, smooth=False, despeckle=False,
                   piece_marrow_share=float("inf"),
                   max_hole_mm2=float("inf"), grid_mm=0.0, fill_before_guard=False, canal=False, discs=False,
                   cartilage=False, urinary=UrinaryParams.off())

    def __post_init__(self) -> None:
        if not -500.0 <= self.tau1_hu < self.tau2_hu <= 2000.0:
            raise InputError(
                f"need -500 <= tau1_hu < tau2_hu <= 2000 HU; got tau1_hu={self.tau1_hu!r}, tau2_hu={self.tau2_hu!r}"
            )
        if not 0.0 <= self.closing_diameter_mm <= 100.0:
            raise InputError(f"closing_diameter_mm must be between 0 and 100 mm; got {self.closing_diameter_mm!r}")
        if self.soft_hu > self.tau2_hu or not 0.0 < self.enclosure_mm <= 500.0:
            raise InputError(
                f"soft_hu must be <= tau2_hu ({self.tau2_hu!r} HU; <= tau1_hu turns the guard off) and enclosure_mm "
                f"in (0, 500] mm; got soft_hu={self.soft_hu!r}, enclosure_mm={self.enclosure_mm!r}"
            )
        if not self.max_hole_mm2 >= 0:
            raise InputError(f"max_hole_mm2 must be >= 0 (inf: every hole, as the paper); got {self.max_hole_mm2!r}")
        if self.blood_core_mm < 0 or self.blood_min_ml < 0 or not 0.5 <= self.coarse_mm <= 10:
            raise InputError(
                f"blood_core_mm and blood_min_ml must be >= 0 and coarse_mm in [0.5, 10] mm; got "
                f"{self.blood_core_mm!r}, {self.blood_min_ml!r}, {self.coarse_mm!r}"
            )
        if not 0.0 <= self.grid_mm <= 5.0:
            raise InputError(f"grid_mm must be between 0 (exact) and 5 mm; got {self.grid_mm!r}")
        if not 0.0 <= self.blood_rim_cortex <= 1.0:
            raise InputError(f"blood_rim_cortex is a fraction in [0, 1]; got {self.blood_rim_cortex!r}")
        if not (-1000.0 <= self.canal_min_hu < self.canal_max_hu <= self.canal_rim_hu <= self.tau2_hu
                and self.canal_smooth_mm >= 0 and self.canal_half_width_mm > 0 and 0.0 <= self.canal_dorsal <= 1.0
                and 0.0 <= self.canal_rim_mm <= 5.0):
            raise InputError(
                "spinal canal rule: need -1000 <= canal_min_hu < canal_max_hu <= canal_rim_hu <= tau2_hu, "
                "canal_smooth_mm >= 0, canal_half_width_mm > 0, canal_dorsal in [0, 1], canal_rim_mm in [0, 5]; got "
                f"{self.canal_min_hu!r}, {self.canal_max_hu!r}, {self.canal_rim_hu!r}, {self.canal_smooth_mm!r}, "
                f"{self.canal_half_width_mm!r}, {self.canal_dorsal!r}, {self.canal_rim_mm!r}")
        if not (self.tau1_hu < self.disc_max_hu <= self.tau2_hu and 0 < self.disc_span_mm < self.enclosure_mm
                and self.disc_half_width_mm > 0 and 0.0 <= self.disc_dorsal <= 1.0):
            raise InputError(f"intervertebral disc rule: need tau1_hu < disc_max_hu <= tau2_hu, 0 < disc_span_mm < "
                             f"enclosure_mm ({self.enclosure_mm!r}), disc_half_width_mm > 0, disc_dorsal in [0, 1]; got "
                             f"{self.disc_max_hu!r}, {self.disc_span_mm!r}, {self.disc_half_width_mm!r}, "
                             f"{self.disc_dorsal!r}")
        if not (self.tau1_hu <= self.cartilage_min_hu < self.cartilage_max_hu <= self.tau2_hu
                and 0 < self.cartilage_thick_mm <= 50 and self.cartilage_margin_mm >= 0 and self.cartilage_rim_mm >= 0
                and 0.5 <= self.cartilage_grid_mm <= 10 and 0 <= self.cartilage_min_ml <= self.cartilage_max_ml
                and 0.0 <= self.cartilage_front <= 1.0 and self.cartilage_lateral_mm >= 0):
            raise InputError(
                "costal cartilage rule: need tau1_hu <= cartilage_min_hu < cartilage_max_hu <= tau2_hu, "
                "cartilage_thick_mm in (0, 50], margin and rim >= 0 mm, cartilage_grid_mm in [0.5, 10], "
                "0 <= cartilage_min_ml <= cartilage_max_ml, cartilage_front in [0, 1], cartilage_lateral_mm >= 0; got "
                f"{self.cartilage_min_hu!r}, {self.cartilage_max_hu!r}, {self.cartilage_thick_mm!r}, "
                f"{self.cartilage_margin_mm!r}, {self.cartilage_rim_mm!r}, {self.cartilage_grid_mm!r}, "
                f"{self.cartilage_min_ml!r}, {self.cartilage_max_ml!r}, {self.cartilage_front!r}, "
                f"{self.cartilage_lateral_mm!r}")
        if not self.piece_below_skeleton_hu >= 0:
            raise InputError(f"piece_below_skeleton_hu must be >= 0 HU (inf: off); got {self.piece_below_skeleton_hu!r}")
        if self.piece_min_ml < 0 or self.edge_voxels not in (0, 1, 2, 3):
            raise InputError(f"piece_min_ml must be >= 0 mL and edge_voxels 0-3; got {self.piece_min_ml!r}, "
                             f"{self.edge_voxels!r}")
        if not (self.speckle_below_hu > self.tau2_hu and self.speckle_sd > 0):
            raise InputError(f"need speckle_below_hu > tau2_hu and speckle_sd > 0; got {self.speckle_below_hu!r}, "
                             f"{self.speckle_sd!r}")
        if not (self.edge_halo_mm >= 0 and -200.0 <= self.edge_soft_hu < self.edge_hu):
            raise InputError(f"need edge_halo_mm >= 0 mm (inf: every voxel >= edge_hu) and -200 <= edge_soft_hu "
                             f"< edge_hu; got {self.edge_halo_mm!r}, {self.edge_soft_hu!r}, {self.edge_hu!r}")


@dataclass
class BoneReport:
    """What the labeler found (volumes in mL): the dense voxels kept as skeleton and dropped, the
    blood pools and the contrast level read off them, the soft tissue the guard left out."""

    skeleton_ml: float = 0.0
    dropped_ml: float = 0.0
    pieces: int = 0  # bony pieces kept besides the largest component
    blood_pool_ml: float = 0.0
    blood_level_hu: Optional[float] = None
    soft_tissue_ml: float = 0.0  # filled by the closing but left out by the soft-tissue guard
    canal_ml: float = 0.0  # spinal canal left out (spine.py)
    disc_ml: float = 0.0  # intervertebral discs left out (spine.py)
    cartilage_ml: float = 0.0  # costal cartilage added (cartilage.py)
    speckle_ml: float = 0.0  # noise speckle >= tau2 in homogeneous tissue left out (noise.py)
    kidney_ml: float = 0.0  # kidneys (parenchyma and collecting system) kept out (urinary.py)
    ureter_ml: float = 0.0  # dense ureters kept out (urinary.py)
    bladder_ml: float = 0.0  # contrast urine in the bladder kept out (urinary.py)
    noise_sd_hu: Optional[float] = None
    warnings: list = field(default_factory=list)


def _drop_bridged_soft_tissue(bone: np.ndarray, skeleton: np.ndarray, ct: np.ndarray,
                              spacing: tuple[float, float, float], params: BoneParams) -> int:
    """Step 5, in place: clear the soft-density voxels of ``bone`` that the skeleton does not enclose.

    Returns the number of voxels cleared.
    """
    soft = bone & ~skeleton
    soft &= ct < params.soft_hu
    if not soft.any():
        return 0
    outside = morphology.enclosed_axes(skeleton, spacing, params.enclosure_mm, where=soft) < 2
    soft &= outside
    bone &= ~soft
    return int(np.count_nonzero(soft))


def label_bone(ct: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
               inner: Optional[np.ndarray] = None, params: Optional[BoneParams] = None, ignore: Optional[np.ndarray] = None,
               progress: Optional[ProgressCallback] = None, method: str = "auto",
               noise: Optional[NoiseParams] = None, lungs: Optional[np.ndarray] = None) -> tuple[np.ndarray, BoneReport]:
    """Bone mask of a CT array ``[k, j, i]`` in HU.

    Args:
        ct: HU array.
        spacing: voxel size (k, j, i) in mm.
        body: the patient's body without the table (``BodyMasks.body``).
        inner: the body minus its skin (``BodyMasks.inner``): dense voxels between it and the outside
            that connect to dense matter outside the body (a table under the patient's back) are
            not bone.
        params: labeler parameters.
        ignore: voxels that must stay unlabelled.
        progress: ``(fraction, message)`` callback.
        method: morphology method for the closing (``organseglib.morphology.METHODS``).
        noise: when to smooth before thresholding (``params.smooth``; default ``NoiseParams()``).
        lungs: the lung label, when the caller has one (a contrast bladder lies well below it).

    Returns:
        ``(mask, report)``.
    """
    params = params or BoneParams()
    progress = progress or null_progress
    report = BoneReport()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if params.smooth:
        ct, sd = smoothed_if_noisy(ct, spacing, noise or NoiseParams())
        report.noise_sd_hu = None if not np.isfinite(sd) else round(sd, 1)
    allowed = body if ignore is None else body & ~ignore
    dense_all = ct >= params.tau2_hu
    if inner is not None:
        outside = dense_all & ~body
        if outside.any():  # the exam table's shell, followed into the skin zone where it touches
            table = morphology.reconstruct(outside, dense_all & ~inner)
            allowed = allowed & ~table
            del table
        del outside
    dense = dense_all & allowed
    del dense_all
    if params.despeckle:
        sd_hu = report.noise_sd_hu if report.noise_sd_hu is not None else noise_sd(ct, spacing)
        speckle = noise_speckle(ct, dense, params.tau2_hu, params.speckle_below_hu, params.speckle_sd, sd_hu)
        report.speckle_ml = round(float(np.count_nonzero(speckle)) * voxel_ml, 1)
        dense &= ~speckle
        del speckle
    # the CT on ~3 mm blocks, shared by the urinary rules and the blood pools (none: the paper's labeler)
    coarse = coarse_ct(ct, allowed, spacing, params.coarse_mm) if (params.urinary.any or params.blood_core_mm > 0) \
        else None
    urinary = UrinaryTract(np.zeros(ct.shape, dtype=bool))
    if params.urinary.any:  # kidneys and a contrast bladder before the pools: neither is blood setting its level
        urinary = find_kidney_tract(ct, dense, body, coarse, params.urinary)
        find_contrast_bladder_tract(urinary, dense, body, coarse, params.urinary, lungs)
        if urinary.mask.any():
            dense &= ~urinary.mask
            allowed = allowed & ~urinary.mask
            coarse.allowed &= ~coarse.subsample(urinary.mask)
    pools = find_blood_pools(ct, allowed, spacing, params, coarse)
    if pools.level_hu is not None:
        report.blood_pool_ml = pools.ml
        report.blood_level_hu = round(pools.level_hu)
        log.info("contrast-filled blood pools: %.0f mL at a median %.0f HU, kept out of the bone", pools.ml,
                 pools.level_hu)
        dense &= ~pools.mask
        allowed = allowed & ~pools.mask
    if params.urinary.ureters and urinary.kidney_ml > 0:
        find_ureter_tract(urinary, dense, body, coarse, params.urinary)
        dense &= ~urinary.mask
        allowed = allowed & ~urinary.mask
    report.kidney_ml, report.ureter_ml, report.bladder_ml = urinary.kidney_ml, urinary.ureter_ml, urinary.bladder_ml
    if urinary.mask.any():
        log.info("urinary tract kept out of the bone: kidneys %.0f mL, ureters %.1f mL, contrast bladder %.1f mL",
                 urinary.kidney_ml, urinary.ureter_ml, urinary.bladder_ml)
    total = int(np.count_nonzero(dense))
    progress(0.1, "dense components")
    skeleton, kept, report.pieces = select_pieces(dense, ct, voxel_ml, params, pools, spacing, body)
    del dense
    if not kept:
        msg = f"no bone found (no voxel >= {params.tau2_hu:.0f} HU inside the body); the bone label is empty"
        log.debug(msg)
        report.warnings.append(msg)
        return skeleton, report
    report.skeleton_ml = round(kept * voxel_ml, 1)
    report.dropped_ml = round((total - kept) * voxel_ml, 1)
    if report.dropped_ml > report.skeleton_ml:
        msg = (f"the bone labeler dropped more dense tissue ({report.dropped_ml:.0f} mL >= {params.tau2_hu:.0f} HU) "
               f"than it kept as skeleton ({report.skeleton_ml:.0f} mL): contrast in organs or bowel, or bone "
               "it did not recognise; check the bone label")
        log.debug(msg)
        report.warnings.append(msg)
    progress(0.3, "close")
    if params.grid_mm > 0 and method == "auto":
        bone = morphology.closing_on_grid(skeleton, params.closing_diameter_mm / 2.0, spacing, params.grid_mm)
    else:
        bone = morphology.closing(skeleton, params.closing_diameter_mm / 2.0, spacing, method=method)
    progress(0.8, "threshold and fill")
    bone &= ct >= params.tau1_hu
    bone &= allowed
    area_px = params.max_hole_mm2 / (spacing[1] * spacing[2])
    if params.fill_before_guard:
        bone = morphology.fill_small_holes_per_slice(bone, area_px)
        bone &= allowed
    if params.soft_hu > params.tau1_hu:
        report.soft_tissue_ml = round(float(_drop_bridged_soft_tissue(bone, skeleton, ct, spacing, params)) * voxel_ml, 1)
    bone = morphology.fill_small_holes_per_slice(bone, area_px)
    bone &= allowed  # a blood pool or table piece ringed by bone in a slice is not marrow
    edge_allowed = allowed
    if params.canal:
        canal = spinal_canal(bone, skeleton, ct, spacing, body, params)
        report.canal_ml = round(float((canal & bone).sum()) * voxel_ml, 1)
        bone &= ~canal
        edge_allowed = allowed & ~canal  # the edge step does not grow back into it
        del canal
    if params.discs:
        discs = intervertebral_discs(bone, skeleton, ct, spacing, body, params)
        report.disc_ml = round(float(discs.sum()) * voxel_ml, 1)
        bone &= ~discs
        edge_allowed = edge_allowed & ~discs
        del discs
    del skeleton
    if params.edge_voxels > 0:
        bone = partial_volume_edge(bone, ct, edge_allowed, spacing, params.edge_voxels, params.edge_hu,
                                   params.edge_soft_hu, params.edge_halo_mm)
    del edge_allowed
    if params.cartilage:
        progress(0.9, "costal cartilage")
        cartilage = costal_cartilage(bone, ct, allowed, body, spacing, params)
        report.cartilage_ml = round(float(cartilage.sum()) * voxel_ml, 1)
        bone |= cartilage
        del cartilage
    if ignore is not None:
        bone &= ~ignore
    progress(1.0, "bone done")
    return bone, report
