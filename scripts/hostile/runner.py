"""One trial: run ``organseg`` in a child process as a user would, and judge what it did."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional


TINY_TRAIN = ["--spacing", "6", "--crop", "16", "32", "32", "--width", "0.0625", "--batch-size", "1",
              "--val-fraction", "0", "--augment", "never", "--threads", "1", "--progress", "none"]


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float


def organseg(*argv, timeout: float = 300, env: Optional[dict] = None) -> Result:
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "organseglib", *map(str, argv)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Result(-1, "", f"timed out after {timeout} s (a hang)", time.monotonic() - start)
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def snapshot(paths) -> dict:
    """Hash of every file under each path (folders recursively), to prove inputs unchanged."""
    out = {}
    for p in map(Path, paths):
        items = sorted(p.rglob("*")) if p.is_dir() else [p]
        for item in items:
            if item.is_file():
                out[str(item)] = hashlib.sha256(item.read_bytes()).hexdigest()
            elif item.exists() and not item.is_dir():
                out[str(item)] = "special"
        if p.is_dir():
            out[f"{p}/"] = sorted(str(i.relative_to(p)) for i in p.rglob("*"))
    return out


@dataclass
class Trial:
    name: str
    argv: list
    says: tuple = ()              # refused: the error line must contain each
    inputs: list = field(default_factory=list)  # must be unchanged
    absent: list = field(default_factory=list)  # must not exist afterwards
    check: Optional[Callable[[Result], str]] = None  # a "correct" trial: returns the problem or ""
    json_record: bool = False
    setup: Optional[Callable[[], None]] = None

    def run(self) -> str:
        if self.setup is not None:
            self.setup()
        before = snapshot(self.inputs)
        result = organseg(*self.argv)
        problems = []
        if self.check is not None:
            problems.append(self.check(result))
        else:
            lines = [line for line in result.err.splitlines() if line.strip()]
            if result.rc != 2:
                problems.append(f"exit {result.rc}, not 2: {result.err.strip()[-300:]}")
            elif len(lines) != 1 or "Traceback" in result.err:
                problems.append(f"{len(lines)} stderr lines: {result.err.strip()[-300:]}")
            else:
                problems += [f"message lacks {s!r}: {lines[0]}" for s in self.says if s not in lines[0]]
            if self.json_record:
                records = [json.loads(x) for x in result.out.splitlines() if x.startswith("{")]
                if not records or records[-1].get("status") != "error":
                    problems.append("no JSON error record on stdout")
        after = snapshot(self.inputs)
        if after != before:
            problems.append(f"an input changed: {sorted(set(after.items()) ^ set(before.items()))[:2]}")
        problems += [f"{p} was created" for p in map(Path, self.absent) if p.exists()]
        return "; ".join(p for p in problems if p)

