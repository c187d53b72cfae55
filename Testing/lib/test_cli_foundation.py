"""The organseg command: info, evaluate, errors with exit status 2, JSON progress records."""

import json
import subprocess
import sys

import numpy as np
import pytest

from organseglib.cli import main
from organseglib.io import write_labels, write_volume
from organseglib.progress import Progress


@pytest.fixture()
def files(tmp_path, tiny_abdomen):
    ct = write_volume(tiny_abdomen.ct, tmp_path / "ct.nii.gz")
    ref = write_labels(tiny_abdomen.labels, tmp_path / "ref.nii.gz")
    pred_arr = tiny_abdomen.labels.array.copy()
    pred_arr[pred_arr == 2] = 0  # lose the bladder
    pred = write_labels(tiny_abdomen.labels.with_array(pred_arr), tmp_path / "pred.seg.nrrd")
    return ct, ref, pred


def test_info_reports_geometry_and_ct_range(files, capsys):
    assert main(["info", str(files[0]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size_ijk"] == [70, 70, 60] and info["spacing_mm"] == [6.0, 6.0, 6.0]
    assert info["intensity"]["min"] <= -1000 and info["ct_warnings"] == []


def test_info_warns_about_unscaled_ct(tmp_path, tiny_abdomen, capsys):
    raw = write_volume(tiny_abdomen.ct.with_array((tiny_abdomen.ct.array + 1024).astype(np.uint16)), tmp_path / "raw.nrrd")
    assert main(["info", str(raw)]) == 0
    assert "Subtract 1024" in capsys.readouterr().out


def test_evaluate_prints_and_writes_tables(files, tmp_path, capsys):
    _, ref, pred = files
    assert main(["evaluate", str(pred), str(ref), "--csv", str(tmp_path / "m.csv"), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "Bladder" in out and "prediction empty" in out
    rows = {r["organ"]: r for r in json.loads((tmp_path / "m.json").read_text())}
    assert rows["Liver"]["dice"] == 1.0 and rows["Bladder"]["dice"] == 0.0
    assert (tmp_path / "m.csv").read_text().startswith("organ,value,dice")


def test_evaluate_refuses_to_overwrite_an_input(files, capsys):
    _, ref, pred = files
    assert main(["evaluate", str(pred), str(ref), "--json", str(ref)]) == 2
    assert "also an input" in capsys.readouterr().err


def test_errors_exit_2_with_one_clear_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.nii.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_progress_json_lines(capsys):
    p = Progress("segment", mode="json")
    p(0.5, "half")
    p.sub(0.5, 1.0, "tiles")(0.5, "tile 1/2")
    p.result(output="x.nii.gz")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"stage": "segment", "progress": 0.5, "message": "half"}
    assert lines[1]["progress"] == 0.75 and lines[1]["message"] == "tiles: tile 1/2"
    assert lines[2] == {"stage": "segment", "progress": 1.0, "status": "done", "output": "x.nii.gz", "warnings": []}


def test_structured_fields_reach_progress_and_spare_plain_callbacks(capsys):
    from organseglib.progress import report

    p = Progress("train", mode="json")
    report(p.sub(0.0, 0.5), 0.5, "iteration 5/10", validation={"iteration": 5, "dice": {"bone": 0.5}})
    seen = []
    report(lambda fraction, message: seen.append((fraction, message)), 0.3, "plain", validation={"x": 1})
    report(None, 0.1, "nobody listens", validation={})
    line = json.loads(capsys.readouterr().out)
    assert line == {"stage": "train", "progress": 0.25, "message": "iteration 5/10",
                    "validation": {"iteration": 5, "dice": {"bone": 0.5}}}
    assert seen == [(0.3, "plain")]


def test_python_dash_m_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "organseglib", "--help"], capture_output=True, text=True, check=True)
    assert "evaluate" in out.stdout and "demo" in out.stdout


@pytest.mark.parametrize("exc, hint", [(OSError(28, "No space left on device"), "disk space"),
                                       (MemoryError(), "memory"),
                                       (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "memory")])
def test_a_failure_of_the_system_is_one_line_and_a_json_error_record(monkeypatch, capsys, tmp_path, exc, hint):
    """A full disk, no memory, a CUDA OOM: no traceback, one line with a hint, the JSON error record
    with --progress json, exit 2 (errors.EXIT_ERROR); the traceback only at debug level."""
    import logging

    import organseglib.commands.segment as command
    from organseglib.errors import EXIT_ERROR

    def failing(args):
        raise exc

    monkeypatch.setattr(command, "run", failing)  # main builds its parser afterwards: the patched run
    argv = ["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out.nii.gz")]
    assert main([*argv, "--progress", "json"]) == EXIT_ERROR
    captured = capsys.readouterr()
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["status"] == "error" and type(exc).__name__ in record["message"] and hint in record["message"]
    assert captured.err.count("\n") == 1 and captured.err.startswith("organseg segment: error: ")
    assert "Traceback" not in captured.err
    logger = logging.getLogger("organseglib")
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        assert main([*argv, "--progress", "none"]) == EXIT_ERROR
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert any(r.exc_info and r.exc_info[1] is exc for r in records)


def test_a_programming_error_is_not_swallowed(monkeypatch, tmp_path):
    import organseglib.commands.segment as command

    def buggy(args):
        raise KeyError("a bug")

    monkeypatch.setattr(command, "run", buggy)
    with pytest.raises(KeyError):
        main(["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out.nii.gz")])
