"""The Widget's job handling with stand-in Qt widgets (real MRML from slicer-core, fake GUI).

Not a GUI test (that needs Slicer: see OrganSegTest); it checks the Widget's own logic: Apply turns
into Cancel while a child process runs, the QTimer poll fills the progress bar and the segmentation,
Cancel kills the child, and a failure shows the child's message.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slicer

REPO = Path(__file__).resolve().parents[2]


class FakeWidget:
    """Enough of a Qt widget for the Widget code: properties, signals, combo and text methods."""

    def __init__(self, name, cls):
        self.name, self.cls = name, cls
        self.text, self.enabled, self.value, self.checked = "", True, 0, False
        self.currentText, self.items, self.index, self.slots, self.lines = "Auto", [], -1, {}, []
        self._layout = types.SimpleNamespace(addWidget=lambda w: None)

    def connect(self, signal, slot):
        self.slots[signal] = slot

    def click(self):
        self.slots["clicked(bool)"]()

    # QComboBox
    count = property(lambda self: len(self.items))
    currentData = property(lambda self: self.items[self.index][1] if 0 <= self.index < len(self.items) else None)

    def addItem(self, label, data=None):
        self.items.append((label, data))

    def clear(self):
        self.items, self.index, self.lines = [], -1, []

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)

    def setCurrentIndex(self, index):
        self.index = index if self.items else -1

    # QPlainTextEdit / QFrame
    def appendPlainText(self, line):
        self.lines.append(line)

    def layout(self):
        return self._layout


class FakeTimer:
    def __init__(self):
        self.active, self.slot = False, None

    def setInterval(self, ms):
        self.interval = ms

    def connect(self, signal, slot):
        self.slot = slot

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class FakeParameterNode(types.SimpleNamespace):
    __hash__ = object.__hash__  # observed by VTKObservationMixin like the real wrapper
    def AddObserver(self, event, callback, priority=0.0):
        return 1

    def RemoveObserver(self, tag):
        pass

    def connectGui(self, ui):
        return "tag"

    def disconnectGui(self, tag):
        pass


@pytest.fixture
def widget_module(scene, slicer_core, monkeypatch, tmp_path):
    """Import OrganSeg.py against fake qt / ScriptedLoadableModule / parameterNodeWrapper."""
    slicer = slicer_core
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")

    class Base:
        def __init__(self, parent=None):
            super().__init__()  # as Slicer's ScriptedLoadableModuleLogic does (cooperative MRO)
            self.parent = parent or types.SimpleNamespace(isEntered=True)
            self.layout = types.SimpleNamespace(addWidget=lambda w: None)

        def setup(self):
            pass

        def getParameterNode(self):
            return None

    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(scripted, name, type(name, (Base,), {}))
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")

    def parameterNodeWrapper(cls):
        defaults = {k: getattr(cls, k, None) for k in cls.__annotations__}
        return lambda node: FakeParameterNode(**defaults)

    wrapper.parameterNodeWrapper = parameterNodeWrapper
    errors = []
    ui_root = ET.parse(REPO / "Resources" / "UI" / "OrganSeg.ui").getroot()
    ui = types.SimpleNamespace(**{w.get("name"): FakeWidget(w.get("name"), w.get("class")) for w in ui_root.iter("widget")})
    ui.OrganSeg.setMRMLScene = lambda s: None

    @contextlib.contextmanager
    def tryWithErrorDisplay(message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as exc:
            errors.append(f"{message} {exc}")

    monkeypatch.setitem(sys.modules, "qt", types.SimpleNamespace(QTimer=FakeTimer))
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", scripted)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: ui.OrganSeg)
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda w: ui)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", tryWithErrorDisplay)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: errors.append(text))
    monkeypatch.setenv("ORGANSEG_HOME", str(tmp_path / "home"))
    from OrganSegCommon import model_registry

    monkeypatch.setattr(model_registry, "_installed_packages", lambda: [("demo model", "/models/demo")])
    sys.modules.pop("OrganSeg", None)
    module = importlib.import_module("OrganSeg")
    monkeypatch.setattr(module.OrganSegLogic, "ensureDependencies", lambda self, needTorch=False: None)
    widgets = []
    yield module, ui, errors, widgets
    for widget in widgets:
        widget.cleanup()
    sys.modules.pop("OrganSeg", None)


@pytest.fixture
def fake_child(tmp_path, monkeypatch):
    from test_workflows import FAKE_ORGANSEG

    from OrganSegCommon import jobs

    script = tmp_path / "fake_organseg.py"
    script.write_text(FAKE_ORGANSEG, encoding="utf-8")
    monkeypatch.setattr(jobs, "python_command", lambda *a, **k: [sys.executable, str(script)])


def _setup(widget_module, scene, tiny_chest):
    from OrganSegCommon.mrml_bridge import node_from_volume

    module, ui, errors, widgets = widget_module
    widget = module.OrganSegWidget()
    widget.setup()
    widgets.append(widget)
    widget._parameterNode.inputVolume = node_from_volume(tiny_chest.ct, scene, "Chest")
    widget.updateButtons()
    return widget, ui, errors


def _poll_until_idle(widget, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while widget.job is not None and time.monotonic() < deadline:
        widget.timer.slot()
        time.sleep(0.05)
    assert widget.job is None, "job did not finish"


def test_autolabel_button_becomes_cancel_then_fills_segmentation(widget_module, scene, tiny_chest, fake_child):
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    assert ui.autolabelButton.enabled and ui.autolabelButton.text == ""
    ui.autolabelButton.text = "Auto-label"
    ui.autolabelButton.click()
    assert ui.autolabelButton.text == "Cancel" and widget.timer.active
    assert not ui.segmentButton.enabled and ui.autolabelButton.enabled  # one job at a time
    _poll_until_idle(widget)
    assert errors == []
    assert ui.autolabelButton.text == "Auto-label" and not widget.timer.active
    assert ui.progressBar.value == 100 and ui.statusLabel.text == "Auto-label: done."
    seg = widget._parameterNode.segmentation
    names = [seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())]
    assert names == ["Lungs", "Bone"]


def test_logic_composes_the_workflows_instead_of_inheriting_them(widget_module, scene):
    module = widget_module[0]
    from OrganSegCommon.workflows import WorkflowLogic

    logic = module.OrganSegLogic()
    assert isinstance(logic.workflows, WorkflowLogic) and not isinstance(logic, WorkflowLogic)
    assert logic.workflows.scene is scene  # slicer.mrmlScene by default
    assert "hasattr" not in (REPO / "OrganSeg" / "OrganSegCommon" / "workflows.py").read_text()
    assert issubclass(module.OrganSegTest, module.OrganSegSelfTest) and module.OrganSegTest.logicClass is module.OrganSegLogic
    for name in ("segment", "start_segment", "autolabel", "start_autolabel", "save_to_training_set", "retrain",
                 "start_retrain", "available_models", "export_dicom_seg"):  # the console API: every workflow, through the Logic
        assert callable(getattr(logic, name)) and callable(getattr(WorkflowLogic, name)), name


def test_done_record_warnings_are_shown(widget_module, scene, tiny_chest, fake_child, monkeypatch):
    monkeypatch.setenv("FAKE_WARN", "lungs: only one lung found|bone: small skeleton")
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    ui.autolabelButton.click()
    _poll_until_idle(widget)
    assert errors == []
    assert ui.statusLabel.text == ("Auto-label: done.\nWarning: lungs: only one lung found"
                                   "\nWarning: bone: small skeleton")


def test_cancel_stops_the_child(widget_module, scene, tiny_chest, fake_child, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "1")
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    ui.segmentButton.text = "Segment organs"
    assert ui.segmentButton.enabled and ui.modelComboBox.currentData == "/models/demo"
    ui.segmentButton.click()
    runner = widget.job.runner
    assert runner.args[-6:] == ["--device", "auto", "--model", "/models/demo", "--progress", "json"]
    ui.segmentButton.click()  # the same button is now Cancel
    assert widget.job is None and runner.process.poll() is not None
    assert ui.segmentButton.text == "Segment organs" and ui.statusLabel.text == "Segment organs: cancelled."
    assert widget._parameterNode.segmentation is None and errors == []


def test_failure_shows_the_child_message(widget_module, scene, tiny_chest, fake_child, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "ct.mha: voxel spacing (0, 0, 0) mm is not positive; fix the header")
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    ui.segmentButton.click()
    _poll_until_idle(widget)
    assert errors == ["ct.mha: voxel spacing (0, 0, 0) mm is not positive; fix the header"]
    assert ui.statusLabel.text == "Segment organs failed."


def test_retrain_shows_validation_dice_and_registers_the_model(widget_module, scene, tiny_chest, fake_child, tmp_path):
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    (tmp_path / "dataset").mkdir()
    widget._parameterNode.datasetFolder = tmp_path / "dataset"
    widget._parameterNode.retrainMinutes = 3
    widget.updateButtons()
    ui.retrainButton.text = "Retrain"
    ui.retrainButton.click()
    args = widget.job.runner.args
    assert ui.retrainButton.text == "Stop" and args[args.index("--init") + 1] == "/models/demo"
    assert args[args.index("--time-budget") + 1] == "3m" and "--iterations" not in args
    _poll_until_idle(widget)
    assert errors == [] and ui.retrainButton.text == "Retrain"
    assert "iteration 2/3, loss 0.5000 (validation Dice 0.800 (lungs 0.900, liver 0.700))" in ui.retrainLog.lines
    out = widget.logic.last_retrain.output
    assert out.startswith(str(tmp_path / "home" / "models" / "retrained-"))
    assert ui.statusLabel.text == f"Retrain: done; new model registered: {out}"
    assert ui.modelComboBox.findData(str(Path(out).resolve())) >= 0  # offered for the next Segment


def test_retraining_that_ends_early_registers_nothing(widget_module, scene, tiny_chest, fake_child, tmp_path,
                                                     monkeypatch):
    monkeypatch.setenv("FAKE_EARLY", "1")
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    (tmp_path / "dataset").mkdir()
    widget._parameterNode.datasetFolder = tmp_path / "dataset"
    widget.updateButtons()
    ui.retrainButton.click()
    args = widget.job.runner.args
    assert args[args.index("--time-budget") + 1] == "auto"  # the default: 30 min on the CPU, 10 on a GPU
    _poll_until_idle(widget)
    out = widget.logic.last_retrain.output
    assert errors == [] and ui.statusLabel.text == (f"Retrain: ended before its last iteration; no model registered "
                                                    f"(checkpoint kept in {out}.training).")
    assert [d for _, d in ui.modelComboBox.items] == ["/models/demo"]
    monkeypatch.delenv("FAKE_EARLY")
    ui.retrainButton.click()  # Retrain again: the same output, so the trainer resumes from the checkpoint
    args = widget.job.runner.args
    assert args[args.index("--out") + 1] == out
    _poll_until_idle(widget)
    assert ui.statusLabel.text == f"Retrain: done; new model registered: {out}"


def test_stop_ends_retraining_without_registering(widget_module, scene, tiny_chest, fake_child, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "1")
    widget, ui, errors = _setup(widget_module, scene, tiny_chest)
    (tmp_path / "dataset").mkdir()
    widget._parameterNode.datasetFolder = tmp_path / "dataset"
    widget.updateButtons()
    ui.retrainButton.text = "Retrain"
    ui.retrainButton.click()
    runner = widget.job.runner
    ui.retrainButton.click()  # Stop
    assert widget.job is None and runner.process.poll() is not None and ui.retrainButton.text == "Retrain"
    assert ui.statusLabel.text == (f"Retrain: stopped; no model registered (checkpoint kept in "
                                   f"{widget.logic.last_retrain.output}.training; Retrain with the same training set and "
                                   "model continues it).")
    assert [d for _, d in ui.modelComboBox.items] == ["/models/demo"] and errors == []
    # Retrain again with the same training set and model: the same output, so the checkpoint resumes
    stopped_out = widget.logic.last_retrain.output
    ui.retrainButton.click()
    args = widget.job.runner.args
    assert args[args.index("--out") + 1] == str(stopped_out)
    ui.retrainButton.click()  # Stop again
    # another training set starts a new run
    (tmp_path / "other").mkdir()
    widget._parameterNode.datasetFolder = tmp_path / "other"
    ui.retrainButton.click()
    args = widget.job.runner.args
    assert args[args.index("--out") + 1] != str(stopped_out)
    ui.retrainButton.click()
