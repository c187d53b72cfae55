"""Atomic output: write to a temporary file in the destination folder, then rename over.

A reader never sees a half-written file, an interrupted write leaves the old file intact, and no
output may overwrite one of the command's inputs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Union

from .errors import MissingFileError, OutputExistsError

PathLike = Union[str, "os.PathLike[str]"]


def double_suffix(path: PathLike) -> str:
    """``.nii.gz``, ``.seg.nrrd`` or the plain suffix, lower case."""
    name = Path(path).name.lower()
    for ext in (".nii.gz", ".seg.nrrd", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return Path(name).suffix


def check_not_input(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Refuse an output path that names one of the inputs (same file after resolving links)."""
    out = Path(output).expanduser().resolve()
    for item in inputs:
        if item is not None and Path(item).expanduser().resolve() == out:
            raise OutputExistsError(
                f"output {str(output)!r} is also an input; choose another output name (inputs are never overwritten)"
            )


@contextlib.contextmanager
def atomic_path(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` with the same extension; on success rename it onto
    ``path`` (``os.replace``, atomic on one file system), on failure delete it."""
    target = Path(path).expanduser()
    if not target.parent.exists():
        raise MissingFileError(f"output folder {str(target.parent)!r} does not exist; create it first")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{str(target)!r} exists; pass overwrite=True (--overwrite) or pick another name")
    suffix = double_suffix(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

