"""Outputs: every path checked before any work, umask-respecting modes, leftovers of killed writers
cleaned up, results with warnings (exit 3), and a resumed run with another network width."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from organseglib import atomic
from organseglib.atomic import atomic_path, remove_stale_temporaries, write_text_atomic
from organseglib.cli import main
from organseglib.errors import EXIT_WARNINGS, InputError, OutputPathError
from organseglib.io import write_labels, write_volume
from organseglib.volume import Volume


@pytest.fixture
def files(tmp_path, tiny_abdomen):
    ct = write_volume(tiny_abdomen.ct, tmp_path / "ct.nii.gz")
    labels = write_labels(tiny_abdomen.labels, tmp_path / "labels.nii.gz")
    return ct, labels


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder nobody may write into. Root writes anywhere, so for root the EACCES a user would get
    from the file system is raised where the library creates files (``tempfile.mkstemp``)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve() == folder.resolve():
                raise PermissionError(errno.EACCES, "Permission denied")
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    yield folder
    folder.chmod(0o755)


def _no_work(monkeypatch, module: str, name: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{module}.{name} ran: the output was not checked before the work")

    monkeypatch.setattr(f"{module}.{name}", fail)


def _one_line(capsys, argv, code=2) -> str:
    rc = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == code, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# --- every output checked before any work ------------------------------------------------------------
@pytest.mark.parametrize("where, message", [
    ("read-only", "is not writable"),
    ("parent-is-file", "is a file, not a folder"),
    ("a-folder", "is a folder; give a file name"),
    ("missing-folder", "does not exist; create it first"),
])
def test_segment_refuses_an_unwritable_output_before_reading_the_ct(tmp_path, files, read_only, capsys, monkeypatch,
                                                                    where, message):
    ct, _ = files
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder.nii.gz").mkdir()
    out = {"read-only": read_only / "labels.nii.gz", "parent-is-file": tmp_path / "notes.txt" / "labels.nii.gz",
           "a-folder": tmp_path / "folder.nii.gz", "missing-folder": tmp_path / "nowhere" / "labels.nii.gz"}[where]
    _no_work(monkeypatch, "organseglib.commands.segment", "read_ct")
    line = _one_line(capsys, ["segment", ct, "-o", out, "--progress", "none"])
    assert message in line and str(out) in line
    assert sorted(p.name for p in read_only.iterdir()) == []


def test_autolabel_report_to_a_read_only_folder_writes_no_labels(tmp_path, files, read_only, capsys, monkeypatch):
    ct, _ = files
    labels = tmp_path / "auto.nii.gz"
    _no_work(monkeypatch, "organseglib.commands.autolabel", "read_ct")
    line = _one_line(capsys, ["autolabel", ct, "-o", labels, "--report", read_only / "report.json",
                              "--progress", "none"])
    assert "--report" in line and "not writable" in line
    assert not labels.exists() and list(read_only.iterdir()) == []


def test_autolabel_checks_the_label_format_before_the_work(tmp_path, files, capsys, monkeypatch):
    ct, _ = files
    _no_work(monkeypatch, "organseglib.commands.autolabel", "read_ct")
    assert "cannot write" in _one_line(capsys, ["autolabel", ct, "-o", tmp_path / "labels.png"])


def test_library_writes_into_a_read_only_folder_say_so(read_only, tiny_abdomen):
    with pytest.raises(OutputPathError, match="is not writable"):
        write_labels(tiny_abdomen.labels, read_only / "l.nii.gz")
    with pytest.raises(OutputPathError, match="is not writable"):
        write_text_atomic(read_only / "r.json", "{}")


def test_one_path_for_two_outputs_is_refused(tmp_path, files, capsys, monkeypatch):
    ct, _ = files
    _no_work(monkeypatch, "organseglib.commands.autolabel", "read_ct")
    line = _one_line(capsys, ["autolabel", ct, "-o", tmp_path / "a.nii.gz", "--report", tmp_path / "a.nii.gz"])
    assert "both name" in line


def test_evaluate_checks_csv_and_json_before_reading(tmp_path, files, capsys, monkeypatch):
    _, labels = files
    _no_work(monkeypatch, "organseglib.commands.evaluate", "read_labels")
    assert "is a folder" in _one_line(capsys, ["evaluate", labels, labels, "--csv", tmp_path])
    (tmp_path / "f").write_text("")
    assert "is a file, not a folder" in _one_line(capsys, ["evaluate", labels, labels, "--json", tmp_path / "f" / "s.json"])


def test_train_checks_its_model_folder_before_loading_data(tmp_path, read_only, capsys, monkeypatch):
    _no_work(monkeypatch, "organseglib.training.dataset", "load_dataset")
    (tmp_path / "f").write_text("")
    assert "is a file" in _one_line(capsys, ["train", "--data", "phantoms:1", "--out", tmp_path / "f" / "model",
                                             "--progress", "none"])
    assert "not writable" in _one_line(capsys, ["train", "--data", "phantoms:1", "--out", read_only / "model",
                                                "--progress", "none"])


def test_demo_output_folder_that_is_a_file(tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch, "organseglib.commands.demo", "make_phantom")
    (tmp_path / "f").write_text("")
    assert "is a file, not a folder" in _one_line(capsys, ["demo", "--out", tmp_path / "f", "--progress", "none"])


# --- modes follow the umask ----------------------------------------------------------------------
@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_the_umask_mode_not_0600(tmp_path, tiny_abdomen, umask):
    import torch

    from organseglib.model_package import ModelCard, save_model_package
    from organseglib.network import build_network
    from organseglib.training.checkpoint import TrainingState, save_checkpoint

    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    outputs = [write_labels(tiny_abdomen.labels, tmp_path / "l.nii.gz"),
               write_labels(tiny_abdomen.labels, tmp_path / "l.seg.nrrd")]
    write_text_atomic(tmp_path / "report.json", "{}")
    outputs.append(tmp_path / "report.json")
    net = build_network(width=0.0625)
    package = save_model_package(tmp_path / "pkg", net, ModelCard(name="m", width=0.0625, training_data="test"))
    outputs += [package / "model.safetensors", package / "card.json"]
    outputs.append(save_checkpoint(tmp_path / "c.safetensors", net, torch.optim.Adam(net.parameters()),
                                   TrainingState(), {}))
    assert {p.name: oct(_mode(p)) for p in outputs} == {p.name: oct(file_mode) for p in outputs}
    assert _mode(package) == dir_mode


def test_a_replaced_file_keeps_its_mode(tmp_path, tiny_abdomen):
    target = tmp_path / "l.nii.gz"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_labels(tiny_abdomen.labels, target)
    assert _mode(target) == 0o640


# --- leftovers of a killed writer ----------------------------------------------------------------
def test_a_kill_during_writing_leaves_a_part_file_the_next_write_removes(tmp_path, tiny_abdomen):
    target = tmp_path / "labels.nii.gz"
    code = ("import os, signal, sys\n"
            "from organseglib.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], env=os.environ.copy())
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if ".part" in p.name]
    assert len(left) == 1 and not target.exists()  # what SIGKILL leaves: no cleanup can run
    live = tmp_path / f".other.nii.gz.{os.getppid()}.abcdefgh.part.nii.gz"  # a live writer's: kept
    live.write_bytes(b"busy")
    (tmp_path / "notes.part").write_text("not ours")
    write_labels(tiny_abdomen.labels, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "labels.nii.gz", "notes.part"])


def test_stale_package_folders_are_removed_too(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".pkg.{pid}.k2j4_x9a.part"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path) == [stale] and not stale.exists()


def test_failed_write_leaves_nothing_and_unwritable_target_is_named(tmp_path):
    with pytest.raises(OutputPathError, match="is a folder"):
        with atomic_path(tmp_path):
            pass
    assert list(tmp_path.iterdir()) == []


# --- results with warnings: exit 3, warnings in the done record ---------------------------------------
def test_autolabel_with_nothing_to_find_exits_3_with_warnings(tmp_path, capsys):
    # a water cylinder in air: a body, but no bone (nothing ≥ the bone threshold)
    k, j, i = np.mgrid[:40, :60, :60]
    array = np.where((j - 30) ** 2 + (i - 30) ** 2 < 20 ** 2, 40.0, -1000.0).astype(np.float32)
    ct = write_volume(Volume(array, np.diag([3.0, 3.0, 3.0, 1.0])), tmp_path / "water.nii.gz")
    out = tmp_path / "auto.nii.gz"
    rc = main(["autolabel", str(ct), "-o", str(out), "--organs", "bone", "--progress", "json"])
    captured = capsys.readouterr()
    done = json.loads(captured.out.strip().splitlines()[-1])
    assert rc == EXIT_WARNINGS and out.exists()
    assert done["status"] == "done" and len(done["warnings"]) == 1 and done["warnings"][0].startswith("bone: no bone")
    assert "organseg autolabel: warning: bone: no bone found" in captured.err


# --- resuming with another width ---------------------------------------------------------------------
def _train_args(out, width):
    return ["train", "--data", "phantoms:1", "--spacing", "6", "--crop", "16", "32", "32", "--width", width,
            "--batch-size", "1", "--iterations", "3", "--stop-after", "1", "--checkpoint-every", "1",
            "--val-fraction", "0", "--augment", "never", "--threads", "1", "--progress", "none", "--out", out]


def test_resuming_with_another_width_is_one_line(tmp_path, capsys):
    out = tmp_path / "model"
    assert main([str(a) for a in _train_args(out, "0.0625")]) == 0
    capsys.readouterr()
    line = _one_line(capsys, _train_args(out, "0.125"))
    assert "different settings (width)" in line and "--restart" in line


def test_checkpoint_of_another_network_is_refused_without_a_traceback(tmp_path):
    import torch

    from organseglib.network import build_network
    from organseglib.training.checkpoint import TrainingState, load_checkpoint, save_checkpoint

    small = build_network(width=0.0625)
    path = save_checkpoint(tmp_path / "c.safetensors", small, torch.optim.Adam(small.parameters()), TrainingState(), {})
    with pytest.raises(InputError, match="holds another network .*tensors of another shape"):
        load_checkpoint(path, build_network(width=0.125))


# --- issue 19: no output may touch an input (atomic.check_outputs, every command) --------------------------
def _world(root: Path, phantom) -> dict:
    """Every kind of input a command reads, under root/in: a CT, labels, a mask folder, a mapping file, a
    training set (one case, its manifest and lock), a folder of predictions and a model package."""
    from organseglib.model_package import ModelCard, save_model_package
    from organseglib.network import build_network
    from organseglib.training_set import export_training_case

    i = root / "in"
    (i / "masks").mkdir(parents=True)
    (i / "preds").mkdir()
    ct = phantom.ct.with_array(np.round(phantom.ct.array).astype(np.int16))
    write_volume(ct, i / "ct.nii.gz")
    write_labels(phantom.labels, i / "labels.nii.gz")
    write_labels(phantom.labels, i / "preds" / "labels-0.nii.gz")
    write_volume(phantom.labels.with_array((phantom.labels.array == 1).astype(np.uint8)), i / "masks" / "liver.nii.gz")
    (i / "map.json").write_text('{"leber": "liver"}')
    export_training_case(ct, phantom.labels, i / "set", source="phantom")
    save_model_package(i / "pkg", build_network(width=0.0625), ModelCard(name="pkg", width=0.0625))
    (root / "out").mkdir()
    return {"ct": i / "ct.nii.gz", "labels": i / "labels.nii.gz", "masks": i / "masks", "map": i / "map.json",
            "set": i / "set", "preds": i / "preds", "pkg": i / "pkg", "out": root / "out", "in": i}


# Each call: (its argv with {name} placeholders for world paths and the outputs, the inputs it reads, its output
# options as {placeholder: (option, kind)}: kind "file" (with the extension a safe default gets) or "folder").
_SET_FILES = ["set/manifest.json", "set/volume-0.nii.gz", "set/labels-0.nii.gz", "set/.organseg-training-set.lock"]
_PKG_FILES = ["pkg/card.json", "pkg/model.safetensors"]
CALLS = {
    "segment": ("segment {ct} -o {o} --model {pkg} --report {report} --progress none",
                ["ct.nii.gz", "pkg", *_PKG_FILES], {"o": ".nii.gz", "report": ".json"}),
    "autolabel": ("autolabel {ct} -o {o} --ignore {labels} --report {report} --progress none",
                  ["ct.nii.gz", "labels.nii.gz"], {"o": ".nii.gz", "report": ".json"}),
    "evaluate": ("evaluate {labels} {ct} --csv {csv} --json {json}", ["labels.nii.gz", "ct.nii.gz"],
                 {"csv": ".csv", "json": ".json"}),
    "evaluate-set": ("evaluate --set {set} --pred-dir {preds} --csv {csv} --json {json}",
                     ["set", *_SET_FILES[:3], "preds", "preds/labels-0.nii.gz"], {"csv": ".csv", "json": ".json"}),
    "evaluate-model": ("evaluate --set {set} --model {pkg} --save-pred {save} --csv {csv}",
                       ["set", *_SET_FILES[:3], "pkg", *_PKG_FILES], {"save": "folder", "csv": ".csv"}),
    "import-labels": ("import-labels {masks} --ct {ct} --mapping {map} -o {set} --report {report}",
                      ["masks", "masks/liver.nii.gz", "ct.nii.gz", "map.json", *_SET_FILES, "set/volume-1.nii.gz"],
                      {"report": ".json"}),
    "import-labels-o": ("import-labels {masks} --ct {ct} --mapping {map} -o {o}",
                        ["masks", "masks/liver.nii.gz", "ct.nii.gz", "map.json"], {"o": "folder"}),
    "train": ("train --data {set} --init {pkg} --out {pkg_out} --cache {cache} --overwrite --progress none",
              ["set", *_SET_FILES[:3], "pkg", *_PKG_FILES, "."], {"pkg_out": "folder", "cache": "folder"}),
    "demo": ("demo --input {ct} --reference {labels} --model {pkg} --out {demo} --progress none",
             ["ct.nii.gz", "labels.nii.gz", "pkg", *_PKG_FILES, "."], {"demo": "folder"}),
}
_FOLDERS = {"masks", "set", "preds", "pkg", "."}


def _cases():
    for call, (_, inputs, outputs) in CALLS.items():
        for placeholder, kind in outputs.items():
            targets = []
            for name in inputs:
                if name == "." and placeholder not in ("pkg_out", "demo"):  # a folder holding the inputs: refused
                    continue  # only where the output folder is the command's alone (or would write over an input)
                targets.append(name)  # the input itself
                if name in _FOLDERS and name != ".":  # and a new file or folder inside an input folder
                    targets.append(f"{name}/new" + ("" if kind == "folder" else kind))
            for target in targets:
                yield pytest.param(call, placeholder, target, id=f"{call}:{placeholder}={target}")


@pytest.mark.parametrize("call, placeholder, target", list(_cases()))
def test_every_output_option_is_refused_on_every_input_before_any_work(tmp_path, tiny_abdomen, capsys, monkeypatch,
                                                                       call, placeholder, target):
    """Issue 19: every output option of every command, pointed at each input path of the same call (and at a new
    file inside each input folder: a model package, a mask folder, a training set, predictions), is refused with
    one line before any image or model is read, and nothing is created or changed."""
    from organseglib.atomic import double_suffix

    world = _world(tmp_path, tiny_abdomen)
    template, _, outputs = CALLS[call]
    values = {k: str(v) for k, v in world.items()}
    for other, kind in outputs.items():  # the other outputs: harmless paths in an empty folder
        values[other] = str(world["out"] / (other + ("" if kind == "folder" else kind)))
    values[placeholder] = str(world["in"] / target)
    for module, name in (("organseglib.io", "read_volume"), ("organseglib.training.dataset", "load_dataset"),
                         ("organseglib.model_package", "load_model_package"),
                         ("organseglib.commands.demo", "make_phantom")):
        _no_work(monkeypatch, module, name)
    before = {str(p): (p.read_bytes() if p.is_file() else None) for p in sorted(tmp_path.rglob("*"))}
    rc = main(template.format(**values).split())
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    after = {str(p): (p.read_bytes() if p.is_file() else None) for p in sorted(tmp_path.rglob("*"))}
    assert after == before, "an input changed or an output was created"
    if double_suffix(target) == (outputs[placeholder] if outputs[placeholder] != "folder" else "") \
            or outputs[placeholder] == "folder":  # not a refusal for the wrong file type: the guard's reason
        assert any(s in err[0] for s in ("input", "training set uses", "holds the input")), err[0]


def test_a_second_train_into_one_checkpoint_folder_is_refused(tmp_path, capsys, monkeypatch):
    from organseglib.locks import TRAINING_LOCK, exclusive_lock

    work = tmp_path / "model.training"
    work.mkdir()
    _no_work(monkeypatch, "organseglib.training.dataset", "load_dataset")
    with exclusive_lock(work / TRAINING_LOCK, "a running train"):  # what a first `organseg train` holds
        line = _one_line(capsys, ["train", "--data", "phantoms:1", "--out", tmp_path / "model", "--progress", "none"])
    assert "in use by another organseg train" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.training"]


def test_refused_import_leaves_no_output_folder(tmp_path, files, capsys):
    """A refusal found in the masks (here: one off the CT's grid) leaves no empty -o folder behind."""
    ct, labels = files
    masks = tmp_path / "masks"
    masks.mkdir()
    liver = read_labels_as_liver(labels)
    write_volume(Volume(liver.array[1:], liver.ijk_to_ras), masks / "liver.nii.gz")
    line = _one_line(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "new" / "set"])
    assert "not on the CT's grid" in line and not (tmp_path / "new").exists()


def read_labels_as_liver(path):
    from organseglib.io import read_labels

    labels = read_labels(path)
    return labels.with_array((labels.array == 1).astype(np.uint8))


@pytest.mark.parametrize("name", ["labels-0.nii.gz", "volume-1.nii.gz", ".organseg-training-set.lock",
                                  "manifest.json"])
def test_import_report_may_not_take_a_file_of_the_set(tmp_path, files, capsys, monkeypatch, name):
    from organseglib.training_set import export_training_case

    ct, labels = files
    from organseglib.io import read_labels, read_volume

    export_training_case(read_volume(ct), read_labels(labels), tmp_path / "set", source="phantom")
    masks = tmp_path / "masks"
    masks.mkdir()
    write_labels(read_labels_as_liver(labels), masks / "liver.nii.gz")
    before = {p.name: p.read_bytes() for p in (tmp_path / "set").iterdir()}
    _no_work(monkeypatch, "organseglib.io", "read_volume")
    line = _one_line(capsys, ["import-labels", masks, "--ct", ct, "-o", tmp_path / "set",
                              "--report", tmp_path / "set" / name])
    assert "--report" in line
    assert {p.name: p.read_bytes() for p in (tmp_path / "set").iterdir()} == before


@pytest.mark.parametrize("how", ["symlink", "dotdot", "hardlink"])
def test_an_output_reaching_an_input_by_a_link_or_dotdot_is_refused(tmp_path, files, capsys, monkeypatch, how):
    ct, _ = files
    if how == "symlink":
        out = tmp_path / "link.nii.gz"
        out.symlink_to(ct)
    elif how == "dotdot":
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / ct.name
    else:
        out = tmp_path / "hard.nii.gz"
        os.link(ct, out)
    data = ct.read_bytes()
    _no_work(monkeypatch, "organseglib.commands.autolabel", "read_ct")
    line = _one_line(capsys, ["autolabel", ct, "-o", out, "--progress", "none"])
    assert ("hard link" if how == "hardlink" else "is also an input") in line
    assert ct.read_bytes() == data


def test_a_failed_train_leaves_no_checkpoint_folder(tmp_path, tiny_abdomen, capsys):
    """A refusal found once the data is loaded (every label map empty) leaves no empty MODEL.training."""
    from organseglib.training_set import export_training_case

    empty = tiny_abdomen.labels.with_array(np.zeros_like(tiny_abdomen.labels.array))
    export_training_case(tiny_abdomen.ct, empty, tmp_path / "set", source="empty labels")
    line = _one_line(capsys, [str(a) for a in _train_args(tmp_path / "model", "0.0625")[:1]]
                     + ["--data", tmp_path / "set"] + _train_args(tmp_path / "model", "0.0625")[3:]
                     + ["--cache", tmp_path / "cache"])
    assert "all background" in line
    assert not (tmp_path / "model.training").exists() and not (tmp_path / "model").exists()


def test_import_killed_between_ct_and_labels_leaves_no_orphan(tmp_path, files):
    """SIGKILL after the CT is copied into the set, before its labels: the next import removes the CT it
    left (its journal names it) and the set holds one complete case."""
    ct, labels = files
    masks = tmp_path / "masks"
    masks.mkdir()
    write_labels(read_labels_as_liver(labels), masks / "liver.nii.gz")
    code = ("import os, signal, sys\n"
            "import organseglib.io\n"
            "organseglib.io.write_labels = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from organseglib.cli import main\n"
            "main(sys.argv[1:])\n")
    argv = ["import-labels", str(masks), "--ct", str(ct), "-o", str(tmp_path / "set")]
    assert subprocess.run([sys.executable, "-c", code, *argv]).returncode == -signal.SIGKILL
    assert (tmp_path / "set" / "volume-0.nii.gz").exists()  # the orphan a kill leaves
    assert main(argv) == 0
    names = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert names == [".organseg-training-set.lock", "labels-0.nii.gz", "manifest.json", "volume-0.nii.gz"]


def test_evaluate_json_naming_a_folder_suggests_a_scores_file(tmp_path, files, capsys):
    _, labels = files
    line = _one_line(capsys, ["evaluate", labels, labels, "--json", tmp_path])
    assert repr(str(tmp_path / "scores.json")) in line
