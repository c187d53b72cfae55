"""``organseg demo`` end to end on a tiny phantom: every stage writes labels, overlays and metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organseglib.cli import main
from organseglib.io import read_labels
from organseglib.model_package import DEMO_MODEL, bundled_models_folder, is_model_package
from organseglib.progress import check_record, parse_line, parse_record

LUNGS, BONE = 3, 5

DEMO = bundled_models_folder() / DEMO_MODEL
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not is_model_package(DEMO), reason=f"the bundled demo model is absent ({DEMO}); "
                                 "train it with scripts/train_demo_model.py")]


def test_demo_runs_every_stage_on_the_phantom(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "small", "--region", "both", "--seed", "3", "--out", str(out),
                 "--progress", "json", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    # the progress protocol (test_progress_schema.py checks the other commands): every record valid,
    # read by the Slicer reader's parser, the done record last with the output folder
    records = [parse_record(check_record(r)) for r in map(parse_line, printed.splitlines()) if r is not None]
    assert records[-1].kind == "done" and records[-1].output == str(out) and records[-1].warnings == ()
    assert [r.kind for r in records[:-1]] == ["progress"] * (len(records) - 1)
    # the default model names itself and the terms of its weights (IRCAD data: non-commercial)
    from organseglib.model_package import default_model_path, read_card

    card = read_card(default_model_path())[0]
    model_line = next(line for line in printed.splitlines() if line.startswith("model: "))
    assert card.name in model_line and card.weights_licence in model_line
    truth = read_labels(out / "truth.nii.gz")
    stages = {}
    for stage in ("autolabel", "network", "segment"):
        for suffix in (".seg.nrrd", ".nii.gz", ".png", "_metrics.json"):
            assert (out / f"{stage}{suffix}").stat().st_size > 0
        labels = read_labels(out / f"{stage}.nii.gz", reference=truth)
        stages[stage] = labels.array
        assert f"{stage} vs truth" in printed
    # the auto-labelers give only lungs and bone; the hybrid takes exactly those from them
    assert set(np.unique(stages["autolabel"])) <= {0, LUNGS, BONE}
    for value in (LUNGS, BONE):
        assert np.array_equal(stages["segment"] == value, stages["autolabel"] == value)
    # the metrics files hold the scores of the labels written (recomputed here from the files)
    scores = {row["value"]: row for row in json.loads((out / "autolabel_metrics.json").read_text())}
    assert sorted(scores) == [LUNGS, BONE]  # the auto-labelers are scored only on what they label
    assert len(json.loads((out / "segment_metrics.json").read_text())) == 5
    for value in (LUNGS, BONE):
        a, b = stages["autolabel"] == value, truth.array == value
        assert scores[value]["dice"] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()), abs=1e-6)
    assert scores[LUNGS]["dice"] >= 0.95 and scores[BONE]["dice"] >= 0.90  # issue 3's phantom goals


def test_demo_refuses_to_overwrite_its_input(tmp_path, tiny_abdomen):
    from organseglib.io import write_volume

    out = tmp_path / "demo"
    out.mkdir()
    ct_path = out / "network.nii.gz"  # a name the demo writes
    write_volume(tiny_abdomen.ct, ct_path)
    before = ct_path.read_bytes()
    assert main(["demo", "--input", str(ct_path), "--out", str(out), "--progress", "none"]) == 2
    assert ct_path.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["network.nii.gz"]
