"""Shared fixtures: the shipped targets, one corpus cache per session, variant builders, and the
lineages the analysis commands and the report read (a hand-made one, a real run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evo.config import RunConfig
from evo.store.lineage import LineageWriter, Metric
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


def _gpt_module(name: str):
    """A module of targets/gpt's fixed part, imported for unit tests of the data and the metric."""
    sys.path.insert(0, str(ROOT / "targets" / "gpt"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


@pytest.fixture(scope="session")
def gpt_prepare():
    return _gpt_module("prepare")


@pytest.fixture(scope="session")
def gpt_corpus():
    return _gpt_module("corpus")


@pytest.fixture(scope="session")
def gpt_measure():
    return _gpt_module("measure")


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


QUAD = ROOT / "tests" / "fixtures" / "quad"


def row(cid, parent, island, status, metrics, hypothesis, minute, **extra):
    """A candidate row of a hand-made lineage, finished `minute` + 1 minutes into 2026."""
    return {
        "run_id": "fixture",
        "event": "candidate",
        "candidate_id": cid,
        "parent_id": parent,
        "island": island,
        "generation": 0 if parent is None else 1,
        "operator": "offline",
        "hypothesis": hypothesis,
        "edit": f"params.py: change {cid}",
        "status": status,
        "sources": json.dumps({"params.py": f"X = {cid}\n"}),
        "metrics": metrics,
        "seeds": list(range(len(metrics))),
        "eval_statuses": extra.pop("statuses", ["ok"] * len(metrics)),
        "fitness": sum(metrics) / len(metrics) if metrics and None not in metrics else None,
        "accepted": status == "accepted",
        "evaluator": "evaluator-0" if metrics else None,
        "evaluation_s": 10.0 * len(metrics) if metrics else None,
        "created_at": datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
        "finished_at": datetime(2026, 1, 1, 0, minute + 1, tzinfo=UTC),
        **extra,
    }


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory) -> Path:
    """A hand-made lineage of six candidates and a migration, with exact figures."""
    folder = tmp_path_factory.mktemp("runs") / "fixture"
    (folder).mkdir()
    (folder / "config.toml").write_text(RunConfig(target=str(QUAD)).to_toml())
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))
    for r in [
        row(0, None, 0, "accepted", [10.0, 10.2, 9.8], "the seed program", 0),
        row(
            1,
            0,
            0,
            "accepted",
            [9.0],
            "X down",
            1,
            operator="anthropic",
            model="claude-haiku-4-5",
            cost_usd=0.25,
            input_tokens=1000,
            output_tokens=100,
        ),
        row(
            2,
            0,
            1,
            "kept",
            [10.1],
            "Y up",
            2,
            operator="anthropic",
            model="claude-sonnet-4-5",
            cost_usd=0.25,
            input_tokens=1000,
            output_tokens=100,
        ),  # fmt: skip
        row(
            3,
            1,
            0,
            "crash",
            [None],
            "X way down",
            3,
            statuses=["crash"],
            reason="boom",
            eval_details=[json.dumps({"stderr_tail": "Traceback (most recent call last):\nboom"})],
        ),  # fmt: skip
        row(
            4,
            1,
            0,
            "accepted",
            [8.0, 8.2],
            "X further down",
            4,
            eval_details=[
                json.dumps({"train_seconds": 9.0, "phases": "run+measure"}),
                json.dumps({"train_seconds": 9.5, "phases": "run+measure"}),
            ],
            mate_id=2,  # a recombination of #1 and #2
        ),  # fmt: skip
        row(
            5,
            0,
            1,
            "refused",
            [],
            "bad edit",
            5,
            reason="SEARCH block 1 matches nothing",
            operator="anthropic",
            model="claude-haiku-4-5",
            cost_usd=0.15,
            input_tokens=500,
        ),  # fmt: skip
    ]:
        writer.add(r)
    writer.flush()
    writer.add(
        {
            "run_id": "fixture",
            "event": "migration",
            "candidate_id": 4,
            "island": 1,
            "from_island": 0,
            "to_island": 1,
            "status": "accepted",
            "accepted": True,
        }
    )
    writer.flush()
    return folder


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> Path:
    """A real offline run of the quad fixture: 2 islands, 30 evaluations."""
    out = tmp_path_factory.mktemp("real")
    done = evo(
        "run",
        "--target",
        str(QUAD),
        "--islands",
        "2",
        "--max-evals",
        "30",
        "--operator",
        "offline",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = out.iterdir()
    return folder
