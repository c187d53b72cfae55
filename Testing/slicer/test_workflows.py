"""The four workflows of OrganSegLogic on real MRML (slicer-core), in process and via child processes.

Child-process tests run a small fake ``organseg`` (below) in place of the real command, so the
whole GUI path is exercised: write the CT, run the child, poll its JSON lines, read the result back
into the segmentation node, register a retrained model.
"""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from organseglib.errors import OutputExistsError
from organseglib.io import read_labels, read_volume

pytestmark = pytest.mark.slicer

FAKE_ORGANSEG = textwrap.dedent('''
    """Stands in for `python -m organseglib`: segment/autolabel write a box per organ, train makes a folder."""
    import argparse, json, os, sys, time
    import numpy as np
    from organseglib.io import read_volume, write_labels
    from organseglib.progress import check_record, done_record, error_record, progress_record

    def emit(record):  # the records of the real protocol, checked as the schema test checks the real commands
        print(json.dumps(check_record(record)), flush=True)

    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("input", nargs="?"); parser.add_argument("-o", "--output")
    parser.add_argument("--out"); parser.add_argument("--organs", default="")
    parser.add_argument("--data"); parser.add_argument("--init"); parser.add_argument("--device")
    parser.add_argument("--iterations", type=int); parser.add_argument("--model"); parser.add_argument("--time-budget")
    parser.add_argument("--progress")
    args = parser.parse_args()
    if os.environ.get("FAKE_FAIL"):
        emit(error_record(args.command, os.environ["FAKE_FAIL"]))
        sys.exit(2)
    if os.environ.get("FAKE_SLEEP"):
        emit(progress_record(args.command, 0.01, "sleeping"))
        time.sleep(120)
    if args.command == "train" and os.environ.get("FAKE_EARLY"):  # as `train --stop-after 1`: no model yet
        emit(progress_record("train", 1 / 3, "iteration 1/3, loss 1.0000"))
        emit(done_record("train", None, checkpoint=args.out + ".training", iteration=1))
        sys.exit(0)
    if args.command == "train":
        for it in (1, 2, 3):
            if it == 2:  # as the real trainer reports a validation: a structured field of its record
                emit(progress_record("train", it / 3, "iteration 2/3, loss 0.5000",
                                     validation={"iteration": 2, "loss": 0.4, "dice": {"lungs": 0.9, "liver": 0.7}}))
                print("INFO organseglib.training.trainer: iteration 2: a log line", file=sys.stderr, flush=True)
                continue
            emit(progress_record("train", it / 3, f"iteration {it}/3, loss {1.0 / it:.4f}"))
        os.makedirs(args.out)
        emit(done_record("train", args.out, os.environ.get("FAKE_WARN", "").split("|") if os.environ.get("FAKE_WARN") else []))
        sys.exit(0)
    ct = read_volume(args.input)
    labels = np.zeros(ct.shape, np.uint8)
    boxes = {"liver": (1, slice(0, 4)), "lungs": (3, slice(4, 8)), "bone": (5, slice(8, 12))}
    wanted = args.organs.split(",") if args.organs else list(boxes)
    for key in wanted:
        value, ks = boxes[key]
        labels[ks, 2:6, 2:6] = value
        emit(progress_record(args.command, 0.5, f"{key} done"))
    print("plain log text is not a progress record", flush=True)
    write_labels(ct.with_array(labels), args.output)
    warnings = os.environ["FAKE_WARN"].split("|") if os.environ.get("FAKE_WARN") else []
    emit(done_record(args.command, args.output, warnings, volumes_ml={"lungs": 1.5}))
''')


@pytest.fixture
def fake_python(tmp_path):
    script = tmp_path / "fake_organseg.py"
    script.write_text(FAKE_ORGANSEG, encoding="utf-8")
    return [sys.executable, str(script)]


@pytest.fixture
def logic(scene, tmp_path):
    from OrganSegCommon.model_registry import ModelRegistry
    from OrganSegCommon.workflows import WorkflowLogic

    return WorkflowLogic(scene, registry=ModelRegistry(tmp_path / "registry" / "models.json"))


@pytest.fixture
def chest(scene, tiny_chest):
    from OrganSegCommon.mrml_bridge import node_from_volume

    return node_from_volume(tiny_chest.ct, scene, "Chest")


def _names(seg_node):
    s = seg_node.GetSegmentation()
    return [s.GetSegment(s.GetNthSegmentID(i)).GetName() for i in range(s.GetNumberOfSegments())]


def test_autolabel_in_process_finds_phantom_lungs_and_bone(logic, chest, tiny_chest):
    from organseglib.metrics import dice

    from OrganSegCommon.mrml_bridge import segmentation_to_labels

    seg = logic.autolabel(chest, ["lungs", "bone"])
    assert seg.GetName() == "Chest segmentation"
    assert _names(seg) == ["Lungs", "Bone"]
    labels, _ = segmentation_to_labels(seg, chest)
    truth = tiny_chest.labels.array
    assert dice(labels.array == 3, truth == 3) > 0.8
    assert dice(labels.array == 5, truth == 5) > 0.5


def test_rerunning_autolabel_leaves_other_segments_untouched(logic, chest, tiny_chest, slicer_core):
    seg = logic.autolabel(chest, ["lungs", "bone"])
    tumor_id = seg.GetSegmentation().AddEmptySegment("tumor", "Tumor", [1.0, 0.0, 0.0])
    tumor = np.zeros(tiny_chest.ct.shape, np.uint8)
    tumor[20:25, 30:35, 30:35] = 1
    slicer_core.util.updateSegmentBinaryLabelmapFromArray(tumor, seg, tumor_id, chest)
    bone_id = seg.GetSegmentation().GetSegmentIdBySegmentName("Bone")
    bone_before = slicer_core.util.arrayFromSegmentBinaryLabelmap(seg, bone_id, chest).copy()

    logic.autolabel(chest, ["lungs"], seg)
    assert _names(seg) == ["Lungs", "Bone", "Tumor"]
    assert np.array_equal(slicer_core.util.arrayFromSegmentBinaryLabelmap(seg, tumor_id, chest) > 0, tumor > 0)
    assert np.array_equal(slicer_core.util.arrayFromSegmentBinaryLabelmap(seg, bone_id, chest), bone_before)


def test_autolabel_refuses_organs_morphology_cannot_label(logic, chest):
    with pytest.raises(ValueError, match="lungs, bone only"):
        logic.autolabel(chest, ["liver"])


def test_save_to_training_set_exports_exact_labels_and_numbers_cases(logic, chest, tiny_chest, tmp_path):
    from OrganSegCommon.mrml_bridge import segmentation_to_labels

    seg = logic.autolabel(chest, ["lungs", "bone"])
    folder = tmp_path / "dataset"
    first = logic.save_to_training_set(chest, seg, str(folder), corrected_organs=["Lungs"])
    second = logic.save_to_training_set(chest, seg, str(folder))
    assert (first.id, second.id) == (0, 1)
    labels = read_labels(folder / "labels-0.nii.gz")
    ct = read_volume(folder / "volume-0.nii.gz")
    expected, _ = segmentation_to_labels(seg, chest)
    assert labels.array.dtype == np.uint8
    assert np.array_equal(labels.array, expected.array)
    assert labels.same_grid(tiny_chest.ct, atol=1e-4) and ct.same_grid(tiny_chest.ct, atol=1e-4)
    assert np.array_equal(ct.array, tiny_chest.ct.array)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [c["id"] for c in manifest["cases"]] == [0, 1]
    assert manifest["cases"][0]["corrected_organs"] == ["lungs"]
    assert manifest["cases"][0]["source"] == "Slicer node 'Chest'"
    with pytest.raises(OutputExistsError, match="case 1 already exists"):
        logic.save_to_training_set(chest, seg, str(folder), case_id=1)


def test_segment_job_runs_child_and_fills_segmentation(logic, chest, fake_python, slicer_core):
    job = logic.start_segment(chest, device="cpu", python=fake_python)
    seen = []
    seg = job.wait(timeout=120, on_record=seen.append)
    assert job.state == "done" and job.error is None
    assert [r.message for r in seen if r.message] == ["liver done", "lungs done", "bone done"]
    assert seg.GetName() == "Chest segmentation"
    assert _names(seg) == ["Liver", "Bladder", "Lungs", "Kidneys", "Bone"]
    lungs = slicer_core.util.arrayFromSegmentBinaryLabelmap(
        seg, seg.GetSegmentation().GetSegmentIdBySegmentName("Lungs"), chest)
    assert int(lungs.sum()) == 4 * 4 * 4
    assert job.workdir is None  # temporary files removed


def test_autolabel_job_updates_only_its_organs(logic, chest, fake_python):
    seg = logic.start_segment(chest, python=fake_python).wait(timeout=120)
    liver_id = seg.GetSegmentation().GetSegmentIdBySegmentName("Liver")
    job = logic.start_autolabel(chest, ["bone"], seg, python=fake_python)
    assert job.wait(timeout=120) is seg
    assert seg.GetSegmentation().GetSegmentIdBySegmentName("Liver") == liver_id
    assert "--organs" in job.runner.args and "bone" in job.runner.args


def test_job_error_shows_the_child_message(logic, chest, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "ct.mha: not a CT in HU (median -3.2); rescale it")
    job = logic.start_segment(chest, python=fake_python)
    with pytest.raises(RuntimeError, match=r"not a CT in HU \(median -3.2\); rescale it"):
        job.wait(timeout=120)
    assert "exit status" not in job.error


def test_retrain_job_reports_progress_and_registers_the_model(logic, tmp_path, fake_python):
    from OrganSegCommon.jobs import describe_record

    data = tmp_path / "dataset"
    data.mkdir()
    out = tmp_path / "models" / "retrained"
    job = logic.start_retrain(str(data), str(out), init_model="demo", python=fake_python)
    args = job.runner.args
    assert args[args.index("--time-budget") + 1] == "auto" and "--iterations" not in args  # 30 min CPU, 10 GPU
    lines = []
    assert job.wait(timeout=120, on_record=lambda r: lines.append(describe_record(r))) == str(out)
    assert lines[0] == "iteration 1/3, loss 1.0000"
    assert "iteration 2/3, loss 0.5000 (validation Dice 0.800 (lungs 0.900, liver 0.700))" in lines
    assert str(out.resolve()) in logic.registry.registered()
    assert ("retrained retrained", str(out.resolve())) in logic.available_models()  # no card: folder name
    with pytest.raises(FileExistsError, match="never overwritten"):
        logic.start_retrain(str(data), str(out), python=fake_python)


@pytest.mark.parametrize("command", ["segment", "autolabel", "train"])
def test_child_command_lines_match_the_organseg_parsers(command, tmp_path):
    """The GUI's command lines parse with the real ``organseg`` parsers (skipped until a command lands)."""
    import argparse
    import importlib
    import importlib.util

    from organseglib import cli

    from OrganSegCommon import jobs

    if importlib.util.find_spec(f"organseglib.commands.{command}") is None:
        pytest.skip(f"organseglib/commands/{command}.py (`organseg {command}`) does not exist yet")
    parser = argparse.ArgumentParser(prog="organseg")
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"organseglib.commands.{command}").register(sub)
    python = ["python", "-m", "organseglib"]
    args = {
        "segment": jobs.segment_command("ct.mha", "labels.nii.gz", model="m", device="gpu", python=python),
        "autolabel": jobs.autolabel_command("ct.mha", "labels.nii.gz", ["lungs", "bone"], python=python),
        "train": jobs.train_command(str(tmp_path), "out", init_model="m", device="cpu", time_budget="auto", python=python),
    }[command]
    parsed = parser.parse_args(args[3:])
    assert parsed.command == command and parsed.progress == "json"
    if command not in cli.COMMANDS:
        pytest.skip(f"parses, but `organseg {command}` is not listed in organseglib.cli.COMMANDS yet")


def test_describe_record_shows_validation_dice_and_warnings():
    from organseglib.progress import done_record, parse_record, progress_record

    from OrganSegCommon.jobs import describe_record

    final = done_record("train", "m", validation={"iteration": 20, "loss": 0.3, "dice": {"lungs": 0.9, "liver": 0.7}})
    assert describe_record(parse_record(final)) == "validation Dice 0.800 (lungs 0.900, liver 0.700)"
    plain = progress_record("train", 0.5, "iteration 10/20, loss 0.4000")
    assert describe_record(parse_record(plain)) == "iteration 10/20, loss 0.4000"
    assert describe_record(parse_record(done_record("segment", "x.nii.gz"))) == "segment"
    warned = done_record("autolabel", "x.nii.gz", ["lungs: only one lung found", "bone: small skeleton"])
    assert describe_record(parse_record(warned)) == \
        "2 warnings: lungs: only one lung found; bone: small skeleton"


def test_describe_record_shows_the_hybrids_reassignments():
    from organseglib.progress import done_record, parse_record

    from OrganSegCommon.jobs import describe_record

    moved = [{"from": "bone", "to": "kidneys", "ml": 12.5, "why": "network kidneys p=0.88; no cortical shell"}]
    line = describe_record(parse_record(done_record("segment", "x.nii.gz", ["liver: missing"], reassignments=moved)))
    assert line == "reassigned: 12.5 mL bone -> kidneys; 1 warning: liver: missing"


def test_real_autolabel_command_in_a_child_process(logic, chest, tiny_chest):
    """The real ``python -m organseglib autolabel`` behind the GUI: arguments, JSON lines, output file."""
    import importlib.util

    if importlib.util.find_spec("organseglib.commands.autolabel") is None:
        pytest.skip("`organseg autolabel` does not exist yet")
    from organseglib.metrics import dice

    from OrganSegCommon.mrml_bridge import segmentation_to_labels

    job = logic.start_autolabel(chest, ["lungs"], python=[sys.executable, "-m", "organseglib"])
    records = []
    seg = job.wait(timeout=300, on_record=records.append)
    assert records and records[-1].kind == "done" and records[-1].output.endswith("labels.nii.gz")
    assert 0 < len([r for r in records if r.progress is not None and r.progress < 1])
    assert isinstance(records[-1].fields.get("warnings"), list)  # the labelers' warnings ride on the done record
    assert list(job.warnings) == records[-1].fields["warnings"]  # and the widget's status shows them
    labels, _ = segmentation_to_labels(seg, chest)
    assert dice(labels.array == 3, tiny_chest.labels.array == 3) > 0.8


@pytest.mark.slow
def test_real_segment_command_with_the_demo_model(logic, chest, slicer_core):
    """One click: the real ``organseg segment`` (bundled demo model) into five named segments."""
    from organseglib.errors import ModelPackageError
    from organseglib.model_package import default_model_path

    try:
        default_model_path()
    except ModelPackageError as exc:
        pytest.skip(f"no bundled demo model yet: {exc}")
    job = logic.start_segment(chest, device="cpu", python=[sys.executable, "-m", "organseglib"])
    seg = job.wait(timeout=600)
    assert _names(seg) == ["Liver", "Bladder", "Lungs", "Kidneys", "Bone"]
    assert seg.GetNodeReferenceID("referenceImageGeometryRef") == chest.GetID()
    lungs = slicer_core.util.arrayFromSegmentBinaryLabelmap(
        seg, seg.GetSegmentation().GetSegmentIdBySegmentName("Lungs"), chest)
    assert lungs.sum() > 0


def test_segment_in_process_writes_only_the_configured_organs(logic, chest, tiny_chest):
    """Console path of one-click segmentation (hybrid config needing no network model)."""
    from organseglib.segment import SegmentConfig

    seg = logic.autolabel(chest, ["bone"])
    before = seg.GetSegmentation().GetSegmentIdBySegmentName("Bone")
    logic.segment(chest, seg, config=SegmentConfig(organs=("lungs",), autolabel_organs=("lungs",)))
    assert _names(seg) == ["Bone", "Lungs"]
    assert seg.GetSegmentation().GetSegmentIdBySegmentName("Bone") == before


def test_validation_progress_fields_are_described_for_the_retrain_panel():
    """The trainer sends each validation as a structured field of its --progress json record."""
    from organseglib.progress import parse_record

    from OrganSegCommon.jobs import describe_record
    from OrganSegCommon.process_runner import parse_line

    line = ('{"stage": "train", "progress": 0.5, "message": "iteration 500/1000, loss 0.1234", '
            '"validation": {"iteration": 500, "loss": 0.1235, "dice": {"lungs": 0.912, "bone": 0.5}}}')
    record = parse_record(parse_line(line))
    assert describe_record(record) == ("iteration 500/1000, loss 0.1234 "
                                       "(validation Dice 0.706 (lungs 0.912, bone 0.500))")


def test_retrain_names_new_models_and_continues_a_stopped_run(logic, tmp_path, fake_python, monkeypatch):
    """The retrain policy of the Logic (console and Widget alike): a new ``retrained-<time>`` package
    in the models folder; Stop (cancel) then retrain on the same set and model continues that run."""
    from pathlib import Path

    data = tmp_path / "dataset"
    data.mkdir()
    monkeypatch.setenv("FAKE_SLEEP", "1")
    logic.retrain(str(data), init_model="demo", python=fake_python).cancel()
    first = logic.last_retrain.output
    assert Path(first).parent == logic.models_folder and Path(first).name.startswith("retrained-")
    assert Path(first + ".training").is_dir() and not Path(first).exists()  # name reserved, nothing registered
    job = logic.retrain(str(data) + "/", init_model="demo", python=fake_python)  # same folder, other spelling
    assert job.runner.args[job.runner.args.index("--out") + 1] == first == logic.last_retrain.output
    job.cancel()
    job = logic.retrain(str(data), init_model="other", python=fake_python)  # another model: a new run
    other = logic.last_retrain.output
    assert other != first
    job.cancel()
    monkeypatch.delenv("FAKE_SLEEP")
    job = logic.retrain(str(data), init_model="other", iterations=3, python=fake_python)
    assert logic.last_retrain.output == other  # continues the stopped run of that model
    assert job.wait(timeout=120) == other and str(Path(other).resolve()) in logic.registry.registered()
    job = logic.retrain(str(data), init_model="other", iterations=3, python=fake_python)
    assert logic.last_retrain.output not in (first, other)  # a finished run is never continued
    job.wait(timeout=120)


def test_done_record_warnings_reach_the_job_and_the_log(logic, chest, fake_python, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_WARN", "lungs: only one lung found")
    job = logic.start_autolabel(chest, ["lungs"], python=fake_python)
    with caplog.at_level("WARNING", logger="OrganSegCommon.jobs"):
        job.wait(timeout=120)
    assert job.warnings == ("lungs: only one lung found",)
    assert "Auto-label: lungs: only one lung found" in caplog.text


def test_model_list_says_non_commercial_when_the_card_does(tmp_path):
    import torch

    from OrganSegCommon.model_registry import package_label
    from organseglib.model_package import ModelCard, save_model_package
    from organseglib.network import build_network

    torch.manual_seed(0)
    card = ModelCard(name="real", width=0.0625, training_data="phantoms + ircad1_07",
                     data_sources=[{"name": "ircad1_07", "licence": "CC BY-NC-ND 4.0"}],
                     weights_licence="non-commercial research use only (3D-IRCADb, CC BY-NC-ND 4.0)")
    path = save_model_package(tmp_path / "real", build_network(width=0.0625), card)
    assert package_label(str(path)).endswith("— non-commercial research use only")
    free = save_model_package(tmp_path / "free", build_network(width=0.0625), ModelCard(name="free", width=0.0625))
    assert "non-commercial" not in package_label(str(free))
