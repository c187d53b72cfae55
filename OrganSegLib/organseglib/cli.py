"""The ``organseg`` command: one subcommand per module in ``organseglib.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` with ``run(args) -> int``. Errors derived from ``OrganSegError`` print one clear line
(and, with ``--progress json``, a JSON error record the Slicer GUI shows) and exit with status 2
(``errors.EXIT_ERROR``). So do failures of the system (``OSError`` such as a full disk,
``MemoryError``, PyTorch's ``RuntimeError`` such as CUDA out of memory), with a hint; their traceback
is logged at debug level (``-v``) so that a programming error stays visible.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from . import __version__
from .errors import EXIT_ERROR, OrganSegError
from .progress import MODES, Progress

# Add a command by writing organseglib/commands/<name>.py and listing it here.
COMMANDS = ["info", "evaluate", "demo", "train", "autolabel", "segment", "import_labels"]

log = logging.getLogger("organseglib")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress", choices=MODES, default="bar",
        help="progress display: a bar on a terminal (default), one JSON line per step (for the Slicer GUI), or none",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="organseg",
        description="CT organ segmentation (lungs, liver, bone, kidneys, bladder) after Rister et al.",
    )
    parser.add_argument("--version", action="version", version=f"organseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"organseglib.commands.{name}").register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except OrganSegError as exc:
        return _fail(args, str(exc))
    except (OSError, MemoryError, RuntimeError) as exc:
        log.debug("organseg %s failed", args.command, exc_info=True)
        return _fail(args, f"{type(exc).__name__}: {exc or 'no message'}; {_hint(exc)} "
                           "(run with -v for the traceback)")
    except KeyboardInterrupt:
        print(f"organseg {args.command}: interrupted", file=sys.stderr)
        return 130


def _hint(exc: BaseException) -> str:
    """What to try after a failure of the system rather than of the input."""
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "not enough memory: close other programs, use --device cpu, or a smaller --tile"
    if isinstance(exc, OSError):
        return "check free disk space and that the paths are readable/writable"
    return "check the device (--device cpu to rule out the GPU) and the inputs"


def _fail(args: argparse.Namespace, message: str) -> int:
    """One stderr line, plus the JSON error record with ``--progress json``; the exit status."""
    if getattr(args, "progress", None) == "json":
        Progress(args.command, mode="json").error(message)
    print(f"organseg {args.command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
