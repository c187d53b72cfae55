"""The four workflows on MRML nodes, without Qt: what ``OrganSegLogic`` holds (``logic.workflows``).

``WorkflowLogic(scene)`` works on any MRML scene, inside Slicer (``slicer.mrmlScene``) or headless
on the ``slicer-core`` wheel. Each workflow has an in-process method for the Python console and
scripts (blocks until done) and, for long work, a ``start_*`` method returning a ``Job`` that runs
``python -m organseglib <command> --progress json`` in a child process, which the GUI polls.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from organseglib.organs import organ_table, parse_organ_list
from organseglib.volume import Volume

from . import mrml_bridge as bridge
from .jobs import Job, autolabel_command, make_workdir, segment_command, train_command
from .model_registry import ModelRegistry
from .process_runner import CANCELLED, DONE

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]


def write_ct_for_child(ct: Volume, path: str) -> str:
    """Write the CT uncompressed (fast) for a child process to read."""
    import SimpleITK as sitk

    from organseglib.io import volume_to_sitk

    sitk.WriteImage(volume_to_sitk(ct), str(path), False)
    return str(path)


@dataclass(frozen=True)
class RetrainRun:
    """One retraining started by ``WorkflowLogic.retrain``: what it trains on and where it writes."""

    data_folder: str
    init_model: Optional[str]
    output: str
    job: Job

    def continues(self, data_folder: str, init_model: Optional[str]) -> bool:
        """True when this run ended without error but before writing its model (stopped with
        ``job.cancel()``, or a shorter run) and a retraining of the same training set and model should
        pick up its checkpoint."""
        return ((self.data_folder, self.init_model) == (_folder_key(data_folder), init_model)
                and self.job.state in (CANCELLED, DONE) and not Path(self.output).exists())


def _folder_key(folder: str) -> str:
    return str(Path(folder).expanduser().resolve())


def new_model_folder(folder: Path, prefix: str = "retrained") -> Path:
    """A model folder ``<prefix>-<date>-<time>[-n]`` in ``folder`` that no run has used (neither the
    package nor its ``.training`` checkpoint folder exists); the checkpoint folder is created to
    reserve the name."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out, n = folder / f"{prefix}-{stamp}", 1
    while out.exists() or out.with_name(out.name + ".training").exists():
        n += 1
        out = folder / f"{prefix}-{stamp}-{n}"
    out.with_name(out.name + ".training").mkdir()
    return out


class WorkflowLogic:
    """Segment, auto-label, save corrections and retrain, on the nodes of one MRML scene.

    Args:
        scene: the MRML scene (``slicer.mrmlScene`` in Slicer).
        registry: where retrained model packages are registered (default: the user's registry).
        models_folder: where ``retrain`` puts new model packages (default: ``models`` beside the
            registry file, e.g. ``~/.organseg/models``).
    """

    def __init__(self, scene, registry: Optional[ModelRegistry] = None,
                 models_folder: Optional[os.PathLike] = None) -> None:
        self.scene = scene
        self.registry = registry if registry is not None else ModelRegistry()
        self.models_folder = Path(models_folder) if models_folder is not None else self.registry.path.parent / "models"
        self.last_retrain: Optional[RetrainRun] = None

    # --- nodes ------------------------------------------------------------------------------------
    def segmentation_for(self, ct_node, segmentation_node=None):
        """The given segmentation node, or a new one named after the CT ("<CT> segmentation")."""
        if segmentation_node is not None:
            return segmentation_node
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{ct_node.GetName()} segmentation")
        bridge.set_reference_geometry(node, ct_node)
        return node

    def apply_labels(self, labels: Volume, ct_node, segmentation_node=None,
                     organs: Optional[Iterable] = None, show: bool = True):
        """Put labels into (a new or the given) segmentation node; only ``organs``' segments change."""
        node = self.segmentation_for(ct_node, segmentation_node)
        bridge.labels_to_segmentation(labels, node, ct_node, organs=organs, scene=self.scene)
        if show:
            bridge.show_segmentation(node)
        return node

    # --- 1. segment -------------------------------------------------------------------------------
    def segment(self, ct_node, segmentation_node=None, model: Optional[str] = None, device: str = "auto",
                config=None, progress: Optional[ProgressCallback] = None):
        """Five-organ segmentation in this process (blocks; for the console and scripts).

        Args:
            model: model package folder or name; None for the bundled default model.
            config: an ``organseglib.segment.SegmentConfig`` (which organs, hybrid or network only);
                only the segments of its organs are written.

        Returns the segmentation node (new one named after the CT when none is given).
        """
        from organseglib.segment import segment_ct

        ct = bridge.volume_from_node(ct_node)
        labels = segment_ct(ct, model=model, config=config, device=device, progress=progress)
        organs = getattr(config, "organs", None)
        return self.apply_labels(labels, ct_node, segmentation_node, organs=organs)

    def start_segment(self, ct_node, segmentation_node=None, model: Optional[str] = None,
                      device: str = "auto", python: Optional[Sequence[str]] = None) -> Job:
        """Five-organ segmentation in a child process; ``job.output`` is the segmentation node."""
        return self._start_labelling_job(
            "Segment organs", ct_node, segmentation_node, None,
            lambda ct_path, out_path: segment_command(ct_path, out_path, model=model, device=device, python=python))

    # --- 2. auto-label ----------------------------------------------------------------------------
    def autolabel(self, ct_node, organs: Optional[Iterable[str]] = None, segmentation_node=None,
                  progress: Optional[ProgressCallback] = None):
        """Morphological lungs and/or bone labels (None: both) into a new or existing segmentation,
        in this process; every other segment is left untouched. Returns the segmentation node."""
        from organseglib.autolabel import autolabel

        keys = self._autolabel_keys(organs)
        ct = bridge.volume_from_node(ct_node)
        labels = autolabel(ct, organs=keys, progress=progress)
        return self.apply_labels(labels, ct_node, segmentation_node, organs=keys)

    def start_autolabel(self, ct_node, organs: Optional[Iterable[str]] = None, segmentation_node=None,
                        python: Optional[Sequence[str]] = None) -> Job:
        keys = self._autolabel_keys(organs)
        return self._start_labelling_job(
            "Auto-label", ct_node, segmentation_node, keys,
            lambda ct_path, out_path: autolabel_command(ct_path, out_path, keys, python=python))

    def _start_labelling_job(self, title: str, ct_node, segmentation_node, organs, command) -> Job:
        """Write the CT for a child process, run ``command(ct_path, out_path)`` there, and read its
        labels back into the segmentation (only ``organs``; None: every organ) when it finishes."""
        ct = bridge.volume_from_node(ct_node)
        workdir = make_workdir()
        ct_path = write_ct_for_child(ct, os.path.join(workdir, "ct.mha"))
        out_path = os.path.join(workdir, "labels.nii.gz")

        def finish(result: dict):
            return self._read_back(out_path, ct, ct_node, segmentation_node, organs=organs)

        return Job(title, command(ct_path, out_path), finish, workdir=workdir).start()

    @staticmethod
    def _autolabel_keys(organs: Optional[Iterable[str]]) -> List[str]:
        from organseglib.autolabel import SUPPORTED  # the organs morphology labels (paper, section III)

        keys = [o.key for o in parse_organ_list(list(SUPPORTED if organs is None else organs))]
        bad = [k for k in keys if k not in SUPPORTED]
        if bad:
            raise ValueError(f"auto-labelling works for {', '.join(SUPPORTED)} only; got {bad!r}. "
                             "Use 'Segment organs' for the liver, kidneys and bladder")
        return keys

    def _read_back(self, path: str, ct: Volume, ct_node, segmentation_node, organs):
        from organseglib.io import read_labels

        labels = read_labels(path, reference=ct)
        return self.apply_labels(labels, ct_node, segmentation_node, organs=organs)

    # --- 3. correct -------------------------------------------------------------------------------
    def save_to_training_set(self, ct_node, segmentation_node, folder: str,
                             corrected_organs: Iterable[str] = (), source: Optional[str] = None,
                             case_id: Optional[int] = None, overwrite: bool = False):
        """Export the CT and its organ segments (exact CT-ORG values on the CT's grid) as the next
        case of a training-set folder; returns the manifest entry (``.id`` is the case number).

        Raises:
            OutputExistsError: ``case_id`` exists and ``overwrite`` is False (never silent).
            InputError: the segmentation holds no organ segment.
        """
        from organseglib.errors import InputError
        from organseglib.training_set import export_training_case

        labels, ignored = bridge.segmentation_to_labels(segmentation_node, ct_node, scene=self.scene)
        if not bridge.segment_ids_by_organ(segmentation_node):
            raise InputError(f"segmentation {segmentation_node.GetName()!r} has no organ segment (names or "
                             f"terminology of {', '.join(o.name for o in organ_table())}); nothing to save")
        if ignored:
            log.warning("segments %s match no organ and are not saved", ", ".join(ignored))
        missing = [o.name for o in organ_table() if o.key not in bridge.segment_ids_by_organ(segmentation_node)]
        if missing:  # training reads every voxel without an organ as background
            log.warning("no segment for %s: those organs are saved as background in this case; segment them "
                        "first (Segment organs) if they are in the scan", ", ".join(missing))
        ct = bridge.volume_from_node(ct_node)
        source = source or self.describe_source(ct_node)
        return export_training_case(ct, labels, folder, source=source, corrected_organs=corrected_organs,
                                    case_id=case_id, overwrite=overwrite)

    @staticmethod
    def describe_source(ct_node) -> str:
        """The CT's file name when it was loaded from disk, else its node name."""
        storage = ct_node.GetStorageNode()
        name = storage.GetFileName() if storage is not None else None
        return str(name) if name else f"Slicer node {ct_node.GetName()!r}"

    # --- DICOM SEG -------------------------------------------------------------------------------
    def export_dicom_seg(self, ct_node, segmentation_node, source_series_dir: str, path: str) -> str:
        """Write the organ segments as a DICOM SEG referencing the CT's own DICOM series (for PACS)::

            logic.export_dicom_seg(ctNode, segNode, "/dicom/patient1/CT", "/out/organs.dcm")

        ``source_series_dir`` is the series folder the CT node was loaded from; the segments are
        exported on the CT's grid, which must be that series' grid (else GeometryError).
        """
        from organseglib.dicom_seg import write_dicom_seg
        from organseglib.organs import organ_by_key

        labels, ignored = bridge.segmentation_to_labels(segmentation_node, ct_node, scene=self.scene)
        if ignored:
            log.warning("segments %s match no organ and are not in the DICOM SEG", ", ".join(ignored))
        organs = [organ_by_key(key) for key in bridge.segment_ids_by_organ(segmentation_node)]
        return str(write_dicom_seg(labels, source_series_dir, path, organs=organs))

    # --- 4. retrain -------------------------------------------------------------------------------
    def start_retrain(self, data_folder: str, out_model: str, init_model: Optional[str] = None,
                      device: str = "auto", iterations: Optional[int] = None,
                      python: Optional[Sequence[str]] = None, time_budget: Optional[str] = None) -> Job:
        """Fine-tune ``init_model`` on a training-set folder in a child process; when it finishes
        the new model package is registered and ``job.output`` is its path.

        Args:
            iterations: a fixed number of iterations; or
            time_budget: ``"30m"``, ``"1h"``... or ``"auto"``; the default when neither is given: 30 min on
                the CPU, 10 min on a GPU. The iterations are fitted to it on this machine and the
                progress records carry the time left (``eta_s``) and each validation's Dice; the
                run stops at the budget with a usable model (``organseglib.training.budget``).
                Fine-tuning replays phantoms beside the training set (``organseglib.training.replay``).
        """
        if not iterations and not time_budget:
            time_budget = "auto"
        if not Path(data_folder).is_dir():
            raise FileNotFoundError(f"training-set folder {data_folder!r} does not exist; save corrected cases first")
        if Path(out_model).exists():
            raise FileExistsError(f"model output {out_model!r} exists; pick a new name (models are never overwritten)")

        def finish(result: dict) -> Optional[str]:
            path = result.get("output") or out_model
            if not path or not Path(path).exists():  # stopped before the last iteration: nothing to register
                log.info("retraining ended without a model package (%s)", result)
                return None
            self.registry.register(path)
            return str(path)

        args = train_command(data_folder, out_model, init_model=init_model, device=device,
                             iterations=iterations, python=python, time_budget=time_budget)
        return Job("Retrain", args, finish).start()

    def retrain(self, data_folder: str, init_model: Optional[str] = None, device: str = "auto",
                iterations: Optional[int] = None, python: Optional[Sequence[str]] = None,
                time_budget: Optional[str] = None) -> Job:
        """Fine-tune ``init_model`` on a training-set folder into a new model package named
        ``retrained-<date>-<time>`` in ``models_folder`` (``start_retrain``: within a time budget, 30 min
        on the CPU and 10 on a GPU unless ``time_budget`` or ``iterations`` say otherwise; registered
        when done).

        When the last ``retrain`` of the same training set and model ended without error before it
        wrote its model (stopped with ``job.cancel()``), this one continues it: the same output, so the trainer resumes
        from the checkpoint it kept. ``last_retrain`` tells which run that is.
        """
        last = self.last_retrain
        if last is not None and last.continues(data_folder, init_model):
            out = Path(last.output)
        else:
            out = new_model_folder(self.models_folder)
        job = self.start_retrain(data_folder, str(out), init_model=init_model, device=device,
                                 iterations=iterations, python=python, time_budget=time_budget)
        self.last_retrain = RetrainRun(_folder_key(data_folder), init_model, str(out), job)
        return job

    def available_models(self) -> List[Tuple[str, str]]:
        """``(label, path)`` of every installed and registered model package, installed first."""
        return self.registry.available()
