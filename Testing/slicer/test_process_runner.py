"""The GUI's child-process runner (pure Python, no Qt, no Slicer): JSON progress, errors, cancel."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "OrganSeg"))

from OrganSegCommon.process_runner import CANCELLED, DONE, ERROR, ProcessRunner, parse_line  # noqa: E402


def _child(tmp_path, body: str):
    script = tmp_path / "child.py"
    script.write_text("import json, os, subprocess, sys, time\n" + textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(script)]


def test_parse_line_accepts_only_json_objects():
    assert parse_line('{"stage": "s", "progress": 0.5}') == {"stage": "s", "progress": 0.5}
    assert parse_line("  {\"a\": 1}  \n") == {"a": 1}
    assert parse_line("INFO organseglib: reading ct") is None
    assert parse_line("{not json}") is None
    assert parse_line("[1, 2]") is None


def test_progress_records_then_result(tmp_path):
    args = _child(tmp_path, """
        for i in range(3):
            print(json.dumps({"stage": "segment", "progress": i / 4, "message": f"tile {i}"}), flush=True)
        print("a plain log line", flush=True)
        print("WARNING something on stderr", file=sys.stderr, flush=True)
        print(json.dumps({"stage": "segment", "progress": 1.0, "status": "done", "out": "x.nii.gz"}), flush=True)
    """)
    runner = ProcessRunner(args).start()
    records = []
    assert runner.wait(timeout=60, on_record=records.append) == DONE
    assert [r.message for r in records[:3]] == ["tile 0", "tile 1", "tile 2"]
    assert [r.progress for r in records] == [0.0, 0.25, 0.5, 1.0]
    assert runner.result["out"] == "x.nii.gz"
    assert "a plain log line" in runner.log_lines
    assert runner.error is None


def test_json_error_record_is_the_message(tmp_path):
    args = _child(tmp_path, """
        print(json.dumps({"stage": "segment", "status": "error", "message": "ct.nrrd: spacing 0 mm; fix the header"}))
        print("organseg segment: error: ct.nrrd: spacing 0 mm", file=sys.stderr)
        sys.exit(2)
    """)
    runner = ProcessRunner(args).start()
    assert runner.wait(timeout=60) == ERROR
    assert runner.error == "ct.nrrd: spacing 0 mm; fix the header"


def test_crash_reports_the_exception_line_not_the_exit_status(tmp_path):
    args = _child(tmp_path, """
        def load():
            raise MemoryError("Unable to allocate 7.5 GiB for an array")
        load()
    """)
    runner = ProcessRunner(args).start()
    assert runner.wait(timeout=60) == ERROR
    assert runner.error.startswith("MemoryError: Unable to allocate 7.5 GiB for an array")
    assert "Traceback" in runner.error and "exit status" not in runner.error


def test_silent_failure_names_the_exit_status(tmp_path):
    runner = ProcessRunner(_child(tmp_path, "sys.exit(3)\n")).start()
    assert runner.wait(timeout=60) == ERROR
    assert "exit status 3" in runner.error


def test_clean_exit_without_result_record_counts_as_done(tmp_path):
    runner = ProcessRunner(_child(tmp_path, "print('hello')\n")).start()
    assert runner.wait(timeout=60) == DONE
    from organseglib.progress import check_record

    assert check_record(runner.result)["status"] == "done"  # a valid done record, with nothing written
    assert runner.result["output"] is None and runner.result["warnings"] == []


def _grandchild_pid(runner: ProcessRunner, pid_file) -> int:
    """Poll until the child has written its child's pid (at most 60 s)."""
    for _ in range(600):
        runner.poll()
        if pid_file.exists() and pid_file.read_text():
            return int(pid_file.read_text())
        time.sleep(0.1)
    pytest.fail("the child never started its own child")


def _is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (gone, or a zombie waiting for init), within 5 s."""
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(os.name == "nt", reason="process-group check uses POSIX signals")
def test_cancel_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    args = _child(tmp_path, f"""
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print(json.dumps({{"stage": "train", "progress": 0.1, "message": "started"}}), flush=True)
        time.sleep(300)
    """)
    runner = ProcessRunner(args).start()
    grandchild = _grandchild_pid(runner, pid_file)
    runner.cancel(grace_s=2.0)
    runner.poll()
    assert runner.state == CANCELLED
    assert runner.process.poll() is not None
    assert _is_gone(grandchild), f"grandchild {grandchild} survived cancel"
    assert runner.error is None


@pytest.mark.skipif(os.name == "nt", reason="process-group check uses POSIX signals")
def test_cancel_kills_a_grandchild_that_ignores_sigterm(tmp_path):
    # the child exits on SIGTERM and is reaped; the SIGKILL must still reach its process group
    pid_file = tmp_path / "stubborn.pid"
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    args = _child(tmp_path, f"""
        child = subprocess.Popen([sys.executable, "-c", {code!r}])
        time.sleep(0.5)  # let it install its handler
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(300)
    """)
    runner = ProcessRunner(args).start()
    stubborn = _grandchild_pid(runner, pid_file)
    runner.cancel(grace_s=2.0)
    if not _is_gone(stubborn):
        os.kill(stubborn, signal.SIGKILL)
        pytest.fail(f"grandchild {stubborn}, which ignores SIGTERM, survived cancel")


def test_an_error_record_does_not_finish_the_job_before_the_child_exits(tmp_path):
    args = _child(tmp_path, """
        print(json.dumps({"status": "error", "message": "bad input: not a CT"}), flush=True)
        time.sleep(1.0)
        sys.stderr.write("details after the record\\n")
        sys.exit(2)
    """)
    runner = ProcessRunner(args).start()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        runner.poll()
        assert runner.process.poll() is not None or not runner.finished
        time.sleep(0.02)
    assert runner.wait(timeout=60) == ERROR
    assert runner.error == "bad input: not a CT" and runner.process.returncode == 2
    assert any("details after the record" in line for line in runner.stderr_tail)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_poll_before_start_and_double_start(tmp_path):
    runner = ProcessRunner(_child(tmp_path, "pass\n"))
    assert runner.poll() == [] and runner.state == "not started"
    runner.start()
    with pytest.raises(RuntimeError, match="already started"):
        runner.start()
    runner.wait(timeout=60)
    with pytest.raises(ValueError, match="empty"):
        ProcessRunner([])


def test_exit_3_after_a_done_record_is_a_result_with_warnings(tmp_path):
    """organseg exits 3 when it wrote its output but an organ asked for was not found."""
    args = _child(tmp_path, """
        print(json.dumps({"stage": "segment", "progress": 1.0, "status": "done", "output": "x.nii.gz",
                          "warnings": ["liver: not found"]}), flush=True)
        print("organseg segment: warning: liver: not found", file=sys.stderr)
        sys.exit(3)
    """)
    runner = ProcessRunner(args).start()
    assert runner.wait(timeout=60) == DONE
    assert runner.error is None and runner.result["warnings"] == ["liver: not found"]


def test_the_warnings_status_is_the_librarys_one_constant():
    """The runner reads organseglib.errors.EXIT_WARNINGS (no second copy of the number to drift)."""
    from organseglib import errors
    from OrganSegCommon import process_runner

    assert process_runner.EXIT_WARNINGS is errors.EXIT_WARNINGS
    assert process_runner.COMPLETED_WITH_WARNINGS == (errors.EXIT_WARNINGS, errors.EXIT_CASES_FAILED)
