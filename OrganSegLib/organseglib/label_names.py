"""Structure names of imported masks -> CT-ORG organs (or background), and the mapping file's rules.

Names are compared lower case, with ``-`` and spaces read as ``_`` and the image extension dropped
(``normalise_name``). A name is one of:

* an **organ** name (``_EXACT``, ``_BONE_PATTERNS``): 3D-IRCADb's ``liver``, ``leftkidney`` ...,
  TotalSegmentator's ``kidney_left``, ``lung_upper_lobe_left``, ``vertebrae_L3``, ``rib_left_11`` ...;
* a **known non-organ** name, background (``KNOWN_BACKGROUND``, ``_BACKGROUND_PATTERNS``): every other
  class of TotalSegmentator's ``total`` task (v1 and v2) and of 3D-IRCADb-01's mask folders (tumours,
  cysts, vessels, glands, ``skin``...);
* anything else is **unknown** and refused (``unknown_names_error``), with the nearest known names
  (``difflib``): a misspelt ``livr`` would otherwise silently leave the liver out of the case. Naming
  it in the mapping file (as an organ, or as ``"background"``) accepts it.

The mapping file (JSON) maps a name to an organ text ``"organ[:part]"`` or ``"background"``, or, for a
label map of several structures in one file, to an object ``{"1": "liver", "2": "kidneys:left", ...}``
of its voxel values. Parts: ``PARTS`` (``kidneys:middle`` is refused). Names are unique after
``normalise_name`` (``Leber`` and ``LEBER`` in one file are refused, not "last wins").
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Tuple, Union

from .errors import InputError, MissingFileError
from .organs import organ_by_key

BACKGROUND = "background"
MASK_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
BONE_GROUPS = ("vertebrae", "ribs", "pelvis", "femur", "humerus", "scapula", "clavicula", "sternum", "skull")
_LUNG_PARTS = ("left", "right", "upper_left", "lower_left", "upper_right", "middle_right", "lower_right")
PARTS = {"liver": ("whole",), "bladder": ("whole",), "kidneys": ("whole", "left", "right"),
         "lungs": ("whole",) + _LUNG_PARTS, "bone": ("whole",) + BONE_GROUPS}

Target = Tuple[str, str]  # (organ key or "background", part)
ValueMap = Dict[int, Target]  # a multi-valued label map: voxel value -> target

# Exact names: (organ, part). Part "whole" = the whole organ.
_EXACT: Dict[str, Target] = {
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
# TotalSegmentator `total` (v1 and v2) classes that are none of the five organs, and 3D-IRCADb-01's.
_SIDED = ("adrenal_gland", "kidney_cyst", "iliac_artery", "iliac_vena", "subclavian_artery", "common_carotid_artery",
          "brachiocephalic_vein", "gluteus_maximus", "gluteus_medius", "gluteus_minimus", "autochthon", "iliopsoas",
          "surrenalgland")
KNOWN_BACKGROUND = frozenset({
    "spleen", "gallbladder", "stomach", "pancreas", "esophagus", "trachea", "thyroid_gland", "small_bowel", "duodenum",
    "colon", "prostate", "heart", "aorta", "pulmonary_vein", "pulmonary_artery", "brachiocephalic_trunk",
    "atrial_appendage_left", "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    "spinal_cord", "brain", "face", "costal_cartilages", "heart_myocardium", "heart_atrium_left",
    "heart_ventricle_left", "heart_atrium_right", "heart_ventricle_right",
    *(f"{name}_{side}" for name in _SIDED for side in ("left", "right")),
    # 3D-IRCADb-01 (MASKS_DICOM folder names)
    "tumor", "artery", "portalvein", "venoussystem", "venacava", "skin", "biliarysystem", "leftsurrenalgland",
    "rightsurrenalgland", "surrenalgland", "smallintestin", "sigmoid", "rectum", "uterus", "metal", "stones",
    "hyperplasie", "metastasectomie",
})
# numbered or compound lesion and vessel names (IRCAD's livertumor01, livercyst, liverkyst ...)
_BACKGROUND_PATTERNS = re.compile(r"(tumou?r|cyst|kyst|metasta|nodule|lesion|stone|vessel|vein|arter)")
_SET_FILES = re.compile(r"^(volume|labels)[-_]\d+$|^manifest$")


def normalise_name(name: str) -> str:
    """``'Kidney Left.nii.gz'`` -> ``'kidney_left'``."""
    text = str(name).strip().lower()
    for ext in MASK_EXTENSIONS:
        if text.endswith(ext):
            text = text[: -len(ext)]
            break
    return re.sub(r"[\s\-]+", "_", text)


def parse_target(text: str, what: str) -> Target:
    """``"kidneys:left"`` -> ``("kidneys", "left")``; ``"background"`` -> ``("background", "")``.

    Raises:
        InputError: an unknown organ (with the nearest names) or a part the organ does not have.
    """
    text = str(text).strip().lower()
    if text in (BACKGROUND, "none", "ignore", ""):
        return (BACKGROUND, "")
    organ, _, part = text.partition(":")
    try:
        key = organ_by_key(organ).key
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    part = part.strip() or "whole"
    if part not in PARTS[key]:
        raise InputError(f"{what}: {key} has no part {part!r}; use {key} or {key}:one of "
                         f"{', '.join(p for p in PARTS[key] if p != 'whole') or '(none: only the whole organ)'}")
    return (key, part)


def builtin_target(norm: str):
    """The organ target of a normalised built-in name, ``(BACKGROUND, "")`` for a known non-organ, None
    when the name is unknown."""
    if norm in _EXACT:
        return _EXACT[norm]
    for pattern, group in _BONE_PATTERNS:
        if pattern.match(norm):
            return ("bone", group)
    if norm in KNOWN_BACKGROUND or _BACKGROUND_PATTERNS.search(norm):
        return (BACKGROUND, "")
    return None


def suggestions(name: str, limit: int = 2) -> List[str]:
    """The known names nearest to ``name`` (organ names first)."""
    organs = difflib.get_close_matches(name, list(_EXACT), n=limit, cutoff=0.7)
    others = difflib.get_close_matches(name, sorted(KNOWN_BACKGROUND), n=limit, cutoff=0.8)
    return (organs + [o for o in others if o not in organs])[:limit]


def unknown_names_error(folder: Union[str, Path], names: Iterable[str]) -> InputError:
    """The refusal of structure names that are neither an organ nor a known non-organ."""
    parts = []
    for name in names:
        if _SET_FILES.match(name):
            return InputError(f"mask folder {str(folder)!r} holds {name!r}, a training set's file: it is a training-set "
                              "folder (an earlier import's -o?), not a folder of masks; pass the masks' own folder")
        near = suggestions(name)
        parts.append(f"{name!r}" + (f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""))
    return InputError(f"mask folder {str(folder)!r}: structure name{'s' if len(parts) > 1 else ''} {', '.join(parts)} "
                      "name no organ and no known non-organ structure; rename the file, or name it in --mapping "
                      '(e.g. {"' + next(iter(names)) + '": "liver"} or "background")')


def parse_mapping(data: Mapping, source: str) -> Dict[str, Union[Target, ValueMap]]:
    """Check a mapping (``{name: organ text | {value: organ text}}``) and normalise it.

    Raises:
        InputError: a value of the wrong type, an unknown organ or part, two names that are one after
            ``normalise_name``, or a value key that is not a whole number.
    """
    clean: Dict[str, Union[Target, ValueMap]] = {}
    given: Dict[str, str] = {}
    for name, target in dict(data).items():
        norm = normalise_name(name)
        if norm in given:
            raise InputError(f"{source}: {given[norm]!r} and {name!r} name the same structure {norm!r} (names are "
                             "compared without case); keep one of them")
        given[norm] = str(name)
        what = f"{source}: entry {name!r}"
        if isinstance(target, str):
            clean[norm] = parse_target(target, what)
        elif isinstance(target, dict) and target:
            values: ValueMap = {}
            for value, organ in target.items():
                if not re.fullmatch(r"\s*\d+\s*", str(value)) or int(value) == 0:
                    raise InputError(f"{what}: the keys of a label map's entry are its voxel values, whole numbers ≥ 1 "
                                     f"(0 is background); got {value!r}")
                if not isinstance(organ, str):
                    raise InputError(f"{what}: value {value!r} must map to an organ text such as \"liver\"; got "
                                     f"{type(organ).__name__} {organ!r}")
                values[int(value)] = parse_target(organ, f"{what}, value {value}")
            clean[norm] = values
        else:
            raise InputError(f"{what} must be an organ text (\"liver\", \"kidneys:left\", \"bone:ribs\", "
                             "\"background\") or, for a label map of several structures, an object of its voxel "
                             f"values ({{\"1\": \"liver\", \"2\": \"kidneys:left\"}}); got {type(target).__name__} "
                             f"{target!r}")
    return clean


def read_mapping_file(path: Union[str, Path]) -> Dict[str, Union[str, dict]]:
    """A JSON object ``{"name": "organ[:part]" | "background" | {"value": "organ[:part]"}}``, checked.

    Raises:
        MissingFileError: no such file. InputError: not such a JSON object, a key given twice, or an
        entry that breaks ``parse_mapping``'s rules.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingFileError(f"mapping file {str(p)!r} does not exist")
    if not p.is_file():
        raise InputError(f"mapping file {str(p)!r} is not a regular file (a folder, FIFO or device); give the JSON file")

    def unique_keys(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise InputError(f"mapping file {str(p)!r} gives {key!r} twice; keep one entry per name")
            seen[key] = value
        return seen

    try:
        data = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"mapping file {str(p)!r} is not JSON ({exc}); write "
                         '{"structure name": "liver" | "kidneys:left" | "bone:ribs" | "background"}') from None
    if not isinstance(data, dict):
        raise InputError(f"mapping file {str(p)!r} must be one JSON object of name -> organ text; got "
                         f"{type(data).__name__}")
    parse_mapping(data, f"mapping file {str(p)!r}")
    return data
