"""Import labels made elsewhere: a folder of per-structure masks -> a CT-ORG label map + annotated organs.

Reads one mask per structure (NIfTI/NRRD/MetaImage file, or a sub-folder holding a DICOM series, as
3D-IRCADb ships ``MASKS_DICOM/liver/``), names them by file or folder name, and maps each name to a
CT-ORG organ (``Resources/organs.json``: 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone) or to
background (the naming rules: ``organseglib.label_names``):

* **3D-IRCADb** names: ``liver``, ``leftkidney``/``rightkidney``, ``leftlung``/``rightlung``,
  ``bone``, ``bladder``; its other structures (``tumor``, ``spleen``, ``artery``, ``portalvein``,
  ``skin``…) are background.
* **TotalSegmentator** names: ``liver``, ``kidney_left``/``kidney_right``, ``urinary_bladder``,
  ``lung_upper_lobe_left`` … ``lung_lower_lobe_right`` (or ``lung_left``/``lung_right``), and as bone
  ``vertebrae_*``, ``rib_*``, ``hip_*``, ``sacrum``, ``femur_*``, ``humerus_*``, ``scapula_*``,
  ``clavicula_*``, ``sternum``, ``skull``; its other classes (spleen, aorta, heart…) are background.
* a **mapping file** (JSON ``{"name": "liver" | "kidneys:left" | "bone:ribs" | "background"}``, or
  ``{"name": {"1": "liver", "2": "kidneys:left"}}`` for one file holding several structures by value)
  for anything else; it is consulted first.
* any other name is refused with the nearest known names (a misspelt ``livr`` would leave the liver out).

Which organs the case *annotates* (the rest are unknown, never background: ``losses`` ignores them):

* liver, bladder: its mask file is present (an empty mask means "annotated and absent").
* kidneys: a combined mask, or both the left and the right one.
* lungs: a combined mask, or each side by a side mask or all that side's lobes (TotalSegmentator:
  two left, three right). IRCAD's lungs cover only the bases in view: still annotated there.
* bone: a combined ``bone`` mask, or every bone group in ``ImportConfig.required_bone_groups``
  (default: the groups TotalSegmentator's ``total`` task writes). A folder with only some groups
  (e.g. ``--roi_subset vertebrae_*``) does not annotate bone: its bone voxels would claim that
  every other bone is background.

A case that annotates no organ is refused. An organ that is not annotated is written as 0 in the
label map (its partial masks included): with the marginal loss, 0 there means "background or an
unknown organ", which is true.

Mask values: a mask is binary, 0 and one other value (1, 255, True...); anything else (probabilities,
0/255 with noise, a label map of several structures) is refused with the values found, unless the
mapping names the file's values. Overlaps: non-organ structures never overwrite an organ (they are
background). Two masks of different organs claiming one voxel are an error naming the masks, the
voxel count and their box, unless ``ImportConfig.overlap`` says which keeps it: ``"first"`` (the mask
listed first, by file name) or ``"last"``; the report lists every overlap either way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
from scipy.ndimage import find_objects

from .errors import GeometryError, InputError, LabelValueError, MissingFileError
from .label_names import (BACKGROUND, BONE_GROUPS, MASK_EXTENSIONS, Target, ValueMap, builtin_target,
                          normalise_name, parse_mapping, read_mapping_file, unknown_names_error)
from .morphology import count_values
from .organs import organ_by_key
from .volume import Volume

log = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]

ORGAN_KEYS = ("liver", "bladder", "lungs", "kidneys", "bone")
# TotalSegmentator's `total` task writes all of these in v1 and v2 (v2 adds sternum and skull, which are
# counted as bone when present but not required): the default requirement.
DEFAULT_BONE_GROUPS = ("vertebrae", "ribs", "pelvis", "femur", "humerus", "scapula", "clavicula")
OVERLAP_RULES = ("first", "last")
_LOBES = {"left": {"upper_left", "lower_left"}, "right": {"upper_right", "middle_right", "lower_right"}}
__all__ = ["BACKGROUND", "BONE_GROUPS", "DEFAULT_BONE_GROUPS", "ImportConfig", "ImportedLabels", "MASK_EXTENSIONS",
           "OVERLAP_RULES", "annotated_organs", "autolabel_case", "classify_name", "import_case", "import_masks",
           "list_masks", "normalise_name", "plan_import", "read_mapping_file", "structures_from_masks"]


@dataclass(frozen=True)
class ImportConfig:
    """How names map to organs, when bone counts as annotated, and what overlapping masks get.

    Attributes:
        mapping: extra ``{name: "organ[:part]" | "background" | {value: "organ[:part]"}}`` entries,
            checked before the built-in names (``label_names.parse_mapping``).
        required_bone_groups: bone groups that must all be present for per-bone masks to annotate bone.
        overlap: None (masks of two organs sharing a voxel are an error), ``"first"`` or ``"last"`` (the
            mask listed first / last, by file name, keeps the voxel).
    """

    mapping: Mapping[str, object] = field(default_factory=dict)
    required_bone_groups: Tuple[str, ...] = DEFAULT_BONE_GROUPS
    overlap: Optional[str] = None

    def __post_init__(self) -> None:
        groups = tuple(str(g).strip().lower() for g in self.required_bone_groups if str(g).strip())
        bad = [g for g in groups if g not in BONE_GROUPS]
        if bad:
            raise InputError(f"required_bone_groups: unknown bone group(s) {bad}; pick from {', '.join(BONE_GROUPS)}")
        object.__setattr__(self, "required_bone_groups", groups)
        object.__setattr__(self, "mapping", parse_mapping(self.mapping, "mapping"))
        if self.overlap is not None and self.overlap not in OVERLAP_RULES:
            raise InputError(f"overlap must be first or last (or None: overlapping masks are an error); got "
                             f"{self.overlap!r}")


def _lookup(norm: str, config: ImportConfig) -> Union[Target, ValueMap, None]:
    return config.mapping[norm] if norm in config.mapping else builtin_target(norm)


def classify_name(name: str, config: ImportConfig = ImportConfig()) -> Tuple[str, str]:
    """``(organ key, part)`` for a structure name; ``("background", "")`` when it is not a CT-ORG organ
    (or not known at all: ``plan_import`` refuses those)."""
    target = _lookup(normalise_name(name), config)
    return target if isinstance(target, tuple) else (BACKGROUND, "")


def annotated_organs(parts: Mapping[str, Iterable[str]], config: ImportConfig = ImportConfig()) -> Tuple[str, ...]:
    """The organs (keys, table order) that the present parts annotate completely (module docstring)."""
    out = []
    for key in ORGAN_KEYS:
        have = set(parts.get(key, ()))
        if "whole" in have:
            out.append(key)
        elif key == "kidneys" and {"left", "right"} <= have:
            out.append(key)
        elif key == "lungs" and all(side in have or lobes <= have for side, lobes in _LOBES.items()):
            out.append(key)
        elif key == "bone" and have and set(config.required_bone_groups) <= have:
            out.append(key)
    return tuple(out)


def list_masks(folder: PathLike) -> Dict[str, Path]:
    """Mask name -> path: image files and sub-folders (DICOM series) of ``folder``, by file name.

    Raises:
        MissingFileError: ``folder`` is not a folder.
        InputError: it holds no mask, two files give the same name, or a mask is not a regular file
            (a FIFO or device: reading it would hang).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise MissingFileError(f"mask folder {str(root)!r} does not exist or is not a folder")
    found: Dict[str, Path] = {}
    for item in sorted(root.iterdir()):
        lower = item.name.lower()
        if item.name.startswith(".") or not (item.is_dir() or any(lower.endswith(ext) for ext in MASK_EXTENSIONS)):
            continue
        if not item.is_dir() and not item.is_file():
            raise InputError(f"mask {str(item)!r} is not a regular file (a FIFO, device or socket): reading it could "
                             "wait for ever; replace it with the mask file")
        name = normalise_name(item.name)
        if name in found:
            raise InputError(f"mask folder {str(root)!r}: {found[name].name!r} and {item.name!r} both name "
                             f"structure {name!r}; keep one of them")
        found[name] = item
    if not found:
        raise InputError(f"mask folder {str(root)!r} holds no mask (expected {', '.join(MASK_EXTENSIONS)} files or "
                         "DICOM series folders, one per structure)")
    return found


@dataclass(frozen=True)
class ImportPlan:
    """What a mask folder will give, from the names alone (no voxel read): see :func:`plan_import`."""

    folder: Path
    masks: Dict[str, Path]                        # name -> path, listing order
    targets: Dict[str, Union[Target, ValueMap]]   # name -> target, or value -> target for a label map
    annotated: Tuple[str, ...]
    partial: Dict[str, List[str]]

    def structures(self) -> Dict[str, str]:
        """name -> ``"organ:part"`` / ``"background"`` (a label map: ``"{1: liver:whole, ...}"``)."""
        def text(t):
            return BACKGROUND if t[0] == BACKGROUND else f"{t[0]}:{t[1]}"

        return {name: text(t) if isinstance(t, tuple) else "{" + ", ".join(f"{v}: {text(x)}" for v, x in t.items()) + "}"
                for name, t in self.targets.items()}


def plan_import(folder: PathLike, config: ImportConfig = ImportConfig()) -> ImportPlan:
    """Name every mask of ``folder`` and decide which organs the case annotates, before any voxel is read.

    Raises:
        MissingFileError, InputError: as ``list_masks``; a name that is unknown (with the nearest known
            names); a folder that annotates no organ.
    """
    masks = list_masks(folder)
    targets = {name: _lookup(name, config) for name in masks}
    unknown = [name for name, t in targets.items() if t is None]
    if unknown:
        raise unknown_names_error(folder, unknown)
    parts: Dict[str, set] = {}
    for t in targets.values():
        for organ, part in ([t] if isinstance(t, tuple) else list(t.values())):
            if organ != BACKGROUND:
                parts.setdefault(organ, set()).add(part)
    annotated = annotated_organs(parts, config)
    partial = {k: sorted(v) for k, v in parts.items() if k not in annotated}
    if not annotated:
        present = ", ".join(f"{key} ({', '.join(have)})" for key, have in partial.items())
        why = f"only parts of {present} are present" if partial else "no mask names one of the five organs"
        raise InputError(f"mask folder {str(folder)!r} annotates no organ: {why} (structures: "
                         f"{', '.join(masks)}); a case that annotates nothing teaches nothing. Add the missing masks, or "
                         "name the organs' masks in --mapping")
    for key, have in partial.items():
        log.warning("%s: only %s present; %s is NOT annotated (unknown in this case, written as 0)",
                    folder, ", ".join(have), key)
    return ImportPlan(Path(folder), masks, targets, annotated, partial)


@dataclass(frozen=True)
class ImportedLabels:
    """The result of :func:`import_masks`."""

    labels: Volume                         # uint8 CT-ORG values on the CT's grid
    annotated: Tuple[str, ...]             # organ keys the case annotates
    structures: Dict[str, str]             # mask name -> "organ:part" or "background"
    partial: Dict[str, List[str]]          # organ -> parts present that did not make it annotated
    overlaps: List[dict] = field(default_factory=list)  # {"masks", "voxels", "box_ijk", "kept"} (--overlap)
    kept_structures: Tuple[str, ...] = ()  # extra structures kept as structures-N (import_case(keep_structures=))

    def report(self) -> dict:
        return {"annotated_organs": list(self.annotated), "structures": dict(self.structures),
                "partial_not_annotated": {k: sorted(v) for k, v in self.partial.items()},
                "overlaps": [dict(o) for o in self.overlaps], "kept_structures": list(self.kept_structures)}


def _values_text(values: np.ndarray) -> str:
    shown = [f"{v:g}" for v in values[:6].tolist()]
    if len(values) > 8:
        shown += ["...", *[f"{v:g}" for v in values[-2:].tolist()]]
    elif len(values) > 6:
        shown += [f"{v:g}" for v in values[6:].tolist()]
    return ", ".join(shown)


def _distinct_values(array: np.ndarray, source: str) -> np.ndarray:
    """The sorted distinct values of a mask file: one pass for integer types (fastremap), two reductions
    and a comparison for a float file that is 0 and one value, ``np.unique`` otherwise."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return np.array(sorted(count_values(array)))
    lo, hi = array.min(), array.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise LabelValueError(f"mask {source}: holds NaN or infinite values; a mask is 0 and one other value")
    if lo == hi:
        return np.array([lo])
    if (lo == 0 or hi == 0) and not np.count_nonzero((array != lo) & (array != hi)):
        return np.array([lo, hi])
    return np.unique(array)


def _binary_mask(array: np.ndarray, source: str) -> np.ndarray:
    """The voxels of a binary mask (0 and one other value, or all 0), or a refusal naming the values found."""
    values = _distinct_values(array, source)
    if 0 in values and len(values) <= 2:
        return array != 0
    if len(values) == 1:
        raise LabelValueError(f"mask {source}: every voxel is {values[0]:g}: it marks the whole scan; a mask is 0 "
                              "outside its structure")
    whole = bool(np.all(np.mod(values, 1) == 0))
    if not whole:
        hint = "probabilities? threshold them (e.g. > 0.5) and save 0/1"
    else:
        hint = ("a label map of several structures, or a mask with noise? name its values in --mapping "
                '(e.g. {"NAME": {"1": "liver", "2": "kidneys:left"}}), or clean it to 0/1')
    raise LabelValueError(f"mask {source} is not binary: it holds {len(values)} distinct values ({_values_text(values)})"
                          f"{'' if 0 in values else ', none of them 0'}; a mask is 0 and one other value. {hint}")


def _pieces(name: str, array: np.ndarray, target, annotated, source: str):
    """``(label, target, mask)`` of every annotated structure a file holds."""
    if isinstance(target, tuple):
        return [(name, target, _binary_mask(array, source))]
    values = _distinct_values(array, source)
    extra = [v for v in values.tolist() if v != 0 and (float(v) % 1 or int(v) not in target)]
    if extra:
        raise LabelValueError(f"label map {source} holds values {_values_text(np.asarray(extra))} that its --mapping "
                              f"entry {name!r} does not name (it names {sorted(target)}); map them too (e.g. to "
                              '"background")')
    return [(f"{name}={v}", t, array == v) for v, t in target.items() if t[0] in annotated]


def _box(sel: np.ndarray, corner=(0, 0, 0)) -> list:
    """[[i0, i1], [j0, j1], [k0, k1]] of the True voxels of a [k, j, i] array whose first voxel is
    ``corner`` (k, j, i) of the whole grid."""
    k, j, i = (axis + start for axis, start in zip(np.nonzero(sel), corner))
    return [[int(i.min()), int(i.max())], [int(j.min()), int(j.max())], [int(k.min()), int(k.max())]]


def _paint(out: np.ndarray, owner: np.ndarray, mask: np.ndarray, value: int, index: int, labels: List[str],
           overlap: Optional[str]) -> List[dict]:
    """Write organ ``value`` where ``mask`` is set (within its bounding box: a rib is a small part of the
    scan), by the overlap rule; returns the overlaps with other organs already written."""
    found = find_objects(mask.view(np.uint8))
    if not found:
        return []  # an empty mask: the organ is annotated and absent
    box = found[0]
    region, held, piece = out[box], owner[box], mask[box]
    clash = piece & (region != 0) & (region != value)
    overlaps = []
    if clash.any():
        for other in np.unique(held[clash]).tolist():
            sel = clash & (held == other)
            pair = [labels[other - 1], labels[index - 1]]
            overlaps.append({"masks": pair, "voxels": int(np.count_nonzero(sel)),
                             "box_ijk": _box(sel, [s.start for s in box]),
                             "kept": pair[1] if overlap == "last" else pair[0]})
    paint = piece if overlap == "last" else piece & ~clash
    region[paint] = value
    held[paint] = index
    return overlaps


def _overlap_error(folder, overlaps: List[dict]) -> InputError:
    first = overlaps[0]
    (i0, i1), (j0, j1), (k0, k1) = first["box_ijk"]
    more = f"; {len(overlaps) - 1} more overlapping pair(s)" if len(overlaps) > 1 else ""
    return InputError(f"mask folder {str(folder)!r}: masks {first['masks'][0]!r} and {first['masks'][1]!r} overlap on "
                      f"{first['voxels']} voxels (i {i0}-{i1}, j {j0}-{j1}, k {k0}-{k1}){more}: one voxel cannot be two "
                      "organs. Correct the masks, or pass --overlap first (the mask listed first by file name keeps the "
                      "voxel) or --overlap last")


def import_masks(folder: PathLike, ct: Volume, config: ImportConfig = ImportConfig(),
                 plan: Optional[ImportPlan] = None) -> ImportedLabels:
    """Build the CT-ORG label map of a mask folder on the grid of ``ct`` (see the module docstring);
    ``plan``: the folder's ``plan_import`` when the caller made it already.

    Raises:
        MissingFileError, InputError: see :func:`plan_import`; masks of two organs overlapping (without
            ``config.overlap``).
        LabelValueError: a mask that is not binary, or a label map with values its mapping lacks.
        GeometryError: a mask is not on the CT's grid.
    """
    from .io import read_volume

    plan = plan if plan is not None else plan_import(folder, config)
    out = np.zeros(ct.shape, dtype=np.uint8)
    owner = np.zeros(ct.shape, dtype=np.int32)  # 1 + index into `labels` of the piece that painted the voxel
    labels: List[str] = []
    overlaps: List[dict] = []
    for name, path in plan.masks.items():
        target = plan.targets[name]
        organs = {target[0]} if isinstance(target, tuple) else {t[0] for t in target.values()}
        if not organs & set(plan.annotated):
            continue  # background or a partial organ: never read, never written
        vol = read_volume(path)
        try:
            ct.require_same_grid(vol, what=f"mask {str(path)!r}")
        except GeometryError as exc:
            raise GeometryError(f"{exc}; masks must be on the CT's grid (resample them onto the CT first)") from None
        for label, (organ, _), mask in _pieces(name, np.asarray(vol.array), target, plan.annotated, repr(str(path))):
            if organ not in plan.annotated:
                continue
            labels.append(label)
            overlaps += _paint(out, owner, mask, organ_by_key(organ).value, len(labels), labels, config.overlap)
    if overlaps and config.overlap is None:
        raise _overlap_error(folder, overlaps)
    return ImportedLabels(ct.with_array(out), plan.annotated, plan.structures(), plan.partial, overlaps)


def structures_from_masks(folder: PathLike, ct: Volume) -> Optional[Volume]:
    """The extra structures of a mask folder (``list_masks``) as a uint8 ``Volume`` on the
    CT's grid, or None when the folder has none of them. Each mask must be binary, as an organ's
    (the values found are named otherwise).

    Raises:
        GeometryError: a structure mask is not on the CT's grid; LabelValueError: one is not binary;
        and what ``list_masks`` raises.
    """
    from .io import read_volume
    from .extra_structures import structure_key, structure_map

    masks = {}
    for name, path in list_masks(folder).items():
        if structure_key(name) is None:
            continue
        vol = read_volume(path)
        ct.require_same_grid(vol, what=f"structure mask {str(path)!r}")
        masks[name] = _binary_mask(np.asarray(vol.array), repr(str(path)))
    array = structure_map(masks)
    return None if array is None else ct.with_array(array)


def import_case(masks: PathLike, ct_path: PathLike, folder: PathLike, config: ImportConfig = ImportConfig(),
                ct_mode: str = "copy", source: Optional[str] = None, keep_structures: bool = False):
    """Import a mask folder for the CT at ``ct_path`` as a new training-set case in ``folder``.

    The CT is read once, with the CT checks (``io.read_ct``), and handed to ``add_case_files``.
    ``keep_structures``: also keep the spleen and vessel masks (``extra_structures``) as the case's
    ``structures-N.nii.gz``, for label-guided intensity augmentation (``ImportedLabels.kept``).

    Returns:
        ``(training_set.ManifestEntry, ImportedLabels)``.

    Raises:
        NotCTError: ``ct_path`` does not look like a CT in HU; and what ``import_masks`` raises.
    """
    from .io import read_ct
    from .training_set import add_case_files

    plan = plan_import(masks, config)  # unknown names, a case that annotates nothing: refused before the CT is read
    ct = read_ct(ct_path)
    imported = import_masks(masks, ct, config, plan)
    structures = None
    if keep_structures:
        from .extra_structures import present_structures

        structures = structures_from_masks(masks, ct)
        imported = replace(imported, kept_structures=present_structures(None if structures is None else structures.array))
    entry = add_case_files(ct_path, imported.labels, folder, source or f"import-labels {masks}",
                           imported.annotated, ct_mode=ct_mode, ct=ct, structures=structures)
    return entry, imported


def autolabel_case(ct_path: PathLike, folder: PathLike, organs: Iterable[str] = ("lungs", "bone"),
                   ct_mode: str = "copy", source: Optional[str] = None):
    """Make an unlabelled CT a training case annotating only the auto-labelled organs (the paper's
    unsupervised labels, section III): liver, kidneys and bladder stay unknown there.

    Returns:
        ``(training_set.ManifestEntry, autolabel report)`` (the report's ``warnings`` gathers the
        labelers' warnings).
    """
    from .autolabel import autolabel_with_report, supported_organ_keys
    from .io import read_ct
    from .training_set import add_case_files

    keys = supported_organ_keys(list(organs))
    ct = read_ct(ct_path)
    labels, report = autolabel_with_report(ct, keys)
    entry = add_case_files(ct_path, labels, folder, source or f"autolabel {ct_path}", keys, ct_mode=ct_mode, ct=ct)
    return entry, report
