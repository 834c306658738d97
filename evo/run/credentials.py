"""The model service's credentials: out of every process of a run but the island actors.

Ray's daemons and every worker they start inherit the environment of the process that started
Ray, and a variant at the process isolation level can read any same-user process's
`/proc/<pid>/environ`. So a run takes every credential out of its environment before Ray starts
(`take`), and hands the model service's own (ANTHROPIC_*, OPENAI_*) to the island actors alone,
through their runtime environment; evaluators, Ray's daemons and variants never hold them.

`/proc/<pid>/environ` shows a process's environment as it was when the process started, whatever
it removed since; so `evo run` and `evo eval` first start again without them (`restart_without`,
an exec of the same command), receiving them through a pipe. A run started from Python (tests,
benchmarks) takes them from its environment for as long as it runs, and its own process keeps
the startup copy.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from evo.evaluate.sandbox import looks_secret

MODEL_SERVICE_PREFIXES = ("ANTHROPIC_", "OPENAI_")
_HANDOFF = "EVO_CREDENTIALS_FD"  # the pipe a restarted command reads its credentials from
_received: dict[str, str] = {}


def is_credential(name: str) -> bool:
    """A variable of the model service, or one whose name says it is a secret."""
    return name.startswith(MODEL_SERVICE_PREFIXES) or looks_secret(name)


def restart_without() -> None:
    """Start this command again (exec: the same pid) with no credential in its environment,
    handing them over through a pipe; returns at once when there are none, or after a restart.
    """
    if _HANDOFF in os.environ:  # this is the restarted command
        _receive(int(os.environ.pop(_HANDOFF)))
        return
    held = {name: value for name, value in os.environ.items() if is_credential(name)}
    if not held:
        return
    read, write = os.pipe()
    payload = json.dumps(held).encode()
    if len(payload) > 60_000:  # what a pipe holds before anyone reads it
        os.close(read)
        os.close(write)
        return
    os.write(write, payload)
    os.close(write)
    os.set_inheritable(read, True)
    env = {name: value for name, value in os.environ.items() if name not in held}
    env[_HANDOFF] = str(read)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "evo", *sys.argv[1:]], env)


def _receive(fd: int) -> None:
    with os.fdopen(fd, "rb") as pipe:
        _received.update(json.loads(pipe.read() or b"{}"))


def take() -> dict[str, str]:
    """Every credential this process holds, taken out of its environment (so that nothing it
    starts from now on inherits them)."""
    taken = {name: os.environ.pop(name) for name in list(os.environ) if is_credential(name)}
    return _received | taken


def give_back(credentials: Mapping[str, str]) -> None:
    """Put what `take` took back in the environment, once the run's processes have started (a
    run started from Python leaves the environment as it found it)."""
    os.environ.update({k: v for k, v in credentials.items() if k not in _received})


def for_model_service(credentials: Mapping[str, str]) -> dict[str, str]:
    """The ones the island actors' operators need."""
    return {k: v for k, v in credentials.items() if k.startswith(MODEL_SERVICE_PREFIXES)}
