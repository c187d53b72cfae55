"""OrganSeg's self-test, run inside 3D Slicer (Reload and Test, or ``ctest`` on a build).

**Needs the Slicer application and network access**: it downloads the "CTChest" sample with
SampleData. It cannot run on the headless ``slicer-core`` wheel; the pytest suites in
``Testing/slicer`` cover the same Logic on real MRML without the application.

The module file defines ``OrganSegTest(OrganSegSelfTest)`` with its Logic class as ``logicClass``
(Slicer's test runner looks for ``<Module>Test`` there), so this file never imports the module.
"""

import os
import tempfile

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class OrganSegSelfTest(ScriptedLoadableModuleTest):
    """Each workflow on SampleData "CTChest" (downloaded: needs network).

    ``logicClass``: the module's Logic class (set by the subclass in OrganSeg.py).
    """

    logicClass = None

    def runTest(self):
        self.setUp()
        self.test_autolabel_keeps_other_segments()
        self.setUp()
        self.test_save_to_training_set_round_trip()
        self.setUp()
        self.test_segment_five_organs()

    def _logicAndCT(self):
        import SampleData

        self.assertIsNotNone(self.logicClass, "OrganSegSelfTest needs logicClass (see OrganSeg.OrganSegTest)")
        self.delayDisplay("Downloading CTChest (needs network)")
        ctNode = SampleData.downloadSample("CTChest")
        self.assertIsNotNone(ctNode, "SampleData could not download CTChest (no network?)")
        return self.logicClass(), ctNode

    def test_autolabel_keeps_other_segments(self):
        """Auto-label lungs twice; a hand-made segment stays identical, Lungs is non-empty."""
        logic, ct = self._logicAndCT()
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CTChest segmentation")
        seg.SetReferenceImageGeometryParameterFromVolumeNode(ct)
        otherId = seg.GetSegmentation().AddEmptySegment("mine", "Mine", [1.0, 0.0, 0.0])
        mask = np.zeros(slicer.util.arrayFromVolume(ct).shape, np.uint8)
        mask[10:20, 100:140, 100:140] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask, seg, otherId, ct)
        self.delayDisplay("Auto-labelling lungs")
        logic.autolabel(ct, ["lungs"], seg)
        logic.autolabel(ct, ["lungs"], seg)
        mine = slicer.util.arrayFromSegmentBinaryLabelmap(seg, otherId, ct)
        self.assertTrue(np.array_equal(mine > 0, mask > 0))
        lungsId = seg.GetSegmentation().GetSegmentIdBySegmentName("Lungs")
        lungs = slicer.util.arrayFromSegmentBinaryLabelmap(seg, lungsId, ct)
        self.assertGreater(int(lungs.sum()), 100000, "CTChest lungs should be well over 100k voxels")
        self.delayDisplay("Auto-label test passed")

    def test_save_to_training_set_round_trip(self):
        """Saved labels are exact CT-ORG values on the CT's grid; a second save is a new case."""
        from organseglib.io import read_labels, read_volume

        logic, ct = self._logicAndCT()
        seg = logic.autolabel(ct, ["lungs", "bone"])
        folder = tempfile.mkdtemp(prefix="organseg-selftest-")
        case = logic.save_to_training_set(ct, seg, folder, corrected_organs=["lungs"])
        labels = read_labels(os.path.join(folder, case.labels))
        volume = read_volume(os.path.join(folder, case.volume))
        self.assertTrue(labels.same_grid(volume))
        self.assertEqual(set(np.unique(labels.array)) - {0, 3, 5}, set())
        second = logic.save_to_training_set(ct, seg, folder)
        self.assertEqual(second.id, case.id + 1)
        self.delayDisplay("Training-set export test passed")

    def test_segment_five_organs(self):
        """One-click segmentation in a child process gives the five named segments."""
        from organseglib.organs import organ_table

        logic, ct = self._logicAndCT()
        logic.ensureDependencies(needTorch=True)
        job = logic.start_segment(ct)
        seg = job.wait(timeout=1800)
        names = {seg.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(seg.GetSegmentation().GetNumberOfSegments())}
        self.assertEqual(names, {organ.name for organ in organ_table()})
        self.assertEqual(seg.GetName(), "CTChest segmentation")
        self.delayDisplay("Segment test passed")
