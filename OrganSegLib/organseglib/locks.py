"""Exclusive locks on output folders: one writer at a time for a training set, a checkpoint folder and
the model package it exports.

A lock is ``flock`` (``msvcrt.locking`` on Windows) on a small file in the folder; the operating
system releases it when its process ends, however it ends (SIGKILL included), so a crashed writer
never leaves a folder locked for ever. The lock file itself stays (empty): its presence means nothing.

* ``exclusive_lock(path, what, wait_s)``: hold the lock for a block; a second writer waits up to
  ``wait_s`` seconds (a training-set export: a few seconds' work) or is refused at once (``wait_s=0``:
  a training run, which would otherwise wait for hours and then merge its result into another's).
* ``lock_holder(path)``: whether someone holds it now, without creating anything (the check a command
  makes before any work).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator, Union

from .errors import OutputExistsError

PathLike = Union[str, "os.PathLike[str]"]
TRAINING_LOCK = ".organseg-train.lock"  # in a checkpoint folder (MODEL.training): one organseg train at a time


def _try_lock(handle) -> bool:
    try:
        if os.name == "nt":  # pragma: no cover - exercised on Windows only
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def is_locked(path: PathLike) -> bool:
    """True when another open file holds the lock ``path`` now (False when the file does not exist:
    nothing is created)."""
    try:
        handle = open(path, "r+b")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return False
    with handle:
        return not _try_lock(handle)  # closing releases what we took


@contextlib.contextmanager
def exclusive_lock(path: PathLike, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock file ``path`` (created when missing) for the block.

    Args:
        path: the lock file, inside the folder it protects (which must exist).
        what: how the message names the folder (``"checkpoint folder 'm.training'"``).
        wait_s: how long a second writer waits before it is refused (0: refused at once).

    Raises:
        OutputExistsError: another process holds the lock (after ``wait_s``).
    """
    handle = open(path, "a+b")
    deadline = time.monotonic() + max(0.0, wait_s)
    try:
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                waited = f" for over {wait_s:.0f} s" if wait_s > 0 else ""
                raise OutputExistsError(
                    f"{what} is in use by another organseg process{waited} (lock {str(path)!r}); two writers to one "
                    "folder would mix their results: wait until it has finished, or choose another output")
            time.sleep(0.05)
        yield
    finally:
        handle.close()  # closing releases the lock


__all__ = ["TRAINING_LOCK", "exclusive_lock", "is_locked"]
