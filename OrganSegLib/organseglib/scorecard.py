"""A scorecard over a whole set of cases: per-case scores and mean ± SD per organ (paper Table II).

The set is a training-set folder (``manifest.json``, with each case's ``annotated_organs``) or a CT-ORG
style folder (``volume-N`` / ``labels-N``, every organ annotated). Each case is scored only on the
organs its reference annotates (an organ a case does not annotate is unknown there: scoring it would
count a correct prediction as a false positive), intersected with the organs asked for. Predictions
come from a folder (``labels-N.nii.gz``, ``N.nii.gz`` or ``pred-N.nii.gz``, also ``.nrrd``/``.seg.nrrd``)
or from running ``segment_ct`` on each CT.

The summary follows the paper's Table II: one row per organ (lungs, liver, bone, kidneys, bladder), the
average Dice per CT volume in per cent, here with its sample SD and the number of cases behind it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .errors import MissingFileError, OutputExistsError
from .metrics import OrganScores, score_masks
from .organs import organ_by_key
from .volume import Volume

log = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]
TABLE_II_ORDER = ("lungs", "liver", "bone", "kidneys", "bladder")
PRED_PATTERNS = ("labels-{id}", "{id}", "pred-{id}")
PRED_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha")


@dataclass(frozen=True)
class SetCase:
    case_id: str
    volume: Path
    labels: Path
    annotated: tuple  # organ keys scored for this case
    file_id: str = ""  # the N of volume-N / labels-N (prediction files use it)


@dataclass(frozen=True)
class CaseScore:
    case_id: str
    organ: str  # key
    scores: OrganScores


def list_set(folder: PathLike, organs: Optional[Iterable[str]] = None) -> List[SetCase]:
    """The cases of a training-set or CT-ORG folder and the organs to score in each.

    Raises:
        MissingFileError / InputError: as ``training.dataset.find_cases``.
    """
    from .training.dataset import find_cases

    wanted = tuple(organ_by_key(o).key for o in organs) if organs else TABLE_II_ORDER
    from .training_set import read_manifest

    # a case is named by its manifest source up to the first ':' ("ircad1_07: ..."), else by its id
    names = {str(c.id): c.source.split(":", 1)[0].strip() for c in read_manifest(folder) if c.source.strip()}
    out = []
    for case in find_cases(folder):
        annotated = getattr(case, "annotated", None)
        keys = tuple(k for k in TABLE_II_ORDER if k in wanted and (annotated is None or k in annotated))
        name = names.get(str(case.case_id), "")
        label = name if name and " " not in name else str(case.case_id)
        out.append(SetCase(label, Path(case.volume), Path(case.labels), keys, str(case.case_id)))
    return out


def prediction_path(folder: PathLike, case_id: str) -> Path:
    """The prediction file of ``case_id`` in ``folder`` (names in ``PRED_PATTERNS``).

    Raises:
        MissingFileError: none of the names exists.
    """
    root = Path(folder)
    for pattern in PRED_PATTERNS:
        for ext in PRED_EXTENSIONS:
            path = root / (pattern.format(id=case_id) + ext)
            if path.exists():
                return path
    raise MissingFileError(f"no prediction for case {case_id!r} in {str(root)!r}: expected labels-{case_id}.nii.gz, "
                           f"{case_id}.nii.gz or pred-{case_id}.nii.gz (or .nrrd/.seg.nrrd)")


def score_case(pred: Volume, ref: Volume, case_id: str, organs: Sequence[str]) -> List[CaseScore]:
    """Scores of one case on ``organs`` (keys); the prediction must be on the reference grid."""
    ref.require_same_grid(pred, what=f"prediction of case {case_id!r}")
    out = []
    for key in organs:
        organ = organ_by_key(key)
        s = score_masks(pred.array == organ.value, ref.array == organ.value, ref.array_spacing, organ.name,
                        organ.value)
        out.append(CaseScore(case_id, key, s))
    return out


def score_set(cases: Sequence[SetCase], predict: Callable[[SetCase], Volume],
              progress: Optional[Callable[[float, str], None]] = None) -> List[CaseScore]:
    """Score every case with ``predict(case) -> labels Volume`` (on the case's CT grid)."""
    from .io import read_labels
    from .training.dataset import fold_ct_org_labels

    rows: List[CaseScore] = []
    for n, case in enumerate(cases):
        if progress is not None:
            progress(n / max(1, len(cases)), f"case {case.case_id}")
        ref = read_labels(case.labels)
        ref = ref.with_array(fold_ct_org_labels(ref.array, str(case.labels)))
        rows.extend(score_case(predict(case), ref, case.case_id, case.annotated))
    return rows


def from_folder(folder: PathLike) -> Callable[[SetCase], Volume]:
    from .io import read_labels

    def predict(case: SetCase) -> Volume:
        try:
            return read_labels(prediction_path(folder, case.case_id))
        except MissingFileError:
            if not case.file_id or case.file_id == case.case_id:
                raise
            return read_labels(prediction_path(folder, case.file_id))

    return predict


def from_model(model, config=None, device: str = "auto", save_dir: Optional[PathLike] = None) -> Callable[[SetCase], Volume]:
    """Segment each case's CT with ``segment_ct`` (``model``: a package path/name, a loaded
    ``(net, card)`` pair, or None for the bundled model); optionally keep the predictions."""
    from .io import read_ct, write_labels
    from .segment import _load, segment_ct

    loaded = model if isinstance(model, tuple) else None

    def predict(case: SetCase) -> Volume:
        nonlocal loaded
        if loaded is None:
            loaded = _load(model)
        labels = segment_ct(read_ct(case.volume), loaded, config, device)
        if save_dir is not None:
            target = Path(save_dir) / f"labels-{case.file_id or case.case_id}.nii.gz"
            if target.resolve() in (Path(case.labels).resolve(), Path(case.volume).resolve()):
                raise OutputExistsError(f"save_dir {str(save_dir)!r} would replace {str(target)!r}, an input of case "
                                        f"{case.case_id!r}; choose another folder (inputs are never overwritten)")
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            write_labels(labels, target)
        return labels

    return predict


def summary(rows: Sequence[CaseScore]) -> Dict[str, dict]:
    """Per organ (Table II order): number of cases scored, mean and sample SD of Dice (fractions), mean
    ASSD (mm), and ``both_empty``: cases left out because reference and prediction were both empty (an
    annotated organ absent from the scan and rightly not predicted; counting them as Dice 1 would
    inflate the mean). ``n`` counts only the cases in the mean; with none, the mean is NaN."""
    out = {}
    for key in TABLE_II_ORDER:
        organ_rows = [r for r in rows if r.organ == key]
        if not organ_rows:
            continue
        kept = [r for r in organ_rows if r.scores.status != "both empty"]
        dice = np.array([r.scores.dice for r in kept], float)
        assd = np.array([r.scores.assd_mm for r in kept], float)
        finite = assd[np.isfinite(assd)]
        out[key] = {"n": int(dice.size), "dice_mean": float(dice.mean()) if dice.size else math.nan,
                    "dice_sd": float(dice.std(ddof=1)) if dice.size > 1 else 0.0,
                    "assd_mm_mean": float(finite.mean()) if finite.size else math.inf,
                    "assd_mm_failed": int(assd.size - finite.size),
                    "both_empty": len(organ_rows) - len(kept)}
    return out


def format_scorecard(rows: Sequence[CaseScore]) -> str:
    """A per-case Dice table (``-`` = not annotated, not scored) and the Table II summary (Dice %)."""
    cases = list(dict.fromkeys(r.case_id for r in rows))
    organs = [k for k in TABLE_II_ORDER if any(r.organ == k for r in rows)]
    width = max([4] + [len(c) for c in cases]) + 2
    head = f"{'case':<{width}}" + "".join(f"{k:>10}" for k in organs)
    lines = ["Dice per case (- = organ not annotated in the reference, not scored; empty = reference and "
             "prediction both empty, not in the mean)", head, "-" * len(head)]
    by = {(r.case_id, r.organ): r.scores for r in rows}
    for case in cases:
        cells = [f"{'-':>10}" if (case, k) not in by else f"{'empty':>10}" if by[(case, k)].status == "both empty"
                 else f"{by[(case, k)].dice:10.3f}" for k in organs]
        lines.append(f"{case:<{width}}" + "".join(cells))
    lines += ["", "Table II layout: average Dice per CT volume (%), mean ± SD over the cases that annotate the organ",
              "(both empty = reference and prediction empty: left out of the mean)",
              f"{'organ':<10}{'n':>4}{'Dice % mean ± SD':>20}{'ASSD mm':>10}{'both empty':>12}"]
    for key, s in summary(rows).items():
        assd = "inf" if math.isinf(s["assd_mm_mean"]) else f"{s['assd_mm_mean']:.1f}"
        if s["n"]:
            dice = f"{100 * s['dice_mean']:>12.1f} ± {100 * s['dice_sd']:<5.1f}"
        else:
            dice, assd = f"{'-':>12}{'':8}", "-"
        lines.append(f"{key:<10}{s['n']:>4}{dice}{assd:>10}{s['both_empty']:>12}")
    return "\n".join(lines)


def _clean(x):
    return None if isinstance(x, float) and (math.isinf(x) or math.isnan(x)) else x


def scorecard_to_json(rows: Sequence[CaseScore]) -> str:
    data = {"cases": [{**{k: _clean(v) for k, v in asdict(r.scores).items()}, "case": r.case_id, "organ": r.organ}
                      for r in rows],
            "summary": {k: {kk: _clean(vv) for kk, vv in v.items()} for k, v in summary(rows).items()}}
    return json.dumps(data, indent=2) + "\n"


def scorecard_to_csv(rows: Sequence[CaseScore]) -> str:
    buf = io.StringIO()
    fields = ["case", "organ"] + list(OrganScores.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({**asdict(r.scores), "case": r.case_id, "organ": r.organ})  # organ: the key
    return buf.getvalue()
