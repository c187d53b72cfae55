"""``organseg segment``: formats, progress lines, refusing to overwrite the input, clear errors."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from organseglib.cli import main
from organseglib.io import read_labels, write_volume
from organseglib.model_package import ModelCard, save_model_package
from organseglib.network import build_network


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_abdomen):
    tmp = tmp_path_factory.mktemp("segment")
    ct = write_volume(tiny_abdomen.ct, tmp / "ct.nii.gz")
    torch.manual_seed(0)
    card = ModelCard(name="tiny-random", width=0.0625, tile_shape=(64, 64, 64), spacing_mm=6.0,
                     training_data="none: random weights (test)")
    model = save_model_package(tmp / "tiny-random", build_network(width=0.0625), card)
    return tmp, ct, model


@pytest.mark.parametrize("name", ["out.seg.nrrd", "out.nii.gz", "out.nrrd"])
def test_segment_writes_labels_on_the_ct_grid(files, tiny_abdomen, name, capsys):
    tmp, ct, model = files
    out = tmp / name
    rc = main(["segment", str(ct), "-o", str(out), "--model", str(model), "--device", "cpu", "--progress", "none"])
    labels = read_labels(out, reference=tiny_abdomen.ct)
    assert labels.array.dtype == np.uint8 and set(np.unique(labels.array).tolist()) <= {0, 1, 2, 3, 4, 5}
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.out
    # random weights find no liver, bladder or kidneys: written, but exit 3 with one warning line each
    missing = [k for k, v in (("liver", 1), ("bladder", 2), ("kidneys", 4)) if not (labels.array == v).any()]
    assert missing and rc == 3
    assert [line.split(": ")[2] for line in captured.err.splitlines() if "warning" in line] == missing


def test_segment_json_progress_and_result(files, capsys):
    tmp, ct, model = files
    out = tmp / "json.nii.gz"
    rc = main(["segment", str(ct), "-o", str(out), "--model", str(model), "--device", "cpu",
               "--network-only", "--organs", "liver,kidneys", "--progress", "json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    fractions = [r["progress"] for r in lines if "status" not in r]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert any("tile" in r.get("message", "") for r in lines)
    final = lines[-1]
    assert final["status"] == "done" and final["output"] == str(out) and set(final["volumes_ml"]) <= {"liver", "kidneys"}
    # random weights find neither organ: the empty result is written, but not passed off as success
    assert final["volumes_ml"] == {} and rc == 3
    assert len(final["warnings"]) == 1 and final["warnings"][0].startswith("no organ found")
    assert set(np.unique(read_labels(out).array).tolist()) <= {0, 1, 4}


def test_segment_refuses_to_overwrite_its_input(files, capsys):
    tmp, ct, model = files
    before = ct.read_bytes()
    assert main(["segment", str(ct), "-o", str(ct), "--model", str(model), "--progress", "none"]) == 2
    assert "also an input" in capsys.readouterr().err and ct.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/x.png"], "cannot write"),
    (["-o", "{tmp}/x.nii.gz", "--model", "{tmp}/missing"], "neither a folder nor a known package name"),
    (["-o", "{tmp}/x.nii.gz", "--device", "tpu"], "auto, cpu or cuda"),
    (["-o", "{tmp}/x.nii.gz", "--autolabel-organs", "liver"], "autolabel_organs must be among"),
    (["-o", "{tmp}/x.nii.gz", "--tile", "64,64"], "tile_shape must be three"),
    (["-o", "{tmp}/x.nii.gz", "--tile", "a,b,c"], "--tile must be three integers"),
])
def test_segment_errors_are_one_clear_line(files, args, message, capsys):
    tmp, ct, model = files
    argv = ["segment", str(ct), *[a.format(tmp=tmp) for a in args], "--progress", "none"]
    if "--model" not in argv:
        argv += ["--model", str(model)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_segment_reports_plausibility_warnings(files, capsys):
    """A random-weight model gives implausible organs: the done record, the report and the terminal
    say so (issue 11, item 6): never a silent success."""
    tmp, ct, model = files
    out, report = tmp / "warn.nii.gz", tmp / "warn.json"
    assert main(["segment", str(ct), "-o", str(out), "--model", str(model), "--device", "cpu",
                 "--network-only", "--organs", "liver,kidneys", "--progress", "json", "--report", str(report)]) == 3
    final = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()][-1]
    saved = json.loads(report.read_text())
    assert final["warnings"] and final["warnings"] == saved["warnings"]
    assert set(saved["organs"]) == {"liver", "kidneys"} and saved["ok"] is False
    assert main(["segment", str(ct), "-o", str(out), "--model", str(model), "--device", "cpu",
                 "--network-only", "--organs", "liver,kidneys", "--progress", "none"]) == 3
    assert "organseg segment: warning: " in capsys.readouterr().err


def test_segment_passes_the_auto_labelers_warnings_and_ok_follows_all_warnings(files, monkeypatch, capsys):
    """The auto-labelers' warnings reach the stderr lines, the done record, the exit status and the
    --report, whose ``ok`` is false whenever ``warnings`` is not empty (not only plausibility's)."""
    import organseglib.cohort.jobs as command  # the one scan's work of the segment command
    from organseglib.io import read_ct

    tmp, ct, model = files
    drop = "bone: the bone labeler dropped more dense tissue (900 mL) than it kept as skeleton (100 mL)"

    def fake_segment(volume, *args, **kwargs):
        out = np.zeros(volume.shape, np.uint8)
        out[2:6, 2:6, 2:6] = 5  # bone found: plausibility has nothing to say about it
        return volume.with_array(out), [drop]

    monkeypatch.setattr(command, "segment_ct_with_report", fake_segment)
    out, report = tmp / "bone_only.nii.gz", tmp / "bone_only.json"
    rc = main(["segment", str(ct), "-o", str(out), "--organs", "bone", "--report", str(report),
               "--progress", "json"])
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 3 and final["warnings"] == [drop] and final["plausibility"]["ok"] is True
    written = json.loads(report.read_text())
    assert written["warnings"] == [drop] and written["ok"] is False
    assert read_ct(ct).shape == read_labels(out).shape


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("option, match", [(["--device", "cuda"], "no CUDA"),
                                           (["--model", "no-such-name"], "no-such-name")])
def test_a_bad_device_or_model_fails_before_the_ct_is_read(files, monkeypatch, capsys, option, match):
    import organseglib.commands.segment as command

    tmp, ct, _ = files

    def never(*args, **kwargs):
        raise AssertionError("the CT was read before the device and the model were checked")

    monkeypatch.setattr(command, "read_ct", never)
    rc = main(["segment", str(ct), "-o", str(tmp / "never.nii.gz"), "--progress", "none", *option])
    assert rc == 2 and match in capsys.readouterr().err
    assert not (tmp / "never.nii.gz").exists()


def test_segment_names_the_model_and_its_weights_licence(files, tmp_path, capsys):
    """A model whose card restricts its weights (e.g. trained on IRCAD data) says so with every result:
    one line on the terminal and ``model_licence`` in the report; an unrestricted one prints nothing."""
    from organseglib.model_package import load_model_package

    tmp, ct, model = files
    net, card = load_model_package(model)
    terms = "non-commercial research use only: trained on test data"
    restricted = save_model_package(tmp_path / "nc", net, replace(card, name="nc-model", weights_licence=terms))
    report = tmp_path / "r.json"
    main(["segment", str(ct), "-o", str(tmp_path / "o.nii.gz"), "--model", str(restricted), "--device", "cpu",
          "--progress", "none", "--report", str(report)])
    assert f"model nc-model: {terms}" in capsys.readouterr().out
    saved = json.loads(report.read_text())
    assert saved["model"] == "nc-model" and saved["model_licence"] == terms
    main(["segment", str(ct), "-o", str(tmp_path / "p.nii.gz"), "--model", str(model), "--device", "cpu",
          "--progress", "none", "--report", str(report)])
    assert "model tiny-random" not in capsys.readouterr().out
    assert json.loads(report.read_text())["model_licence"] == ""
