"""``organseg autolabel CT -o LABELS``: lungs and bone labels by morphology, with no training (paper III)."""

from __future__ import annotations

import argparse
import json
import logging

from .. import cli
from ..atomic import check_outputs, double_suffix, write_text_atomic
from ..autolabel import SUPPORTED, autolabel_with_report
from ..errors import UnsupportedFormatError
from ..jsonable import jsonable
from ..memory import tune_for_one_command
from ..io import LABEL_EXTENSIONS, read_ct, read_labels, write_labels
from ..organs import parse_organ_list
from ..progress import Progress
from ..result_warnings import print_warnings

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("autolabel", help="label lungs and bone by thresholds and morphology (no network)",
                       description=__doc__)
    p.add_argument("ct", help="CT in HU (.nii.gz, .nrrd, .mha or a DICOM folder)")
    p.add_argument("-o", "--output", required=True, help="labels to write (.nii.gz, .nrrd or .seg.nrrd)")
    p.add_argument("--organs", default=",".join(SUPPORTED),
                   help=f"comma-separated subset of {','.join(SUPPORTED)} (default: both)")
    p.add_argument("--ignore", default=None,
                   help="labels already drawn (same grid): their non-zero voxels are left as they are and "
                        "copied into the output")
    p.add_argument("--report", default=None, help="also write what was found (volumes, warnings) as JSON here")
    cli.add_progress_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if double_suffix(args.output) not in LABEL_EXTENSIONS:
        raise UnsupportedFormatError(f"cannot write {args.output!r}: use one of {', '.join(LABEL_EXTENSIONS)}")
    # every output checked before any work: a report that cannot be written must not leave labels behind
    check_outputs({"-o/--output": args.output, "--report": args.report}, [args.ct, args.ignore])
    tune_for_one_command()  # this process exits after the command: small pages, reused (memory.py)
    progress = Progress("autolabel", mode=args.progress)
    ct = read_ct(args.ct)
    ignore = read_labels(args.ignore, reference=ct) if args.ignore else None
    labels, report = autolabel_with_report(ct, args.organs, ignore_mask=ignore, progress=progress)
    if ignore is not None:  # keep the labels already drawn
        keep = ignore.array != 0
        labels = labels.with_array(labels.array.copy())
        labels.array[keep] = ignore.array[keep]
    write_labels(labels, args.output, organs=parse_organ_list(args.organs))
    organs = {k: v for k, v in report.items() if isinstance(v, dict)}  # report["warnings"] gathers them all
    if args.progress != "json":  # in json mode stdout holds only progress records
        for organ, found in organs.items():
            print(f"{organ:6s} {found['ml']:9.1f} mL")
    report = json.loads(json.dumps(report, default=jsonable))  # numpy values -> plain JSON
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2))
    warnings = list(report.get("warnings", []))  # "organ: message", one per warning
    progress.result(output=str(args.output), warnings=warnings,
                    volumes_ml={k: float(v["ml"]) for k, v in organs.items()}, report=report)
    return print_warnings("autolabel", warnings)

