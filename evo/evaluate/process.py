"""One evaluation's process tree: started (at its isolation level, under its memory cap),
watched until it ends or its timeout, and killed whole.

The tree is a process group of its own, inside the evaluation's namespaces at the namespace level
(evo.evaluate.jail then says how the entry ended: the process Popen knows is `unshare`). Its first
process joins the evaluation's cgroup, or takes its RLIMIT_AS, before it becomes the command
(evo.evaluate.memory). Past the timeout, and again after a normal end, the group gets SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evo.errors import UsageError
from evo.evaluate import isolation
from evo.evaluate.memory import MemoryCap


@dataclass(frozen=True)
class Ended:
    """How an evaluation's process tree ended, timed from outside it.

    setup_seconds: from the start until the fixed part called protocol.ready().
    waited_seconds: from then until the evaluator let it train (another evaluation was training).
    trained_seconds: from then until the fixed part called protocol.trained() (or the process
        ended): its training, by evo's clock, which the variant cannot reach.
    handoff_seconds: from protocol.trained() until the process ended; None without the mark.
    holds_turn: the evaluator's turn is still held (run_process's keep_turn).
    """

    exit_code: int
    timed_out: bool
    peak_rss_mb: float | None
    setup_seconds: float | None = None
    waited_seconds: float = 0.0
    trained_seconds: float | None = None
    handoff_seconds: float | None = None
    holds_turn: bool = False


def run_process(
    argv: tuple[str, ...],
    cwd: Path,
    env: dict[str, str],
    logs: Path,
    timeout: float,
    memory: MemoryCap | None = None,
    jail: dict[str, Any] | None = None,
    turn: threading.Lock | None = None,
    channel: Path | None = None,
    prewarm: bool = False,
    keep_turn: bool = False,
) -> Ended:
    """Run argv in its own process group, under `memory`'s cap and, given `jail` (the keyword
    arguments of evo.evaluate.isolation.jailed), inside the evaluation's namespaces.

    channel: the folder where protocol.ready() and protocol.trained() leave their marks (and,
    with pre-warm, the FIFO `go` that ready() waits on). turn: the evaluator's lock, held while
    an evaluation trains. With `prewarm` the process starts at once and takes the turn when its
    fixed part says it is ready; the timeout does not run while it waits. Without, the turn is
    taken before the process starts. keep_turn: return still holding it (a measure phase
    follows), for the caller to release.
    """
    command, status_fds = list(argv), None
    if jail is not None:
        status_fds = os.pipe()
        command = isolation.jailed(argv, status_fd=status_fds[1], **jail)
    prelude = memory.prelude() if memory else ""
    if prelude:  # the first process joins its cgroup or takes its limit, then becomes the command
        command = ["/bin/sh", "-c", f'{prelude} && exec "$@"', "sh", *command]
    took = turn is not None and not prewarm and turn.acquire()
    try:
        proc = _start(command, argv, cwd, env, logs, status_fds)
        ended = _watch(proc, timeout, status_fds, memory, turn if prewarm else None, channel)
    except BaseException:
        if took:
            turn.release()
        raise
    holds = took or ended.holds_turn
    if holds and not keep_turn:
        turn.release()
    return replace(ended, holds_turn=holds and keep_turn)


def _start(
    command: list[str],
    argv: tuple[str, ...],
    cwd: Path,
    env: dict[str, str],
    logs: Path,
    status_fds: tuple[int, int] | None,
) -> subprocess.Popen:
    with open(logs / "stdout.log", "wb") as out, open(logs / "stderr.log", "wb") as err:
        try:
            return subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=status_fds[1:] if status_fds else (),
            )
        except OSError as e:
            if status_fds:
                os.close(status_fds[0])
            raise UsageError(
                f"cannot start the entry command {argv[0]!r} ({e}); fix 'entry'"
            ) from None
        finally:
            if status_fds:
                os.close(status_fds[1])


def _watch(
    proc: subprocess.Popen,
    timeout: float,
    status_fds: tuple[int, int] | None,
    memory: MemoryCap | None,
    turn: threading.Lock | None,
    channel: Path | None,
) -> Ended:
    """Wait for the process (letting it train when its turn comes, with pre-warm's `turn`),
    note when it marks its clock, kill its group at the timeout and at the end."""
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.001
    timed_out = False
    peak_rss_mb = None
    setup = waiting_since = training_since = trained_at = None
    waited = 0.0
    holding = False
    try:
        while proc.poll() is None:
            peak_rss_mb = _peak_rss_mb(proc.pid) or peak_rss_mb
            now = time.monotonic()
            if channel and training_since is None and (channel / "ready").exists():
                if setup is None:
                    setup, waiting_since = now - started, now
                if turn is not None and not holding:
                    holding = turn.acquire(blocking=False)
                    waited = now - waiting_since  # for the turn, not for the FIFO's reader
                if (turn is None or holding) and _let_go(channel / "go"):
                    training_since = now
                    deadline += waited  # waiting for the turn does not count
            if training_since and trained_at is None and (channel / "trained").exists():
                trained_at = now
            waiting = setup is not None and training_since is None
            if now >= deadline and not waiting:
                timed_out = True
                break
            time.sleep(delay if waiting else min(delay, deadline - now))
            delay = min(delay * 2, 0.01)
    except BaseException:
        if holding:
            turn.release()
        raise
    finally:
        _kill_group(proc.pid)  # on exit: children the variant left behind; on error: everything
        proc.wait()
    ended_at = time.monotonic()
    exit_code = proc.returncode
    if status_fds:  # what the jail said of the entry (nothing if it was killed first)
        with os.fdopen(status_fds[0]) as pipe:
            said = json.loads(pipe.read() or "{}")
        exit_code = said.get("returncode", exit_code)
        peak_rss_mb = said.get("peak_rss_mb")
    if waiting_since is not None and training_since is None:  # it ended before its turn came
        waited = ended_at - waiting_since
    return Ended(
        exit_code,
        timed_out,
        (memory and memory.peak_mb()) or peak_rss_mb,
        setup,
        waited,
        trained_seconds=(trained_at or ended_at) - (training_since or started),
        handoff_seconds=None if trained_at is None else ended_at - trained_at,
        holds_turn=holding,
    )


def _let_go(fifo: Path) -> bool:
    """Write the one byte protocol.ready() waits for (if it waits: without pre-warm there is no
    FIFO); False while it has not opened the FIFO."""
    if not fifo.exists():
        return True
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: the reader is not there yet
        return False
    try:
        os.write(fd, b"g")
    finally:
        os.close(fd)
    return True


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory so far (Linux), or None where it cannot be read.

    Read from /proc while it runs, not from wait4's ru_maxrss: that one also counts the memory
    of evo's own process, which the child shared before it exec'd the entry command.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left to kill
        os.killpg(pgid, signal.SIGKILL)
