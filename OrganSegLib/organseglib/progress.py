"""Progress reporting: a tqdm bar on a terminal, JSON lines for the Slicer GUI, or nothing.

Library functions take an optional ``progress`` callable ``(fraction, message) -> None``;
``Progress`` is one. With ``mode="json"`` each step prints one line on stdout::

    {"stage": "segment", "progress": 0.42, "message": "tile 5/12"}

and ``Progress.result``/``Progress.error`` print the final line the GUI reads. Structured fields
can ride along (the trainer adds ``validation={"iteration", "loss", "dice"}``) through ``report``,
which passes them only to callbacks that take them (``Progress`` and its ``sub`` callbacks), so a
plain ``(fraction, message)`` callable still works.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Optional, TextIO

ProgressCallback = Callable[[float, str], None]

MODES = ("bar", "json", "none")


def _emit(stream: TextIO, record: dict[str, Any]) -> None:
    stream.write(json.dumps(record) + "\n")
    stream.flush()


class Progress:
    """Callable progress sink for one stage of work."""

    accepts_fields = True  # see ``report``

    def __init__(self, stage: str, mode: str = "bar", stream: Optional[TextIO] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}; got {mode!r}")
        self.stage = stage
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=100, desc=stage, unit="%", leave=False, file=sys.stderr,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
                             disable=not sys.stderr.isatty())

    def __call__(self, fraction: float, message: str = "", **fields: Any) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.mode == "json":
            _emit(self.stream, {**fields, "stage": self.stage, "progress": round(fraction, 4), "message": message})
        elif self._bar is not None:
            self._bar.n = round(100 * fraction)
            self._bar.set_postfix_str(message, refresh=True)

    def sub(self, start: float, stop: float, stage: Optional[str] = None) -> ProgressCallback:
        """A callback mapping 0..1 onto ``start..stop`` of this stage."""

        def callback(fraction: float, message: str = "", **fields: Any) -> None:
            self(start + (stop - start) * fraction, message if stage is None else f"{stage}: {message}", **fields)

        callback.accepts_fields = True  # type: ignore[attr-defined]
        return callback

    def result(self, **fields: Any) -> None:
        """Final success line (json mode) with e.g. the output path."""
        self.close()
        if self.mode == "json":
            _emit(self.stream, {"stage": self.stage, "progress": 1.0, "status": "done", **fields})

    def error(self, message: str) -> None:
        self.close()
        if self.mode == "json":
            _emit(self.stream, {"stage": self.stage, "status": "error", "message": message})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def report(progress: Optional[Callable[..., None]], fraction: float, message: str = "", **fields: Any) -> None:
    """Call ``progress`` (if any) with the text, and with ``fields`` when it takes them."""
    if progress is None:
        return
    if fields and getattr(progress, "accepts_fields", False):
        progress(fraction, message, **fields)
    else:
        progress(fraction, message)


def null_progress(fraction: float, message: str = "") -> None:
    """A progress callback that ignores everything."""
