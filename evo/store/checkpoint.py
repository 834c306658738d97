"""Atomic checkpoints of a run: everything the driver needs to go on after a crash.

Written as checkpoint.json through a temporary file, fsync and rename; the previous one is kept as
checkpoint.prev.json. A checkpoint also names how many lineage part files it covers: files
written after it belong to work that resume redoes, and are discarded then.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from evo.errors import UsageError

VERSION = 2  # 2: the run state of evo.run.state (typed candidates, members)
NAME = "checkpoint.json"
PREVIOUS = "checkpoint.prev.json"


def save(run_dir: Path, state: dict[str, Any]) -> None:
    path = run_dir / NAME
    tmp = run_dir / f".{NAME}.tmp"
    with open(tmp, "w") as f:
        json.dump({"version": VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, run_dir / PREVIOUS)
    os.replace(tmp, path)


def load(run_dir: Path, any_version: bool = False) -> dict[str, Any] | None:
    """The newest readable checkpoint, or None when the run has none yet; one of another format
    is refused in one line, unless `any_version` (readers that take a figure or two of it)."""
    for name in (NAME, PREVIOUS):
        try:
            state = json.loads((run_dir / name).read_text())
        except FileNotFoundError:
            continue
        except (json.JSONDecodeError, UnicodeDecodeError):
            print(f"warning: {run_dir / name} is damaged; trying the one before", file=sys.stderr)
            continue
        if isinstance(state, dict) and (state.get("version") == VERSION or any_version):
            return state
        if isinstance(state, dict) and "version" in state:
            raise UsageError(
                f"{run_dir / name} was written by another version of evo (checkpoint format "
                f"{state['version']}, this evo reads {VERSION}); start a new run"
            )
    return None
