"""Shared fixtures: the shipped targets, one corpus cache per session, and variant builders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo.target import Target, load_target

ROOT = Path(__file__).resolve().parent.parent
TRAIN_HEAD = "def train(run):\n"
TRAIN_TAIL = "\n    return model\n"


@pytest.fixture(scope="session")
def gpt() -> Target:
    return load_target(ROOT / "targets" / "gpt")


@pytest.fixture(scope="session")
def sort_target() -> Target:
    return load_target(ROOT / "targets" / "sort")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus cache for the whole session, so the standard library is read once."""
    return tmp_path_factory.mktemp("evo-cache")


@pytest.fixture(scope="session")
def gpt_prepare():
    """targets/gpt/prepare.py imported as a module, for unit tests of the metric and the data."""
    sys.path.insert(0, str(ROOT / "targets" / "gpt"))
    try:
        import prepare
    finally:
        sys.path.pop(0)
    return prepare


def evo(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """`python -m evo ARGS` run from the repository, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "evo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def evo_started(*args: str, **popen: object) -> subprocess.Popen:
    """`python -m evo ARGS` started in the background, output (both streams) in a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "evo", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def train_variant(target: Target, head: str = "", tail: str = "") -> dict[str, str]:
    """gpt's train.py with code put at the start of train() and just before it returns."""
    source = target.read_mutable()["train.py"]
    assert source.count(TRAIN_HEAD) == 1 and source.count(TRAIN_TAIL) == 1
    source = source.replace(TRAIN_HEAD, TRAIN_HEAD + _indent(head))
    source = source.replace(TRAIN_TAIL, "\n" + _indent(tail) + TRAIN_TAIL.lstrip("\n"))
    return {"train.py": source}


def _indent(code: str) -> str:
    return "".join(f"    {line}\n" for line in code.strip("\n").splitlines())


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def dead_soon(pid: int, within: float = 5.0) -> bool:
    """Whether a process is gone within a few seconds: SIGKILL is delivered asynchronously."""
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def cpu_threads() -> int:
    return min(2, os.cpu_count() or 1)


@pytest.fixture(scope="session")
def model_server():
    """One scripted model server on loopback for the session; each test resets its script."""
    from evo.bench.loopback import ModelServer

    server = ModelServer()
    yield server
    server.close()
