"""The cohort form of ``organseg segment`` and ``organseg autolabel``: ``IN... -o OUT_DIR``.

A call is a cohort when ``-o`` does not name a labels file (``.nii.gz``, ``.nrrd``, ``.seg.nrrd``,
``.dcm`` ...) and is an existing folder or has no extension, or when it is given several inputs or a
list file; otherwise it is the single-scan command, unchanged. The command prints one line per scan
(a bar over the scans on a terminal; ``--progress json``: records with ``case`` and ``case_result``
fields, ``organseglib.progress``), a ``warning:`` line per warning and per failed scan, and exits with
0 (all well), 3 (written, some with warnings) or 4 (some scans failed; the rest were written).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..atomic import double_suffix
from ..dicom_seg import DICOM_SEG_EXTENSIONS
from ..errors import InputError
from ..io import LABEL_EXTENSIONS
from ..progress import Progress
from ..result_warnings import print_warnings
from .inputs import is_list_file
from .runner import cohort_exit_status
from .summary import FAILED, SKIPPED

PART_HELP = ("for a cohort: run part I of N (the scans sorted by name, every N-th from the I-th), e.g. "
             "--part 2/4 on the second of four machines or SLURM array tasks; the parts cover each scan once")


def add_cohort_arguments(parser: argparse.ArgumentParser, formats: Sequence[str], default: str) -> None:
    parser.add_argument("--format", choices=list(formats), default=None,
                        help=f"for a cohort (-o FOLDER): the labels' format (default {default})")
    parser.add_argument("--part", default=None, metavar="I/N", help=PART_HELP)
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="for a cohort: scans computed at once (default 2: one's auto-labels beside the next "
                             "one's network; each holds its CT and labels in memory, 1 halves that)")


def is_cohort_request(inputs: Sequence[str], output: str) -> bool:
    """True when the call is a cohort (see the module doc)."""
    if len(inputs) > 1 or is_list_file(inputs[0]):
        return True
    out = Path(output).expanduser()
    if double_suffix(out) in LABEL_EXTENSIONS + DICOM_SEG_EXTENSIONS:
        return False
    return out.is_dir() or not out.suffix or str(output).endswith(("/", "\\"))


def refuse_cohort_options(args: argparse.Namespace) -> None:
    """``--format`` and ``--part`` belong to a cohort; a single scan's format is its output's extension."""
    for option in ("format", "part", "jobs"):
        if getattr(args, option, None) is not None:
            raise InputError(f"--{option} applies to a cohort (-o OUTPUT_FOLDER); for one scan the format is the "
                             f"extension of -o {args.output!r}")


def run_cohort_command(args: argparse.Namespace, task) -> int:
    """Plan (every check before any work), run, report; the exit status."""
    from . import DEFAULT_JOBS, plan_cohort, run_cohort

    if getattr(args, "report", None):
        raise InputError("--report names one file; a cohort writes a report per scan (OUT_DIR/NAME.json) and "
                         "OUT_DIR/summary.csv: drop --report")
    task.check()  # a bad device or model name fails before the inputs are searched
    plan = plan_cohort(task, args.ct, args.output, args.format, args.part)
    progress = Progress(task.stage, mode=args.progress, cases=len(plan.part))
    results, lines = [], []
    for case in run_cohort(task, plan, progress, args.jobs or DEFAULT_JOBS):
        results.append(case)
        lines += [f"{case.name}: {w}" for w in case.warnings]
        if case.status == FAILED:
            lines.append(f"{case.name}: failed: {case.error}")
        if args.progress != "json":  # in json mode stdout holds only progress records
            progress.write(_case_line(case))
    counts = {status: sum(r.status == status for r in results) for status in ("done", SKIPPED, FAILED)}
    counts["warnings"] = sum(bool(r.warnings) for r in results)
    progress.result(output=str(plan.out_dir), warnings=lines, summary=str(plan.summary), cases=counts)
    if args.progress != "json":
        print(f"{len(results)} scan{'s' if len(results) != 1 else ''} into {plan.out_dir}: {counts['done']} done, {counts[SKIPPED]} skipped (done "
              f"before), {counts[FAILED]} failed; summary: {plan.summary}")
        if task.model_note.get("model_licence"):  # the weights' terms travel with every result they make
            print(f"model {task.model_note['model']}: {task.model_note['model_licence']}")
    print_warnings(task.stage, lines)
    return cohort_exit_status(results)


def _case_line(case) -> str:
    if case.status == FAILED:
        return f"{case.name}: failed: {case.error}"
    volumes = ", ".join(f"{k} {v:g}" for k, v in (case.volumes_ml or {}).items()) or "no organ found"
    what = "skipped (done before)" if case.status == SKIPPED else f"wrote {Path(case.output).name} in {case.seconds:.1f} s"
    return f"{case.name}: {what}; volumes (mL): {volumes}"


__all__ = ["add_cohort_arguments", "is_cohort_request", "refuse_cohort_options", "run_cohort_command"]
