"""A cohort's per-scan reports (``OUT_DIR/NAME.json``) and its ``summary.csv``, rebuilt from them.

Each scan's report is written atomically *before* its labels are published, so a labels file under
its final name always has its report beside it, and a run killed in between (SIGKILL) leaves a
report whose labels are missing: the next run does that scan again. ``summary.csv`` is rebuilt
from the reports of every scan of the cohort (all parts, also those done by earlier runs), so a
resumed run's summary covers every scan; a scan with no labels yet is ``pending`` (another part, or
not run yet). Columns: ``case, input, output, status, exit_status, seconds, model``, one
``<organ>_ml`` column per organ (mL, empty when not found), ``warnings`` (joined by `` | ``), ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Optional, Union

from ..atomic import write_text_atomic
from ..organs import organ_table
from .inputs import Scan

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
SUMMARY_NAME = "summary.csv"
REPORT_SUFFIX = ".json"
DONE, FAILED, PENDING, SKIPPED = "done", "failed", "pending", "skipped"
COLUMNS = (["case", "input", "output", "status", "exit_status", "seconds", "model"]
           + [f"{o.key}_ml" for o in organ_table()] + ["warnings", "error"])


def report_path(out_dir: PathLike, scan: Scan) -> Path:
    return Path(out_dir) / f"{scan.name}{REPORT_SUFFIX}"


def write_report(path: PathLike, report: dict) -> None:
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")


def read_report(path: PathLike) -> Optional[dict]:
    """The report at ``path``, or None when there is none (or it cannot be read: logged)."""
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable report %s (%s)", path, exc)
        return None
    return report if isinstance(report, dict) else None


def summary_row(scan: Scan, output: Path, report: Optional[dict]) -> dict:
    """One row of ``summary.csv`` for ``scan`` (its report, if any, and whether its output exists)."""
    row = {k: "" for k in COLUMNS}
    row.update(case=scan.name, input=str(scan.path), output=str(output))
    if output.exists():
        row["status"] = DONE
        if report is None or report.get("status") != DONE:
            row["warnings"] = "no report for this output (written by another run or program)"
            return row
    elif report is not None and report.get("status") == FAILED:
        row.update(status=FAILED, error=str(report.get("error", "")))
    else:
        row["status"] = PENDING  # another part's, or not run yet (or killed before its labels were written)
        return row
    row.update(exit_status=report.get("exit_status", ""), seconds=report.get("seconds", ""),
               model=report.get("model", ""))
    volumes = report.get("volumes_ml") or {}
    for organ in organ_table():
        if organ.key in volumes:
            row[f"{organ.key}_ml"] = volumes[organ.key]
    if row["status"] == DONE:
        row["warnings"] = " | ".join(str(w) for w in report.get("warnings", []))
    return row


def write_summary(out_dir: PathLike, scans: Iterable[Scan], extension: str) -> Path:
    """Rebuild ``OUT_DIR/summary.csv`` from the reports of ``scans`` (the whole cohort), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for scan in sorted(scans, key=lambda s: s.name):
        writer.writerow(summary_row(scan, scan.output(out_dir, extension), read_report(report_path(out_dir, scan))))
    path = Path(out_dir) / SUMMARY_NAME
    write_text_atomic(path, buffer.getvalue())
    return path


def read_summary(path: PathLike) -> list[dict]:
    """The rows of a ``summary.csv`` (strings, as written)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


__all__ = ["COLUMNS", "DONE", "FAILED", "PENDING", "SKIPPED", "SUMMARY_NAME", "read_report", "read_summary",
           "report_path", "summary_row", "write_report", "write_summary"]
