"""``organseg segment CT -o OUT``: one-click five-organ segmentation of a CT.

By default hybrid: lungs and bone from the morphological auto-labelers (more accurate than the
network in the paper, section VI-C), liver, kidneys and bladder from the network (the bundled demo
model unless ``--model``), each cleaned to its plausible components. Writes ``.nii.gz``, ``.nrrd``, a
Slicer ``.seg.nrrd`` (names, colours, terminology) or, for a DICOM series input, a DICOM SEG ``.dcm``
referencing that series; atomically; never overwrites its input.

``organseg segment IN_DIR -o OUT_DIR`` (or a list file, or several scans: shell globs) segments a
cohort: every CT file and DICOM series into OUT_DIR/NAME.<--format>, the model loaded once, finished
scans skipped (a killed run resumes), ``--part I/N`` for one of N machines, a report per scan and
OUT_DIR/summary.csv (``organseglib.cohort``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

from ..atomic import check_outputs, double_suffix, write_text_atomic
from ..cli import add_progress_argument
from ..cohort.command import add_cohort_arguments, is_cohort_request, refuse_cohort_options, run_cohort_command
from ..cohort.jobs import SegmentTask, segment_scan, write_segment_labels
from ..devices import DEVICE_HELP, parse_device, resolve_device
from ..dicom_seg import check_dicom_seg_request, is_dicom_seg_path
from ..io import LABEL_EXTENSIONS, read_ct
from ..errors import InputError, UnsupportedFormatError
from ..progress import Progress
from ..model_package import read_card, resolve_model
from ..result_warnings import print_warnings
from ..segment import MIRROR_AXES, SegmentConfig

log = logging.getLogger(__name__)
# The options' defaults are SegmentConfig's (one place for them; Testing checks they agree).
DEFAULTS = {f.name: f.default for f in dataclasses.fields(SegmentConfig)}


def register(sub) -> None:
    p = sub.add_parser("segment", help="segment lungs, liver, bone, kidneys and bladder in a CT",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ct", nargs="+", metavar="CT",
                   help="CT image (.nii.gz, .nrrd, .mha, DICOM folder); for a cohort: a folder of them, a list file "
                        "(.txt, one path per line) or several (shell globs)")
    p.add_argument("-o", "--output", required=True,
                   help="label output: .nii.gz, .nrrd, .seg.nrrd, or .dcm (DICOM SEG; the input must be a DICOM "
                        "series folder); for a cohort: the output folder (created)")
    p.add_argument("--model", default=None,
                   help="model package folder or name (default: the bundled 'real' model, phantoms + real CT, non-commercial weights; 'demo': phantoms only)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--overlap", type=float, default=DEFAULTS["overlap"],
                   help="tile overlap fraction (default %(default)s)")
    p.add_argument("--organs", default=",".join(DEFAULTS["organs"]),
                   help="comma-separated organs to output (default: %(default)s)")
    p.add_argument("--autolabel-organs", default=",".join(DEFAULTS["autolabel_organs"]),
                   help="organs taken from the morphological auto-labelers (default: %(default)s; '' for none)")
    p.add_argument("--network-only", action="store_true", help="every organ from the network (no auto-labelers)")
    p.add_argument("--no-clean", action="store_true", help="keep every component the network predicts")
    p.add_argument("--no-anatomy", action="store_true",
                   help="clean by component counts only, not by where organs lie (liver on the right, one "
                        "kidney per side, bladder below the lungs): for situs inversus")
    p.add_argument("--tile", default=None, metavar="K,J,I",
                   help="network input size overriding the model card's (multiples of 8), e.g. 160,120,128")
    p.add_argument("--weighting", choices=["uniform", "gaussian"], default=DEFAULTS["weighting"],
                   help="how overlapping tiles are averaged (default %(default)s; uniform is the paper's)")
    p.add_argument("--mirror", action="store_true",
                   help="test-time mirroring left-right: each tile is also predicted mirrored and the two "
                        "averaged, the liver (one-sided) from the plain pass; twice the network's time. Held "
                        "out on two real scans: kidneys -0.02 to +0.08 Dice, a little bladder, liver unchanged "
                        "(EXPERIMENTS.md, issue 22)")
    p.add_argument("--report", default=None,
                   help="also write volumes and the plausibility check (organseglib.plausibility) as JSON here")
    add_cohort_arguments(p, SegmentTask.formats, SegmentTask.default_format)
    add_progress_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if is_cohort_request(args.ct, args.output):
        return run_cohort_command(args, SegmentTask(args.model, segment_config(args), parse_device(args.device)))
    refuse_cohort_options(args)
    args.ct = args.ct[0]
    if is_dicom_seg_path(args.output):
        check_dicom_seg_request(args.output, args.ct)  # a DICOM series input, checked before any work
    elif double_suffix(args.output) not in LABEL_EXTENSIONS:
        raise UnsupportedFormatError(f"cannot write {args.output!r}: use one of {', '.join(LABEL_EXTENSIONS)} "
                                     "or .dcm (DICOM SEG, for a DICOM series input)")
    config = segment_config(args)
    model, device = args.model, parse_device(args.device)
    if config.network_organs:  # the package (and every file in it) is an input: found before the check
        model = resolve_model(args.model)
    check_outputs({"-o/--output": args.output, "--report": args.report},
                  [args.ct, model if config.network_organs else None])  # before any work, not after it
    model_note = {}
    if config.network_organs:  # a bad device or model fails now, not after reading the CT
        resolve_device(device)
        card = read_card(model)[0]
        model_note = {"model": card.name, "model_licence": card.weights_licence}
    progress = Progress("segment", mode=args.progress)
    start = time.perf_counter()
    progress(0.0, f"reading {args.ct}")
    ct = read_ct(args.ct)
    result = segment_scan(ct, model, config, device, progress.sub(0.05, 0.97), model_note)
    progress(0.98, f"writing {args.output}")
    write_segment_labels(result, args.output, args.ct, ct, config)
    seconds = time.perf_counter() - start
    volumes, warnings = result.volumes_ml, list(result.warnings)
    if args.report:
        write_text_atomic(args.report, json.dumps({"output": str(args.output), "seconds": round(seconds, 2),
                                                   **result.report}, indent=2) + "\n")
    progress.result(output=str(args.output), seconds=round(seconds, 2), volumes_ml=volumes,
                    warnings=warnings, **result.record)
    if args.progress != "json":
        print(f"wrote {args.output} in {seconds:.1f} s; volumes (mL): "
              + (", ".join(f"{k} {v:g}" for k, v in volumes.items()) or "no organ found"))
        if model_note.get("model_licence"):  # the weights' terms travel with every result they make
            print(f"model {model_note['model']}: {model_note['model_licence']}")
        for moved in result.reassignments:
            print(f"hybrid: {moved}")  # Reassignment.__str__: "ML mL FROM -> TO (WHY)"
    return print_warnings("segment", warnings)


def segment_config(args: argparse.Namespace) -> SegmentConfig:
    """The ``SegmentConfig`` of the parsed options (their defaults are SegmentConfig's)."""
    return SegmentConfig(
        organs=args.organs, autolabel_organs=() if args.network_only else args.autolabel_organs,
        clean=not args.no_clean, anatomy=not args.no_anatomy, overlap=args.overlap, weighting=args.weighting,
        tile_shape=_tile(args.tile), flip_axes=MIRROR_AXES if args.mirror else ())


def _tile(text):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--tile must be three integers K,J,I (multiples of 8); got {text!r}") from None
