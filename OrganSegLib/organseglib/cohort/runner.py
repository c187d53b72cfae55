"""The cohort loop: scans read one after the other in a background thread, ahead of the ``jobs``
scans being computed (each in its own thread; results still come in order), finished scans skipped,
a failing scan reported and passed over, one report per scan and the summary at the end.

``run_scans`` is a generator of ``CaseResult``: the caller (the ``organseg`` command, or a script in
Slicer's Python console) sees each scan as it finishes. Leaving the loop early (``break``, Ctrl-C)
still rebuilds ``summary.csv`` from the reports written so far.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from ..errors import EXIT_ERROR, EXIT_OK, EXIT_WARNINGS, InputError, OrganSegError
from ..progress import report as report_progress
from ..volume import Volume
from .inputs import Scan
from .summary import DONE, FAILED, SKIPPED, read_report, report_path, write_report, write_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseResult:
    """One scan of a cohort, as the loop left it.

    Attributes:
        name: the scan's name (its output's stem).
        input, output, report: the scan, its labels file and its report JSON.
        status: ``"done"`` (written by this run), ``"skipped"`` (its labels existed: a finished scan of
            an earlier run) or ``"failed"`` (``error`` says why; nothing written but the report).
        exit_status: what ``organseg`` would exit with for this scan alone: 0, 3 (written with
            warnings) or 2 (failed).
        seconds: reading, segmenting and writing (a skipped scan: its earlier run's figure, if known).
        volumes_ml: ``{organ: mL}`` of what was found.
        warnings: one line each.
        error: the failure's message (``failed`` only).
    """

    name: str
    input: str
    output: str
    report: str
    status: str
    exit_status: int
    seconds: float = 0.0
    volumes_ml: dict = field(default_factory=dict)
    warnings: tuple = ()
    error: Optional[str] = None

    def to_json(self) -> dict:
        return {"name": self.name, "input": self.input, "output": self.output, "report": self.report,
                "status": self.status, "exit_status": self.exit_status, "seconds": self.seconds,
                "volumes_ml": dict(self.volumes_ml or {}), "warnings": list(self.warnings),
                "error": self.error}


def _case_report(scan: Scan, output: Path, status: str, exit_status: int, seconds: float, model: str,
                 volumes: dict, warnings: Sequence[str], body: dict) -> dict:
    """A scan's report: where, what, how long, by which model, then the command's own report."""
    return {"case": scan.name, "input": str(scan.path), "output": str(output), "status": status,
            "exit_status": exit_status, "seconds": round(seconds, 2), "model": model, "volumes_ml": dict(volumes),
            "warnings": list(warnings), **body}


def _skipped(scan: Scan, output: Path, report_file: Path) -> CaseResult:
    saved = read_report(report_file) or {}
    recorded = saved.get("status") == DONE
    warnings = tuple(saved.get("warnings", [])) if recorded else ()
    return CaseResult(scan.name, str(scan.path), str(output), str(report_file), SKIPPED,
                      int(saved.get("exit_status", EXIT_OK)) if recorded else EXIT_OK,
                      float(saved.get("seconds", 0.0)) if recorded else 0.0,
                      dict(saved.get("volumes_ml", {})) if recorded else {}, warnings)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, OrganSegError):
        return str(exc)
    # a fault of the system or of the code: the message, and the traceback in the log
    log.warning("unexpected %s", type(exc).__name__, exc_info=exc)
    return f"{type(exc).__name__}: {exc or 'no message'}"


def _run_one(task, scan: Scan, future: Future, output: Path, report_file: Path, model: str,
             progress: Callable[..., None]) -> CaseResult:
    """Read (the background thread's result), compute, write the report and the labels; a failure
    of any step is the scan's, reported, never the cohort's."""
    start = time.perf_counter()
    try:
        ct = future.result()
        outcome = task.compute(ct, progress)
        seconds = time.perf_counter() - start
        exit_status = EXIT_WARNINGS if outcome.warnings else EXIT_OK
        # the report first, then the labels: labels under their final name always have a report
        write_report(report_file, _case_report(scan, output, DONE, exit_status, seconds, model, outcome.volumes_ml,
                                               outcome.warnings, outcome.report))
        task.write(outcome, output, scan.path, ct)
        return CaseResult(scan.name, str(scan.path), str(output), str(report_file), DONE, exit_status,
                          round(time.perf_counter() - start, 2), dict(outcome.volumes_ml), tuple(outcome.warnings))
    except Exception as exc:  # one bad scan never stops the cohort
        message = _failure(exc)
        seconds = time.perf_counter() - start
        log.debug("%s: failed: %s", scan.name, message)  # the caller reports it (CaseResult.error)
        write_report(report_file, _case_report(scan, output, FAILED, EXIT_ERROR, seconds, model, {}, (),
                                               {"error": message}))
        return CaseResult(scan.name, str(scan.path), str(output), str(report_file), FAILED, EXIT_ERROR,
                          round(seconds, 2), {}, (), message)


class _Tracker:
    """The part's progress from several threads: one fraction that never goes back (scans done plus
    the fractions of those in flight), records emitted one at a time."""

    def __init__(self, progress: Optional[Callable[..., None]], count: int) -> None:
        self.progress, self.count = progress, max(count, 1)
        self.lock = threading.Lock()
        self.done, self.running, self.last = 0, {}, 0.0

    def emit(self, message: str, finished: Optional[int] = None, **fields) -> None:
        with self.lock:
            if finished is not None:
                self.running.pop(finished, None)
                self.done += 1
            self.last = max(self.last, min(1.0, (self.done + sum(self.running.values())) / self.count))
            report_progress(self.progress, self.last, message, **fields)

    def scan(self, index: int, prefix: str) -> Callable[..., None]:
        """The progress callback of the scan at ``index`` (its own fraction 0..1)."""

        def callback(fraction: float, message: str = "", **fields) -> None:
            with self.lock:
                self.running[index] = min(max(float(fraction), 0.0), 1.0)
            self.emit(f"{prefix}: {message}", **fields)

        callback.accepts_fields = True  # type: ignore[attr-defined]
        return callback


def run_scans(task, scans: Sequence[Scan], out_dir: Path, extension: str, cohort: Sequence[Scan],
              progress: Optional[Callable[..., None]] = None,
              read: Optional[Callable[[Path], Volume]] = None, jobs: int = 1) -> Iterator[CaseResult]:
    """Run ``task`` (a ``jobs.SegmentTask`` or ``AutolabelTask``, already prepared) on ``scans``.

    Args:
        scans: this part's scans, in order.
        out_dir: the output folder (exists).
        extension: the labels' extension (``.nii.gz``).
        cohort: every scan of every part (the summary lists them all).
        progress: ``(fraction, message)`` over this part; one that takes fields also gets ``case``
            (``{"name", "index", "count"}``) and, when a scan ends, ``case_result`` (``CaseResult.to_json``).
        read: reads one scan (default ``io.read_ct``); runs in the background thread.
        jobs: scans computed at once, each in its own thread (results still come in order). 2 lets one
            scan's single-threaded auto-labelling run beside the next one's network.
    """
    if read is None:
        from ..io import read_ct as read
    if int(jobs) != jobs or jobs < 1:
        raise InputError(f"--jobs must be a whole number >= 1 (scans computed at once); got {jobs!r}")
    model = task.model_note.get("model", "")
    count = len(scans)
    todo = [n for n, s in enumerate(scans) if not s.output(out_dir, extension).exists()]
    tracker = _Tracker(progress, count)
    readers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="organseg-read")
    workers = ThreadPoolExecutor(max_workers=int(jobs), thread_name_prefix="organseg-scan")
    ahead: dict[int, Future] = {}  # reads submitted, not yet handed to a worker
    computes: dict[int, Future] = {}  # scans submitted, not yet yielded
    submitted = read_next = 0

    def read_ahead(position: int) -> None:
        """Queue the reads of ``todo`` up to ``position`` (one reader: in order)."""
        nonlocal read_next
        while read_next <= min(position, len(todo) - 1):
            ahead[todo[read_next]] = readers.submit(read, scans[todo[read_next]].path)
            read_next += 1

    def top_up() -> None:
        """``jobs`` scans computing, and the next scan's read queued behind theirs (one reader)."""
        nonlocal submitted
        while submitted < len(todo) and sum(not f.done() for f in computes.values()) < jobs:
            index, scan = todo[submitted], scans[todo[submitted]]
            read_ahead(submitted)
            tracker.emit(f"{scan.name}: reading", case={"name": scan.name, "index": index + 1, "count": count})
            computes[index] = workers.submit(_run_one, task, scan, ahead.pop(index), scan.output(out_dir, extension),
                                             report_path(out_dir, scan), model,
                                             tracker.scan(index, f"{scan.name} ({index + 1}/{count})"))
            submitted += 1
        read_ahead(submitted)

    try:
        for index, scan in enumerate(scans):
            case = {"name": scan.name, "index": index + 1, "count": count}
            if index not in todo:  # its labels exist: done by an earlier run
                output = scan.output(out_dir, extension)
                result = _skipped(scan, output, report_path(out_dir, scan))
                tracker.emit(f"{scan.name}: skipped, {output.name} exists", finished=index, case=case,
                             case_result=result.to_json())
                yield result
                continue
            top_up()
            while not computes[index].done():  # keep the others busy while this one finishes
                wait([f for f in computes.values() if not f.done()], return_when=FIRST_COMPLETED)
                if not computes[index].done():  # once it is, the next starts after the caller has it: a
                    top_up()  # caller that stops after this scan leaves the rest pending, whatever the timing
            result = computes.pop(index).result()
            tracker.emit(f"{scan.name}: {result.status}", finished=index, case=case, case_result=result.to_json())
            yield result
    finally:
        for future in [*computes.values(), *ahead.values()]:
            future.cancel()
        workers.shutdown(wait=True, cancel_futures=True)
        readers.shutdown(wait=True, cancel_futures=True)
        write_summary(out_dir, cohort, extension)


def cohort_exit_status(results: Sequence[CaseResult]) -> int:
    """``errors.EXIT_CASES_FAILED`` when a scan failed, else 3 when one has warnings, else 0."""
    from ..errors import EXIT_CASES_FAILED

    if any(r.status == FAILED for r in results):
        return EXIT_CASES_FAILED
    return EXIT_WARNINGS if any(r.warnings for r in results) else EXIT_OK


__all__ = ["CaseResult", "cohort_exit_status", "run_scans"]
