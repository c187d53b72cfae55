"""OrganSeg: CT organ segmentation in 3D Slicer (lungs, liver, bone, kidneys, bladder).

Module / Widget / Logic / Test as in Slicer's scripted-module template. The Widget only reads the
GUI and calls the Logic; the Logic (``OrganSegLogic``, usable from the Python console) converts
MRML nodes and calls ``organseglib``; long work runs in a child process polled by a QTimer.
"""

import os
import pathlib

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleWidget)
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.util import VTKObservationMixin

from OrganSegCommon import resource_path
from OrganSegCommon.dependencies import ensure_python_packages, ensure_torch
from OrganSegCommon.jobs import budget_text, describe_record
from OrganSegCommon.selftest import OrganSegSelfTest
from OrganSegCommon.workflows import WorkflowLogic
from organseglib.devices import parse_device
from organseglib.organs import organ_table

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))


class OrganSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "OrganSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["OrganSeg contributors"]
        self.parent.helpText = (
            "Segment lungs, liver, bone, kidneys and bladder in CT with a 3D fully-convolutional network; "
            "auto-label lungs and bone by morphology; correct in the Segment Editor; save corrected cases "
            "to a training set and retrain. Every button is also an OrganSegLogic method for the Python console.")
        self.parent.acknowledgementText = (
            "After Rister et al., 'CT organ segmentation using GPU data augmentation, unsupervised labels "
            "and IOU loss'. Label values follow the CT-ORG dataset.")


@parameterNodeWrapper
class OrganSegParameterNode:
    """GUI state. Widgets bind through their ``SlicerParameterName`` property in OrganSeg.ui."""

    inputVolume: slicer.vtkMRMLScalarVolumeNode
    segmentation: slicer.vtkMRMLSegmentationNode
    autolabelLungs: bool = True
    autolabelBone: bool = True
    correctedLungs: bool = False
    correctedLiver: bool = False
    correctedBone: bool = False
    correctedKidneys: bool = False
    correctedBladder: bool = False
    datasetFolder: pathlib.Path
    retrainMinutes: int = 0  # Retrain's time budget; 0: 30 min on the CPU, 10 on a GPU


class OrganSegLogic(ScriptedLoadableModuleLogic):
    """Console API (all methods work without the GUI)::

        logic = OrganSeg.OrganSegLogic()
        seg = logic.segment(ctNode)                        # five organs, blocks
        logic.autolabel(ctNode, ["lungs"], seg)            # only the Lungs segment changes
        case = logic.save_to_training_set(ctNode, seg, "/data/organs", corrected_organs=["lungs"])
        job = logic.retrain("/data/organs", init_model=path); job.wait()   # new model (30 min on a CPU), registered
        job.cancel(); job = logic.retrain("/data/organs", init_model=path) # a stopped run continues
        logic.export_dicom_seg(ctNode, seg, "/dicom/CT_series", "/out/organs.dcm")  # DICOM SEG for PACS

    The workflows themselves are ``OrganSegCommon.workflows.WorkflowLogic`` (``self.workflows``),
    which works on any MRML scene without Slicer's application.
    """

    def __init__(self, scene=None, registry=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.workflows = WorkflowLogic(scene if scene is not None else slicer.mrmlScene, registry=registry)

    def getParameterNode(self):
        return OrganSegParameterNode(super().getParameterNode())

    # --- the workflows (see WorkflowLogic for the arguments) -------------------------------------------
    def segment(self, ct_node, segmentation_node=None, **kwargs):
        return self.workflows.segment(ct_node, segmentation_node, **kwargs)

    def start_segment(self, ct_node, segmentation_node=None, **kwargs):
        return self.workflows.start_segment(ct_node, segmentation_node, **kwargs)

    def autolabel(self, ct_node, organs=None, segmentation_node=None, **kwargs):
        return self.workflows.autolabel(ct_node, organs, segmentation_node, **kwargs)

    def start_autolabel(self, ct_node, organs=None, segmentation_node=None, **kwargs):
        return self.workflows.start_autolabel(ct_node, organs, segmentation_node, **kwargs)

    def save_to_training_set(self, ct_node, segmentation_node, folder, **kwargs):
        return self.workflows.save_to_training_set(ct_node, segmentation_node, folder, **kwargs)

    def retrain(self, data_folder, init_model=None, **kwargs):
        """A new model package from ``init_model`` fine-tuned on ``data_folder``; continues the last
        run on the same folder and model when that was stopped (``WorkflowLogic.retrain``)."""
        return self.workflows.retrain(data_folder, init_model, **kwargs)

    def start_retrain(self, data_folder, out_model, **kwargs):
        return self.workflows.start_retrain(data_folder, out_model, **kwargs)

    @property
    def last_retrain(self):
        return self.workflows.last_retrain

    def available_models(self):
        return self.workflows.available_models()

    def export_dicom_seg(self, ct_node, segmentation_node, source_series_dir, path):
        return self.workflows.export_dicom_seg(ct_node, segmentation_node, source_series_dir, path)

    def ensureDependencies(self, needTorch: bool = False) -> None:
        """Install missing Python packages (one confirmation); torch via the PyTorch extension."""
        ensure_python_packages(slicer, resource_path(MODULE_DIR, "requirements.txt"))
        if needTorch:
            ensure_torch()


class OrganSegTest(OrganSegSelfTest):
    """Slicer's self-test of this module (Reload and Test); the tests are in OrganSegCommon.selftest."""

    logicClass = OrganSegLogic


class OrganSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Four panels (Segment, Auto-label, Correct, Retrain); one background job at a time."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.job = None
        self.jobButton = None
        self.jobButtonText = ""
        self.editor = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(resource_path(MODULE_DIR, "UI/OrganSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = OrganSegLogic()
        self.timer = qt.QTimer()
        self.timer.setInterval(150)
        self.timer.connect("timeout()", self.onPollJob)

        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.autolabelButton.connect("clicked(bool)", self.onAutolabelButton)
        self.ui.editButton.connect("clicked(bool)", self.onEditButton)
        self.ui.saveTrainingButton.connect("clicked(bool)", self.onSaveTrainingButton)
        self.ui.retrainButton.connect("clicked(bool)", self.onRetrainButton)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.refreshModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.cancelJob()
        self.disconnectParameterNode()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.disconnectParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelJob()
        self.disconnectParameterNode()

    def onSceneEndClose(self, caller, event) -> None:
        if self.editor is not None:  # closing the scene removed its segment editor node: give it a new one
            self.editor.setMRMLSegmentEditorNode(slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode"))
        if self.parent.isEntered:
            self.initializeParameterNode()

    # --- parameter node -------------------------------------------------------------------------------
    def initializeParameterNode(self) -> None:
        parameterNode = self.logic.getParameterNode()
        self.disconnectParameterNode()
        self._parameterNode = parameterNode
        self._parameterNodeGuiTag = parameterNode.connectGui(self.ui)
        self.addObserver(parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self.updateButtons()

    def disconnectParameterNode(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = None

    def datasetFolder(self):
        """The training-set folder, or None when the path field is empty."""
        p = self._parameterNode
        folder = str(p.datasetFolder) if p is not None and p.datasetFolder is not None else ""
        return folder if folder not in ("", ".") else None

    def updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        busy = self.job is not None
        hasCT = bool(p and p.inputVolume)
        hasSeg = bool(p and p.segmentation)
        hasFolder = self.datasetFolder() is not None
        for button, ready in ((self.ui.segmentButton, hasCT and self.ui.modelComboBox.count > 0),
                              (self.ui.autolabelButton, hasCT and p and (p.autolabelLungs or p.autolabelBone)),
                              (self.ui.editButton, hasCT and hasSeg and not busy),
                              (self.ui.saveTrainingButton, hasCT and hasSeg and hasFolder and not busy),
                              (self.ui.retrainButton, hasFolder)):
            button.enabled = bool(ready) and (not busy or button is self.jobButton)

    # --- models ----------------------------------------------------------------------------------------
    def refreshModels(self) -> None:
        current = self.ui.modelComboBox.currentData
        self.ui.modelComboBox.clear()
        for label, path in self.logic.available_models():
            self.ui.modelComboBox.addItem(label, path)
        index = self.ui.modelComboBox.findData(current) if current else -1
        self.ui.modelComboBox.setCurrentIndex(max(index, 0))

    def selectedDevice(self) -> str:
        return parse_device(self.ui.deviceComboBox.currentText)  # "Auto", "CPU", "GPU"

    # --- workflows -------------------------------------------------------------------------------------
    def onSegmentButton(self) -> None:
        if self.cancelIfRunning(self.ui.segmentButton):
            return
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            self.logic.ensureDependencies(needTorch=True)
            p = self._parameterNode
            job = self.logic.start_segment(p.inputVolume, p.segmentation, model=self.ui.modelComboBox.currentData,
                                           device=self.selectedDevice())
            self.startJob(job, self.ui.segmentButton)

    def onAutolabelButton(self) -> None:
        if self.cancelIfRunning(self.ui.autolabelButton):
            return
        with slicer.util.tryWithErrorDisplay("Could not start auto-labelling.", waitCursor=True):
            self.logic.ensureDependencies()
            p = self._parameterNode
            organs = [k for k, on in (("lungs", p.autolabelLungs), ("bone", p.autolabelBone)) if on]
            self.startJob(self.logic.start_autolabel(p.inputVolume, organs, p.segmentation), self.ui.autolabelButton)

    def onEditButton(self) -> None:
        """Embed Slicer's Segment Editor, on this segmentation, with the CT as source volume."""
        p = self._parameterNode
        if self.editor is None:
            self.editor = slicer.qMRMLSegmentEditorWidget()
            self.editor.setMRMLScene(slicer.mrmlScene)
            self.editor.setMRMLSegmentEditorNode(slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode"))
            self.ui.segmentEditorFrame.layout().addWidget(self.editor)
        self.editor.setSegmentationNode(p.segmentation)
        self.editor.setSourceVolumeNode(p.inputVolume)

    def onSaveTrainingButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not save to the training set.", waitCursor=True):
            p = self._parameterNode
            corrected = [o.key for o in organ_table() if getattr(p, "corrected" + o.key.capitalize())]
            case = self.logic.save_to_training_set(p.inputVolume, p.segmentation, self.datasetFolder(),
                                                   corrected_organs=corrected)
            self.ui.statusLabel.text = f"Saved case {case.id} ({case.volume}, {case.labels}) to {self.datasetFolder()}"

    def onRetrainButton(self) -> None:
        if self.cancelIfRunning(self.ui.retrainButton):
            return
        with slicer.util.tryWithErrorDisplay("Could not start retraining.", waitCursor=True):
            self.logic.ensureDependencies(needTorch=True)
            p = self._parameterNode
            self.ui.retrainLog.clear()
            job = self.logic.retrain(self.datasetFolder(), init_model=self.ui.modelComboBox.currentData,
                                     device=self.selectedDevice(), time_budget=budget_text(p.retrainMinutes))
            self.startJob(job, self.ui.retrainButton, runningText="Stop")

    # --- background job ---------------------------------------------------------------------------------
    def startJob(self, job, button, runningText: str = "Cancel") -> None:
        self.job, self.jobButton, self.jobButtonText = job, button, button.text
        button.text = runningText
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = f"{job.title}: starting..."
        self.timer.start()
        self.updateButtons()

    def cancelIfRunning(self, button) -> bool:
        """The Apply button of a running job is its Cancel button."""
        if self.job is None:
            return False
        if button is self.jobButton:
            self.cancelJob()
        return True

    def cancelJob(self) -> None:
        if self.job is None:
            return
        self.job.cancel()
        if self.jobButton is self.ui.retrainButton:  # Stop: the trainer's checkpoint folder is kept
            self.endJob(f"{self.job.title}: stopped; no model registered (checkpoint kept in "
                        f"{self.logic.last_retrain.output}.training; Retrain with the same training set and "
                        "model continues it).")
        else:
            self.endJob(f"{self.job.title}: cancelled.")

    def onPollJob(self) -> None:
        job = self.job
        if job is None:
            self.timer.stop()
            return
        for record in job.poll():
            if record.progress is not None:
                self.ui.progressBar.value = int(round(100 * record.progress))
            line = describe_record(record)
            self.ui.statusLabel.text = f"{job.title}: {line}"
            if self.jobButton is self.ui.retrainButton:
                self.ui.retrainLog.appendPlainText(line)
        if not job.finished:
            return
        if job.error:
            self.endJob(f"{job.title} failed.")
            slicer.util.errorDisplay(job.error, windowTitle=f"OrganSeg: {job.title} failed")
            return
        self.ui.progressBar.value = 100
        warnings = "".join(f"\nWarning: {w}" for w in job.warnings)
        if self.jobButton is self.ui.retrainButton and job.output is None:  # stopped before its last iteration
            self.endJob(f"{job.title}: ended before its last iteration; no model registered (checkpoint kept in "
                        f"{self.logic.last_retrain.output}.training).{warnings}")
        elif self.jobButton is self.ui.retrainButton:
            self.refreshModels()
            self.endJob(f"{job.title}: done; new model registered: {job.output}{warnings}")
        else:
            if job.output is not None and self._parameterNode is not None:
                self._parameterNode.segmentation = job.output
            self.endJob(f"{job.title}: done.{warnings}")

    def endJob(self, message: str) -> None:
        self.timer.stop()
        if self.jobButton is not None:
            self.jobButton.text = self.jobButtonText
        self.job, self.jobButton = None, None
        self.ui.statusLabel.text = message
        self.updateButtons()
