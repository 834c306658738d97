"""How far an evaluation is isolated from the machine: the levels, the probe that picks one, and
the command that puts an entry inside.

namespace (Linux, the default where the probe passes): the evaluation's own user, PID, mount and
    network namespaces, made by util-linux's `unshare`, shaped by evo.evaluate.jail: every process
    it starts dies with it; /proc shows only its own processes; the file system is read-only but
    for the working copy, a private /tmp and /dev/shm, and the target's cache folder; the fixed
    files are read-only in the working copy; no network but loopback unless the target's
    `[sandbox] network = true`; no capabilities.
process: a process group (today's sandbox; macOS, or where namespaces are not allowed, e.g.
    a container whose seccomp profile refuses them): see NOT_COVERED.

A memory cap applies at both levels (evo.evaluate.memory). GPUs stay visible at both: a variant
can use the devices Ray gave its evaluator (CUDA_VISIBLE_DEVICES), and at the namespace level it
can neither write outside the folders above nor reach the network; GPU memory cannot be capped by
the operating system, and a variant could in principle read what another process left in GPU
memory (NVIDIA's driver clears memory between processes only with MIG or confidential computing).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from evo.config import ISOLATION_LEVELS as LEVELS
from evo.errors import UsageError

NOT_COVERED = (
    "a variant can read other processes' environments and files, write outside its working "
    "copy, reach the network, and leave processes that call setsid() behind"
)


def unshare_command(network: bool) -> list[str]:
    """The namespaces of one evaluation: user (root inside, nobody else), PID (with its own
    /proc), mount, and network unless the target needs it."""
    return [
        "unshare",
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--mount",
        *([] if network else ["--net"]),
    ]


def jailed(
    entry: tuple[str, ...],
    *,
    writable: list[Path],
    network: bool,
    status_fd: int,
    visible: list[Path] = (),
    read_only: list[Path] = (),
    hidden: list[Path] = (),
    moved: dict[Path, Path] | None = None,
) -> list[str]:
    """The command that runs `entry` inside the namespaces, shaped by evo.evaluate.jail:
    `writable` folders stay writable, `visible` ones (under /tmp too) read-only, `read_only`
    paths inside writable ones are made read-only, `hidden` folders are emptied, and each
    folder `moved` maps to is shown, writable, at the path it is mapped from."""
    spec = {
        "writable": [str(path) for path in writable],
        "moved": {str(path): str(source) for path, source in (moved or {}).items()},
        "visible": [str(path) for path in visible],
        "read_only": [str(path) for path in read_only],
        "hidden": [str(path) for path in hidden],
        "loopback": not network,
        "status_fd": status_fd,
    }
    jail = [sys.executable, "-m", "evo.evaluate.jail", json.dumps(spec), "--"]
    return [*unshare_command(network), *jail, *entry]


# What the probe runs inside the jail for CUDA evaluations: the driver's own initialisation,
# which some sandboxed kernels (gVisor's) refuse inside a user namespace. It prints CUDA's code
# and its name: an exit status would keep the code modulo 256 (304 would read 48).
CUDA_PROBE = """import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
code, name = cuda.cuInit(0), ctypes.c_char_p()
cuda.cuGetErrorName(code, ctypes.byref(name))
print(code, (name.value or b"an unknown error").decode())
sys.exit(code != 0)"""


def resolve(level: str, device: str = "cpu") -> str:
    """The level asked for, or for "auto" the best this machine allows for evaluations on
    `device` (with a warning on stderr when that is the process level)."""
    if level not in LEVELS:
        raise UsageError(f"unknown isolation {level!r}; use one of: {', '.join(LEVELS)}")
    if level == "auto":
        if namespaces_work(device):
            return "namespace"
        why = why_not(device)
        print(f"warning: the process isolation level ({why}): {NOT_COVERED}", file=sys.stderr)
        return "process"
    if level == "namespace" and not namespaces_work(device):
        raise UsageError(
            f"isolation namespace is not available here ({why_not(device)}); "
            "use --isolation process"
        )
    return level


def namespaces_work(device: str = "cpu") -> bool:
    return not why_not(device)


@functools.cache
def why_not(device: str = "cpu") -> str:
    """Why the namespace level cannot run here ("" when it can): the probe runs the jail once,
    on `true`, or for "cuda" on CUDA_PROBE, and checks that it answered."""
    if sys.platform != "linux":
        return f"namespaces are Linux's; this is {sys.platform}"
    if not shutil.which("unshare"):
        return "util-linux's unshare is not installed"
    entry = ("true",) if device == "cpu" else (sys.executable, "-c", CUDA_PROBE)
    read, write = os.pipe()
    with tempfile.TemporaryDirectory(prefix="evo-probe-") as scratch:
        command = jailed(entry, writable=[Path(scratch)], network=False, status_fd=write)
        try:
            done = subprocess.run(
                command, pass_fds=(write,), capture_output=True, timeout=30, cwd=scratch
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            done = subprocess.CompletedProcess(command, -1, b"", str(e).encode())
        finally:
            os.close(write)
        with os.fdopen(read) as pipe:
            answered = pipe.read()
    if done.returncode == 0 and '"returncode": 0' in answered:
        return ""
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    if device != "cpu" and not lines and answered:
        return cuda_refusal(done.stdout.decode(errors="replace"))
    return lines[-1] if lines else f"the probe exited with {done.returncode}"


def cuda_refusal(said: str) -> str:
    """Why CUDA cannot run at the namespace level, from what CUDA_PROBE printed."""
    code, _, name = said.strip().partition(" ")
    return f"CUDA does not start inside the namespaces (cuInit returned {code}: {name})"
