"""Training within a time budget (``organseg train --time-budget 30m``, the Slicer *Retrain* button).

How many iterations fit is measured, not guessed: the run starts with a warm-up of
``WARMUP_ITERATIONS`` real training iterations on this machine and device (they count; nothing is
thrown away). The first is not timed (allocations, first-call setup); the next ones give the seconds
per iteration; the last one also validates and checkpoints, which gives the cost of a validation
and a checkpoint (``overhead_s``). ``plan_iterations`` then fits the rest of the budget:

    time left = budget − time spent (loading the data, the warm-up)
    kept back = 2 × overhead (the last validation and checkpoint, and writing the package)
                + one overhead per intermediate validation (``VALIDATIONS``, fewer if they would take
                  more than a tenth of the time left) + ``SAFETY`` of the rest (slower iterations)
    iterations = done + ⌊(time left − kept back) / (seconds per iteration + overhead / checkpoint_every)⌋

The plan (``BudgetPlan``) is chosen once and stored beside the checkpoint (``budget.json`` in the
checkpoint folder): a resumed run trains to the same iteration count, so it ends with the same
weights as an uninterrupted one. A deadline checked after every iteration still stops the run when
the budget runs out (augmentation switched on later can make iterations slower than the warm-up's):
that iteration is validated and checkpointed like a last one and the package is written from it.
Progress records carry ``eta_s``, the seconds expected until the package is written.

The clock is injected (``clock``, default ``time.monotonic``), so tests drive the plan and the
deadline without waiting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..atomic import write_text_atomic
from ..errors import InputError
from ..progress import report

log = logging.getLogger(__name__)

PLAN_NAME = "budget.json"
# ``--time-budget auto`` (the Slicer Retrain button's default): long enough on each device for a few
# hundred fine-tuning iterations of the bundled models' crops (BENCHMARKS.md: ~1.5-8 s per iteration on
# 2 CPU cores, ~0.2 s on an H100), short enough to wait for. Our choice, not the paper's.
AUTO_BUDGET_S = {"cpu": 30 * 60.0, "cuda": 10 * 60.0}
WARMUP_ITERATIONS = 5  # 1 untimed + 3 timed + 1 that validates and checkpoints
VALIDATIONS = 4  # intermediate validations in a budgeted run (each shows the Dice as it goes), at most
VALIDATION_SHARE = 0.1  # ... and at most this share of the time left
SAFETY = 0.05  # share of the time left kept back for iterations slower than the warm-up's
WARMUP_DEADLINE = 0.9  # before there is a plan, stop at this share of the budget (room to write the package)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([hms])", re.IGNORECASE)
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"`` -> seconds.

    Raises:
        InputError: not a positive duration with units.
    """
    compact = re.sub(r"\s+", "", str(text))
    if compact.lower() == "auto":
        raise InputError("--time-budget auto depends on the device: use budget_seconds(text, device)")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
        raise InputError(f"--time-budget must be a duration with units such as 90s, 30m, 2h or 1h30m; got {text!r}")
    seconds = sum(float(n) * _UNIT_S[u.lower()] for n, u in parts)
    if not seconds > 0:
        raise InputError(f"--time-budget must be longer than 0 s; got {text!r}")
    return seconds


def check_budget(text: str) -> str:
    """``"auto"`` or a duration ``parse_duration`` reads; refused now, before any work.

    Raises:
        InputError: neither.
    """
    if str(text).strip().lower() != "auto":
        parse_duration(text)
    return str(text).strip()


def budget_seconds(text: str, device) -> float:
    """Seconds of a ``--time-budget``: a duration, or ``auto`` (``AUTO_BUDGET_S`` of the device's type:
    30 min on the CPU, 10 min on a GPU)."""
    if str(text).strip().lower() == "auto":
        return AUTO_BUDGET_S["cuda" if getattr(device, "type", str(device)).startswith("cuda") else "cpu"]
    return parse_duration(text)


@dataclass(frozen=True)
class BudgetPlan:
    """The iteration count fitted to a budget (chosen once, stored, reused on resume).

    Attributes:
        budget_s: the budget it was fitted to, s.
        warmup_iterations: iterations done when the plan was made.
        seconds_per_iteration: measured in the warm-up, s.
        overhead_s: one validation plus one checkpoint, measured, s.
        iterations: the run's total iteration count (warm-up included).
        validate_every: iterations between validations.
    """

    budget_s: float
    warmup_iterations: int
    seconds_per_iteration: float
    overhead_s: float
    iterations: int
    validate_every: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BudgetPlan":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def plan_iterations(budget_s: float, elapsed_s: float, done: int, seconds_per_iteration: float,
                    overhead_s: float, checkpoint_every: int) -> BudgetPlan:
    """The iterations that fit in ``budget_s`` (see the module doc), at least ``done``."""
    remaining = budget_s - elapsed_s
    overhead = max(float(overhead_s), 0.0)
    validations = VALIDATIONS if overhead == 0 else max(0, min(VALIDATIONS, int(VALIDATION_SHARE * remaining / overhead)))
    loop_s = (remaining - 2 * overhead - validations * overhead) * (1.0 - SAFETY)
    per_iteration = seconds_per_iteration + overhead / max(int(checkpoint_every), 1)
    more = max(0, math.floor(loop_s / per_iteration)) if per_iteration > 0 else 0
    iterations = int(done) + more
    return BudgetPlan(float(budget_s), int(done), float(seconds_per_iteration), overhead, iterations,
                      max(1, math.ceil(iterations / (validations + 1))))


def read_plan(work_dir: Path) -> Optional[BudgetPlan]:
    try:
        return BudgetPlan.from_json(json.loads((Path(work_dir) / PLAN_NAME).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the unreadable %s in %s (%s): a new plan is made", PLAN_NAME, work_dir, exc)
        return None


def _collective(value: bool, info) -> bool:
    """Rank 0's answer on every rank (one ``deadline`` decision for the whole torchrun job)."""
    if getattr(info, "world_size", 1) == 1:
        return value
    from .distributed import all_gather_objects

    return bool(all_gather_objects(value, info)[0])


class _Timer:
    """A progress callback that timestamps each iteration (rank 0) and passes the record on with
    ``eta_s``; ``eta(iteration)`` is set by the owner as the plan becomes known."""

    accepts_fields = True

    def __init__(self, clock: Callable[[], float], progress, start: float, budget_s: float, first: int) -> None:
        self.clock, self.progress, self.start, self.budget_s = clock, progress, start, budget_s
        self.iteration, self.times, self.fraction = first, [], 0.0
        self.plan: Optional[BudgetPlan] = None
        self.prefix = ""

    def __call__(self, fraction: float, message: str = "", **fields) -> None:
        now = self.clock()
        self.iteration += 1
        self.times.append(now)
        left = max(0.0, self.start + self.budget_s - now)
        eta = left if self.plan is None else min(left, _eta(self.plan, self.iteration))
        elapsed = now - self.start
        self.fraction = max(self.fraction, min(1.0, elapsed / (elapsed + eta) if elapsed + eta > 0 else 1.0))
        report(self.progress, self.fraction, f"{self.prefix}{message}, ETA {_clock_text(eta)}",
               eta_s=round(eta, 1), **fields)


def _eta(plan: BudgetPlan, iteration: int) -> float:
    left = max(plan.iterations - iteration, 0)
    validations_left = left // max(plan.validate_every, 1)
    return left * plan.seconds_per_iteration + (validations_left + 2) * plan.overhead_s


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def measure(times: Sequence[float], done: int) -> tuple[float, float]:
    """(seconds per iteration, validation + checkpoint overhead) from the timestamps of ``done``
    warm-up iterations (the first untimed, the last carrying the validation and checkpoint)."""
    if done < 4:
        raise ValueError(f"a warm-up needs 4 iterations or more to be timed; got {done}")
    per_iteration = (times[done - 2] - times[0]) / (done - 2)
    return per_iteration, max(0.0, times[done - 1] - times[done - 2] - per_iteration)


def train_with_budget(config, train_cases, val_cases, work_dir, budget_s: float, started_at: Optional[float] = None,
                      clock: Callable[[], float] = time.monotonic, resume: bool = True, progress=None,
                      init_model=None, **train_kwargs):
    """``trainer.train`` with the iteration count fitted to ``budget_s`` (see the module doc).

    Args:
        config: a ``TrainConfig``; its ``iterations`` and ``validate_every`` are replaced by the plan's.
        started_at: ``clock()`` when the command started (loading the data counts against the
            budget); default now.
        clock: seconds, monotonic.
        resume, progress, init_model, **train_kwargs: as ``trainer.train``.

    Returns:
        the last ``TrainResult`` (``result.config.iterations`` is the plan's iteration count).
    """
    import copy

    from .checkpoint import read_checkpoint
    from .distributed import DistInfo, all_gather_objects
    from .trainer import CHECKPOINT_NAME, train

    info = train_kwargs.pop("info", None) or DistInfo()
    work = Path(work_dir)
    start = clock() if started_at is None else started_at
    ckpt = work / CHECKPOINT_NAME
    if not resume:
        (work / PLAN_NAME).unlink(missing_ok=True)
    plan = read_plan(work) if resume else None
    done = int(read_checkpoint(ckpt)[1]["state"]["iteration"]) if resume and ckpt.exists() else 0
    timer = _Timer(clock, progress, start, budget_s, done)
    fresh = (lambda: copy.deepcopy(init_model)) if init_model is not None else (lambda: None)

    def past(at: float) -> Callable[[], bool]:
        return lambda: _collective(clock() >= at, info)

    if plan is None:  # warm-up: real iterations, timed, only the last validated and checkpointed
        timer.prefix = "timing this machine: "
        warm = dataclasses.replace(config, iterations=done + WARMUP_ITERATIONS, validate_every=10 ** 9,
                                   checkpoint_every=10 ** 9)
        result = train(warm, train_cases, val_cases, work, info=info, init_model=fresh(), resume=resume,
                       progress=timer, deadline=past(start + WARMUP_DEADLINE * budget_s), **train_kwargs)
        reached = result.state.iteration
        timed = len(timer.times) >= 4 and not result.stopped_at_deadline  # rank 0 timed the iterations
        measured = all_gather_objects(measure(timer.times, len(timer.times)) if timed else None, info)[0]
        if measured is None:  # the budget is spent: what was done is the run
            log.warning("the time budget (%.0f s) ran out during the warm-up, at iteration %d", budget_s, reached)
            return dataclasses.replace(result, config=dataclasses.replace(result.config, iterations=reached),
                                       stopped_at_deadline=True)
        seconds, overhead = measured
        plan = plan_iterations(budget_s, clock() - start, reached, seconds, overhead, config.checkpoint_every)
        plan = all_gather_objects(plan, info)[0]  # rank 0's: every rank trains to the same count
        if info.is_main:
            write_text_atomic(work / PLAN_NAME, json.dumps(plan.to_json(), indent=2) + "\n")
        log.info("time budget %.0f s: %.3f s per iteration, %.2f s per validation and checkpoint -> %d iterations",
                 budget_s, seconds, overhead, plan.iterations)
    else:
        log.info("resuming the budgeted run: %d iterations, chosen when it started", plan.iterations)
    timer.plan, timer.prefix = plan, ""
    reserve = 2 * plan.overhead_s
    final = dataclasses.replace(config, iterations=plan.iterations, validate_every=plan.validate_every)
    return train(final, train_cases, val_cases, work, info=info, init_model=fresh(), resume=True,
                 progress=timer, deadline=past(start + budget_s - reserve), **train_kwargs)


__all__ = ["AUTO_BUDGET_S", "BudgetPlan", "PLAN_NAME", "WARMUP_ITERATIONS", "budget_seconds", "check_budget",
           "measure", "parse_duration", "plan_iterations", "read_plan", "train_with_budget"]
