"""A memory cap per evaluation, and how to tell that an evaluation reached it.

Where the machine lets evo make cgroups (cgroup v2 with the memory controller delegated, or v1's
memory hierarchy; in practice: root, or a systemd user slice with delegation), each evaluation
gets a cgroup of its own under evo's: every process it starts is counted together, page cache and
tmpfs included, and the kernel's OOM killer stops it at the cap. Its peak memory is the cgroup's.
Elsewhere RLIMIT_AS caps each process's address space, on CPU only: CUDA reserves far more
address space than it uses, so a GPU evaluation without cgroups has no cap (its GPU memory cannot
be capped by the operating system at all).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

OUT_OF_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory")
HEADROOM = 0.9  # of the machine's memory, shared by the evaluations that run on it


def machine_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_cap(evaluations_at_once: int = 1) -> int:
    """The cap when none is set: 90% of the machine's memory, shared."""
    return int(HEADROOM * machine_bytes() / max(1, evaluations_at_once))


@dataclass
class MemoryCap:
    """One evaluation's cap: `limit` bytes, through `cgroup` (a folder) or RLIMIT_AS (None)."""

    limit: int
    cgroup: Path | None
    version: int = 0  # of the cgroup hierarchy

    def prelude(self) -> str:
        """Shell commands the evaluation's first process runs before it becomes the entry."""
        if self.cgroup:
            return f'echo $$ > "{self.cgroup}/cgroup.procs"'
        return f"ulimit -v {self.limit // 1024}" if self.limit else ""

    def peak_mb(self) -> float | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        value = self._read(name)
        return int(value) / 2**20 if value.strip().isdigit() else None

    def reached(self, returncode: int, stderr_tail: str) -> bool:
        """Whether the evaluation ended because it reached the cap."""
        if self.cgroup:
            events = self._read("memory.oom_control" if self.version == 1 else "memory.events")
            counts = dict(line.split() for line in events.splitlines() if len(line.split()) == 2)
            if int(counts.get("oom_kill", 0)):
                return True
            return (
                self.version == 1 and returncode < 0 and int(self._read("memory.failcnt") or 0) > 0
            )
        return bool(self.limit) and any(sign in stderr_tail for sign in OUT_OF_MEMORY_SIGNS)

    def describe(self) -> str:
        how = "its cgroup" if self.cgroup else "RLIMIT_AS"
        return f"the memory cap of {self.limit / 2**30:.3g} GiB ({how})"

    def close(self) -> None:
        """Remove the cgroup once its processes are gone (the kernel takes a moment)."""
        if not self.cgroup:
            return
        for _ in range(100):
            try:
                self.cgroup.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)

    def _read(self, name: str) -> str:
        try:
            return (self.cgroup / name).read_text()  # type: ignore[operator]
        except (OSError, TypeError):
            return ""


def cap(limit: int, device: str) -> MemoryCap:
    """A cap of `limit` bytes for one evaluation: its own cgroup where evo can make one, else
    RLIMIT_AS on CPU, else none (limit 0)."""
    found = _cgroup_parent()
    if found and limit:
        parent, version = found
        folder = parent / f"evo-{secrets.token_hex(6)}"
        try:
            folder.mkdir()
            names = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
            for name in names if version == 1 else ("memory.max", "memory.swap.max"):
                if (folder / name).exists():
                    (folder / name).write_text(str(limit) if "swap" not in name else "0")
            return MemoryCap(limit, folder, version)
        except OSError:
            with contextlib.suppress(OSError):
                folder.rmdir()
    return MemoryCap(limit if device == "cpu" else 0, None)


@functools.cache
def _cgroup_parent() -> tuple[Path, int] | None:
    """The cgroup evo runs in, where it may make children with a memory limit, and the
    hierarchy's version; None where it may not."""
    try:
        membership = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        after = fields[fields.index("-") + 1 :]
        fstype, options, point = after[0], after[2].split(","), Path(fields[4])
        for entry in membership:
            number, controllers, path = entry.split(":", 2)
            v1 = fstype == "cgroup" and "memory" in options and "memory" in controllers.split(",")
            v2 = fstype == "cgroup2" and number == "0"
            if not (v1 or v2):
                continue
            parent = point / path.lstrip("/")
            if v2 and "memory" not in _read(parent / "cgroup.subtree_control"):
                continue
            if os.access(parent, os.W_OK):
                return parent, 1 if v1 else 2
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
