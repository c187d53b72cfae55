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

from ..atomic import check_outputs, write_text_atomic
from ..errors import InputError, OutputExistsError
from ..jsonable import jsonable
from ..label_import import (BONE_GROUPS, DEFAULT_BONE_GROUPS, OVERLAP_RULES, ImportConfig, autolabel_case,
                            import_case, read_mapping_file)
from ..result_warnings import print_warnings
from ..training_set import CT_MODES, is_set_file_name, set_input_files

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("import-labels", help="import per-structure masks (IRCAD, TotalSegmentator) as a training case",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("masks", nargs="?", default=None, help="folder of masks, one per structure")
    p.add_argument("--ct", required=True, help="the CT the masks belong to (file or DICOM folder)")
    p.add_argument("-o", "--output", required=True, help="training-set folder (created; manifest.json updated)")
    p.add_argument("--mapping", default=None, help='JSON file {"name": "liver" | "kidneys:left" | "bone:ribs" | '
                                                   '"background"} for other names; a file holding several '
                                                   'structures by value: {"name": {"1": "liver", "2": "bladder"}}')
    p.add_argument("--overlap", choices=OVERLAP_RULES, default=None,
                   help="masks of two organs sharing voxels are refused; 'first' lets the mask listed first (by file "
                        "name) keep them, 'last' the last one; the report lists every overlap")
    p.add_argument("--bone-groups", default=",".join(DEFAULT_BONE_GROUPS),
                   help="bone groups that must all be present for per-bone masks to annotate bone "
                        f"(from {','.join(BONE_GROUPS)}; default {','.join(DEFAULT_BONE_GROUPS)})")
    p.add_argument("--ct-mode", choices=CT_MODES, default="copy",
                   help="copy the CT into the folder (default) or reference it by absolute path")
    p.add_argument("--autolabel", action="store_true",
                   help="no masks: label lungs and bone by morphology and annotate only those")
    p.add_argument("--keep-structures", action="store_true",
                   help="also keep the spleen and vessel masks (spleen, artery/aorta, portal vein, veins) as "
                        "structures-N.nii.gz: training shows them at other contrast phases' HU "
                        "(organseglib.training.phase_augment)")
    p.add_argument("--report", default=None, help="also write the import report as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.autolabel == (args.masks is not None):
        raise InputError("give either a MASKS folder or --autolabel (not both, not neither)")
    if args.autolabel and args.keep_structures:
        raise InputError("--keep-structures keeps masks of a MASKS folder; --autolabel has none")
    _check_outputs(args)
    if args.autolabel:
        entry, found = autolabel_case(args.ct, args.output, ct_mode=args.ct_mode)
        warnings = [str(w) for w in found.get("warnings", [])]
        report = {"annotated_organs": list(entry.annotated_organs or ()), "autolabel": found}
    else:
        mapping = read_mapping_file(args.mapping) if args.mapping else {}
        config = ImportConfig(mapping=mapping, required_bone_groups=tuple(args.bone_groups.split(",")),
                              overlap=args.overlap)
        entry, imported = import_case(args.masks, args.ct, args.output, config, ct_mode=args.ct_mode,
                                      keep_structures=args.keep_structures)
        report = imported.report()
        for name, target in sorted(report["structures"].items()):
            print(f"  {name:28s} -> {target}")
        warnings = [f"{key}: only {', '.join(parts)} present; {key} is unknown in this case (not annotated)"
                    for key, parts in report["partial_not_annotated"].items()]
        warnings += [f"masks {o['masks'][0]} and {o['masks'][1]} overlap on {o['voxels']} voxels; {o['kept']} kept them "
                     f"(--overlap {args.overlap})" for o in report["overlaps"]]
    report["case"] = entry.to_json()
    report["warnings"] = warnings
    print(f"case {entry.id} in {args.output}: annotates {', '.join(entry.annotated_organs or ()) or 'no organ'}"
          + (f"; keeps {', '.join(report['kept_structures']) or 'no extra structure'}" if args.keep_structures else ""))
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2, default=jsonable) + "\n")
    return print_warnings("import-labels", warnings)


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output checked against every input before any work, creating nothing (the set folder is
    made when the case is written): the CT, the mask folder, the mapping file and the set's existing
    files (manifest, lock, cases) are inputs; ``-o`` may not be or lie inside an input folder; the
    report may not take a name of the set's own layout (``volume-N``, ``labels-N``, the manifest)."""
    folder = Path(args.output).expanduser()
    if args.report and Path(args.report).expanduser().resolve().parent == folder.resolve() \
            and is_set_file_name(Path(args.report).name):
        raise OutputExistsError(f"--report {args.report!r} takes a name the training set uses for its own files "
                                "(volume-N, labels-N, manifest.json, its lock); choose another name, e.g. "
                                f"{str(folder / 'import-report.json')!r}")
    inputs = [args.ct, args.masks, args.mapping, *set_input_files(folder)]
    check_outputs({"--report": args.report}, inputs, folders={"-o/--output": args.output})
