"""Cohorts (issue 20): ``organseg segment IN_DIR -o OUT_DIR`` and ``organseglib.cohort``.

A folder of tiny phantoms in NIfTI, NRRD and a DICOM series segments in one call with the model loaded
once; ``--part 1/2`` and ``2/2`` cover the folder exactly once; a SIGKILL mid-cohort then a rerun
finishes every output and recomputes none; a corrupt file among good ones is reported in
``summary.csv`` and the rest succeed; the next scan is read while the network works on this one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dicom_series import write_ct_series

from organseglib.cli import main
from organseglib.cohort import find_scans, plan_cohort, segment_cohort, select_part
from organseglib.cohort.inputs import Scan, parse_part
from organseglib.cohort.jobs import ScanResult, SegmentTask
from organseglib.cohort.runner import run_scans
from organseglib.cohort.summary import read_summary
from organseglib.errors import InputError, MissingFileError, OutputPathError
from organseglib.io import read_ct, read_labels, write_volume
from organseglib.progress import check_record

REPO = Path(__file__).resolve().parents[2]


def _dicom_series(folder: Path, ct) -> None:
    """The phantom's CT as a DICOM series (axial, LPS rows/columns as the phantom's own grid)."""
    hu = np.clip(np.rint(ct.array), -1024, 3071).astype(np.int16)
    spacing = ct.spacing  # (i, j, k) mm
    write_ct_series(folder, hu, (1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, spacing[2]),
                    pixel_spacing=(spacing[1], spacing[0]))


@pytest.fixture(scope="module")
def cohort_in(tmp_path_factory, tiny_abdomen, tiny_chest):
    """A folder with one scan of each kind: NIfTI, NRRD, and a DICOM series in a sub-folder."""
    folder = tmp_path_factory.mktemp("cohort") / "in"
    folder.mkdir()
    write_volume(tiny_abdomen.ct, folder / "abdomen.nii.gz")
    write_volume(tiny_chest.ct, folder / "chest.nrrd")
    _dicom_series(folder / "patient3" / "CT", tiny_abdomen.ct)
    (folder / "notes.md").write_text("not a scan")  # ignored: not a CT file
    return folder


def _json_records(capsys) -> list:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def _net(tiny_model, *more):
    return ["--model", str(tiny_model), "--device", "cpu", "--network-only", *more]


# --- finding the scans --------------------------------------------------------------------------------
def test_a_folder_holds_its_ct_files_and_every_dicom_series_below_it(cohort_in):
    scans = find_scans([cohort_in])
    assert [(s.name, s.dicom) for s in scans] == [("abdomen", False), ("chest", False), ("patient3_CT", True)]
    assert scans[2].path == cohort_in / "patient3" / "CT"


def test_a_list_file_names_scans_relative_to_its_folder(cohort_in, tmp_path):
    listing = tmp_path / "cohort.txt"
    listing.write_text(f"# two of the three\n\n{os.path.relpath(cohort_in / 'chest.nrrd', tmp_path)}\n"
                       f"{cohort_in / 'patient3' / 'CT'}\n{cohort_in / 'chest.nrrd'}\n")  # the same scan twice: once
    assert [s.name for s in find_scans([listing])] == ["CT", "chest"]


def test_an_unexpanded_glob_and_several_inputs(cohort_in):
    assert [s.name for s in find_scans([str(cohort_in / "*.n*")])] == ["abdomen", "chest"]
    assert [s.name for s in find_scans([cohort_in / "chest.nrrd", cohort_in / "abdomen.nii.gz"])] == ["abdomen", "chest"]


def test_two_scans_of_one_name_are_refused(cohort_in, tmp_path):
    shutil.copy(cohort_in / "chest.nrrd", tmp_path / "chest.nii.gz")
    with pytest.raises(InputError, match="same output name 'chest'"):
        find_scans([cohort_in, tmp_path])


@pytest.mark.parametrize("sources, error, match", [
    (["missing"], MissingFileError, "does not exist"),
    (["notes.md"], InputError, "is not a CT file"),
    (["empty"], InputError, "no CT scan found"),
])
def test_inputs_that_name_no_scan(tmp_path, sources, error, match):
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=match):
        find_scans([tmp_path / s for s in sources])


def test_parts_are_every_nth_scan_of_the_sorted_names():
    scans = [Scan(n, Path(n)) for n in "edcba"]
    assert [s.name for s in select_part(scans, "1/2")] == ["a", "c", "e"]
    assert [s.name for s in select_part(scans, "2/2")] == ["b", "d"]
    assert [s.name for s in select_part(scans, (3, 3))] == ["c"]
    assert [s.name for s in select_part(scans, None)] == list("abcde")
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(InputError, match="--part must read I/N"):
            parse_part(bad)


# --- the command --------------------------------------------------------------------------------------
def test_nifti_nrrd_and_a_dicom_series_segment_in_one_call_with_the_model_loaded_once(cohort_in, tiny_model,
                                                                                       tmp_path, monkeypatch, capsys):
    import organseglib.model_package as packages

    loads = []
    real_load = packages.load_model_package
    monkeypatch.setattr(packages, "load_model_package", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    out = tmp_path / "out"
    rc = main(["segment", str(cohort_in), "-o", str(out), *_net(tiny_model), "--progress", "json"])
    records = _json_records(capsys)
    for record in records:
        check_record(record)
    assert len(loads) == 1  # once for three scans
    for name, source in (("abdomen", cohort_in / "abdomen.nii.gz"), ("chest", cohort_in / "chest.nrrd"),
                         ("patient3_CT", cohort_in / "patient3" / "CT")):
        read_labels(out / f"{name}.nii.gz", reference=read_ct(source))  # on its scan's grid
        report = json.loads((out / f"{name}.json").read_text())
        assert report["status"] == "done" and report["model"] == "tiny-random" and report["input"] == str(source)
    ended = [r["case_result"] for r in records if "case_result" in r]
    assert [(c["name"], c["status"]) for c in ended] == [("abdomen", "done"), ("chest", "done"), ("patient3_CT", "done")]
    done = records[-1]
    assert done["status"] == "done" and done["output"] == str(out) and done["summary"] == str(out / "summary.csv")
    assert done["cases"] == {"done": 3, "skipped": 0, "failed": 0, "warnings": 3}
    # random weights find nothing: written, but each scan's emptiness is a warning (exit 3), never silent
    assert rc == 3 and all(w.split(": ")[0] in ("abdomen", "chest", "patient3_CT") for w in done["warnings"])
    rows = read_summary(out / "summary.csv")
    assert [(r["case"], r["status"], r["exit_status"], r["model"]) for r in rows] == [
        ("abdomen", "done", "3", "tiny-random"), ("chest", "done", "3", "tiny-random"),
        ("patient3_CT", "done", "3", "tiny-random")]
    assert all("no organ found" in r["warnings"] for r in rows)


def test_volumes_per_organ_reach_the_summary(cohort_in, tmp_path, capsys):
    """Auto-labelled lungs and bone (no model): their mL in the summary's columns, as in the report."""
    out = tmp_path / "out"
    assert main(["autolabel", str(cohort_in / "chest.nrrd"), str(cohort_in / "abdomen.nii.gz"), "-o", str(out),
                 "--format", "seg.nrrd", "--progress", "none"]) == 0
    assert "abdomen: wrote abdomen.seg.nrrd" in capsys.readouterr().out
    for row in read_summary(out / "summary.csv"):
        report = json.loads((out / f"{row['case']}.json").read_text())
        assert float(row["lungs_ml"]) == report["volumes_ml"]["lungs"] > 0
        assert float(row["bone_ml"]) == report["volumes_ml"]["bone"] > 0
        assert row["liver_ml"] == "" and (out / f"{row['case']}.seg.nrrd").exists()


def test_parts_one_and_two_cover_the_folder_exactly_once(cohort_in, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    names = {}
    for part in ("1/2", "2/2"):
        main(["segment", str(cohort_in), "-o", str(out), *_net(tiny_model), "--part", part, "--progress", "json"])
        results = [r["case_result"] for r in _json_records(capsys) if "case_result" in r]
        assert all(r["status"] == "done" for r in results)  # nothing of the other part was run or skipped
        names[part] = {r["name"] for r in results}
    assert names["1/2"] & names["2/2"] == set()
    assert names["1/2"] | names["2/2"] == {"abdomen", "chest", "patient3_CT"}
    rows = read_summary(out / "summary.csv")  # rebuilt by part 2 from every report: the whole cohort
    assert [r["status"] for r in rows] == ["done"] * 3


def test_a_corrupt_file_is_reported_in_the_summary_and_the_rest_succeed(cohort_in, tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    shutil.copytree(cohort_in, folder)
    good = (folder / "abdomen.nii.gz").read_bytes()
    (folder / "broken.nii.gz").write_bytes(good[: len(good) // 3])  # truncated in the copy
    out = tmp_path / "out"
    rc = main(["segment", str(folder), "-o", str(out), *_net(tiny_model), "--progress", "none"])
    captured = capsys.readouterr()
    assert rc == 4  # errors.EXIT_CASES_FAILED: some scans failed, the others were written
    rows = {r["case"]: r for r in read_summary(out / "summary.csv")}
    assert rows["broken"]["status"] == "failed" and "broken.nii.gz" in rows["broken"]["error"]
    assert rows["broken"]["exit_status"] == "2" and not (out / "broken.nii.gz").exists()
    assert [rows[n]["status"] for n in ("abdomen", "chest", "patient3_CT")] == ["done"] * 3
    assert all((out / f"{n}.nii.gz").exists() for n in ("abdomen", "chest", "patient3_CT"))
    assert "organseg segment: warning: broken: failed: " in captured.err


def _outputs(out: Path) -> dict:
    """The published labels (not a write's hidden temporary) and their (inode, modification time)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("[!.]*.nii.gz")}


@pytest.mark.slow
def test_sigkill_mid_cohort_then_a_rerun_finishes_every_output_and_recomputes_none(tiny_abdomen, tiny_model,
                                                                                    tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_volume(tiny_abdomen.ct, folder / "scan_00.nii.gz")
    for n in range(1, 8):
        shutil.copy(folder / "scan_00.nii.gz", folder / f"scan_{n:02d}.nii.gz")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment")])}
    child = subprocess.Popen([sys.executable, "-m", "organseglib", "segment", str(folder), "-o", str(out),
                              *_net(tiny_model), "--progress", "none"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a timing
        while not (out.is_dir() and _outputs(out)) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    before = _outputs(out)
    if not before or len(before) == 8:
        pytest.skip(f"the kill did not land mid-cohort ({len(before)} of 8 outputs); nothing to resume")
    rc = main(["segment", str(folder), "-o", str(out), *_net(tiny_model), "--progress", "json"])
    results = {r["case_result"]["name"]: r["case_result"]["status"] for r in _json_records(capsys) if "case_result" in r}
    assert rc == 3 and len(results) == 8
    after = _outputs(out)
    assert sorted(after) == [f"scan_{n:02d}.nii.gz" for n in range(8)]
    assert {name: after[name] for name in before} == before  # the same files: none recomputed
    assert {n for n, s in results.items() if s == "skipped"} == {name[: -len(".nii.gz")] for name in before}
    for name in after:  # every output complete
        read_labels(out / name, reference=tiny_abdomen.ct)
    assert [r["status"] for r in read_summary(out / "summary.csv")] == ["done"] * 8
    assert not [p.name for p in out.iterdir() if ".part" in p.name]  # the killed write's temporary is gone


@pytest.mark.parametrize("where", ["inside", "same", "a-scan"])
def test_an_output_folder_inside_or_equal_to_an_input_is_refused_and_nothing_is_created(cohort_in, tiny_model,
                                                                                       capsys, where):
    out = {"inside": cohort_in / "labels", "same": cohort_in,
           "a-scan": cohort_in / "patient3" / "CT"}[where]
    before = sorted(p.relative_to(cohort_in) for p in cohort_in.rglob("*"))
    assert main(["segment", str(cohort_in), "-o", str(out), *_net(tiny_model), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert ("is also an input" in err or "lies inside the input" in err) and "inputs are never" in err
    assert sorted(p.relative_to(cohort_in) for p in cohort_in.rglob("*")) == before


@pytest.mark.parametrize("argv, match", [
    (["{ct}", "-o", "{tmp}/x.nii.gz", "--part", "1/2"], "--part applies to a cohort"),
    (["{ct}", "-o", "{tmp}/x.nii.gz", "--format", "seg.nrrd"], "--format applies to a cohort"),
    (["{dir}", "-o", "{tmp}/out", "--report", "{tmp}/r.json"], "drop --report"),
    (["{dir}", "-o", "{tmp}/out", "--part", "3/2"], "--part must read I/N"),
    (["{dir}", "-o", "{tmp}/out", "--format", "dcm"], "is not a DICOM series folder"),
])
def test_cohort_options_are_checked_before_any_work(cohort_in, tiny_model, tmp_path, capsys, argv, match):
    args = [a.format(ct=cohort_in / "chest.nrrd", dir=cohort_in, tmp=tmp_path) for a in argv]
    assert main(["segment", *args, *_net(tiny_model), "--progress", "none"]) == 2
    assert match in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_library_generator_yields_each_scan_and_leaving_early_still_writes_the_summary(cohort_in, tiny_model,
                                                                                         tmp_path):
    from organseglib.segment import SegmentConfig

    config = SegmentConfig(autolabel_organs=())
    cases = segment_cohort(cohort_in, tmp_path / "out", model=str(tiny_model), config=config, device="cpu", jobs=1)
    first = next(cases)
    assert (first.name, first.status) == ("abdomen", "done") and Path(first.output).exists()
    cases.close()  # a console user who stops after one scan
    rows = read_summary(tmp_path / "out" / "summary.csv")
    assert [(r["case"], r["status"]) for r in rows] == [("abdomen", "done"), ("chest", "pending"),
                                                        ("patient3_CT", "pending")]


def test_two_scans_at_once_give_the_same_labels_in_order_with_progress_that_never_goes_back(cohort_in, tiny_model,
                                                                                          tmp_path):
    from organseglib.progress import Progress
    from organseglib.segment import SegmentConfig

    config = SegmentConfig(organs=("liver", "lungs", "bone"), autolabel_organs=("lungs",))  # network and morphology
    names = {}
    for jobs in (1, 2):
        stream = io.StringIO()
        progress = Progress("segment", mode="json", stream=stream)
        results = list(segment_cohort(cohort_in, tmp_path / f"jobs{jobs}", model=str(tiny_model), config=config,
                                      device="cpu", progress=progress, jobs=jobs))
        names[jobs] = [(r.name, r.status) for r in results]
        records = [check_record(json.loads(line)) for line in stream.getvalue().splitlines()]
        fractions = [r["progress"] for r in records]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert names[1] == names[2] == [("abdomen", "done"), ("chest", "done"), ("patient3_CT", "done")]
    for name, _ in names[1]:
        assert np.array_equal(read_labels(tmp_path / "jobs1" / f"{name}.nii.gz").array,
                              read_labels(tmp_path / "jobs2" / f"{name}.nii.gz").array)


class _RecordingTask:
    """A task whose compute of the first scan waits until the second scan is being read."""

    stage, model_note = "segment", {}

    def __init__(self):
        self.second_read = threading.Event()
        self.waited = []

    def read(self, path):
        if path.name == "b.nii.gz":
            self.second_read.set()
        if path.name == "c.nii.gz":
            raise InputError("c.nii.gz: corrupt")
        return read_ct(path)

    def compute(self, ct, progress=None):
        if not self.waited:  # the first scan: is the next one read meanwhile?
            self.waited.append(self.second_read.wait(timeout=60))
        return ScanResult(ct.with_array(np.zeros(ct.shape, np.uint8)), {"liver": 1.0}, (), {})

    def write(self, result, output, source, ct):
        from organseglib.io import write_labels

        write_labels(result.labels, output)


def test_the_next_scan_is_read_while_this_one_is_computed(tiny_abdomen, tmp_path):
    for name in "abc":
        write_volume(tiny_abdomen.ct, tmp_path / f"{name}.nii.gz")
    scans = find_scans([tmp_path])
    task = _RecordingTask()
    out = tmp_path / "out"
    out.mkdir()
    results = list(run_scans(task, scans, out, ".nii.gz", scans, read=task.read))
    assert task.waited == [True]  # b was read while a was being computed
    assert [(r.name, r.status) for r in results] == [("a", "done"), ("b", "done"), ("c", "failed")]
    assert results[2].error == "c.nii.gz: corrupt"


def test_plan_refuses_a_dicom_seg_cohort_of_files_and_an_output_folder_that_is_a_file(cohort_in, tmp_path):
    with pytest.raises(InputError, match="is not a DICOM series folder"):
        plan_cohort(SegmentTask(), [cohort_in / "chest.nrrd"], tmp_path / "out", "dcm")
    taken = tmp_path / "taken"
    taken.write_text("a file where the output folder should go")
    with pytest.raises(OutputPathError, match="is a file"):
        plan_cohort(SegmentTask(), [cohort_in], taken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
