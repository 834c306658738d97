"""A run on a two-node Ray cluster started here: `ray start --head` and a second `ray start
--address` on loopback, each with its own CPUs; the evaluators spread over both nodes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT

from evo.lineage import read_lineage

QUAD = ROOT / "tests" / "fixtures" / "quad"
RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's sockets need a short path
    port = free_port()
    common = [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--num-gpus=0",
        "--disable-usage-stats",
    ]
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
            *common,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        subprocess.run(
            [RAY, "start", f"--address=127.0.0.1:{port}", *common],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_evaluators_spread_over_both_nodes(cluster, tmp_path):
    address, env = cluster
    out = tmp_path / "runs"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evo",
            "run",
            "--target",
            str(QUAD),
            "--address",
            address,
            "--islands",
            "2",
            "--evaluators",
            "2",
            "--max-evals",
            "16",
            "--operator",
            "offline",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [run_dir] = out.iterdir()
    rows = [r for r in read_lineage(run_dir / "lineage").to_pylist() if r["event"] == "candidate"]
    nodes = {node for r in rows if r["node"] for node in r["node"].split(",")}
    assert len(nodes) == 2  # one evaluator on each node
    pending = json.loads((run_dir / "checkpoint.json").read_text())["pending"]
    assert sum(len(r["metrics"]) for r in rows) + sum(len(c[0]["evals"]) for c in pending) == 16
    evaluators = {e for r in rows if r["evaluator"] for e in r["evaluator"].split(",")}
    assert evaluators == {"evaluator-0", "evaluator-1"}
