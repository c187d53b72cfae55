"""Export a corrected case (CT + CT-ORG labels) to a training-set folder, CT-ORG layout.

One folder holds, for each case ``N``::

    volume-N.nii.gz   the CT on its own grid (HU, its own voxel type)
    labels-N.nii.gz   uint8 CT-ORG values (0 background, 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone)
                      on exactly the CT's grid
    manifest.json     {"cases": [{"id": N, "volume": "volume-N.nii.gz", "labels": "labels-N.nii.gz",
                                  "source": ..., "date": ISO-8601, "corrected_organs": [keys],
                                  "annotated_organs": [keys]}]}

``annotated_organs`` (optional) lists the organs the labels annotate; any other organ is *unknown* in
that case (not background) and the training loss ignores it (``losses``, marginal handling). A case
without the key annotates all five organs (CT-ORG, Slicer exports). ``volume`` may also be an absolute
path: an imported case can reference its CT instead of copying it (``add_case_files``).

This is the layout the CT-ORG dataset ships in, so ``organseg train --data DIR`` reads a CT-ORG
download and an exported folder alike. New cases take the next free id (one more than the largest
id in the manifest or among the files); an existing case is replaced only when asked explicitly.
Every file and the manifest are written atomically.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

import numpy as np

from .atomic import write_text_atomic
from .locks import exclusive_lock
from .errors import InputError, MissingFileError, OutputExistsError
from .organs import check_label_values, organ_by_key, parse_organ_list
from .volume import Volume

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
MANIFEST = "manifest.json"
# What a case file may be called, the one rule for the exporter and the training loader: CT-ORG's
# ``volume-N`` / ``labels-N`` (N a whole number) in a format the readers take.
CASE_FILE = re.compile(r"^(volume|labels)-(\d+)\.(nii\.gz|nii|nrrd|mha)$")


@dataclass(frozen=True)
class CaseFileName:
    """A parsed case file name: ``kind`` ``"volume"`` or ``"labels"``, ``id`` as written, ``ext``."""

    kind: str
    id: str
    ext: str

    @property
    def partner(self) -> str:
        """The name of the other file of the pair (``labels-7.nii.gz`` for ``volume-7.nii.gz``)."""
        return f"{'labels' if self.kind == 'volume' else 'volume'}-{self.id}.{self.ext}"


def parse_case_file(name: str) -> Optional[CaseFileName]:
    """The parts of a case file name (``CASE_FILE``), or None for any other file."""
    match = CASE_FILE.match(name)
    return CaseFileName(*match.groups()) if match else None


@dataclass(frozen=True)
class ManifestEntry:
    """One case of the manifest (the files of case ``id`` and where they came from). Not to be
    confused with ``training.dataset.TrainingCase``, a case's arrays loaded for training."""

    id: int
    volume: str
    labels: str
    source: str
    date: str
    corrected_organs: tuple
    annotated_organs: Optional[tuple] = None  # None: all organs annotated

    def to_json(self) -> dict:
        out = {"id": self.id, "volume": self.volume, "labels": self.labels, "source": self.source,
               "date": self.date, "corrected_organs": list(self.corrected_organs)}
        if self.annotated_organs is not None:
            out["annotated_organs"] = list(self.annotated_organs)
        return out


def volume_name(case_id: int) -> str:
    return f"volume-{case_id}.nii.gz"


def labels_name(case_id: int) -> str:
    return f"labels-{case_id}.nii.gz"


def read_manifest(folder: PathLike) -> List[ManifestEntry]:
    """Cases listed in ``folder/manifest.json`` (empty when there is no manifest).

    Raises:
        InputError: the manifest exists but is not the documented JSON.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        return []
    if not path.is_file():  # a FIFO would block the read for ever
        raise InputError(f"{str(path)!r} is not a regular file; a training set's manifest is a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [ManifestEntry(id=int(c["id"]), volume=str(c["volume"]), labels=str(c["labels"]),
                                 source=str(c.get("source", "")), date=str(c.get("date", "")),
                                 corrected_organs=tuple(c.get("corrected_organs", ())),
                                 annotated_organs=(None if c.get("annotated_organs") is None
                                                   else tuple(str(k) for k in c["annotated_organs"])))
                   for c in data["cases"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{str(path)!r} is not a training-set manifest ({exc!r}); it must be "
            '{"cases": [{"id": N, "volume": ..., "labels": ..., ...}]}. Fix or move it away.'
        ) from None
    for entry in entries:  # an unknown organ found now, not by the loss after the first checkpoint
        for field_name in ("annotated_organs", "corrected_organs"):
            for key in getattr(entry, field_name) or ():
                try:
                    organ_by_key(key)
                except InputError as exc:
                    raise InputError(f"{str(path)!r}: case {entry.id} ({entry.labels}): {field_name} names {exc}; "
                                     "fix the manifest") from None
    return entries


def used_case_ids(folder: PathLike) -> set:
    """Ids named in the manifest or by a ``volume-N``/``labels-N`` file in the folder."""
    ids = {case.id for case in read_manifest(folder)}
    folder = Path(folder)
    if folder.is_dir():
        for item in folder.iterdir():
            name = parse_case_file(item.name)
            if name is not None:
                ids.add(int(name.id))
    return ids


def next_case_id(folder: PathLike) -> int:
    """One more than the largest used id (0 for an empty folder); gaps are never reused, so a
    deleted case's id cannot be mistaken for a new one."""
    used = used_case_ids(folder)
    return max(used) + 1 if used else 0


def _unlisted_cases(folder: Path, listed: Iterable[ManifestEntry]) -> List[ManifestEntry]:
    """Entries for ``volume-N``/``labels-N`` pairs already in the folder but not in the manifest (e.g. a
    CT-ORG download): once a manifest exists the training loader reads only the manifest, so they
    must be listed or they would silently drop out of training."""
    known = {c.id for c in listed}
    found = []
    for item in sorted(folder.iterdir()) if folder.is_dir() else []:
        name = parse_case_file(item.name)
        if name is None or name.kind != "volume" or int(name.id) in known:
            continue
        case_id = int(name.id)
        labels = folder / name.partner
        if not labels.exists():
            log.warning("%s has no %s; not listed in the manifest", item, labels.name)
            continue
        stamp = _dt.datetime.fromtimestamp(item.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
        found.append(ManifestEntry(id=case_id, volume=item.name, labels=labels.name, source="existing file",
                                  date=stamp, corrected_organs=()))
        known.add(case_id)
    return found


def _write_manifest(folder: Path, cases: Iterable[ManifestEntry]) -> None:
    ordered = sorted(cases, key=lambda c: c.id)
    text = json.dumps({"cases": [c.to_json() for c in ordered]}, indent=2) + "\n"
    write_text_atomic(folder / MANIFEST, text)



LOCK_FILE = ".organseg-training-set.lock"
# written before the files of a new case, removed once the manifest lists it: a run killed in between
# leaves it, and the next writer (under the lock) deletes the files it names that the manifest lacks
JOURNAL = re.compile(r"^\.organseg-adding-(\d+)\.json$")


def journal_name(case_id: int) -> str:
    return f".organseg-adding-{case_id}.json"


def is_set_file_name(name: str) -> bool:
    """True for a name the training-set layout uses itself: ``volume-N``/``labels-N``, a case's kept
    ``structures-N`` (``extra_structures``), the manifest, the lock and the journal of a case being
    added (an output of another kind may not take it)."""
    from .extra_structures import STRUCTURES_FILE

    return (parse_case_file(name) is not None or name in (MANIFEST, LOCK_FILE) or JOURNAL.match(name) is not None
            or STRUCTURES_FILE.match(name) is not None)


def set_input_files(folder: PathLike) -> List[Path]:
    """The files of an existing training set that a call adding a case reads or must keep: the
    manifest, the lock, every case file the manifest names (also CTs referenced elsewhere) and every
    ``volume-N``/``labels-N`` in the folder. Empty when the folder does not exist."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    found = [root / MANIFEST, root / LOCK_FILE]
    with contextlib.suppress(InputError):
        for case in read_manifest(root):
            found += [root / case.volume, root / case.labels]  # an absolute volume stays absolute
    found += [item for item in root.iterdir() if is_set_file_name(item.name)]
    return [p for p in dict.fromkeys(found) if p.exists()]


@contextlib.contextmanager
def _folder_lock(folder: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """An exclusive lock on the training-set folder (released by the OS if the process dies); an
    interrupted add (its journal left behind) is undone first."""
    with exclusive_lock(folder / LOCK_FILE, f"training-set folder {str(folder)!r}", wait_s=timeout_s):
        _undo_interrupted_adds(folder)
        yield


def _undo_interrupted_adds(folder: Path) -> List[Path]:
    """Delete the files of cases whose add was killed before the manifest listed them (under the lock)."""
    journals = [item for item in folder.iterdir() if JOURNAL.match(item.name)]
    if not journals:
        return []
    listed = set()
    for case in read_manifest(folder):
        listed |= {(folder / case.volume).resolve(), (folder / case.labels).resolve()}
    removed = []
    for journal in journals:
        try:
            names = json.loads(journal.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            names = []
        for name in names:
            path = folder / Path(str(name)).name  # only files of this folder, whatever the journal says
            if path.resolve() not in listed and path.exists() and parse_case_file(path.name) is not None:
                path.unlink()
                removed.append(path)
                log.warning("removed %s, left by an interrupted import (not in the manifest)", path)
        journal.unlink()
    return removed


def _commit_case(folder: Path, entry: ManifestEntry, writers: list) -> None:
    """Write a case's files (``[(name, write(path))]``, each atomic) and then the manifest listing it,
    with a journal around them so that a kill in between leaves no orphan (``_undo_interrupted_adds``)."""
    journal = folder / journal_name(entry.id)
    write_text_atomic(journal, json.dumps({"id": entry.id, "files": [name for name, _ in writers]}) + "\n")
    for name, write in writers:
        write(folder / name)
    cases = [c for c in read_manifest(folder) if c.id != entry.id]
    _write_manifest(folder, cases + _unlisted_cases(folder, cases + [entry]) + [entry])
    journal.unlink()


@contextlib.contextmanager
def _made_folder(folder: Path) -> Iterator[None]:
    """Create ``folder`` (and parents) for the block; if the block fails, remove what it created while
    it holds nothing but the lock (a refused or failed add leaves no empty folder behind)."""
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in created:  # the deepest first
            with contextlib.suppress(OSError):
                (path / LOCK_FILE).unlink(missing_ok=True)
                path.rmdir()
        raise


def export_training_case(
    ct: Volume,
    labels: Volume,
    folder: PathLike,
    source: str,
    corrected_organs: Iterable[str] = (),
    case_id: Optional[int] = None,
    overwrite: bool = False,
    date: Optional[str] = None,
    create: bool = True,
) -> ManifestEntry:
    """Add one (CT, labels) pair to a training-set folder and its manifest.

    Args:
        ct: the CT in HU on its own grid (written with its own voxel type).
        labels: CT-ORG label values on exactly the CT's grid.
        folder: the training-set folder.
        source: where the case came from (file path, Slicer node name, DICOM UID).
        corrected_organs: organ keys/names whose labels a person corrected (stored as keys).
        case_id: the id to write; default the next free id.
        overwrite: allow replacing case ``case_id`` when it exists (never implied).
        date: ISO-8601 timestamp; default now, in UTC.
        create: create ``folder`` when it does not exist.

    Returns:
        The manifest entry written.

    Raises:
        GeometryError: ``labels`` are not on the CT's grid.
        LabelValueError: ``labels`` hold values outside the organ table.
        OutputExistsError: case ``case_id`` exists and ``overwrite`` is False.
        InputError: a negative ``case_id``, or ``overwrite`` without ``case_id``.
        MissingFileError: ``folder`` does not exist and ``create`` is False.
    """
    ct.require_same_grid(labels, what="labels to export")
    check_label_values(labels.array, "labels to export")
    corrected = [str(o) for o in corrected_organs]
    organs = tuple(o.key for o in parse_organ_list(corrected)) if corrected else ()
    folder = Path(folder).expanduser()
    if not folder.is_dir() and not create:
        raise MissingFileError(f"training-set folder {str(folder)!r} does not exist; create it or pass create=True")
    if case_id is None and overwrite:
        raise InputError("overwrite=True needs the case_id to replace; a new case never overwrites anything")
    if case_id is not None and (int(case_id) != case_id or case_id < 0):
        raise InputError(f"case_id must be a whole number >= 0; got {case_id!r}")
    # two exports at once (two Slicers, a script) must not pick the same id
    with _made_folder(folder), _folder_lock(folder):
        return _add_case_locked(ct, labels, folder, source, organs, case_id, overwrite, date)


def _add_case_locked(ct: Volume, labels: Volume, folder: Path, source: str, organs: tuple, case_id: Optional[int],
                     overwrite: bool, date: Optional[str]) -> ManifestEntry:
    from .io import write_labels, write_volume

    case_id = next_case_id(folder) if case_id is None else int(case_id)
    if case_id in used_case_ids(folder) and not overwrite:
        raise OutputExistsError(
            f"case {case_id} already exists in {str(folder)!r} ({volume_name(case_id)} / manifest); "
            "pass overwrite=True to replace it, or leave case_id empty to add a new case"
        )
    entry = ManifestEntry(
        id=case_id, volume=volume_name(case_id), labels=labels_name(case_id), source=str(source),
        date=date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        corrected_organs=organs,
    )
    labels = labels.with_array(np.asarray(labels.array).astype(np.uint8))
    _commit_case(folder, entry, [(entry.volume, lambda path: write_volume(ct, path)),
                                 (entry.labels, lambda path: write_labels(labels, path))])
    log.info("training case %d written to %s (%s)", case_id, folder, ", ".join(organs) or "no organ corrected")
    return entry


CT_MODES = ("copy", "reference")


def add_case_files(ct_path: PathLike, labels: Volume, folder: PathLike, source: str,
                   annotated_organs: Iterable[str], ct_mode: str = "copy", case_id: Optional[int] = None,
                   date: Optional[str] = None, ct: Optional[Volume] = None,
                   structures: Optional[Volume] = None) -> ManifestEntry:
    """Add a case whose CT is a file already on disk: copied byte for byte (``ct_mode="copy"``; a
    ``.nii.gz`` file is copied as is, any other format or a DICOM folder is converted to
    ``volume-N.nii.gz`` without changing a voxel) or referenced by its absolute path
    (``"reference"``). The CT is never modified. ``labels`` must be on the CT's grid. ``ct``: the CT
    already read from ``ct_path`` (and checked) by the caller, so it is not read again. ``structures``:
    the case's extra structures (``label_import.structures_from_masks``), written as
    ``structures-N.nii.gz`` with the case's other files.

    Raises:
        InputError: an unknown ``ct_mode`` or organ key; GeometryError: labels off the CT grid;
        OutputExistsError: ``case_id`` exists.
    """
    import shutil

    from .atomic import atomic_path
    from .io import read_ct, write_labels, write_volume

    if ct_mode not in CT_MODES:
        raise InputError(f"ct_mode must be one of {CT_MODES}; got {ct_mode!r}")
    ct_path = Path(ct_path).expanduser().resolve()
    if ct is None:
        ct = read_ct(ct_path, check=False)
    ct.require_same_grid(labels, what="imported labels")
    check_label_values(labels.array, "imported labels")
    if structures is not None:
        ct.require_same_grid(structures, what="the structures map")
    annotated = [str(o) for o in annotated_organs]
    if not annotated:
        raise InputError(f"the case from {str(ct_path)!r} annotates no organ: it would teach the network nothing "
                         "and claim nothing; name the masks' organs (e.g. with --mapping)")
    organs = tuple(o.key for o in parse_organ_list(annotated))
    folder = Path(folder).expanduser()
    labels = labels.with_array(np.asarray(labels.array).astype(np.uint8))

    def copy_ct(path: Path) -> None:
        if ct_path.is_file() and ct_path.name.lower().endswith(".nii.gz"):
            with atomic_path(path) as tmp:
                shutil.copyfile(ct_path, tmp)
        else:
            write_volume(ct, path)

    with _made_folder(folder), _folder_lock(folder):
        cid = next_case_id(folder) if case_id is None else int(case_id)
        if cid in used_case_ids(folder):
            raise OutputExistsError(f"case {cid} already exists in {str(folder)!r}; leave case_id empty to add a new case")
        volume = str(ct_path) if ct_mode == "reference" else volume_name(cid)
        entry = ManifestEntry(id=cid, volume=volume, labels=labels_name(cid), source=str(source),
                             date=date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             corrected_organs=(), annotated_organs=organs)
        writers = [] if ct_mode == "reference" else [(volume, copy_ct)]
        writers.append((entry.labels, lambda path: write_labels(labels, path)))
        if structures is not None:  # not a label map of organs: written as a plain uint8 volume
            from .extra_structures import structures_name

            writers.append((structures_name(cid), lambda path: write_volume(structures, path)))
        _commit_case(folder, entry, writers)
    log.info("imported case %d into %s (annotates %s)", cid, folder, ", ".join(organs) or "no organ")
    return entry
