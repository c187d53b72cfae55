"""Run an ``organseg ... --progress json`` child process and poll it without blocking (no Qt).

The child writes one JSON object per line on stdout, the records ``organseglib.progress`` defines
(the one definition of the protocol; this module reads it with that module's ``parse_record``)::

    {"stage": "segment", "progress": 0.42, "message": "tile 5/12"}
    {"stage": "segment", "progress": 1.0, "status": "done", "output": "/tmp/labels.nii.gz", "warnings": []}
    {"stage": "segment", "status": "error", "message": "ct.nrrd: ... (the fix)"}

Reader threads move stdout/stderr lines into queues; ``poll()`` drains them and is cheap enough to
call from a ``QTimer`` every 100-200 ms, so the Slicer GUI stays responsive. ``cancel()`` kills the
whole process tree (the child runs in its own process group / session), and a failure is reported
with the child's own message, not "non-zero exit status". Exit status 3 after a done record is a
result with warnings (``result["warnings"]``), not a failure; so is 4, a cohort in which some scans
failed (each is a ``"NAME: failed: why"`` line of those warnings; the others were written).
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Deque, List, Optional, Sequence

from organseglib.errors import EXIT_CASES_FAILED, EXIT_WARNINGS
from organseglib.progress import Record as ProgressRecord
from organseglib.progress import done_record, parse_line, parse_record

log = logging.getLogger(__name__)

RUNNING, DONE, ERROR, CANCELLED, NOT_STARTED = "running", "done", "error", "cancelled", "not started"
# organseg's exit statuses when the output was written with warnings (3), or a cohort in which some
# scans failed (4): with a done record it is a result (its ``warnings`` list says what to look at),
# not a failure. The library's constants.
COMPLETED_WITH_WARNINGS = (EXIT_WARNINGS, EXIT_CASES_FAILED)
__all__ = ["CANCELLED", "DONE", "ERROR", "NOT_STARTED", "RUNNING", "ProcessRunner", "ProgressRecord",
           "parse_line", "python_command"]


def _reader(stream, lines: "queue.Queue[Optional[str]]") -> None:
    try:
        for line in iter(stream.readline, ""):
            lines.put(line.rstrip("\r\n"))
    except ValueError:  # stream closed under us during cancel
        pass
    finally:
        lines.put(None)


class ProcessRunner:
    """A child process whose JSON-lines progress is polled, with cancel and clear errors.

    Args:
        args: command line (``[python, "-m", "organseglib", "segment", ..., "--progress", "json"]``).
        cwd: working folder of the child.
        env: environment (default: this process's).
        stderr_lines: how many trailing stderr lines to keep for error messages.
    """

    def __init__(self, args: Sequence[str], cwd: Optional[str] = None, env: Optional[dict] = None,
                 stderr_lines: int = 30) -> None:
        if not args:
            raise ValueError("ProcessRunner needs a command line; got an empty one")
        self.args = [str(a) for a in args]
        self.cwd = cwd
        self.env = env
        self.process: Optional[subprocess.Popen] = None
        self.result: Optional[dict] = None
        self.error: Optional[str] = None
        self.log_lines: Deque[str] = collections.deque(maxlen=200)
        self.stderr_tail: Deque[str] = collections.deque(maxlen=stderr_lines)
        self._out: "queue.Queue[Optional[str]]" = queue.Queue()
        self._err: "queue.Queue[Optional[str]]" = queue.Queue()
        self._open_streams = 0
        self._cancelled = False
        self._threads: List[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "ProcessRunner":
        if self.process is not None:
            raise RuntimeError("this ProcessRunner was already started; make a new one")
        kwargs: dict = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True  # own process group: cancel kills grandchildren too
        env = dict(self.env if self.env is not None else os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log.info("starting: %s", " ".join(self.args))
        self.process = subprocess.Popen(self.args, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        encoding="utf-8", errors="replace", bufsize=1, **kwargs)
        for stream, lines in ((self.process.stdout, self._out), (self.process.stderr, self._err)):
            thread = threading.Thread(target=_reader, args=(stream, lines), daemon=True)
            thread.start()
            self._threads.append(thread)
        self._open_streams = 2
        return self

    @property
    def state(self) -> str:
        if self.process is None:
            return NOT_STARTED
        if self._cancelled:
            return CANCELLED
        # finished only once the child has exited and its streams are drained (an error record may
        # come before the exit: the job must still reap the process and read the rest of stderr)
        if self.process.poll() is None or self._open_streams > 0:
            return RUNNING
        return DONE if self.error is None else ERROR

    @property
    def finished(self) -> bool:
        return self.state in (DONE, ERROR, CANCELLED)

    def poll(self) -> List[ProgressRecord]:
        """Drain new output; return the progress records seen since the last call. Sets
        ``result`` / ``error`` once the child has exited and its streams are closed."""
        records: List[ProgressRecord] = []
        if self.process is None:
            return records
        self._drain(self._err, self._on_stderr)
        self._drain(self._out, lambda line: self._on_stdout(line, records))
        if self._open_streams == 0 and self.process.poll() is not None:
            self._finish()
        return records

    def wait(self, timeout: Optional[float] = None, interval: float = 0.05,
             on_record: Optional[Callable[[ProgressRecord], None]] = None) -> str:
        """Poll until finished (console use); returns the final state. Raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            for record in self.poll():
                if on_record is not None:
                    on_record(record)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.args[0]} still running after {timeout} s")
            time.sleep(interval)
        return self.state

    def cancel(self, grace_s: float = 3.0) -> None:
        """Stop the child and everything it started; no-op when it has already exited."""
        if self.process is None or self.process.poll() is not None:
            self._cancelled = self.process is not None and self.result is None and self.error is None
            return
        self._cancelled = True
        pid = self.process.pid
        log.info("cancelling process tree of pid %d", pid)
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        else:
            _signal_group(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(pid, signal.SIGKILL)  # grandchildren that ignored SIGTERM
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill -9 did not work
            log.error("process %d did not exit after SIGKILL", pid)
        for thread in self._threads:
            thread.join(timeout=1.0)

    # --- internals ----------------------------------------------------------------------------
    def _drain(self, lines: "queue.Queue[Optional[str]]", handle: Callable[[str], None]) -> None:
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._open_streams -= 1
            else:
                handle(line)

    def _on_stderr(self, line: str) -> None:
        if line.strip():
            self.stderr_tail.append(line)
            self.log_lines.append(line)

    def _on_stdout(self, line: str, records: List[ProgressRecord]) -> None:
        record = parse_line(line)
        if record is None:
            if line.strip():
                self.log_lines.append(line)
            return
        item = parse_record(record)
        if item.kind == "error":
            self.error = item.message or "the command failed without a message"
        elif item.kind == "done":
            self.result = record
        records.append(item)

    def _finish(self) -> None:
        code = self.process.poll() if self.process is not None else None
        if self._cancelled or code is None:
            return
        if self.error is None and code != 0 and not (code in COMPLETED_WITH_WARNINGS and self.result is not None):
            self.error = self._stderr_message(code)
        elif self.error is None and self.result is None:
            self.result = done_record(os.path.basename(self.args[0]), None)  # exit 0, no done line

    def _stderr_message(self, code: int) -> str:
        lines = [line for line in self.stderr_tail if line.strip()]
        if not lines:
            return f"{os.path.basename(self.args[0])} stopped with exit status {code} and printed no message"
        # A Python traceback ends with the exception line: show that first, then the context.
        last = lines[-1].strip()
        context = "\n".join(lines[-8:-1])
        return last if not context else f"{last}\n\n{context}"


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group the child leads (``start_new_session``: its group id is its pid), so
    the signal still reaches grandchildren after the child itself has exited and been reaped."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def python_command(module: str = "organseglib", executable: Optional[str] = None) -> List[str]:
    """``[python, "-m", module]`` with Slicer's launcher when present (``PythonSlicer`` sets up
    Slicer's paths), else this interpreter."""
    if executable is None:
        import shutil

        executable = shutil.which("PythonSlicer") or sys.executable
    return [executable, "-m", module]
