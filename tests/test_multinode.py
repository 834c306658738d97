"""A run on a two-node Ray cluster started here: `ray start --head` and a second `ray start
--address` on loopback, each with its own CPUs; the evaluators spread over both nodes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, evo, evo_started

from evo.store.lineage import read_lineage

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
    worker_port = free_port()
    try:
        subprocess.run(
            [
                RAY,
                "start",
                f"--address=127.0.0.1:{port}",
                f"--node-manager-port={worker_port}",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"127.0.0.1:{port}", env, worker_port
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def run_args(address: str, out: Path, max_evals: int) -> list[str]:
    """`evo run` on the cluster with one evaluator per node (each needs 2 of the 4 CPUs)."""
    return [
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
        str(max_evals),
        "--operator",
        "offline",
        "--out",
        str(out),
    ]


def test_evaluators_spread_over_both_nodes(cluster, tmp_path):
    address, env, _ = cluster
    out = tmp_path / "runs"
    done = evo(*run_args(address, out, max_evals=16), env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [run_dir] = out.iterdir()
    rows = [r for r in read_lineage(run_dir / "lineage").to_pylist() if r["event"] == "candidate"]
    nodes = {node for r in rows if r["node"] for node in r["node"].split(",")}
    assert len(nodes) == 2  # one evaluator on each node
    pending = json.loads((run_dir / "checkpoint.json").read_text())["pending"]
    assert (
        sum(len(r["metrics"]) for r in rows) + sum(len(c[0]["evaluations"]) for c in pending) == 16
    )
    evaluators = {e for r in rows if r["evaluator"] for e in r["evaluator"].split(",")}
    assert evaluators == {"evaluator-0", "evaluator-1"}


def kill_raylet(node_manager_port: int) -> int:
    """SIGKILL the raylet of the node started with this port: the node is lost."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            any("raylet" in a for a in argv[:1])
            and f"--node_manager_port={node_manager_port}" in argv
        ):
            os.kill(int(cmdline.parent.name), signal.SIGKILL)
            return int(cmdline.parent.name)
    raise AssertionError("the worker node's raylet was not found")


def test_a_lost_worker_node_does_not_stop_the_run(cluster, tmp_path):
    address, env, worker_port = cluster
    out = tmp_path / "runs"
    driver = evo_started(*run_args(address, out, max_evals=60), env=env)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/lineage/part-*.parquet"))) < 2:
        assert time.monotonic() < deadline and driver.poll() is None
        time.sleep(0.05)
    kill_raylet(worker_port)
    output, _ = driver.communicate(timeout=400)
    assert driver.returncode == 0, output
    assert "evaluator-1 died (" in output or "evaluator-0 died (" in output
    [run_dir] = out.iterdir()
    rows = [r for r in read_lineage(run_dir / "lineage").to_pylist() if r["event"] == "candidate"]
    ids = [r["candidate_id"] for r in rows]
    assert len(ids) == len(set(ids))
    state = json.loads((run_dir / "checkpoint.json").read_text())
    assert state["evals_done"] == 60
    assert set(ids) | {c[0]["id"] for c in state["pending"]} == set(range(state["next_id"]))
