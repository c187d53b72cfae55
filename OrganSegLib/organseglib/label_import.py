"""Import labels made elsewhere: a folder of per-structure masks -> a CT-ORG label map + annotated organs.

Reads one mask per structure (NIfTI/NRRD/MetaImage file, or a sub-folder holding a DICOM series, as
3D-IRCADb ships ``MASKS_DICOM/liver/``), names them by file or folder name, and maps each name to a
CT-ORG organ (``Resources/organs.json``: 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone) or to
background:

* **3D-IRCADb** names: ``liver``, ``leftkidney``/``rightkidney``, ``leftlung``/``rightlung``,
  ``bone``, ``bladder``; everything else (``tumor``, ``spleen``, ``artery``, ``portalvein``, ``skin``…)
  is background.
* **TotalSegmentator** names: ``liver``, ``kidney_left``/``kidney_right``, ``urinary_bladder``,
  ``lung_upper_lobe_left`` … ``lung_lower_lobe_right`` (or ``lung_left``/``lung_right``), and as bone
  ``vertebrae_*``, ``rib_*``, ``hip_*``, ``sacrum``, ``femur_*``, ``humerus_*``, ``scapula_*``,
  ``clavicula_*``, ``sternum``, ``skull``; everything else (spleen, aorta, heart…) is background.
* a **mapping file** (JSON ``{"name": "liver" | "kidneys:left" | "bone:ribs" | "background"}``) for
  anything else; it is consulted first.

Which organs the case *annotates* (the rest are unknown, never background: ``losses`` ignores them):

* liver, bladder: its mask file is present (an empty mask means "annotated and absent").
* kidneys: a combined mask, or both the left and the right one.
* lungs: a combined mask, or each side by a side mask or all that side's lobes (TotalSegmentator:
  two left, three right). IRCAD's lungs cover only the bases in view: still annotated there.
* bone: a combined ``bone`` mask, or every bone group in ``ImportConfig.required_bone_groups``
  (default: the groups TotalSegmentator's ``total`` task writes). A folder with only some groups
  (e.g. ``--roi_subset vertebrae_*``) does not annotate bone: its bone voxels would claim that
  every other bone is background.

An organ that is not annotated is written as 0 in the label map (its partial masks included): with
the marginal loss, 0 there means "background or an unknown organ", which is true.

Overlaps: non-organ structures never overwrite an organ (they are background). Where two organ masks
claim one voxel, the organ first in ``OVERLAP_PRIORITY`` wins (kidneys, bladder, liver, lungs,
bone: a small or coarse neighbour never swallows a soft-tissue organ); the count is reported.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from .errors import GeometryError, InputError, MissingFileError
from .organs import organ_by_key, organ_by_value
from .volume import Volume

log = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]

ORGAN_KEYS = ("liver", "bladder", "lungs", "kidneys", "bone")
OVERLAP_PRIORITY = ("kidneys", "bladder", "liver", "lungs", "bone")
BONE_GROUPS = ("vertebrae", "ribs", "pelvis", "femur", "humerus", "scapula", "clavicula", "sternum", "skull")
# TotalSegmentator's `total` task writes all of these in v1 and v2 (v2 adds sternum and skull, which are
# counted as bone when present but not required): the default requirement.
DEFAULT_BONE_GROUPS = ("vertebrae", "ribs", "pelvis", "femur", "humerus", "scapula", "clavicula")
BACKGROUND = "background"
MASK_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_LOBES = {"left": {"upper_left", "lower_left"}, "right": {"upper_right", "middle_right", "lower_right"}}

# Exact names (lower case, '-' and ' ' read as '_'): (organ, part). Part "whole" = the whole organ.
_EXACT: Dict[str, Tuple[str, str]] = {
    "liver": ("liver", "whole"),
    "bladder": ("bladder", "whole"), "urinary_bladder": ("bladder", "whole"),
    "kidneys": ("kidneys", "whole"), "kidney": ("kidneys", "whole"),
    "leftkidney": ("kidneys", "left"), "kidney_left": ("kidneys", "left"), "left_kidney": ("kidneys", "left"),
    "rightkidney": ("kidneys", "right"), "kidney_right": ("kidneys", "right"), "right_kidney": ("kidneys", "right"),
    "lungs": ("lungs", "whole"), "lung": ("lungs", "whole"),
    "leftlung": ("lungs", "left"), "lung_left": ("lungs", "left"), "left_lung": ("lungs", "left"),
    "rightlung": ("lungs", "right"), "lung_right": ("lungs", "right"), "right_lung": ("lungs", "right"),
    "lung_upper_lobe_left": ("lungs", "upper_left"), "lung_lower_lobe_left": ("lungs", "lower_left"),
    "lung_upper_lobe_right": ("lungs", "upper_right"), "lung_middle_lobe_right": ("lungs", "middle_right"),
    "lung_lower_lobe_right": ("lungs", "lower_right"),
    "bone": ("bone", "whole"), "bones": ("bone", "whole"), "skeleton": ("bone", "whole"),
    "sacrum": ("bone", "pelvis"), "sternum": ("bone", "sternum"), "skull": ("bone", "skull"),
}
_BONE_PATTERNS = (
    (re.compile(r"^vertebrae?_[a-z]?\d*$"), "vertebrae"),
    (re.compile(r"^rib_(left|right)_\d+$"), "ribs"),
    (re.compile(r"^hip_(left|right)$"), "pelvis"),
    (re.compile(r"^femur_(left|right)$"), "femur"),
    (re.compile(r"^humerus_(left|right)$"), "humerus"),
    (re.compile(r"^scapula_(left|right)$"), "scapula"),
    (re.compile(r"^clavicula_(left|right)$"), "clavicula"),
)


@dataclass(frozen=True)
class ImportConfig:
    """How names map to organs and when bone counts as annotated.

    Attributes:
        mapping: extra ``{name: "organ[:part]" | "background"}`` entries, checked before the built-in names.
        required_bone_groups: bone groups that must all be present for per-bone masks to annotate bone.
    """

    mapping: Mapping[str, str] = field(default_factory=dict)
    required_bone_groups: Tuple[str, ...] = DEFAULT_BONE_GROUPS

    def __post_init__(self) -> None:
        groups = tuple(str(g).strip().lower() for g in self.required_bone_groups if str(g).strip())
        bad = [g for g in groups if g not in BONE_GROUPS]
        if bad:
            raise InputError(f"required_bone_groups: unknown bone group(s) {bad}; pick from {', '.join(BONE_GROUPS)}")
        object.__setattr__(self, "required_bone_groups", groups)
        clean = {}
        for name, target in dict(self.mapping).items():
            clean[normalise_name(name)] = _parse_target(str(target), f"mapping entry {name!r}")
        object.__setattr__(self, "mapping", clean)


def normalise_name(name: str) -> str:
    """``'Kidney Left.nii.gz'`` -> ``'kidney_left'``."""
    text = str(name).strip().lower()
    for ext in MASK_EXTENSIONS:
        if text.endswith(ext):
            text = text[: -len(ext)]
            break
    return re.sub(r"[\s\-]+", "_", text)


def _parse_target(text: str, what: str) -> Tuple[str, str]:
    text = text.strip().lower()
    if text in (BACKGROUND, "none", "ignore", ""):
        return (BACKGROUND, "")
    organ, _, part = text.partition(":")
    key = organ_by_key(organ).key  # raises InputError for an unknown organ
    part = part or "whole"
    if key == "bone" and part != "whole" and part not in BONE_GROUPS:
        raise InputError(f"{what}: bone part must be 'whole' or one of {', '.join(BONE_GROUPS)}; got {part!r}")
    return (key, part)


def classify_name(name: str, config: ImportConfig = ImportConfig()) -> Tuple[str, str]:
    """``(organ key, part)`` for a structure name, or ``("background", "")`` when it is not a CT-ORG organ."""
    norm = normalise_name(name)
    if norm in config.mapping:
        return config.mapping[norm]
    if norm in _EXACT:
        return _EXACT[norm]
    for pattern, group in _BONE_PATTERNS:
        if pattern.match(norm):
            return ("bone", group)
    return (BACKGROUND, "")


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


@dataclass(frozen=True)
class ImportedLabels:
    """The result of :func:`import_masks`."""

    labels: Volume                         # uint8 CT-ORG values on the CT's grid
    annotated: Tuple[str, ...]             # organ keys the case annotates
    structures: Dict[str, str]             # mask name -> "organ:part" or "background"
    partial: Dict[str, List[str]]          # organ -> parts present that did not make it annotated
    overlap_voxels: Dict[str, int]         # "winner<loser" -> voxels resolved by OVERLAP_PRIORITY

    def report(self) -> dict:
        return {"annotated_organs": list(self.annotated), "structures": dict(self.structures),
                "partial_not_annotated": {k: sorted(v) for k, v in self.partial.items()},
                "overlap_voxels": dict(self.overlap_voxels)}


def list_masks(folder: PathLike) -> Dict[str, Path]:
    """Mask name -> path: image files and sub-folders (DICOM series) of ``folder``.

    Raises:
        MissingFileError: ``folder`` is not a folder.
        InputError: it holds no mask, or two files give the same name.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise MissingFileError(f"mask folder {str(root)!r} does not exist or is not a folder")
    found: Dict[str, Path] = {}
    for item in sorted(root.iterdir()):
        if item.name.startswith("."):
            continue
        lower = item.name.lower()
        if item.is_dir() or any(lower.endswith(ext) for ext in MASK_EXTENSIONS):
            name = normalise_name(item.name)
            if name in found:
                raise InputError(f"mask folder {str(root)!r}: {found[name].name!r} and {item.name!r} both name "
                                 f"structure {name!r}; keep one of them")
            found[name] = item
    if not found:
        raise InputError(f"mask folder {str(root)!r} holds no mask (expected {', '.join(MASK_EXTENSIONS)} files or "
                         "DICOM series folders, one per structure)")
    return found


def _mask_array(vol: Volume, ct: Volume, path: Path) -> np.ndarray:
    try:
        ct.require_same_grid(vol, what=f"mask {str(path)!r}")
    except GeometryError as exc:
        raise GeometryError(f"{exc}; masks must be on the CT's grid (resample them onto the CT first)") from None
    return np.asarray(vol.array) != 0


def import_masks(folder: PathLike, ct: Volume, config: ImportConfig = ImportConfig()) -> ImportedLabels:
    """Build the CT-ORG label map of a mask folder on the grid of ``ct`` (see the module docstring).

    Raises:
        MissingFileError, InputError: see :func:`list_masks`.
        GeometryError: a mask is not on the CT's grid.
    """
    from .io import read_volume

    masks = list_masks(folder)
    structures: Dict[str, str] = {}
    parts: Dict[str, set] = {}
    for name in masks:
        organ, part = classify_name(name, config)
        structures[name] = BACKGROUND if organ == BACKGROUND else f"{organ}:{part}"
        if organ != BACKGROUND:
            parts.setdefault(organ, set()).add(part)
    annotated = annotated_organs(parts, config)
    partial = {k: sorted(v) for k, v in parts.items() if k not in annotated}
    for key, have in partial.items():
        log.warning("%s: only %s present; %s is NOT annotated (unknown in this case, written as 0)",
                    folder, ", ".join(have), key)
    union: Dict[str, np.ndarray] = {}
    for name, path in masks.items():
        organ = structures[name].partition(":")[0]
        if organ not in annotated:
            continue
        mask = _mask_array(read_volume(path), ct, path)
        union[organ] = mask if organ not in union else (union[organ] | mask)
    out = np.zeros(ct.shape, dtype=np.uint8)
    claimed = np.zeros(ct.shape, dtype=bool)
    owner = np.zeros(ct.shape, dtype=np.uint8)
    overlaps: Dict[str, int] = {}
    for key in OVERLAP_PRIORITY:  # the first claim wins
        if key not in union:
            continue
        value = organ_by_key(key).value
        clash = union[key] & claimed
        for winner_value in np.unique(owner[clash]):  # voxels an earlier organ already holds
            winner = organ_by_value(int(winner_value)).key
            overlaps[f"{winner}<{key}"] = int((clash & (owner == winner_value)).sum())
        free = union[key] & ~claimed
        out[free] = value
        owner[free] = value
        claimed |= free
    return ImportedLabels(ct.with_array(out), annotated, structures, partial, overlaps)


def read_mapping_file(path: PathLike) -> Dict[str, str]:
    """A JSON object ``{"name": "organ[:part]" | "background"}``.

    Raises:
        MissingFileError: no such file. InputError: not such a JSON object.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingFileError(f"mapping file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"mapping file {str(p)!r} is not JSON ({exc}); write "
                         '{"structure name": "liver" | "kidneys:left" | "bone:ribs" | "background"}') from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"mapping file {str(p)!r} must be one JSON object of name -> organ text; got "
                         f"{type(data).__name__}")
    return data


def import_case(masks: PathLike, ct_path: PathLike, folder: PathLike, config: ImportConfig = ImportConfig(),
                ct_mode: str = "copy", source: Optional[str] = None):
    """Import a mask folder for the CT at ``ct_path`` as a new training-set case in ``folder``.

    The CT is read once, with the CT checks (``io.read_ct``), and handed to ``add_case_files``.

    Returns:
        ``(training_set.ManifestEntry, ImportedLabels)``.

    Raises:
        NotCTError: ``ct_path`` does not look like a CT in HU; and what ``import_masks`` raises.
    """
    from .io import read_ct
    from .training_set import add_case_files

    ct = read_ct(ct_path)
    imported = import_masks(masks, ct, config)
    entry = add_case_files(ct_path, imported.labels, folder, source or f"import-labels {masks}",
                           imported.annotated, ct_mode=ct_mode, ct=ct)
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
