"""Cohorts: a folder of CT scans in, a folder of labels out (nnU-Net's ``nnUNetv2_predict -i IN -o OUT``).

``organseg segment IN_DIR -o OUT_DIR`` (or a list file, or several inputs: shell globs) segments
every CT file and DICOM series of the inputs (``inputs``) into ``OUT_DIR/NAME.<format>``:

* the model is loaded once, each scan is read in a background thread while the network works on
  the one before, and two scans are computed at once (``--jobs``), so that one's auto-labelling
  (mostly one CPU core) runs beside the other's network (``runner``);
* a scan whose labels exist under their final name is skipped: outputs are written atomically, so
  one that exists is complete, and a run killed at any moment (SIGKILL) resumes where it stopped;
* ``--part I/N`` runs every N-th scan from the I-th of the sorted names: N machines, GPUs or SLURM
  array tasks, one part each, cover the cohort once;
* a scan that fails (corrupt, not CT) is reported and passed over, never stopping the cohort;
* each scan gets a report ``OUT_DIR/NAME.json`` (volumes, warnings, seconds, model, exit status) and
  ``OUT_DIR/summary.csv`` is rebuilt from all of them at the end (``summary``).

From Python (e.g. Slicer's console), a generator of per-scan results::

    from organseglib.cohort import segment_cohort
    for case in segment_cohort("/data/ct", "/data/labels", format="seg.nrrd"):
        print(case.name, case.status, case.volumes_ml, case.warnings)

``autolabel_cohort`` does the same for the morphological lungs and bone labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from ..atomic import check_output_folder, check_outputs, make_output_folder
from ..errors import InputError
from .inputs import Scan, find_scans, select_part
from .jobs import AutolabelTask, SegmentTask
from .runner import CaseResult, cohort_exit_status, run_scans
from .summary import SUMMARY_NAME, report_path

PathLike = Union[str, "os.PathLike[str]"]
Sources = Union[PathLike, Sequence[PathLike]]
# Scans computed at once: two, so that one scan's auto-labelling (numpy, mostly one core) runs beside
# the next one's network (all cores, or the GPU); each holds its CT and labels (about 2 GB for a
# 512×512×300 CT, BENCHMARKS.md). --jobs 1 halves the memory.
DEFAULT_JOBS = 2


@dataclass(frozen=True)
class CohortPlan:
    """What a cohort run will do, checked before any work.

    Attributes:
        scans: every scan of the cohort, sorted by name (all parts).
        part: this run's scans.
        out_dir: the output folder (created by ``plan_cohort``).
        extension: the labels' extension (``.nii.gz``).
    """

    scans: tuple
    part: tuple
    out_dir: Path
    extension: str

    @property
    def summary(self) -> Path:
        return self.out_dir / SUMMARY_NAME


def _extension(task, fmt: Optional[str]) -> str:
    fmt = (fmt or task.default_format).lstrip(".").lower()
    if fmt not in task.formats:
        raise InputError(f"--format must be one of {', '.join(task.formats)} for organseg {task.stage}; got {fmt!r}")
    return task.formats[fmt]


def _check_dicom_seg(scans: Sequence[Scan]) -> None:
    from ..dicom_seg import require_highdicom

    other = [s for s in scans if not s.dicom]
    if other:
        raise InputError(f"--format dcm writes a DICOM SEG referencing each scan's DICOM series, but "
                         f"{str(other[0].path)!r}{f' (and {len(other) - 1} more)' if len(other) > 1 else ''} "
                         "is not a DICOM series folder; use --format nii.gz or seg.nrrd for those")
    require_highdicom()


def plan_cohort(task, sources: Sources, out_dir: PathLike, fmt: Optional[str] = None,
                part: Union[str, tuple, None] = None) -> CohortPlan:
    """Find the scans, check every output against every input, create the output folder.

    Raises:
        InputError (and its kinds): no scan, two scans of one name, a bad ``--format`` or ``--part``,
            ``dcm`` for a scan that is not a DICOM series, an output folder inside an input.
    """
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    scans = find_scans(sources)
    extension = _extension(task, fmt)
    this_part = select_part(scans, part)
    if extension == ".dcm":
        _check_dicom_seg(scans)
    inputs = [*sources, *(s.path for s in scans), getattr(task, "model_path", None)]
    # the one guard (atomic): the folder is not an input and not inside one (a rerun would take the outputs
    # for scans), nor any file written into it; nothing is created until every check has passed
    folder = check_output_folder(out_dir, "-o/--output", inputs)
    outputs = {"summary": folder / SUMMARY_NAME}
    for scan in this_part:
        outputs[f"labels of {scan.name}"] = scan.output(folder, extension)
        outputs[f"report of {scan.name}"] = report_path(folder, scan)
    check_outputs(outputs, inputs, folders={"-o/--output": folder})
    folder = make_output_folder(folder, "-o/--output folder")
    return CohortPlan(tuple(scans), tuple(this_part), folder, extension)


def run_cohort(task, plan: CohortPlan, progress: Optional[Callable[..., None]] = None,
               jobs: int = DEFAULT_JOBS) -> Iterator[CaseResult]:
    """Load what ``task`` needs once, then ``runner.run_scans`` over the plan's part."""
    task.prepare()
    yield from run_scans(task, plan.part, plan.out_dir, plan.extension, plan.scans, progress, jobs=jobs)


def segment_cohort(inputs: Sources, out_dir: PathLike, model: Any = None, config=None, device: str = "auto",
                   format: Optional[str] = None, part: Union[str, tuple, None] = None,
                   progress: Optional[Callable[..., None]] = None, jobs: int = DEFAULT_JOBS) -> Iterator[CaseResult]:
    """Segment every scan of ``inputs`` into ``out_dir``; a generator of ``CaseResult`` (one per scan).

    The inputs and outputs are checked when this is called (it raises then); the work happens as the
    generator is consumed.

    Args:
        inputs: a folder, a list file, a scan, or several of these.
        out_dir: the output folder (created; never inside an input).
        model: model package folder or name (None: the default), or a ``(network, card)`` pair.
        config: a ``segment.SegmentConfig``.
        format: ``nii.gz`` (default), ``seg.nrrd`` or ``dcm`` (DICOM SEG; DICOM series inputs only).
        part: ``"I/N"`` or ``(I, N)``: this machine's part of the cohort.
        progress: ``(fraction, message)`` callback over this part.
        jobs: scans computed at once (``runner.run_scans``; each holds its CT and labels in memory).
    """
    task = SegmentTask(model, config, device)
    task.check()  # a bad device or model name fails now, before any scan is read
    return run_cohort(task, plan_cohort(task, inputs, out_dir, format, part), progress, jobs)


def autolabel_cohort(inputs: Sources, out_dir: PathLike, organs: Any = ("lungs", "bone"),
                     format: Optional[str] = None, part: Union[str, tuple, None] = None,
                     progress: Optional[Callable[..., None]] = None, jobs: int = DEFAULT_JOBS) -> Iterator[CaseResult]:
    """``segment_cohort`` for the morphological auto-labels (``format``: nii.gz, seg.nrrd or nrrd)."""
    task = AutolabelTask(organs)
    return run_cohort(task, plan_cohort(task, inputs, out_dir, format, part), progress, jobs)


__all__ = ["AutolabelTask", "CaseResult", "CohortPlan", "Scan", "SegmentTask", "autolabel_cohort",
           "check_output_folder", "cohort_exit_status", "find_scans", "plan_cohort", "run_cohort",
           "segment_cohort", "select_part"]
