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
import time
from pathlib import Path
from typing import Any

from evo.errors import UsageError
from evo.evaluate import isolation
from evo.evaluate.memory import MemoryCap


def run_process(
    argv: tuple[str, ...],
    cwd: Path,
    env: dict[str, str],
    logs: Path,
    timeout: float,
    memory: MemoryCap | None = None,
    jail: dict[str, Any] | None = None,
) -> tuple[int, bool, float | None]:
    """Run argv in its own process group, under `memory`'s cap and, given `jail` (the keyword
    arguments of evo.evaluate.isolation.jailed), inside the evaluation's namespaces; return (exit
    code, timed out, peak memory in MB)."""
    command, status_fds = list(argv), None
    if jail is not None:
        status_fds = os.pipe()
        command = isolation.jailed(argv, status_fd=status_fds[1], **jail)
    prelude = memory.prelude() if memory else ""
    if prelude:  # the first process joins its cgroup or takes its limit, then becomes the command
        command = ["/bin/sh", "-c", f'{prelude} && exec "$@"', "sh", *command]
    with open(logs / "stdout.log", "wb") as out, open(logs / "stderr.log", "wb") as err:
        try:
            proc = subprocess.Popen(
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
    deadline = time.monotonic() + timeout
    delay = 0.001
    timed_out = False
    peak_rss_mb = None
    try:
        while proc.poll() is None:
            peak_rss_mb = _peak_rss_mb(proc.pid) or peak_rss_mb
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
                break
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)
    finally:
        _kill_group(proc.pid)  # on exit: children the variant left behind; on error: everything
        proc.wait()
    exit_code = proc.returncode
    if status_fds:  # what the jail said of the entry (nothing if it was killed first)
        with os.fdopen(status_fds[0]) as pipe:
            said = json.loads(pipe.read() or "{}")
        exit_code = said.get("returncode", exit_code)
        peak_rss_mb = said.get("peak_rss_mb")
    return exit_code, timed_out, (memory and memory.peak_mb()) or peak_rss_mb


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
