"""The processes of one evaluation: where each runs, what it may see, and what it left behind.

One process (a target without `[measure]`): the entry runs in a working copy of the target that
holds the variant's files; it imports the mutable code, runs it and reports the metric. Whatever
the variant does inside that process (reassigning a function the measurement uses, finding the
result channel through the fixed part's objects) can reach the number.

Two phases (a target with `[measure]`, evo.target.spec.Measure), each a fresh process:
1. prepare (optional): the fixed files alone; the one phase that may write the cache.
2. run: the variant's working copy, without the target's held-out folders; the cache read-only
   (but evo's compile caches) with its held-out folders emptied; it writes only its working
   copy and the output folder, and hands off through the latter. It cannot report a metric.
   Its training is timed by evo, between the marks protocol.ready() and protocol.trained()
   leave, not by any clock the variant can reach.
3. measure: once every process of the run phase is gone (at the namespace level; at the process
   level one that called setsid() may live on), in a copy of the fixed files alone, made only
   then, with the output folder read-only: it never imports a mutable file, and computes and
   reports the metric.
What the run phase says of itself (its handoff) is shown, never trusted.

At the process level the views are not enforced: the working copies and the output folder are
still separate, but the run phase can read the held-out folders where they lie.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evo.evaluate.allowance import STEP_DETAIL, Allowance, step_grace
from evo.evaluate.memory import MemoryCap
from evo.evaluate.process import Ended, run_process
from evo.evaluate.result import classify
from evo.status import Status
from evo.target import Target, protocol

STDERR_TAIL_CHARS = 4000
_NOT_COPIED = ("__pycache__", ".*")
# In the namespace, $HOME is read-only: temporary files and caches go to the private /tmp.
JAILED_ENVIRONMENT = {"TMPDIR": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache"}
COMPILE = "compile"  # the cache's subfolder for torch.compile's caches (evo.evaluate.sandbox)


@dataclass(frozen=True)
class Phase:
    """One process of an evaluation and its view of the machine (evo.evaluate.jail)."""

    argv: tuple[str, ...]
    work: Path
    channel: Path  # its logs, its clock marks, its result; writable to it
    report: Path  # where its verdict lands: its result, or the run phase's handoff
    request: dict[str, str]
    writable: list[Path]
    visible: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)
    read_only: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What one phase left behind, judged."""

    status: str
    metric: float | None
    reason: str
    reported: dict[str, Any]
    ended: Ended
    wall_seconds: float
    stderr_tail: str


@dataclass
class Runner:
    """Runs an evaluation's phases under one isolation level, memory cap and hard timeout."""

    isolation: str
    network: bool
    memory: MemoryCap
    environment: Any  # (request) -> the child's environment (evo.evaluate.sandbox)
    timeout: float
    moved: dict[Path, Path] = field(default_factory=dict)  # the jail's: shared folders in /tmp
    spent: float = 0.0  # seconds the phases so far took, waiting for a turn excluded

    def run(self, phase: Phase, expects: str = "metric", **turn: Any) -> Outcome:
        """Run `phase` (turn: run_process's turn, prewarm, keep_turn) and judge what it left
        behind by what it `expects` to write (evo.evaluate.result.classify)."""
        request = dict(phase.request)
        jail = None
        if self.isolation == "namespace":
            request |= JAILED_ENVIRONMENT
            jail = {
                "writable": [phase.channel, *phase.writable],
                "visible": phase.visible,
                "hidden": phase.hidden,
                "read_only": phase.read_only,
                "moved": self.moved,
                "network": self.network,
            }
        started = time.monotonic()
        ended = run_process(
            phase.argv,
            phase.work,
            self.environment(request),
            phase.channel,
            self.timeout - self.spent,
            self.memory,
            jail,
            channel=phase.channel,
            **turn,
        )
        wall = time.monotonic() - started - ended.waited_seconds
        self.spent += wall
        tail = _tail(phase.channel / "stderr.log")
        reported = _read_report(phase.report)
        status, metric, reason = classify(reported, ended.exit_code, ended.timed_out, tail, expects)
        if status == Status.CRASH and self.memory.reached(ended.exit_code, tail):
            status, reason = Status.OOM, f"stopped at {self.memory.describe()}"
        return Outcome(status, metric, reason, reported or {}, ended, wall, tail)


_RUN_PHASE_ONLY = (protocol.READY_PATH, protocol.PHASE, protocol.OUTPUT_DIR, "OMP_WAIT_POLICY")


def run_phase(
    target: Target,
    sources: dict[str, str],
    scratch: Path,
    cache: Path,
    request: dict[str, str],
    prewarm: bool,
) -> Phase:
    """The process that imports the variant: its working copy, its channel and its view. For a
    target in one process it also measures, and writes the cache."""
    measure = target.measure
    work = working_copy(target, scratch / "work", measure.held_out if measure else ())
    for rel, text in sources.items():
        (work / rel).write_text(text)
    clock = channel(scratch)
    if prewarm:
        os.mkfifo(clock / "go")
    request = {**request, protocol.READY_PATH: str(clock / "go")}
    read_only = fixed_paths(work, target.mutable)
    if measure is None:
        result = clock / "result.json"
        request[protocol.RESULT_PATH] = str(result)
        return Phase(target.entry, work, clock, result, request, [work, cache], [], [], read_only)
    out = scratch / "out"
    out.mkdir()
    request |= {protocol.PHASE: "run", protocol.OUTPUT_DIR: str(out)}
    hidden = [cache / rel for rel in measure.held_out_cache]
    hidden += [target.root / rel for rel in measure.held_out]
    writable = [work, out, cache / COMPILE]
    handoff = out / protocol.HANDOFF
    return Phase(target.entry, work, clock, handoff, request, writable, [cache], hidden, read_only)


def two_phases(
    target: Target,
    run: Phase,
    scratch: Path,
    cache: Path,
    runner: Runner,
    turn: threading.Lock | None,
    prewarm: bool,
    budget: float,
    allowance: Allowance | None = None,
) -> list[Outcome]:
    """prepare (if any), run, measure: each judged before the next starts; `allowance`: what
    the run measured of its seed program (evo.evaluate.allowance), None before."""
    measure = target.measure
    request = {k: v for k, v in run.request.items() if k not in _RUN_PHASE_ONLY}
    outcomes = []
    if measure.prepare:
        logs, fixed = channel(scratch), working_copy(target, scratch / "prepare", target.mutable)
        prepare = Phase(measure.prepare, fixed, logs, logs / "none", request, [fixed, cache])
        outcomes.append(runner.run(prepare, expects="exit"))
        shutil.rmtree(fixed)  # nothing of it for the run phase to find
        if outcomes[-1].status != Status.OK:
            return outcomes
    ran = runner.run(run, expects="handoff", turn=turn, prewarm=prewarm, keep_turn=True)
    try:
        step = step_grace(ran.reported.get(STEP_DETAIL), allowance)
        why = ran.status == Status.OK and clock_verdict(
            ran.ended, budget, measure.handoff_seconds, step
        )
        if why:
            ran = replace(ran, status=Status.INVALID, reason=why)
        outcomes.append(ran)
        if ran.status != Status.OK:
            return outcomes
        # Copied only now: the run phase had no measure phase's files to write over.
        fixed = working_copy(target, scratch / "measure", target.mutable)
        logs, out = channel(scratch), Path(run.request[protocol.OUTPUT_DIR])
        request |= {
            protocol.PHASE: "measure",
            protocol.OUTPUT_DIR: str(out),
            protocol.RESULT_PATH: str(logs / "result.json"),
            protocol.TRAINED_SECONDS: repr(ran.ended.trained_seconds),
        }
        phase = Phase(
            measure.entry, fixed, logs, logs / "result.json", request, [fixed], [cache, out]
        )
        outcomes.append(runner.run(phase))
        return outcomes
    finally:
        if ran.ended.holds_turn:
            turn.release()


def channel(scratch: Path) -> Path:
    """A folder of its own for a phase's logs and result, at a name the variant cannot guess."""
    folder = scratch / secrets.token_hex(8)
    folder.mkdir()
    return folder


def working_copy(target: Target, into: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A copy of the target folder without `leave_out` (paths relative to it)."""
    ignore = shutil.ignore_patterns(*_NOT_COPIED)
    left_out = {str(target.root / rel) for rel in leave_out}

    def ignored(folder: str, names: list[str]) -> set[str]:
        return set(ignore(folder, names)) | {n for n in names if f"{folder}/{n}" in left_out}

    shutil.copytree(target.root, into, ignore=ignored)
    return into


def fixed_paths(work: Path, mutable: tuple[str, ...]) -> list[Path]:
    """The working copy's fixed files and folders, each folder taken whole where it holds no
    mutable file."""
    holding = {parent for rel in mutable for parent in Path(rel).parents if parent != Path(".")}
    found = []
    folders = [work]
    while folders:
        for path in sorted(folders.pop().iterdir()):
            rel = path.relative_to(work)
            if rel in holding:
                folders.append(path)
            elif str(rel) not in mutable:
                found.append(path)
    return found


def clock_verdict(ended: Ended, budget: float, handoff_seconds: float, step: float = 0.0) -> str:
    """Why the run phase broke its budget by evo's clock ("" when it did not); `step`: the
    training step it may take past the budget (evo.evaluate.allowance.step_grace)."""
    grace = protocol.clock_grace(budget, step)
    if ended.trained_seconds is not None and ended.trained_seconds > budget + grace:
        allowed = f"+{grace:.1f}s grace" + (f": a {step:.1f}s step and a margin" if step else "")
        return (
            f"trained {ended.trained_seconds:.1f}s by evo's clock, past the {budget:g}s budget "
            f"({allowed}); stop when the fixed part's clock says so"
        )
    if ended.handoff_seconds is not None and ended.handoff_seconds > handoff_seconds:
        return (
            f"took {ended.handoff_seconds:.1f}s after training to hand off; the target allows "
            f"{handoff_seconds:g}s ([measure] handoff_seconds)"
        )
    return ""


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4 * STDERR_TAIL_CHARS))
        return f.read().decode(errors="replace")[-STDERR_TAIL_CHARS:]


def _read_report(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        reported = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"status": "malformed"}
    return reported if isinstance(reported, dict) else {"status": "malformed"}
