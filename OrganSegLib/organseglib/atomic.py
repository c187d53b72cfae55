"""Atomic output: write to a temporary file in the destination folder, then rename over.

A reader never sees a half-written file, an interrupted write leaves the old file intact, and no
output may overwrite one of the command's inputs.

* ``check_outputs`` is the one check of a command's outputs, made before any work and creating
  nothing: each output's folder exists (or can be made), is a folder and can be written to; the output
  is not a folder (or, for a package, not a file), not another output, and does not touch an input:
  it may not resolve (links and ``..`` followed) to an input, be a hard link to one, or lie inside an
  input folder (a model package, a mask folder, a DICOM series); a model package or checkpoint folder
  may not hold an input either. A run that would fail at the end fails at the start.
* Temporary files are named ``.NAME.PID.XXXXXXXX.part[.EXT]`` (folders ``...part`` / ``...old``). A
  kill (SIGKILL, power loss) can leave one; the next write into that folder removes every such
  leftover whose process no longer runs (never another live writer's).
* The published file gets the mode a plain ``open()`` would give: ``0o666`` less the umask (or the
  mode of the file it replaces), not ``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Union

from .errors import MissingFileError, OutputExistsError, OutputPathError

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

# .NAME.PID.XXXXXXXX.part[.EXT] or .NAME.PID.XXXXXXXX.old (mkstemp/mkdtemp put 8 random characters)
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[a-z0-9_]{8}\.(part|old)(\.[A-Za-z0-9.]+)?$")
_UMASK_LOCK = threading.Lock()


def double_suffix(path: PathLike) -> str:
    """``.nii.gz``, ``.seg.nrrd`` or the plain suffix, lower case."""
    name = Path(path).name.lower()
    for ext in (".nii.gz", ".seg.nrrd", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return Path(name).suffix


@dataclass(frozen=True)
class _Input:
    """One input of a command: as given, resolved (links and ``..`` followed), and what it is on disk."""

    given: str
    path: Path
    folder: bool
    ident: Optional[tuple]  # (device, inode) of an existing file: a hard link to it is the same file


def _as_inputs(inputs: Iterable[Optional[PathLike]]) -> list[_Input]:
    out = []
    for item in inputs:
        if item is None:
            continue
        if isinstance(item, _Input):
            out.append(item)
            continue
        path = Path(item).expanduser().resolve()
        try:
            st = path.stat()
        except OSError:
            st = None
        folder = st is not None and stat.S_ISDIR(st.st_mode)
        out.append(_Input(str(item), path, folder, None if st is None or folder else (st.st_dev, st.st_ino)))
    return out


def input_conflict(output: PathLike, inputs: Iterable[Optional[PathLike]], what: str = "output") -> str:
    """Why ``output`` may not be written by a call that reads ``inputs`` ("" when it may): it resolves
    (symbolic links and ``..`` followed) to an input, is the same file as one (a hard link), or lies
    inside an input folder (a model package, a mask folder, a DICOM series, a training set)."""
    out = Path(output).expanduser().resolve()
    try:
        st = out.stat()
        ident = None if stat.S_ISDIR(st.st_mode) else (st.st_dev, st.st_ino)
    except OSError:
        ident = None
    read = _as_inputs(inputs)
    for item in read:  # the most specific reason first: the input itself, then a folder holding it
        if out == item.path:
            return (f"{what} {str(output)!r} is also an input ({item.given!r}); choose another output name "
                    "(inputs are never overwritten)")
    for item in read:
        if ident is not None and ident == item.ident:
            return (f"{what} {str(output)!r} is the same file as the input {item.given!r} (a hard link); choose "
                    "another output name (inputs are never overwritten)")
    for item in read:
        if item.folder and item.path in out.parents:
            return (f"{what} {str(output)!r} lies inside the input folder {item.given!r}; write it elsewhere "
                    "(inputs are never changed: a file added there would be read as part of it next time)")
    return ""


def check_not_input(output: PathLike, inputs: Iterable[Optional[PathLike]], what: str = "output") -> None:
    """Refuse an output path that names one of the inputs or lies inside an input folder
    (``input_conflict``).

    Raises:
        OutputExistsError: it does.
    """
    problem = input_conflict(output, inputs, what)
    if problem:
        raise OutputExistsError(problem)


# --- checks before any work -------------------------------------------------------------------------
def _unwritable(folder: Path, output: PathLike, what: str, exc: OSError) -> OutputPathError:
    reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc)).lower()
    return OutputPathError(f"cannot write {what} {str(output)!r}: folder {str(folder)!r} is not writable "
                           f"({reason}); choose another output folder or fix its permissions")


def _check_folder(folder: Path, output: PathLike, what: str, probe: bool = True) -> None:
    """The folder an output goes into exists, is a folder and (``probe``) can be written to."""
    if not folder.exists():
        for parent in folder.parents:  # a file in the middle of the path: say so, not "does not exist"
            if parent.exists():
                if not parent.is_dir():
                    raise OutputPathError(f"cannot write {what} {str(output)!r}: {str(parent)!r} is a file, not a "
                                          "folder; choose an output path inside a folder")
                break
        raise MissingFileError(f"cannot write {what} {str(output)!r}: folder {str(folder)!r} does not exist; "
                               "create it first")
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {what} {str(output)!r}: {str(folder)!r} is a file, not a folder; "
                              "choose an output path inside a folder")
    if not probe:
        return
    try:  # the only test that holds for root, ACLs, read-only mounts and full disks alike
        fd, name = tempfile.mkstemp(prefix=f".organseg-probe.{os.getpid()}.", dir=folder)
    except OSError as exc:
        raise _unwritable(folder, output, what, exc) from None
    os.close(fd)
    os.unlink(name)


def example_name(what: str) -> str:
    """A file name that suits an output option, for messages (``--json`` -> ``scores.json``)."""
    text = what.lower()
    for key, name in (("csv", "scores.csv"), ("report", "report.json"), ("json", "scores.json"),
                      ("dcm", "segmentation.dcm")):
        if key in text:
            return name
    return "labels.nii.gz"


def check_output_path(path: PathLike, what: str = "output", folder: bool = False, overwrite: bool = True,
                      probe: bool = True) -> Path:
    """Refuse, before any work, an output path that cannot be written.

    Args:
        path: the output file (or, with ``folder``, the output folder, e.g. a model package).
        what: how messages name it (``"labels"``, ``"--report"``).
        folder: the output is a folder: it may not be an existing file.
        overwrite: an existing output may be replaced.
        probe: create and delete a file in the folder to prove it writable.

    Raises:
        MissingFileError: the folder it goes into does not exist.
        OutputPathError: that folder is a file or not writable, or the output is a folder (a file for
            ``folder``).
        OutputExistsError: it exists and ``overwrite`` is False.
    """
    target = Path(path).expanduser()
    if not target.name or target.name in (".", ".."):
        raise OutputPathError(f"{what} {str(path)!r} names no file; give a file name")
    if target.is_dir() and not folder:
        raise OutputPathError(f"{what} {str(path)!r} is a folder; give a file name "
                              f"(e.g. {str(target / example_name(what))!r})")
    if folder and target.exists() and not target.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is a file; give a folder name")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{what} {str(target)!r} exists; pass --overwrite to replace it or pick another name")
    _check_folder(target.parent, path, what, probe)
    return target


def check_output_folder(path: PathLike, what: str, inputs: Iterable[Optional[PathLike]] = (), whole: bool = False,
                        parents: bool = True) -> Path:
    """Refuse, before any work and creating nothing, an output folder that cannot be made or written,
    or that touches an input.

    Args:
        path: the folder (it may not exist yet).
        what: how messages name it (``"--out"``).
        inputs: the call's input paths.
        whole: the folder is the command's alone (a model package or checkpoint folder, replaced as a
            whole with ``--overwrite``): no input may lie inside it either.
        parents: missing parent folders will be created (else the parent must exist).

    Raises:
        OutputExistsError: it is an input, lies inside an input folder or (``whole``) holds an input.
        OutputPathError / MissingFileError: as ``check_output_path``.
    """
    target = Path(os.path.abspath(Path(path).expanduser()))  # "." and "x/.." name their folder
    read = _as_inputs(inputs)
    check_not_input(target, read, what)
    resolved = target.resolve()
    if whole:
        for item in read:
            if resolved in item.path.parents:
                raise OutputExistsError(
                    f"{what} {str(path)!r} holds the input {item.given!r}; the folder is written (and with "
                    "--overwrite replaced) as a whole, so choose an output folder that holds none of the inputs")
    if target.exists():
        if not target.is_dir():
            raise OutputPathError(f"{what} {str(path)!r} is a file, not a folder; choose a folder name")
        _check_folder(target, path, what)
        return target
    if not parents:
        _check_folder(target.parent, path, what)
        return target
    existing = next(p for p in [target, *target.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise OutputPathError(f"{what} {str(path)!r}: {str(existing)!r} is a file, not a folder; choose another "
                              "output folder")
    _check_folder(existing, path, what)  # where the first missing folder will be made
    return target


def check_outputs(outputs: Mapping[str, Optional[PathLike]], inputs: Iterable[Optional[PathLike]] = (), *,
                  folders: Optional[Mapping[str, Optional[PathLike]]] = None,
                  packages: Optional[Mapping[str, Optional[PathLike]]] = None) -> None:
    """The one check of a command's outputs against each other and its inputs, before any work
    (ARCHITECTURE.md "Inputs are sacred"). Nothing is created.

    Every input path (a CT file or DICOM folder, a mask folder, a model package, a training set and the
    files of it that the call reads) is an input; no output may resolve (links and ``..`` followed) to
    an input, be a hard link to one, or lie inside an input folder; no two outputs may be one path.

    Args:
        outputs: ``{what: file path}`` (None paths are skipped), e.g. ``{"-o/--output": "a.nii.gz"}``;
            each must be writable (``check_output_path``).
        inputs: the command's input paths (files or folders; None skipped).
        folders: ``{what: folder}`` output folders the command writes named files into (a training set,
            an output folder of a cohort); created later, when the work is done.
        packages: ``{what: folder}`` output folders that are the command's alone (a model package, a
            checkpoint folder): no input may lie inside them either.

    Raises:
        OutputExistsError: an output touches an input. OutputPathError / MissingFileError: an output
        cannot be written, or two outputs name one path.
    """
    read = _as_inputs(inputs)
    seen: dict[Path, str] = {}

    def claim(path: PathLike, what: str) -> None:
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise OutputPathError(f"{what} and {seen[key]} both name {str(path)!r}; give each its own path")
        seen[key] = what

    to_make = []  # output folders that do not exist yet: files inside them are checked with them
    for group, whole in ((folders or {}, False), (packages or {}, True)):
        for what, path in group.items():
            if path is not None:
                # a package's parent must exist (it is renamed into place); other folders are made with parents
                if not check_output_folder(path, what, read, whole=whole, parents=not whole).exists():
                    to_make.append(Path(path).expanduser().resolve())
                claim(path, what)
    for what, path in outputs.items():
        if path is None:
            continue
        check_not_input(path, read, what)
        parent = Path(path).expanduser().resolve().parent
        if any(parent == f or f in parent.parents for f in to_make):
            if not Path(path).name or Path(path).name in (".", ".."):
                raise OutputPathError(f"{what} {str(path)!r} names no file; give a file name")
        else:
            check_output_path(path, what)
        claim(path, what)


def make_output_folder(path: PathLike, what: str = "output folder") -> Path:
    """Create an output folder (and its parents) and check it can be written to, before any work.

    Raises:
        OutputPathError: a file is in the way, or the folder cannot be created or written to.
    """
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputPathError(f"{what} {str(path)!r} is a file, not a folder; choose a folder name") from None
    except NotADirectoryError:
        raise OutputPathError(f"{what} {str(path)!r}: a part of the path is a file, not a folder; choose "
                              "another output folder") from None
    except OSError as exc:
        raise OutputPathError(f"cannot create {what} {str(path)!r} ({(exc.strerror or str(exc)).lower()}); "
                              "choose another output folder or fix its permissions") from None
    _check_folder(folder, path, what)
    return folder


# --- modes ------------------------------------------------------------------------------------------
def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it races other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode(target: Optional[Path] = None, folder: bool = False) -> int:
    """Mode for a published output: that of the file it replaces, else ``0o666`` (folders ``0o777``)
    less the umask, as ``open()`` and ``mkdir()`` would give."""
    if target is not None:
        with contextlib.suppress(OSError):
            return stat.S_IMODE(target.stat().st_mode)
    return (0o777 if folder else 0o666) & ~current_umask()


# --- leftovers of killed writers ----------------------------------------------------------------------
def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: somebody else's live process
        return True
    return True


def remove_stale_temporaries(folder: PathLike) -> list[Path]:
    """Delete this module's temporary files and folders in ``folder`` whose writer no longer runs.

    Only names of the form ``.NAME.PID.XXXXXXXX.part[.EXT]`` / ``...old`` are touched, and only when
    process PID is gone. Returns what was removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or _running(int(match.group("pid"))):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
        log.info("removed %s, left by an interrupted write", path)
    return removed


def temporary_name(target: Path) -> str:
    """Prefix for ``mkstemp``/``mkdtemp`` beside ``target`` (the writer's pid marks it as ours)."""
    return f".{target.name}.{os.getpid()}."


# --- writing ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` with the same extension; on success give it the mode a
    plain write would and rename it onto ``path`` (``os.replace``, atomic on one file system), on
    failure delete it. Stale temporaries of killed writers in that folder are removed first."""
    target = check_output_path(path, "output", overwrite=overwrite, probe=False)
    remove_stale_temporaries(target.parent)
    suffix = double_suffix(target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=temporary_name(target), suffix=f".part{suffix}", dir=target.parent)
    except OSError as exc:
        raise _unwritable(target.parent, path, "output", exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode(target if target.exists() else None))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

