"""The organ table: label value, name, colour and SNOMED terminology of each organ.

Read from ``Resources/organs.json`` (packaged as ``organseglib/data/organs.json``), the one table
every layer uses. Values follow CT-ORG: 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Optional

import numpy as np

from .errors import InputError, LabelValueError

BACKGROUND = 0
# Organs that lie on one side of the body: a left-right mirror puts them where no patient has them
# (test-time mirroring keeps their probability from the plain pass; a mirrored training crop leaves
# them unannotated).
ONE_SIDED_ORGANS = ("liver",)


@dataclass(frozen=True)
class Organ:
    value: int
    key: str
    name: str
    color: tuple[float, float, float]
    category: tuple[str, str, str]
    type: tuple[str, str, str]
    terminology_context: str
    anatomic_context: str

    @property
    def color_uint8(self) -> tuple[int, int, int]:
        """The colour as 0..255 integers (DICOM SEG's display colour)."""
        return tuple(int(round(255 * c)) for c in self.color)  # type: ignore[return-value]

    @property
    def terminology_entry(self) -> str:
        """Slicer terminology entry string (7 ``~``-separated fields, codes ``scheme^value^meaning``),
        the value of ``vtkSegment.SetTerminology`` / the ``TerminologyEntry`` tag."""
        code = "^".join
        return "~".join(
            [self.terminology_context, code(self.category), code(self.type), "^^",
             self.anatomic_context, "^^", "^^"]
        )


@lru_cache(maxsize=1)
def organ_table() -> tuple[Organ, ...]:
    """All organs, ordered by label value."""
    text = resources.files("organseglib").joinpath("data/organs.json").read_text(encoding="utf-8")
    data = json.loads(text)
    organs = tuple(
        Organ(
            value=int(o["value"]), key=o["key"], name=o["name"], color=tuple(o["color"]),
            category=tuple(o["category"]), type=tuple(o["type"]),
            terminology_context=data["terminology_context"], anatomic_context=data["anatomic_context"],
        )
        for o in data["organs"]
    )
    return tuple(sorted(organs, key=lambda o: o.value))


def organ_values() -> tuple[int, ...]:
    return tuple(o.value for o in organ_table())


def organ_by_key(key: str) -> Organ:
    """Look an organ up by key (``"lungs"``), name (``"Lungs"``) or value as text (``"3"``)."""
    wanted = str(key).strip().lower()
    for organ in organ_table():
        if wanted in (organ.key, organ.name.lower(), str(organ.value)):
            return organ
    keys = [o.key for o in organ_table()]
    near = difflib.get_close_matches(wanted, keys, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise InputError(f"unknown organ {key!r}; {hint}known organs: {', '.join(keys)}")


def organ_by_value(value: int) -> Organ:
    for organ in organ_table():
        if organ.value == int(value):
            return organ
    raise LabelValueError(f"no organ has label value {value!r}; values are {organ_values()}")


def parse_organ_list(text: str | Iterable[str]) -> tuple[Organ, ...]:
    """``"lungs,bone"`` (or a list of keys) -> organs, in the order given, without repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    organs: list[Organ] = []
    for item in items:
        if item.strip():
            organ = organ_by_key(item)
            if organ not in organs:
                organs.append(organ)
    if not organs:
        raise InputError(f"no organ named in {text!r}; pick from {', '.join(o.key for o in organ_table())}")
    return tuple(organs)


def terminology_type_code(entry: str) -> Optional[str]:
    """The type code value of a Slicer terminology entry string (``context~category~type~...``, codes
    ``scheme^value^meaning``), e.g. ``"10200004"`` for the liver; None when it has none."""
    fields = entry.split("~") if entry else []
    if len(fields) < 3:
        return None
    codes = fields[2].split("^")
    return codes[1] if len(codes) > 1 and codes[1] else None


def organ_for_segment(name: Optional[str], type_code: Optional[str] = None) -> Optional[Organ]:
    """The organ a segment stands for: by its terminology type code first (SNOMED, as in the table),
    then by its name (key, name or terminology meaning: ``"liver"``, ``"Liver"``, ``"Lung"``); None
    when it matches no organ. The one rule for Slicer segments and ``.seg.nrrd`` files alike."""
    if type_code:
        for organ in organ_table():
            if type_code == organ.type[1]:
                return organ
    wanted = str(name or "").strip().lower()
    for organ in organ_table():
        if wanted in (organ.key, organ.name.lower(), organ.type[2].lower()):
            return organ
    return None


def check_label_values(array: np.ndarray, source: str = "labels") -> None:
    """Raise ``LabelValueError`` when ``array`` holds a value outside 0 and the organ values."""
    array = np.asarray(array)
    allowed = {BACKGROUND, *organ_values()}
    if array.size and (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        # every value between the minimum and the maximum allowed: nothing to list (two reductions
        # instead of np.unique's sort or hash of the whole map: 0.01 s against 0.3-1.3 s on 80 M voxels)
        lo, hi = int(array.min()), int(array.max())
        if lo >= 0 and all(v in allowed for v in range(lo, hi + 1)):
            return
    present = np.unique(array)
    unknown = [int(v) if float(v).is_integer() else float(v) for v in present if v not in allowed]
    if unknown:
        if len(unknown) > 8:  # a CT given as labels: thousands of values; the message stays one short line
            shown = ", ".join(str(v) for v in unknown[:3]) + ", ..., " + ", ".join(str(v) for v in unknown[-2:])
            raise LabelValueError(
                f"{source} hold {len(present)} distinct values ({shown}), {len(unknown)} of them outside the organ "
                f"table {sorted(allowed)}: this looks like an image (a CT?), not a label map. Pass the label file "
                "(values 0 background, 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone)."
            )
        raise LabelValueError(
            f"{source} hold values {unknown} outside the organ table {sorted(allowed)} "
            "(0 background, 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone). Remap them to CT-ORG "
            "values (e.g. fold CT-ORG's 6 = brain into 0) before using them."
        )
