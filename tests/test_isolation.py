"""Variants that try to get out, run for real through `evo eval` and `evo run`: each attempt
contained at the namespace level, the lineage saying what happened, nothing left behind."""

from __future__ import annotations

import ctypes.util
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, evo

from evo.errors import UsageError
from evo.evaluate import isolation, memory
from evo.evaluate.sandbox import evaluate
from evo.status import Status
from evo.store.lineage import read_lineage
from evo.target import load_target

ESCAPE = ROOT / "tests" / "fixtures" / "escape"

needs_namespaces = pytest.mark.skipif(
    not isolation.namespaces_work(), reason=f"no namespaces here: {isolation.why_not()}"
)
CAPPED_BY = "its cgroup" if memory._cgroup_parent() else "RLIMIT_AS"

ATTACK = """
import os, socket, subprocess, threading, time

MARK = {mark!r}


def _write(path):
    try:
        with open(path, "w") as f:
            f.write(MARK)
        return "done"
    except OSError as e:
        return f"{{type(e).__name__}}: {{e.strerror}}"


def attempt():
    found = {{}}
    hits = 0
    pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    for pid in pids:
        try:
            with open(f"/proc/{{pid}}/environ", "rb") as f:
                hits += MARK.encode() in f.read()
        except OSError:
            pass
    found["environ"] = "done" if hits else "none found"
    found["visible_processes"] = len(pids)
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
        found["network"] = "done"
    except OSError as e:
        found["network"] = type(e).__name__
    for name, path in {writes!r}.items():
        found["write_" + name] = _write(path)
    subprocess.Popen(["sleep", "3600.{digits}"], start_new_session=True)
    if os.fork() == 0:  # a double fork into a session of its own
        if os.fork() == 0:
            os.setsid()
            os.execvp("sleep", ["sleep", "3601.{digits}"])
        os._exit(0)
    threading.Thread(target=lambda: (time.sleep(2), _write({late!r})), daemon=True).start()
    return found
"""


@pytest.fixture
def listener():
    """A TCP server on loopback, outside the evaluation: what a variant must not reach."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def attack(folder: Path, port: int, **more: Path) -> tuple[str, str, dict[str, Path]]:
    """An attacking variant written in `folder`, its mark and digits, and the files outside it
    tries to write (in /tmp, $HOME, the target folder and the `more` folders)."""
    digits = str(random.randrange(10**8, 10**9))
    mark = f"sk-ant-secret-{digits}"
    folders = {"tmp": Path("/tmp"), "home": Path.home(), "target": ESCAPE, **more}
    writes = {name: folder / f"evo-escape-{digits}" for name, folder in folders.items()}
    late = Path("/tmp") / f"evo-escape-late-{digits}"
    source = ATTACK.format(
        mark=mark, port=port, writes={k: str(v) for k, v in writes.items()}, digits=digits,
        late=str(late),
    )  # fmt: skip
    (folder / "variant.py").write_text(source)
    return mark, digits, {**writes, "late": late}


def left_behind(digits: str) -> list[int]:
    """Processes whose command line carries the mark."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if digits.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def assert_contained(details: dict, digits: str, outside: dict[str, Path], accepted: list) -> None:
    assert details["environ"] == "none found"
    assert details["visible_processes"] <= 3  # the jail, the entry and what it started
    assert details["network"] == "ConnectionRefusedError" and not accepted
    assert details["write_tmp"] == "done"  # its own private /tmp
    for name in ("home", "target"):
        assert details[f"write_{name}"] == "OSError: Read-only file system"
    time.sleep(2.5)  # the daemon thread's late write, had it outlived its process
    assert not [path for path in outside.values() if path.exists()]
    assert left_behind(digits) == []


@needs_namespaces
def test_an_evaluation_contains_every_attempt(tmp_path, listener):
    port, accepted = listener
    mark, digits, outside = attack(tmp_path, port)
    env = {**os.environ, "ANTHROPIC_API_KEY": mark}
    done = evo("eval", str(ESCAPE), "--file", f"variant.py={tmp_path / 'variant.py'}", "--json",
               env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["isolation"], result["metric"]) == ("ok", "namespace", 1.0)
    assert_contained(result["details"], digits, outside, accepted)


@needs_namespaces
def test_a_run_keeps_credentials_in_its_island_actors_and_contains_its_variants(tmp_path, listener):
    port, accepted = listener
    target = tmp_path / "escape"
    shutil.copytree(ESCAPE, target)
    run_folder = tmp_path / "runs"
    mark, digits, outside = attack(target, port, run=run_folder)
    env = {**os.environ, "ANTHROPIC_API_KEY": mark}
    command = ["run", "--target", str(target), "--operator", "offline", "--islands", "2",
               "--max-evals", "3", "--out", str(run_folder)]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo", *command], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    holders: dict[int, str] = {}
    restarted = False  # `evo run` starts again without the credentials before anything else
    while proc.poll() is None:
        try:
            restarted = (
                restarted
                or b"EVO_CREDENTIALS_FD=" in Path(f"/proc/{proc.pid}/environ").read_bytes()
            )
        except OSError:
            break
        for environ in Path("/proc").glob("[0-9]*/environ") if restarted else []:
            try:
                if mark.encode() in environ.read_bytes():
                    holders[int(environ.parent.name)] = (environ.parent / "cmdline").read_text()
            except OSError:
                continue
        time.sleep(0.05)
    output = proc.stdout.read()
    assert proc.returncode == 0, output
    kinds = {cmdline.split("\0")[0] for cmdline in holders.values()}
    assert kinds == {"ray::IslandActor"}, holders
    [run_dir] = run_folder.iterdir()
    rows = [r for r in read_lineage(run_dir / "lineage").to_pylist() if r["event"] == "candidate"]
    [seed] = rows
    assert seed["eval_statuses"] == ["ok"] * 3
    for details in seed["eval_details"]:
        found = json.loads(details)
        assert found["isolation"] == "namespace"
        assert found["write_run"] != "done"  # the run folder is read-only, or hidden under /tmp
        assert_contained(found, digits, outside, accepted)


@needs_namespaces
def test_a_target_may_allow_the_network(tmp_path, listener):
    port, accepted = listener
    target = tmp_path / "networked"
    shutil.copytree(ESCAPE, target)
    toml = target / "target.toml"
    toml.write_text(toml.read_text() + "\n[sandbox]\nnetwork = true\n")
    attack(target, port)
    result = evaluate(load_target(target), isolation="namespace")
    assert result.details["network"] == "done" and accepted


@pytest.mark.parametrize("level", [pytest.param("namespace", marks=needs_namespaces), "process"])
def test_memory_past_the_cap_is_oom(tmp_path, level, monkeypatch):
    hog = "def attempt():\n    global hog\n    hog = bytearray(2**31)\n    return {}\n"
    sources = {"variant.py": hog}
    target = load_target(ESCAPE)
    result = evaluate(target, sources, isolation=level, memory_bytes=2**28)
    assert (result.status, result.reason) == (
        Status.OOM,
        f"stopped at the memory cap of 0.25 GiB ({CAPPED_BY})",
    )
    # where evo cannot make cgroups: RLIMIT_AS, on CPU
    monkeypatch.setattr(memory, "_cgroup_parent", lambda: None)
    result = evaluate(target, sources, isolation=level, memory_bytes=2**28)
    assert (result.status, result.reason) == (
        Status.OOM,
        "stopped at the memory cap of 0.25 GiB (RLIMIT_AS)",
    )
    honest = evaluate(target, isolation=level, memory_bytes=2**28)
    assert honest.status == Status.OK


def test_evo_eval_takes_a_memory_cap(tmp_path):
    (tmp_path / "variant.py").write_text(
        "def attempt():\n    return {'hog': len(bytearray(2**30))}\n"
    )
    variant = f"variant.py={tmp_path / 'variant.py'}"
    done = evo("eval", str(ESCAPE), "--file", variant, "--memory-gb", "0.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("oom escapes=- ")
    assert done.stdout.rstrip().endswith(
        f"reason: stopped at the memory cap of 0.5 GiB ({CAPPED_BY})"
    )
    roomy = evo("eval", str(ESCAPE), "--file", variant, "--memory-gb", "4")
    assert roomy.stdout.startswith("ok escapes=0.0000 "), roomy.stdout


def test_without_namespaces_auto_falls_back_to_the_process_level_and_says_so(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no unshare on it
    done = evo("eval", str(ESCAPE), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["isolation"] == "process"
    assert done.stderr == (
        "warning: the process isolation level (util-linux's unshare is not installed): "
        f"{isolation.NOT_COVERED}\n"
    )
    refused = evo("eval", str(ESCAPE), "--isolation", "namespace", env=env)
    assert refused.returncode == 2
    assert refused.stderr == (
        "evo: error: isolation namespace is not available here (util-linux's unshare is not "
        "installed); use --isolation process\n"
    )


@needs_namespaces
@pytest.mark.skipif(bool(ctypes.util.find_library("cuda")), reason="a CUDA driver is here")
def test_cuda_evaluations_get_the_namespace_level_only_where_cuda_starts_inside(capsys):
    """The probe for CUDA runs the driver's cuInit inside the jail (on one GPU machine it
    returned 48 there, while `true` ran): without a driver, it cannot start either."""
    why = "OSError: libcuda.so.1: cannot open shared object file: No such file or directory"
    assert isolation.why_not("cpu") == "" and isolation.why_not("cuda") == why
    assert isolation.resolve("auto", "cpu") == "namespace"
    assert capsys.readouterr().err == ""
    assert isolation.resolve("auto", "cuda") == "process"
    assert capsys.readouterr().err == (
        f"warning: the process isolation level ({why}): {isolation.NOT_COVERED}\n"
    )
    with pytest.raises(UsageError, match=r"^isolation namespace is not available here \(OSE"):
        isolation.resolve("namespace", "cuda")


def test_the_probe_names_cudas_own_code_past_255():
    # 304 % 256 == 48: what an exit status said before
    said = "304 CUDA_ERROR_OPERATING_SYSTEM\n"
    assert isolation.cuda_refusal(said) == (
        "CUDA does not start inside the namespaces (cuInit returned 304: "
        "CUDA_ERROR_OPERATING_SYSTEM)"
    )


@needs_namespaces
def test_the_jail_leaves_its_own_proc_writable_and_every_other_mount_read_only(tmp_path):
    """CUDA's driver does not initialise where /proc is read-only (cuInit 304 on an H200); the
    namespace's /proc is its own (unshare --mount-proc), so leaving it writable shows nothing of
    the host."""
    writable, visible, shared = tmp_path / "work", tmp_path / "cache", tmp_path / "shared"
    writable.mkdir(), visible.mkdir(), shared.mkdir()
    moved = Path("/tmp/torchinductor_someone")  # shown in its private /tmp, writable
    entry = (
        sys.executable,
        "-c",
        f"open('{moved}/left', 'w').write('x'); print(open('/proc/self/mountinfo').read())",
    )
    read, write = os.pipe()
    command = isolation.jailed(
        entry,
        writable=[writable],
        visible=[visible],
        moved={moved: shared},
        network=False,
        status_fd=write,
    )
    done = subprocess.run(command, pass_fds=(write,), capture_output=True, text=True, timeout=60)
    os.close(write), os.close(read)
    assert done.returncode == 0, done.stderr
    kept = ("/proc", "/tmp", "/dev/shm", str(writable), str(moved))
    seen = {}
    for line in done.stdout.strip().splitlines():
        fields = line.split()
        point = fields[4].encode().decode("unicode_escape")
        if not point.startswith("/proc/"):  # what lies under /proc is left as the host has it
            seen[point] = fields[5].split(",")[0]
    expected = {point: "rw" if point in kept else "ro" for point in seen}
    assert seen == expected
    assert seen["/proc"] == "rw" and seen[str(visible)] == "ro" and seen["/"] == "ro"
    assert (shared / "left").read_text() == "x"  # what the evaluation left there is shared
