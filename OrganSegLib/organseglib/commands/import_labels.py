"""``organseg import-labels MASKS --ct CT -o TRAINING_SET``: per-structure masks -> a training-set case.

MASKS is a folder with one mask per structure (3D-IRCADb ``liver.nii.gz``/``leftkidney``/... or
DICOM-series sub-folders, TotalSegmentator's output folder, or any names with ``--mapping``). The case
gets a CT-ORG label map and records the organs it annotates; the others are unknown there and ignored
by training. With ``--autolabel`` (and no MASKS) an unlabelled CT becomes a case annotating only the
auto-labelled lungs and bone. Rules: ``organseglib.label_import``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..atomic import check_outputs, make_output_folder, write_text_atomic
from ..errors import InputError
from ..jsonable import jsonable
from ..label_import import (BONE_GROUPS, DEFAULT_BONE_GROUPS, ImportConfig, autolabel_case, import_case,
                            read_mapping_file)
from ..result_warnings import print_warnings
from ..training_set import CT_MODES

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("import-labels", help="import per-structure masks (IRCAD, TotalSegmentator) as a training case",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("masks", nargs="?", default=None, help="folder of masks, one per structure")
    p.add_argument("--ct", required=True, help="the CT the masks belong to (file or DICOM folder)")
    p.add_argument("-o", "--output", required=True, help="training-set folder (created; manifest.json updated)")
    p.add_argument("--mapping", default=None, help='JSON file {"name": "liver" | "kidneys:left" | "bone:ribs" | '
                                                   '"background"} for other names')
    p.add_argument("--bone-groups", default=",".join(DEFAULT_BONE_GROUPS),
                   help="bone groups that must all be present for per-bone masks to annotate bone "
                        f"(from {','.join(BONE_GROUPS)}; default {','.join(DEFAULT_BONE_GROUPS)})")
    p.add_argument("--ct-mode", choices=CT_MODES, default="copy",
                   help="copy the CT into the folder (default) or reference it by absolute path")
    p.add_argument("--autolabel", action="store_true",
                   help="no masks: label lungs and bone by morphology and annotate only those")
    p.add_argument("--report", default=None, help="also write the import report as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.autolabel == (args.masks is not None):
        raise InputError("give either a MASKS folder or --autolabel (not both, not neither)")
    _check_outputs(args)
    if args.autolabel:
        entry, found = autolabel_case(args.ct, args.output, ct_mode=args.ct_mode)
        warnings = [str(w) for w in found.get("warnings", [])]
        report = {"annotated_organs": list(entry.annotated_organs or ()), "autolabel": found}
    else:
        mapping = read_mapping_file(args.mapping) if args.mapping else {}
        config = ImportConfig(mapping=mapping, required_bone_groups=tuple(args.bone_groups.split(",")))
        entry, imported = import_case(args.masks, args.ct, args.output, config, ct_mode=args.ct_mode)
        report = imported.report()
        for name, target in sorted(report["structures"].items()):
            print(f"  {name:28s} -> {target}")
        warnings = [f"{key}: only {', '.join(parts)} present; {key} is unknown in this case (not annotated)"
                    for key, parts in report["partial_not_annotated"].items()]
    report["case"] = entry.to_json()
    report["warnings"] = warnings
    print(f"case {entry.id} in {args.output}: annotates {', '.join(entry.annotated_organs or ()) or 'no organ'}")
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2, default=jsonable) + "\n")
    return print_warnings("import-labels", warnings)


def _check_outputs(args: argparse.Namespace) -> None:
    """The report and the output folder checked before any work: a report that cannot be written must
    not leave a half-added case behind, and the report may not replace the folder's manifest."""
    inputs = [args.ct, args.masks, args.mapping]
    folder = Path(args.output).expanduser().resolve()
    report_in_folder = bool(args.report) and Path(args.report).expanduser().resolve().parent == folder
    if report_in_folder and Path(args.report).name == "manifest.json":
        raise InputError(f"--report {args.report!r} would replace the training set's manifest; choose another name")
    if args.report and not report_in_folder:
        check_outputs({"--report": args.report}, inputs)
    make_output_folder(args.output, "-o/--output folder")
    if report_in_folder:  # its folder exists only now
        check_outputs({"--report": args.report}, inputs)
