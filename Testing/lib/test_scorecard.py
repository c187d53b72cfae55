"""The real-CT scorecard: a set of cases, only annotated organs scored, Table II mean ± SD."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organseglib.cli import main
from organseglib.io import write_labels, write_volume
from organseglib.scorecard import format_scorecard, list_set, score_set, from_folder, summary
from organseglib.training_set import add_case_files
from organseglib.volume import Volume

SHAPE = (6, 8, 10)


def _ct():
    a = np.full(SHAPE, 40.0, np.float32)
    a[:, :2] = -1000.0
    return Volume(a, np.diag([2.0, 2.0, 2.0, 1.0]))


@pytest.fixture()
def scored_set(tmp_path):
    ct = _ct()
    write_volume(ct, tmp_path / "ct.nii.gz")
    ref = np.zeros(SHAPE, np.uint8)
    ref[1:3, 2:4, 2:4] = 1  # liver: 8 voxels
    # case "a" annotates only the liver; case "b" also kidneys (none present in the reference)
    add_case_files(tmp_path / "ct.nii.gz", ct.with_array(ref), tmp_path / "set", "a: first", ["liver"])
    add_case_files(tmp_path / "ct.nii.gz", ct.with_array(ref), tmp_path / "set", "b: second", ["liver", "kidneys"])
    (tmp_path / "pred").mkdir()
    pa = ref.copy()
    pa[4:6, 5:7, 5:7] = 4  # kidneys predicted: not scored in case a (unknown there), a false positive in b
    write_labels(ct.with_array(pa), tmp_path / "pred" / "labels-0.nii.gz")
    pb = np.zeros(SHAPE, np.uint8)
    pb[1:2, 2:4, 2:4] = 1  # half the liver: Dice 2·4/(4+8) = 2/3
    pb[4:6, 5:7, 5:7] = 4
    write_labels(ct.with_array(pb), tmp_path / "pred" / "b.nii.gz")
    return tmp_path


def test_only_annotated_organs_scored_and_table_ii_summary(scored_set):
    cases = list_set(scored_set / "set")
    assert [(c.case_id, c.annotated) for c in cases] == [("a", ("liver",)), ("b", ("liver", "kidneys"))]
    rows = score_set(cases, from_folder(scored_set / "pred"))
    assert [(r.case_id, r.organ) for r in rows] == [("a", "liver"), ("b", "liver"), ("b", "kidneys")]
    s = summary(rows)
    assert s["liver"]["n"] == 2 and s["liver"]["dice_mean"] == pytest.approx(5 / 6)
    assert s["liver"]["dice_sd"] == pytest.approx((1 - 2 / 3) / np.sqrt(2))  # sample SD of {1, 2/3}
    assert s["kidneys"] == pytest.approx({"n": 1, "dice_mean": 0.0, "dice_sd": 0.0, "assd_mm_mean": float("inf"),
                                          "assd_mm_failed": 1, "both_empty": 0})
    text = format_scorecard(rows)
    assert "83.3 ± 23.6" in text and list(s) == ["liver", "kidneys"]  # Table II order: lungs, liver, bone, ...


def test_evaluate_set_command(scored_set, capsys):
    out = scored_set / "card.json"
    assert main(["evaluate", "--set", str(scored_set / "set"), "--pred-dir", str(scored_set / "pred"),
                 "--json", str(out), "--csv", str(scored_set / "card.csv")]) == 0
    assert "Table II" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["summary"]["liver"]["n"] == 2 and len(data["cases"]) == 3
    assert (scored_set / "card.csv").read_text().startswith("case,organ,")
    assert main(["evaluate", "--set", str(scored_set / "set")]) == 2  # neither --pred-dir nor --model


def test_evaluate_set_with_a_model_segments_each_case(tmp_path, tiny_abdomen, capsys):
    import torch

    from organseglib.model_package import ModelCard, save_model_package
    from organseglib.network import build_network

    write_volume(tiny_abdomen.ct, tmp_path / "ct.nii.gz")
    add_case_files(tmp_path / "ct.nii.gz", tiny_abdomen.labels, tmp_path / "set", "phantom: tiny", ["liver", "kidneys"])
    torch.manual_seed(0)
    card = ModelCard(name="tiny-random", width=0.0625, tile_shape=(64, 64, 64), spacing_mm=6.0)
    model = save_model_package(tmp_path / "m", build_network(width=0.0625), card)
    assert main(["evaluate", "--set", str(tmp_path / "set"), "--model", str(model), "--device", "cpu",
                 "--network-only", "--save-pred", str(tmp_path / "pred"), "--json", str(tmp_path / "s.json")]) == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert [(c["case"], c["organ"]) for c in data["cases"]] == [("phantom", "liver"), ("phantom", "kidneys")]
    assert (tmp_path / "pred" / "labels-0.nii.gz").exists()
    # the saved predictions score the same through --pred-dir
    assert main(["evaluate", "--set", str(tmp_path / "set"), "--pred-dir", str(tmp_path / "pred"),
                 "--json", str(tmp_path / "t.json")]) == 0
    again = json.loads((tmp_path / "t.json").read_text())
    assert [c["dice"] for c in again["cases"]] == [c["dice"] for c in data["cases"]]


def test_both_empty_cases_are_left_out_of_the_mean_and_counted(scored_set):
    from organseglib.scorecard import scorecard_to_json, score_case

    ct = _ct()
    ref = np.zeros(SHAPE, np.uint8)
    ref[1:3, 2:4, 2:4] = 1
    half = np.zeros(SHAPE, np.uint8)
    half[1:2, 2:4, 2:4] = 1  # Dice 2/3
    empty = ct.with_array(np.zeros(SHAPE, np.uint8))
    rows = (score_case(ct.with_array(half), ct.with_array(ref), "a", ["liver"])
            + score_case(empty, empty, "b", ["liver", "kidneys"]))  # annotated, absent, rightly not predicted
    s = summary(rows)
    # without the fix: n 2 and mean (2/3 + 1) / 2 = 83.3 %
    assert s["liver"]["n"] == 1 and s["liver"]["dice_mean"] == pytest.approx(2 / 3)
    assert s["liver"]["both_empty"] == 1 and s["liver"]["dice_sd"] == 0.0
    assert s["kidneys"]["n"] == 0 and s["kidneys"]["both_empty"] == 1 and np.isnan(s["kidneys"]["dice_mean"])
    text = format_scorecard(rows)
    assert "66.7 ± 0.0" in text and "83.3" not in text and "both empty" in text
    liver_line = [line for line in text.splitlines() if line.startswith("liver ")][0]
    assert liver_line.split()[-1] == "1"
    data = json.loads(scorecard_to_json(rows))
    assert data["summary"]["liver"]["both_empty"] == 1 and data["summary"]["kidneys"]["dice_mean"] is None


def test_evaluate_set_never_overwrites_its_inputs(scored_set, capsys):
    set_dir, pred = scored_set / "set", scored_set / "pred"
    before = {p.name: p.read_bytes() for p in set_dir.iterdir()}
    pred_before = {p.name: p.read_bytes() for p in pred.iterdir()}
    runs = [
        ["--pred-dir", str(set_dir), "--json", str(set_dir / "manifest.json")],  # exited 0 and replaced it
        ["--pred-dir", str(pred), "--csv", str(set_dir / "labels-0.nii.gz")],
        ["--pred-dir", str(pred), "--json", str(pred / "b.nii.gz")],  # a prediction read
        ["--model", "bundled", "--save-pred", str(set_dir)],  # would replace the reference labels-N
        ["--pred-dir", str(pred), "--save-pred", str(scored_set / "elsewhere")],  # --save-pred needs --model
    ]
    for extra in runs:
        assert main(["evaluate", "--set", str(set_dir)] + extra) == 2, extra
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Table II" not in err, (extra, err)
    assert {p.name: p.read_bytes() for p in set_dir.iterdir()} == before
    assert {p.name: p.read_bytes() for p in pred.iterdir()} == pred_before
    assert not (scored_set / "elsewhere").exists()


def test_evaluate_device_help_is_the_shared_one(capsys):
    from organseglib.devices import DEVICE_HELP

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "cuda:N" in " ".join(capsys.readouterr().out.split()) and "cuda:N" in DEVICE_HELP  # was "auto, cpu, cuda"


def test_save_pred_never_replaces_a_referenced_ct(tmp_path, capsys):
    ct = _ct()
    (tmp_path / "cts").mkdir()
    write_volume(ct, tmp_path / "cts" / "labels-0.nii.gz")  # a CT unluckily named like a prediction
    add_case_files(tmp_path / "cts" / "labels-0.nii.gz", ct.with_array(np.zeros(SHAPE, np.uint8)), tmp_path / "set",
                   "a: ref", ["liver"], ct_mode="reference")
    before = (tmp_path / "cts" / "labels-0.nii.gz").read_bytes()
    assert main(["evaluate", "--set", str(tmp_path / "set"), "--model", "bundled",
                 "--save-pred", str(tmp_path / "cts")]) == 2
    assert "would replace" in capsys.readouterr().err
    assert (tmp_path / "cts" / "labels-0.nii.gz").read_bytes() == before
