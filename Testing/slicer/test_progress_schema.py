"""The progress protocol end to end: each long command's real ``--progress json`` output, read by
the Slicer job reader (``OrganSegCommon.process_runner``), every record valid under
``organseglib.progress.check_record``. Needs no slicer-core (the reader has no MRML)."""

from __future__ import annotations

import sys

import pytest

from organseglib.progress import DONE, ERROR, PROGRESS, check_record

PYTHON = [sys.executable, "-m", "organseglib"]


def _run(args, cwd, timeout=300):
    """(final state, records) of ``organseg ARGS --progress json`` run through the Slicer reader."""
    from OrganSegCommon.jobs import library_pythonpath
    from OrganSegCommon.process_runner import ProcessRunner

    runner = ProcessRunner(PYTHON + [str(a) for a in args] + ["--progress", "json"], cwd=str(cwd),
                           env=library_pythonpath())
    records = []
    state = runner.start().wait(timeout=timeout, on_record=records.append)
    return state, records, runner


def _check_stream(records, stage, final=DONE):
    """Every record valid; progress records of ``stage`` that never go back; one final record, last."""
    assert records, f"{stage} emitted no progress record"
    for record in records:
        check_record(record.fields)
        assert record.stage == stage
    kinds = [r.kind for r in records]
    assert kinds[-1] == final and kinds.count(final) == 1 and set(kinds[:-1]) <= {PROGRESS}
    fractions = [r.progress for r in records if r.kind == PROGRESS]
    assert fractions == sorted(fractions), f"{stage} progress went back: {fractions}"
    return records[-1]


@pytest.fixture(scope="module")
def tiny_ct_file(tmp_path_factory):
    from organseglib.io import write_volume
    from organseglib.phantom import make_phantom

    folder = tmp_path_factory.mktemp("schema")
    phantom = make_phantom(seed=0, region="chest", size="tiny")
    write_volume(phantom.ct, folder / "ct.nii.gz")
    return folder / "ct.nii.gz"


def test_autolabel_records(tiny_ct_file, tmp_path):
    state, records, runner = _run(["autolabel", tiny_ct_file, "-o", tmp_path / "labels.nii.gz"], tmp_path)
    assert state == "done", runner.error
    done = _check_stream(records, "autolabel")
    assert done.output == str(tmp_path / "labels.nii.gz") and (tmp_path / "labels.nii.gz").exists()
    assert done.warnings == () and set(done.fields["volumes_ml"]) == {"lungs", "bone"}
    assert done.fields["report"]["lungs"]["ml"] == done.fields["volumes_ml"]["lungs"]


@pytest.mark.slow
def test_segment_records(tiny_ct_file, tmp_path):
    state, records, runner = _run(["segment", tiny_ct_file, "-o", tmp_path / "labels.nii.gz", "--device", "cpu"],
                                  tmp_path)
    assert state == "done", runner.error
    done = _check_stream(records, "segment")
    assert done.output == str(tmp_path / "labels.nii.gz")
    assert {"lungs", "bone"} <= set(done.fields["volumes_ml"])
    # an organ the run left empty (the tiny phantom may lose one) is a warning in the done record
    # (exit 3), never silent; an organ that was found is not warned about as missing
    for key in ("liver", "bladder", "kidneys", "lungs", "bone"):
        missing = [w for w in done.warnings if w.startswith(f"{key}: not found")]
        assert bool(missing) == (key not in done.fields["volumes_ml"]), (key, done.warnings)
    # the sub-stages' records come through the one scaling helper with their prefixes
    assert any(r.message.startswith("network: ") for r in records)
    assert any(r.message.startswith("auto-labels: lungs: ") for r in records)


def test_error_record(tmp_path):
    state, records, runner = _run(["segment", tmp_path / "missing.nii.gz", "-o", tmp_path / "out.nii.gz"], tmp_path)
    assert state == "error"
    error = _check_stream(records, "segment", final=ERROR)
    assert "missing.nii.gz" in error.message and runner.error == error.message


@pytest.mark.slow
def test_demo_records(tmp_path):
    state, records, runner = _run(["demo", "--size", "tiny", "--out", tmp_path / "demo", "--device", "cpu"], tmp_path)
    assert state == "done", runner.error
    done = _check_stream(records, "demo")
    assert done.output == str(tmp_path / "demo") and (tmp_path / "demo" / "segment.seg.nrrd").exists()
    assert any(r.message.startswith("segment: network: ") for r in records)  # sub-stage messages nest


@pytest.mark.slow
def test_train_records_stopped_then_finished(tmp_path):
    """A run stopped early (done, output null) and the same run resumed to the end (the model)."""
    from organseglib.phantom import make_phantom
    from organseglib.training_set import export_training_case

    for seed in (0, 1):
        phantom = make_phantom(seed=seed, region="abdomen", size="tiny")
        export_training_case(phantom.ct, phantom.labels, tmp_path / "data", source=f"phantom {seed}")
    args = ["train", "--data", tmp_path / "data", "--out", tmp_path / "model", "--iterations", 2, "--batch-size", 1,
            "--crop", 32, 32, 32, "--width", 0.25, "--spacing", 6, "--validate-every", 1, "--val-fraction", 0.5,
            "--cache", tmp_path / "cache", "--device", "cpu"]
    state, records, runner = _run(args + ["--stop-after", 1], tmp_path)
    assert state == "done", runner.error
    stopped = _check_stream(records, "train")
    assert stopped.output is None and stopped.fields["iteration"] == 1
    assert any(r.validation for r in records if r.kind == PROGRESS)  # validation rides on a progress record
    state, records, runner = _run(args, tmp_path)
    assert state == "done", runner.error
    done = _check_stream(records, "train")
    assert done.output == str(tmp_path / "model") and (tmp_path / "model").is_dir()
    assert done.validation is not None and set(done.validation["dice"]) == {"liver", "bladder", "lungs", "kidneys", "bone"}


def test_cohort_records(tiny_ct_file, tmp_path):
    """A cohort (two scans, one of them not CT): a record per scan with ``case`` and ``case_result``, the
    failed scan among them, and the done record with the folder, the summary and the counts."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.nii.gz").write_bytes(tiny_ct_file.read_bytes())
    (tmp_path / "in" / "b.nrrd").write_text("NRRD0004\nnot really\n")
    state, records, runner = _run(["autolabel", tmp_path / "in", "-o", tmp_path / "out"], tmp_path)
    assert state == "done", runner.error  # some scans failed (exit 4), and the run ended with its done record
    done = _check_stream(records, "autolabel")
    ended = [r.fields["case_result"] for r in records if "case_result" in r.fields]
    assert [(c["name"], c["status"]) for c in ended] == [("a", "done"), ("b", "failed")]
    assert done.output == str(tmp_path / "out") and done.fields["summary"] == str(tmp_path / "out" / "summary.csv")
    assert done.fields["cases"] == {"done": 1, "skipped": 0, "failed": 1, "warnings": 0}
    assert [w.split(": ")[:2] for w in done.warnings] == [["b", "failed"]]


@pytest.mark.slow
def test_train_with_a_time_budget_shows_the_time_left(tmp_path):
    """``train --time-budget``: every record valid, the time left in ``eta_s`` and in the line the Retrain
    panel shows, and a model at the end (however fast this machine is)."""
    from organseglib.phantom import make_phantom
    from organseglib.training_set import export_training_case

    from OrganSegCommon.jobs import describe_record

    for seed in (0, 1):
        phantom = make_phantom(seed=seed, region="abdomen", size="tiny")
        export_training_case(phantom.ct, phantom.labels, tmp_path / "data", source=f"phantom {seed}")
    state, records, runner = _run(["train", "--data", tmp_path / "data", "--out", tmp_path / "model", "--time-budget",
                                   "20s", "--batch-size", 1, "--crop", 32, 32, 32, "--width", 0.25, "--spacing", 6,
                                   "--val-fraction", 0.5, "--cache", tmp_path / "cache", "--device", "cpu"], tmp_path)
    assert state == "done", runner.error
    done = _check_stream(records, "train")
    assert done.output == str(tmp_path / "model") and (tmp_path / "model" / "card.json").exists()
    timed = [r for r in records if "eta_s" in r.fields]
    assert timed and all(r.fields["eta_s"] >= 0 for r in timed)
    assert all(", ETA " in describe_record(r) for r in timed)
