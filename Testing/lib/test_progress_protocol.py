"""The progress protocol's records (``organseglib.progress``): what is valid, what is not, and the one
scaling helper that keeps structured fields. The real commands' output: Testing/slicer/test_progress_schema.py."""

from __future__ import annotations

import io
import json

import pytest

from organseglib.progress import (DONE, ERROR, OPTIONAL_FIELDS, PROGRESS, Progress, ProtocolError, check_record,
                                  done_record, error_record, parse_record, progress_record, report, scaled)

VALIDATION = {"iteration": 4, "loss": 0.5, "dice": {"liver": 0.8, "bone": 0.6}}


def test_the_three_records_are_valid_and_read_back():
    records = [progress_record("train", 0.25, "iteration 1/4", validation=VALIDATION),
               done_record("segment", "out.nii.gz", ["liver: 0 mL, nothing found"], seconds=2.5,
                           volumes_ml={"liver": 0.0}),
               error_record("segment", "ct.nrrd: does not exist; check the path")]
    kinds = [parse_record(check_record(json.loads(json.dumps(r)))).kind for r in records]
    assert kinds == [PROGRESS, DONE, ERROR]
    done = parse_record(records[1])
    assert done.output == "out.nii.gz" and done.warnings == ("liver: 0 mL, nothing found",)
    assert parse_record(records[0]).validation == VALIDATION and parse_record(records[0]).warnings == ()
    assert done_record("train", None)["output"] is None and done_record("train", None)["warnings"] == []


@pytest.mark.parametrize("record, problem", [
    ({"stage": "segment", "progress": 1.0, "status": "done", "out": "x", "warnings": []}, "missing 'output'"),
    ({"stage": "segment", "progress": 1.0, "status": "done", "output": "x"}, "missing 'warnings'"),
    ({"stage": "segment", "progress": 1.0, "status": "done", "output": "x", "warnings": "careful"},
     "'warnings' must be a list of strings"),
    ({"stage": "train", "progress": 0.5, "message": "", "val_dice": 0.7}, "unknown key 'val_dice'"),
    ({"stage": "train", "progress": 1.5, "message": ""}, "'progress' must be a number in 0..1"),
    ({"stage": "train", "progress": 0.5, "message": "", "validation": {"dice": 0.7}}, "'validation' must be"),
    ({"stage": "segment", "status": "error", "message": " "}, "'message' must be a non-empty string"),
    ({"progress": 0.5, "message": ""}, "missing 'stage'"),
    ([1, 2], "must be a JSON object"),
])
def test_check_record_names_what_is_wrong(record, problem):
    with pytest.raises(ProtocolError, match=problem.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        check_record(record)


def test_every_optional_field_has_a_check_and_a_description():
    for kind, fields in OPTIONAL_FIELDS.items():
        for name, (ok, what) in fields.items():
            assert callable(ok) and what, (kind, name)


def test_scaled_progress_keeps_structured_fields_and_nests():
    stream = io.StringIO()
    top = Progress("train", mode="json", stream=stream)
    inner = scaled(top.sub(0.5, 1.0, "fit"), 0.0, 0.5, "epoch")
    report(inner, 0.5, "iteration 4", validation=VALIDATION)
    seen = []
    report(scaled(lambda f, m: seen.append((f, m)), 0.0, 0.5), 1.0, "plain", validation=VALIDATION)
    line = check_record(json.loads(stream.getvalue()))
    assert line == {"stage": "train", "progress": 0.625, "message": "fit: epoch: iteration 4", "validation": VALIDATION}
    assert seen == [(0.5, "plain")]  # a plain (fraction, message) callable is spared the fields
