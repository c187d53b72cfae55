"""Long work in a child process: the ``organseg`` command lines and the ``Job`` the GUI polls.

A ``Job`` is a ``ProcessRunner`` plus a ``finish(result)`` step that runs on the caller's thread
(the Qt main thread in Slicer) once the child reports ``{"status": "done"}``: reading its output
file back into MRML. The Widget calls ``job.poll()`` from a ``QTimer``; the Python console can call
``job.wait()``. Nothing here imports Qt.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from organseglib.devices import parse_device
from organseglib.progress import parse_record, validation_summary

from .process_runner import CANCELLED, DONE, ERROR, ProcessRunner, ProgressRecord, python_command

log = logging.getLogger(__name__)


def library_pythonpath(env: Optional[dict] = None) -> dict:
    """Environment for the child with the folders holding ``organseglib`` and ``cudaaugment`` first on
    ``PYTHONPATH``: Slicer's ``PythonSlicer`` does not see an extension's or a source tree's paths."""
    import importlib.util

    env = dict(os.environ if env is None else env)
    folders: List[str] = []
    for package in ("organseglib", "cudaaugment"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            folder = str(Path(spec.origin).resolve().parents[1])
            if folder not in folders:
                folders.append(folder)
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(folders + [p for p in existing if p not in folders])
    return env


def segment_command(ct_path: str, out_path: str, model: Optional[str] = None, device: str = "auto",
                    python: Optional[Sequence[str]] = None) -> List[str]:
    args = list(python or python_command()) + ["segment", str(ct_path), "--output", str(out_path),
                                                "--device", parse_device(device)]
    if model:
        args += ["--model", str(model)]
    return args + ["--progress", "json"]


def autolabel_command(ct_path: str, out_path: str, organs: Sequence[str],
                      python: Optional[Sequence[str]] = None) -> List[str]:
    return list(python or python_command()) + ["autolabel", str(ct_path), "--output", str(out_path),
                                               "--organs", ",".join(organs), "--progress", "json"]


def train_command(data: str, out_model: str, init_model: Optional[str] = None, device: str = "auto",
                  iterations: Optional[int] = None, python: Optional[Sequence[str]] = None,
                  time_budget: Optional[str] = None) -> List[str]:
    """``organseg train``: a number of ``iterations``, or a ``time_budget`` (``"30m"``, ``"auto"``: 30 min
    on the CPU, 10 on a GPU; ``organseglib.training.budget``), not both."""
    if iterations and time_budget:
        raise ValueError("give iterations or a time budget, not both")
    args = list(python or python_command()) + ["train", "--data", str(data), "--out", str(out_model),
                                               "--device", parse_device(device)]
    if init_model:
        args += ["--init", str(init_model)]
    if iterations:
        args += ["--iterations", str(int(iterations))]
    if time_budget:
        args += ["--time-budget", str(time_budget)]
    return args + ["--progress", "json"]


def budget_text(minutes: Optional[float]) -> str:
    """``--time-budget`` of a number of minutes; 0 or None: ``"auto"`` (30 min on the CPU, 10 on a GPU)."""
    return f"{float(minutes):g}m" if minutes else "auto"


def describe_record(record: ProgressRecord) -> str:
    """One status line: the record's message, then in brackets the validation Dice when the trainer's
    record has one (its ``validation`` field), the hybrid's reassignments (``reassignments``: pieces
    the merge by evidence gave to the network's organ) and the warnings of a done record."""
    extras = []
    dice = validation_summary(record.validation)
    if dice is not None:
        extras.append(dice)
    moved = (getattr(record, "fields", None) or {}).get("reassignments") or []
    if isinstance(moved, list) and moved:
        extras.append("reassigned: " + "; ".join(f"{m.get('ml', 0):g} mL {m.get('from', '?')} -> {m.get('to', '?')}"
                                                 for m in moved if isinstance(m, dict)))
    if record.warnings:
        count = len(record.warnings)
        extras.append(f"{count} warning{'s' if count > 1 else ''}: " + "; ".join(record.warnings))
    extra = "; ".join(extras)
    message = record.message.strip()
    return f"{message} ({extra})" if message and extra else (message or extra or record.stage)


class Job:
    """A child process and what to do with its result.

    Args:
        title: what the job does, for messages ("Segment organs").
        args: the child's command line.
        finish: called once with the child's final ``{"status": "done", ...}`` record; its return
            value becomes ``job.output``. Runs in ``poll()``, i.e. on the caller's thread.
        workdir: a temporary folder deleted when the job ends (None: nothing to delete).
        env: the child's environment (default: ``library_pythonpath()``).
    """

    def __init__(self, title: str, args: Sequence[str], finish: Callable[[dict], Any],
                 workdir: Optional[str] = None, env: Optional[dict] = None) -> None:
        self.title = title
        self.runner = ProcessRunner(args, env=env if env is not None else library_pythonpath())
        self._finish = finish
        self.workdir = workdir
        self.output: Any = None
        self.error: Optional[str] = None
        self._closed = False

    def start(self) -> "Job":
        try:
            self.runner.start()
        except OSError as exc:
            self._cleanup()
            raise RuntimeError(f"{self.title}: could not start {self.runner.args[0]!r}: {exc}") from None
        return self

    @property
    def state(self) -> str:
        if self.error is not None:
            return ERROR
        state = self.runner.state
        if state == DONE and not self._closed:
            return "finishing"
        return state

    @property
    def finished(self) -> bool:
        return self._closed

    @property
    def warnings(self) -> tuple:
        """The warnings of the child's done record (empty until it is done, or when all is well)."""
        return parse_record(self.runner.result).warnings if self.runner.result else ()

    def poll(self) -> List[ProgressRecord]:
        """New progress records; on the child's end, run ``finish`` or record the error."""
        if self._closed:
            return []
        records = self.runner.poll()
        state = self.runner.state
        if state == DONE:
            for warning in self.warnings:  # the console sees them too (the Widget shows them in its status)
                log.warning("%s: %s", self.title, warning)
            try:
                self.output = self._finish(self.runner.result or {})
            except Exception as exc:  # the result could not be read back: show why
                log.exception("%s: reading the result failed", self.title)
                self.error = f"{self.title}: the result could not be loaded: {exc}"
            self._cleanup()
        elif state == ERROR:
            self.error = self.runner.error
            self._cleanup()
        elif state == CANCELLED:
            self._cleanup()
        return records

    def cancel(self) -> None:
        self.runner.cancel()
        self.poll()
        self._cleanup()

    def wait(self, timeout: Optional[float] = None, on_record: Optional[Callable[[ProgressRecord], None]] = None) -> Any:
        """Block until done (Python console use); return ``output`` or raise with the child's message."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            for record in self.poll():
                if on_record is not None:
                    on_record(record)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"{self.title} took longer than {timeout} s and was cancelled")
            time.sleep(0.05)
        if self.error is not None:
            raise RuntimeError(self.error)
        if self.runner.state == CANCELLED:
            raise RuntimeError(f"{self.title} was cancelled")
        return self.output

    def _cleanup(self) -> None:
        self._closed = True
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def make_workdir(prefix: str = "organseg-") -> str:
    """A private temporary folder for a job's input and output files."""
    return tempfile.mkdtemp(prefix=prefix)
