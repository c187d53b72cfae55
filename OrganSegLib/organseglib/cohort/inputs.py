"""The scans of a cohort: what a folder, a list file or a glob holds, their output names, and parts.

``find_scans(sources)`` expands each source, in order:

* a CT file (``.nii.gz``, ``.nii``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``; not ``.seg.nrrd``): itself;
* a folder holding DICOM files (a series folder): itself, one scan;
* any other folder: its CT files (top level only, so an output or training-set folder kept inside it
  is not swept in) and every DICOM series folder below it (at any depth);
* a text file (``.txt``, ``.list``, ``.lst``): one path per line (relative to the list's folder;
  blank lines and ``#`` comments skipped), each expanded as above;
* a pattern the shell left unexpanded (``'scans/*.nrrd'``): what ``glob`` finds.

Each scan gets a name: the file name without its image extension, or, for a DICOM series folder, its
path below the folder given, parts joined by ``_`` (``patient7/CT`` -> ``patient7_CT``). Outputs are
``OUT_DIR/NAME.<format>``, so two scans of one name would write one file: that is refused before any
work (rename one, or run them into two output folders).

``select_part(scans, "I/N")`` is nnU-Net's split (``-num_parts N -part_id I``): the scans sorted by
name, every N-th from the I-th. Parts 1..N of one cohort cover each scan exactly once, whatever
machine or scheduler runs them.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..atomic import double_suffix
from ..errors import InputError, MissingFileError, UnsupportedFormatError
from ..io import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
LIST_EXTENSIONS = (".txt", ".list", ".lst")
_DICOM_MAGIC_OFFSET = 128  # DICOM Part 10 files: a 128-byte preamble, then "DICM"
_DICOM_PROBE_FILES = 5  # files looked at per folder to decide whether it holds DICOM


@dataclass(frozen=True)
class Scan:
    """One input of a cohort.

    Attributes:
        name: the output name stem (``ct_001``), unique in the cohort.
        path: the CT file or DICOM series folder.
        dicom: True for a DICOM series folder.
    """

    name: str
    path: Path
    dicom: bool = False

    def output(self, out_dir: PathLike, extension: str) -> Path:
        """``OUT_DIR/NAME<extension>`` (extension with its dot: ``.nii.gz``)."""
        return Path(out_dir) / f"{self.name}{extension}"


def is_list_file(path: PathLike) -> bool:
    return Path(path).suffix.lower() in LIST_EXTENSIONS and Path(path).is_file()


def is_ct_file(path: Path) -> bool:
    """A file whose extension a CT reader takes (``.seg.nrrd`` and hidden/temporary files excluded)."""
    ext = double_suffix(path)
    return (path.is_file() and not path.name.startswith(".") and ext != ".seg.nrrd"
            and ext in IMAGE_EXTENSIONS)


def holds_dicom(folder: Path) -> bool:
    """True when one of the first files of ``folder`` is a DICOM file (``.dcm`` or the ``DICM`` mark)."""
    try:
        files = sorted((e for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")),
                       key=lambda e: e.name)
    except OSError:
        return False
    for entry in files[:_DICOM_PROBE_FILES]:
        if entry.name.lower().endswith(".dcm"):
            return True
        try:
            with open(entry.path, "rb") as fh:
                fh.seek(_DICOM_MAGIC_OFFSET)
                if fh.read(4) == b"DICM":
                    return True
        except OSError:
            continue
    return False


def _strip_extension(name: str) -> str:
    ext = double_suffix(name)
    return name[: len(name) - len(ext)] if ext else name


def _folder_scans(folder: Path) -> list[Scan]:
    """The CT files at the top of ``folder`` and the DICOM series folders anywhere below it."""
    scans = [Scan(_strip_extension(p.name), p) for p in sorted(folder.iterdir()) if is_ct_file(p)]
    for root, dirs, _ in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            sub = Path(root) / d
            if holds_dicom(sub):
                scans.append(Scan("_".join(sub.relative_to(folder).parts), sub, dicom=True))
    return scans


def _expand(source: PathLike, from_list: bool = False) -> list[Scan]:
    path = Path(os.path.abspath(Path(source).expanduser()))  # reports name scans wherever they are read from
    if not path.exists():
        matches = sorted(glob.glob(str(path))) if glob.has_magic(str(path)) else []
        if matches:
            return [s for m in matches for s in _expand(m, from_list)]
        raise MissingFileError(f"input {str(source)!r} does not exist; check the path"
                               + (" (paths in a list file are relative to the list's folder)" if from_list else ""))
    if path.is_dir():
        if holds_dicom(path):
            return [Scan(path.name, path, dicom=True)]
        return _folder_scans(path)
    if is_list_file(path) and not from_list:
        return [s for line in _list_lines(path) for s in _expand(path.parent / line, from_list=True)]
    if not is_ct_file(path):
        raise UnsupportedFormatError(
            f"input {str(source)!r} is not a CT file: use {', '.join(IMAGE_EXTENSIONS)}, a DICOM series "
            f"folder, a folder of them, or a list file ({', '.join(LIST_EXTENSIONS)}) naming one per line")
    return [Scan(_strip_extension(path.name), path)]


def _list_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the list file {str(path)!r} ({exc}); give one path per line") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def find_scans(sources: Sequence[PathLike]) -> list[Scan]:
    """Every scan the sources name (see the module doc), once each, sorted by name.

    Raises:
        MissingFileError: a source does not exist.
        UnsupportedFormatError: a source file is not a CT file or a list file.
        InputError: no scan at all, or two scans that would write one output name.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    seen: dict[Path, Scan] = {}
    for source in sources:
        for scan in _expand(source):
            seen.setdefault(scan.path.resolve(), scan)  # the same scan named twice runs once
    scans = sorted(seen.values(), key=lambda s: s.name)
    if not scans:
        raise InputError(f"no CT scan found in {', '.join(repr(str(s)) for s in sources)}: expected files ending in "
                         f"{', '.join(IMAGE_EXTENSIONS)} or DICOM series folders")
    by_name: dict[str, Scan] = {}
    for scan in scans:
        other = by_name.setdefault(scan.name.lower(), scan)  # case-folded: one file on macOS and Windows
        if other is not scan:
            raise InputError(f"two inputs would write the same output name {scan.name!r}: {str(other.path)!r} and "
                             f"{str(scan.path)!r}; rename one, or segment them into two output folders")
    return scans


def parse_part(text: Optional[str]) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with 1 <= I <= N; None -> ``(1, 1)``.

    Raises:
        InputError: not two whole numbers ``I/N`` with 1 <= I <= N.
    """
    if text is None:
        return 1, 1
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        i, n = 0, 0
    if not 1 <= i <= n:
        raise InputError(f"--part must read I/N with 1 <= I <= N (this machine's part of N), e.g. 2/4; got {text!r}")
    return i, n


def select_part(scans: Sequence[Scan], part: Union[str, tuple, None]) -> list[Scan]:
    """Part I of N (``"I/N"`` or ``(I, N)``): the scans sorted by name, every N-th from the I-th."""
    i, n = parse_part(part) if part is None or isinstance(part, str) else parse_part(f"{part[0]}/{part[1]}")
    return sorted(scans, key=lambda s: s.name)[i - 1::n]


__all__ = ["LIST_EXTENSIONS", "Scan", "find_scans", "holds_dicom", "is_ct_file", "is_list_file",
           "parse_part", "select_part"]
