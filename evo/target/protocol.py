"""The contract between evo's sandbox and a target's fixed entry point.

evo runs a target's `entry` command in a fresh working copy with the environment variables
below, and nothing else of its own (no API keys, no secrets). The target's fixed part calls
`request()` *before* it imports any mutable code, does its work, and reports the metric with
`report()` (or `report_invalid()` when the variant fails a correctness check).

The result travels through a JSON file whose path only the fixed part knows: `request()` removes
it from the environment, so text that mutable code prints is never read as the metric, and a
variant that exits early without the fixed part reporting gets status `invalid`.

Two phases (optional; a target that declares `[measure]` in target.toml): the *run* phase
imports the mutable code, runs it (trains a model, say) and hands off what the measure phase
needs through `output_dir` (`handoff()` records its details, `report_invalid()` refuses); it
cannot report a metric. The *measure* phase is a fresh process, in a working copy without the
mutable files, that reads the output folder (read-only to it), computes the metric and reports
it. The run phase calls `ready()` when its training clock starts and `trained()` when it stops:
evo times the run phase itself between the two, so a variant that slows the clock it can reach
gains nothing.

Pre-warm (optional; a target that declares `[sandbox] prewarm = true` in target.toml): the fixed
part calls `ready(req)` once its set-up is done (imports, data, model, compilation, a first
step), just before its training clock starts. `ready` returns when the evaluator lets this
evaluation train: an evaluator starts the next candidate's process while the current one trains,
and releases it the moment the current one's process ends. Without pre-warm `ready` returns at
once.

This module and what it imports (evo.target's loader, evo.status, evo.errors) use the standard
library only, so a target can import it without evo's heavier dependencies (the sandbox puts evo
on the child's PYTHONPATH).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evo.status import Status

BUDGET_SECONDS = "EVO_BUDGET_SECONDS"
DEVICE = "EVO_DEVICE"
SEED = "EVO_SEED"
THREADS = "EVO_THREADS"
CACHE_DIR = "EVO_CACHE_DIR"
RESULT_PATH = "EVO_RESULT_PATH"
READY_PATH = "EVO_READY_PATH"  # beside it the clock's marks; with pre-warm a FIFO `ready` waits on
PHASE = "EVO_PHASE"  # "run" or "measure" for a target in two phases; unset: one process
OUTPUT_DIR = "EVO_OUTPUT_DIR"  # what the run phase hands to the measure phase
TRAINED_SECONDS = "EVO_TRAINED_SECONDS"  # the run phase's training, by evo's clock
HANDOFF = "handoff.json"  # the run phase's details (or refusal), in the output folder
PHASES = ("one", "run", "measure")

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "evo"


@dataclass(frozen=True)
class Request:
    """What the sandbox asks of one evaluation.

    budget_seconds: the training (or work) budget the fixed part must enforce.
    device: "cpu" or "cuda"; chosen by the sandbox, CUDA only where the evaluator holds a GPU.
    seed: drives every random choice of the evaluation (data order, initialisation).
    threads: CPU threads the evaluation may use.
    cache_dir: where a target keeps data that outlives one evaluation (corpora, inputs).
    result_path: where `report` writes; None when the entry point runs by hand (prints instead).
    ready_path: the pre-warm FIFO (beside it, the clock's marks); None when run by hand.
    phase: "run" or "measure" for a target in two phases, "one" for a target in one process.
    output_dir: where the run phase hands off and the measure phase reads; None for "one".
    trained_seconds: in the measure phase, how long the run phase trained by evo's clock (from
        ready() to trained()); None elsewhere.
    """

    budget_seconds: float
    device: str
    seed: int
    threads: int
    cache_dir: Path
    result_path: Path | None
    ready_path: Path | None = None
    phase: str = "one"
    output_dir: Path | None = None
    trained_seconds: float | None = None


def request(default_budget_seconds: float, phase: str = "one") -> Request:
    """Read (and hide) the sandbox's request; by hand, without evo, fall back to defaults (a
    target in two phases then hands off through ./handoff)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    env = os.environ
    result_path = env.pop(RESULT_PATH, None)
    ready_path = env.pop(READY_PATH, None)
    output = env.get(OUTPUT_DIR, "handoff")
    return Request(
        budget_seconds=float(env.get(BUDGET_SECONDS, default_budget_seconds)),
        device=env.get(DEVICE, "cpu"),
        seed=int(env.get(SEED, "0")),
        threads=int(env.get(THREADS, str(os.cpu_count() or 1))),
        cache_dir=Path(env.get(CACHE_DIR, DEFAULT_CACHE_DIR)),
        result_path=Path(result_path) if result_path else None,
        ready_path=Path(ready_path) if ready_path else None,
        phase=phase,
        output_dir=None if phase == "one" else Path(output),
        trained_seconds=float(env[TRAINED_SECONDS]) if TRAINED_SECONDS in env else None,
    )


def clock_grace(budget_seconds: float, step_seconds: float = 0.0) -> float:
    """How far past its budget a run may train and still count: a step that began just before
    the budget ran out ends after it. `step_seconds`: the run's longest training step, which a
    fixed part measures and reports as `longest_step_seconds` (on a busy CPU a step can take
    longer than the margin alone)."""
    return max(2.0, 0.05 * budget_seconds) + step_seconds


def ready(req: Request) -> None:
    """Set-up is done: wait until the evaluator lets this evaluation train (at once without
    pre-warm). Call it once, just before the training clock starts."""
    if req.ready_path is None:
        return
    (req.ready_path.parent / "ready").touch()
    if req.ready_path.exists():  # the pre-warm FIFO
        with open(req.ready_path, "rb") as go:  # blocks until the evaluator opens it to write
            go.read(1)


def trained(req: Request) -> None:
    """The training clock has stopped: from here the run phase only hands off."""
    if req.ready_path is not None:
        (req.ready_path.parent / "trained").touch()


def report(req: Request, metric: float, **details: float | int | str | None) -> None:
    """Report the metric with target-specific details (train_seconds, tokens, ...); not from
    the run phase, which hands off instead."""
    if req.phase == "run":
        raise ValueError("the run phase cannot report a metric: hand off to the measure phase")
    _write(req, {"status": Status.OK, "metric": _finite_or_none(metric), **details})


def handoff(req: Request, **details: float | int | str | None) -> None:
    """The run phase's end: its details (train_seconds, tokens, ...) for the measure phase and
    the result; what it produced is in req.output_dir."""
    if req.phase != "run":
        raise ValueError("only the run phase hands off; the measure phase reports")
    _write(req, {"status": Status.OK, **details})


def handed_off(req: Request) -> dict:
    """In the measure phase: what the run phase's handoff() said (written by a process the
    variant ran in: details to show, never to trust)."""
    try:
        handed = json.loads((req.output_dir / HANDOFF).read_text())
    except (OSError, ValueError, TypeError):
        return {}
    return handed if isinstance(handed, dict) else {}


def report_invalid(req: Request, reason: str, **details: float | int | str | None) -> None:
    """Report that the variant ran but must not be scored (wrong output, broken budget, ...)."""
    _write(req, {"status": Status.INVALID, "reason": reason, **details})


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN; None tells the sandbox the metric was not finite.
    value = float(value)
    return value if math.isfinite(value) else None


def _write(req: Request, payload: dict) -> None:
    text = json.dumps(payload)
    path = req.result_path
    if req.phase == "run":
        req.output_dir.mkdir(parents=True, exist_ok=True)
        path = req.output_dir / HANDOFF
    if path is None:
        print(text, file=sys.stdout)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".result-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
