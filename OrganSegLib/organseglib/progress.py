"""The progress protocol: what every long command emits and what the Slicer job reader parses.

Library functions take an optional ``progress`` callable ``(fraction, message) -> None``;
``Progress`` is one, shown as a tqdm bar on a terminal, nothing, or (``mode="json"``, the
``--progress json`` of ``organseg autolabel|segment|train|demo``) one JSON object per stdout line.
There are three kinds of record, and this module is the one place that defines them:

``progress`` (any number, fraction in 0..1)::

    {"stage": "train", "progress": 0.42, "message": "iteration 420/1000, loss 0.3100",
     "validation": {"iteration": 400, "loss": 0.35, "dice": {"liver": 0.81}}}   # validation optional

``train --time-budget`` adds ``eta_s``, the seconds it expects to need until its model is written
(an estimate from the iterations timed on this machine; the time left in the budget before that)::

    {"stage": "train", "progress": 0.3, "message": "iteration 120/400, loss 0.3100, ETA 14:05", "eta_s": 845.0}

A cohort (``organseg segment IN_DIR -o OUT_DIR``, ``organseglib.cohort``) adds ``case`` to the records
about one scan, and ``case_result`` (``cohort.CaseResult.to_json``) to the record that ends it::

    {"stage": "segment", "progress": 0.5, "message": "ct_002: done",
     "case": {"name": "ct_002", "index": 2, "count": 4},
     "case_result": {"name": "ct_002", "input": "in/ct_002.nrrd", "output": "out/ct_002.nii.gz",
                     "report": "out/ct_002.json", "status": "done", "exit_status": 0, "seconds": 20.1,
                     "volumes_ml": {"liver": 1510.2}, "warnings": [], "error": null}}

``status`` is ``done``, ``skipped`` (its labels existed) or ``failed`` (``error`` says why); its done
record's ``output`` is the folder, ``warnings`` holds ``"NAME: warning"`` and ``"NAME: failed: why"``
lines, ``summary`` the path of ``summary.csv`` and ``cases`` the counts
``{"done", "skipped", "failed", "warnings"}``.

``done`` (the last line of a run that worked; ``output`` is the file or folder written, or null when
nothing was, e.g. a training run stopped before its last iteration; ``warnings`` is always a list of
one-line strings, empty when all is well)::

    {"stage": "segment", "progress": 1.0, "status": "done", "output": "/tmp/labels.nii.gz",
     "warnings": [], "seconds": 20.1, "volumes_ml": {"liver": 1510.2}}

``error`` (the last line of a run that failed; the message names the file, the rule and the fix)::

    {"stage": "segment", "status": "error", "message": "ct.nrrd: ... (the fix)"}

The optional fields of each kind and their types are listed in ``OPTIONAL_FIELDS``;
``check_record`` validates a record strictly (the schema test runs every command's real output
through it), ``parse_record`` reads one leniently into a ``Record`` (what the Slicer reader does).
Structured fields reach a callback through ``report``, which passes them only to callbacks that take
them (``Progress``, its ``sub`` callbacks and ``scaled`` ones), so a plain ``(fraction, message)``
callable still works.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, TextIO

ProgressCallback = Callable[[float, str], None]

MODES = ("bar", "json", "none")
PROGRESS, DONE, ERROR = "progress", "done", "error"

_NUMBER = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool) and math.isfinite(value)


def _is_validation(value: Any) -> bool:
    """``{"iteration": int, "loss": number, "dice": {organ: number}}`` (the trainer's validation)."""
    return (isinstance(value, dict) and set(value) == {"iteration", "loss", "dice"}
            and isinstance(value["iteration"], int) and _is_number(value["loss"])
            and isinstance(value["dice"], dict) and all(isinstance(k, str) and _is_number(v)
                                                        for k, v in value["dice"].items()))


def _is_str_number_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _is_number(v) for k, v in value.items())


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_case(value: Any) -> bool:
    """``{"name": str, "index": int >= 1, "count": int >= index}`` (one scan of a cohort)."""
    return (isinstance(value, dict) and set(value) == {"name", "index", "count"} and isinstance(value["name"], str)
            and _is_count(value["index"]) and _is_count(value["count"]) and 1 <= value["index"] <= value["count"])


CASE_STATUSES = ("done", "skipped", "failed")


def _is_case_result(value: Any) -> bool:
    """``cohort.CaseResult.to_json()``."""
    keys = {"name", "input", "output", "report", "status", "exit_status", "seconds", "volumes_ml", "warnings", "error"}
    return (isinstance(value, dict) and set(value) == keys
            and all(isinstance(value[k], str) for k in ("name", "input", "output", "report"))
            and value["status"] in CASE_STATUSES and value["exit_status"] in (0, 2, 3)
            and _is_number(value["seconds"]) and _is_str_number_map(value["volumes_ml"])
            and isinstance(value["warnings"], list) and all(isinstance(w, str) for w in value["warnings"])
            and (value["error"] is None or isinstance(value["error"], str)))


# The optional fields of each record kind: name -> (check, what it must be). Add a field here first,
# then emit it; a key that is not listed fails ``check_record`` (so no reader waits for a key that no
# command emits, and no command emits a key that no one documented).
OPTIONAL_FIELDS: Dict[str, Dict[str, tuple]] = {
    PROGRESS: {
        "validation": (_is_validation, '{"iteration": int, "loss": number, "dice": {organ: number}}'),
        "eta_s": (lambda v: _is_number(v) and v >= 0, "seconds left, a number >= 0"),
        "case": (_is_case, '{"name": str, "index": int, "count": int} (1 <= index <= count)'),
        "case_result": (_is_case_result, "a cohort.CaseResult as JSON"),
    },
    DONE: {
        "seconds": (_is_number, "a number of seconds"),
        "volumes_ml": (_is_str_number_map, "{organ: mL}"),
        "report": (lambda v: isinstance(v, dict), "a JSON object (the command's report)"),
        "checkpoint": (lambda v: isinstance(v, str), "a folder path"),
        "learning_curve": (lambda v: v is None or isinstance(v, str), "a PNG path or null"),
        "validation": (lambda v: v is None or isinstance(v, dict), "the last validation or null"),
        "iteration": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an iteration number"),
        "plausibility": (lambda v: isinstance(v, dict), "the plausibility check (organseglib.plausibility)"),
        "reassignments": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                          'the hybrid\'s reassignments: [{"from": organ, "to": organ, "ml": number, "why": text}]'),
        "summary": (lambda v: isinstance(v, str), "the path of a cohort's summary.csv"),
        "cases": (lambda v: isinstance(v, dict) and set(v) == {"done", "skipped", "failed", "warnings"}
                  and all(_is_count(n) for n in v.values()),
                  '{"done": int, "skipped": int, "failed": int, "warnings": int}'),
    },
    ERROR: {},
}


class ProtocolError(ValueError):
    """A line that is not a valid progress record (raised by ``check_record``)."""


@dataclass(frozen=True)
class Record:
    """One record as a reader sees it.

    Attributes:
        kind: ``"progress"``, ``"done"`` or ``"error"``.
        stage: the command that emitted it (``"segment"``).
        progress: the fraction 0..1 (None on an error record).
        message: the text (error records: what went wrong and the fix).
        output: the done record's output path (None otherwise, or when nothing was written).
        warnings: the done record's warnings (one line each).
        validation: the trainer's validation, on the record of the iteration that validated.
        fields: the whole record as read.
    """

    kind: str
    stage: str
    progress: Optional[float]
    message: str = ""
    output: Optional[str] = None
    warnings: tuple = ()
    validation: Optional[dict] = None
    fields: Dict[str, Any] = field(default_factory=dict)


def progress_record(stage: str, fraction: float, message: str = "", **fields: Any) -> dict:
    """A ``progress`` record (``fraction`` clamped to 0..1)."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    return {"stage": stage, "progress": round(fraction, 4), "message": str(message), **fields}


def done_record(stage: str, output: Optional[str], warnings: Sequence[str] = (), **fields: Any) -> dict:
    """The ``done`` record: the output path (or None) and the warnings, always present."""
    return {"stage": stage, "progress": 1.0, "status": DONE, "output": None if output is None else str(output),
            "warnings": [str(w) for w in warnings], **fields}


def error_record(stage: str, message: str) -> dict:
    return {"stage": stage, "status": ERROR, "message": str(message)}


def record_kind(record: Mapping[str, Any]) -> str:
    status = record.get("status")
    return DONE if status == DONE else ERROR if status == ERROR else PROGRESS


def check_record(record: Any) -> dict:
    """Validate one record strictly; return it.

    Raises:
        ProtocolError: not an object, a missing or mistyped key, or a key the protocol does not define.
    """
    if not isinstance(record, dict):
        raise ProtocolError(f"a progress record must be a JSON object; got {record!r}")
    problems = []
    kind = record_kind(record)
    required: Dict[str, tuple] = {"stage": (lambda v: isinstance(v, str) and bool(v), "a command name")}
    if kind in (PROGRESS, DONE):
        required["progress"] = (lambda v: _is_number(v) and 0.0 <= v <= 1.0, "a number in 0..1")
    if kind in (PROGRESS, ERROR):
        required["message"] = (lambda v: isinstance(v, str), "a string")
    if kind == ERROR:
        required["message"] = (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")
    if kind != PROGRESS:
        required["status"] = (lambda v: v in (DONE, ERROR), "'done' or 'error'")
    if kind == DONE:
        required["output"] = (lambda v: v is None or isinstance(v, str), "a path or null")
        required["warnings"] = (lambda v: isinstance(v, list) and all(isinstance(w, str) for w in v),
                                "a list of strings")
    optional = OPTIONAL_FIELDS[kind]
    for name, (ok, what) in required.items():
        if name not in record:
            problems.append(f"missing {name!r} ({what})")
        elif not ok(record[name]):
            problems.append(f"{name!r} must be {what}; got {record[name]!r}")
    for name, value in record.items():
        if name in required:
            continue
        if name not in optional:
            problems.append(f"unknown key {name!r} in a {kind} record (known optional keys: "
                            f"{', '.join(optional) or 'none'}; add it to progress.OPTIONAL_FIELDS first)")
        elif not optional[name][0](value):
            problems.append(f"{name!r} must be {optional[name][1]}; got {value!r}")
    if problems:
        raise ProtocolError(f"invalid {kind} record {json.dumps(record)[:300]}: " + "; ".join(problems))
    return record


def parse_record(record: Mapping[str, Any]) -> Record:
    """A ``Record`` from a decoded JSON object, leniently (a reader must survive an odd line)."""
    kind = record_kind(record)
    fraction = record.get("progress")
    warnings = record.get("warnings") if kind == DONE else None
    validation = record.get("validation")
    output = record.get("output")
    return Record(kind=kind, stage=str(record.get("stage", "")),
                  progress=float(fraction) if _is_number(fraction) else None,
                  message=str(record.get("message", "") or ""),
                  output=str(output) if output is not None and kind == DONE else None,
                  warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
                  validation=validation if isinstance(validation, dict) else None, fields=dict(record))


def parse_line(line: str) -> Optional[dict]:
    """The JSON object on one stdout line, or None for anything else (plain log text)."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def validation_summary(validation: Optional[Mapping[str, Any]]) -> Optional[str]:
    """``validation Dice 0.812 (liver 0.800, bone 0.824)`` from a validation field (mean over organs)."""
    per_organ = validation.get("dice") if isinstance(validation, Mapping) else None
    if not isinstance(per_organ, Mapping):
        return None
    values = {k: float(v) for k, v in per_organ.items() if _is_number(v)}
    if not values:
        return None
    mean = sum(values.values()) / len(values)
    return f"validation Dice {mean:.3f} ({', '.join(f'{k} {v:.3f}' for k, v in values.items())})"


def _emit(stream: TextIO, record: dict[str, Any]) -> None:
    stream.write(json.dumps(record) + "\n")
    stream.flush()


class Progress:
    """Callable progress sink for one stage of work (one command).

    Args:
        stage: the command (``"segment"``).
        mode: ``"bar"`` (tqdm on a terminal's stderr), ``"json"`` (records on ``stream``) or ``"none"``.
        stream: where json records go (default stdout).
        cases: a cohort's number of scans: the bar counts scans and shows the time left.
    """

    accepts_fields = True  # see ``report``

    def __init__(self, stage: str, mode: str = "bar", stream: Optional[TextIO] = None,
                 cases: Optional[int] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}; got {mode!r}")
        self.stage = stage
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self._bar = None
        self._total = 100 if cases is None else max(int(cases), 1)
        if mode == "bar":
            from tqdm import tqdm

            layout = ("{desc}: {percentage:3.0f}%|{bar}| {postfix}" if cases is None else
                      "{desc}: {percentage:3.0f}% of " + f"{self._total} scans" + " |{bar}| [{elapsed}<{remaining}] {postfix}")
            self._bar = tqdm(total=self._total, desc=stage, unit="%" if cases is None else "scan", leave=False,
                             file=sys.stderr, bar_format=layout, disable=not sys.stderr.isatty())

    def __call__(self, fraction: float, message: str = "", **fields: Any) -> None:
        if self.mode == "json":
            _emit(self.stream, progress_record(self.stage, fraction, message, **fields))
        elif self._bar is not None:
            share = min(max(float(fraction), 0.0), 1.0) * self._total
            self._bar.n = round(share) if self._total == 100 else share
            self._bar.set_postfix_str(message, refresh=True)

    def write(self, line: str) -> None:
        """A line of text on stdout (above the bar, which stays at the bottom); nothing in json mode,
        where stdout holds only records."""
        if self.mode == "json":
            return
        if self._bar is not None and not self._bar.disable:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line)

    def sub(self, start: float, stop: float, stage: Optional[str] = None) -> ProgressCallback:
        """A callback mapping 0..1 onto ``start..stop`` of this stage (see ``scaled``)."""
        return scaled(self, start, stop, stage)

    def result(self, output: Optional[str], warnings: Sequence[str] = (), **fields: Any) -> None:
        """The final ``done`` record (json mode): the output path, the warnings, and optional fields."""
        self.close()
        if self.mode == "json":
            _emit(self.stream, done_record(self.stage, output, warnings, **fields))

    def error(self, message: str) -> None:
        self.close()
        if self.mode == "json":
            _emit(self.stream, error_record(self.stage, message))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def scaled(progress: Optional[Callable[..., None]], start: float, stop: float,
           prefix: Optional[str] = None) -> ProgressCallback:
    """A callback mapping 0..1 onto ``start..stop`` of ``progress``, messages prefixed ``"prefix: "``;
    structured fields pass through when ``progress`` takes them (the one way to scale progress)."""

    def callback(fraction: float, message: str = "", **fields: Any) -> None:
        text = message if prefix is None else f"{prefix}: {message}"
        report(progress, start + (stop - start) * fraction, text, **fields)

    callback.accepts_fields = True  # type: ignore[attr-defined]
    return callback


def report(progress: Optional[Callable[..., None]], fraction: float, message: str = "", **fields: Any) -> None:
    """Call ``progress`` (if any) with the text, and with ``fields`` when it takes them."""
    if progress is None:
        return
    if fields and getattr(progress, "accepts_fields", False):
        progress(fraction, message, **fields)
    else:
        progress(fraction, message)


def null_progress(fraction: float, message: str = "") -> None:
    """A progress callback that ignores everything."""
