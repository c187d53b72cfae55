"""``organseg autolabel CT -o LABELS``: lungs and bone labels by morphology, with no training (paper III).

``organseg autolabel IN_DIR -o OUT_DIR`` (or a list file, or several scans) labels a cohort, as
``organseg segment`` does (``organseglib.cohort``): finished scans skipped, ``--part I/N``, a report per
scan and OUT_DIR/summary.csv.
"""

from __future__ import annotations

import argparse
import json
import logging

from .. import cli
from ..atomic import check_outputs, double_suffix, write_text_atomic
from ..autolabel import SUPPORTED
from ..cohort.command import add_cohort_arguments, is_cohort_request, refuse_cohort_options, run_cohort_command
from ..cohort.jobs import AutolabelTask, autolabel_scan, write_autolabel_labels
from ..errors import InputError, UnsupportedFormatError
from ..memory import tune_for_one_command
from ..io import LABEL_EXTENSIONS, read_ct, read_labels
from ..progress import Progress
from ..result_warnings import print_warnings

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("autolabel", help="label lungs and bone by thresholds and morphology (no network)",
                       description=__doc__)
    p.add_argument("ct", nargs="+", metavar="CT",
                   help="CT in HU (.nii.gz, .nrrd, .mha or a DICOM folder); for a cohort: a folder of them, a list "
                        "file (.txt, one path per line) or several (shell globs)")
    p.add_argument("-o", "--output", required=True,
                   help="labels to write (.nii.gz, .nrrd or .seg.nrrd); for a cohort: the output folder (created)")
    p.add_argument("--organs", default=",".join(SUPPORTED),
                   help=f"comma-separated subset of {','.join(SUPPORTED)} (default: both)")
    p.add_argument("--ignore", default=None,
                   help="labels already drawn (same grid): their non-zero voxels are left as they are and "
                        "copied into the output")
    p.add_argument("--report", default=None, help="also write what was found (volumes, warnings) as JSON here")
    add_cohort_arguments(p, AutolabelTask.formats, AutolabelTask.default_format)
    cli.add_progress_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if is_cohort_request(args.ct, args.output):
        if args.ignore:
            raise InputError("--ignore names labels of one scan; a cohort cannot take it: label those scans one by one")
        tune_for_one_command()  # this process exits after the command: small pages, reused (memory.py)
        return run_cohort_command(args, AutolabelTask(args.organs))
    refuse_cohort_options(args)
    args.ct = args.ct[0]
    if double_suffix(args.output) not in LABEL_EXTENSIONS:
        raise UnsupportedFormatError(f"cannot write {args.output!r}: use one of {', '.join(LABEL_EXTENSIONS)}")
    # every output checked before any work: a report that cannot be written must not leave labels behind
    check_outputs({"-o/--output": args.output, "--report": args.report}, [args.ct, args.ignore])
    tune_for_one_command()  # this process exits after the command: small pages, reused (memory.py)
    progress = Progress("autolabel", mode=args.progress)
    ct = read_ct(args.ct)
    ignore = read_labels(args.ignore, reference=ct) if args.ignore else None
    result = autolabel_scan(ct, args.organs, ignore, progress)
    write_autolabel_labels(result, args.output, args.organs)
    if args.progress != "json":  # in json mode stdout holds only progress records
        for organ, ml in result.volumes_ml.items():
            print(f"{organ:6s} {ml:9.1f} mL")
    if args.report:
        write_text_atomic(args.report, json.dumps(result.report, indent=2))
    warnings = list(result.warnings)  # "organ: message", one per warning
    progress.result(output=str(args.output), warnings=warnings, volumes_ml=result.volumes_ml, report=result.report)
    return print_warnings("autolabel", warnings)

