"""Structures beside the five organs that a training case may keep: spleen and the great vessels.

They are not outputs of the network (background to it), but their masks tell label-guided intensity
augmentation (``training.phase_augment``) where the contrast-enhancing blood and spleen are, so one
labelled patient can stand for the same patient in other contrast phases (ARCHITECTURE.md, "Data for
training"). They are stored per case as ``structures-N.nii.gz`` beside ``labels-N.nii.gz``, a uint8
map with the values of ``EXTRA_STRUCTURES`` (``organseg import-labels --keep-structures``, which reads
them with ``label_import.structures_from_masks``); a case without that file simply has none.

Mask names read (lower case, ``-`` and spaces as ``_``): 3D-IRCADb's ``spleen``, ``artery``,
``portalvein``, ``venoussystem``; TotalSegmentator's ``spleen``, ``aorta``,
``portal_vein_and_splenic_vein``, ``inferior_vena_cava``. Where masks overlap (IRCAD's liver holds its
portal and hepatic veins; several vessel masks may touch), the later entry of ``EXTRA_STRUCTURES``
wins: the arterial tree over the veins over the spleen.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from .errors import InputError

PathLike = Union[str, "os.PathLike[str]"]

# key: value in structures-N.nii.gz (order = overlap priority, later wins)
EXTRA_STRUCTURES = {"spleen": 1, "venous": 2, "portal_vein": 3, "artery": 4}
_NAMES = {
    "spleen": "spleen",
    "venoussystem": "venous", "inferior_vena_cava": "venous", "vena_cava": "venous", "ivc": "venous",
    "portalvein": "portal_vein", "portal_vein": "portal_vein", "portal_vein_and_splenic_vein": "portal_vein",
    "artery": "artery", "aorta": "artery", "arteries": "artery",
}
STRUCTURES_PREFIX = "structures-"
STRUCTURES_FILE = re.compile(r"^structures-(\d+)\.(nii\.gz|nii|nrrd|mha)$")  # a training set's own file name


def structures_name(case_id: int) -> str:
    """``structures-N.nii.gz``: a training set's file of case N's extra structures."""
    return f"{STRUCTURES_PREFIX}{int(case_id)}.nii.gz"


def structure_key(name: str) -> Optional[str]:
    """The ``EXTRA_STRUCTURES`` key of a mask name, or None when it is not one of them."""
    return _NAMES.get(re.sub(r"[\s\-]+", "_", str(name).strip().lower()))


def structure_map(masks: Mapping[str, np.ndarray]) -> Optional[np.ndarray]:
    """One uint8 map of the extra structures among ``masks`` (name → boolean array, one grid), or None
    when none of the names is an extra structure.

    Raises:
        InputError: masks of different shapes.
    """
    chosen = {}
    for name, mask in masks.items():
        key = structure_key(name)
        if key is not None:
            chosen.setdefault(key, []).append(np.asarray(mask) != 0)
    if not chosen:
        return None
    shapes = {m.shape for ms in chosen.values() for m in ms}
    if len(shapes) != 1:
        raise InputError(f"structure masks must share one grid; got shapes {sorted(shapes)}")
    out = np.zeros(shapes.pop(), dtype=np.uint8)
    for key, value in EXTRA_STRUCTURES.items():  # later keys win where masks overlap
        for mask in chosen.get(key, []):
            out[mask] = value
    return out


def structures_path(labels_path: PathLike) -> Path:
    """``…/structures-N.nii.gz`` for ``…/labels-N.nii.gz`` (the case's optional extra structures)."""
    path = Path(labels_path)
    name = path.name
    if not name.startswith("labels"):
        raise InputError(f"expected a labels-N file name to find its structures file; got {name!r}")
    return path.with_name(STRUCTURES_PREFIX + name[len("labels"):].lstrip("-_"))


def present_structures(array: Optional[np.ndarray]) -> tuple[str, ...]:
    """Keys of the structures with at least one voxel in a structures map (None: none)."""
    if array is None:
        return ()
    values = set(np.unique(array).tolist())
    return tuple(k for k, v in EXTRA_STRUCTURES.items() if v in values)


__all__ = ["EXTRA_STRUCTURES", "STRUCTURES_FILE", "STRUCTURES_PREFIX", "present_structures", "structure_key",
           "structure_map", "structures_name", "structures_path"]
