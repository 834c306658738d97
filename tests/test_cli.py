"""`python -m evo` as a user runs it: real processes, one-line errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import evo


def test_help_lists_the_commands():
    done = evo("--help")
    assert done.returncode == 0
    assert "eval" in done.stdout and "evaluate one variant" in done.stdout


def test_eval_prints_one_line_and_exits_0():
    done = evo("eval", "targets/sort", "--budget", "0.5", "--device", "cpu", "--seed", "3")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("ok runtime_ms=") and line.endswith(
        "seed=3 device=cpu phases=one process"
    )


def test_eval_of_a_variant_file(tmp_path):
    variant = tmp_path / "wrong.py"
    variant.write_text("def sort_ints(values):\n    return list(values)\n")
    done = evo("eval", "targets/sort", "--file", str(variant), "--budget", "0.5", "--device", "cpu")
    assert done.returncode == 0
    assert done.stdout.startswith("invalid runtime_ms=- ")
    assert "reason: wrong output on round 0" in done.stdout


def broken_target(tmp_path: Path, toml: str | None, mutable: bool = True) -> str:
    folder = tmp_path / "t"
    folder.mkdir()
    if mutable:
        (folder / "m.py").write_text("x = 1\n")
    if toml is not None:
        (folder / "target.toml").write_text(toml)
    return str(folder)


TOML = """name = "t"\nmutable = ["m.py"]\nentry = "python m.py"
[metric]\nname = "m"\ndirection = "minimize"\n[budget]\nseconds = 1\ntimeout_seconds = 5\n"""


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda tmp: ["eval", broken_target(tmp, None)], "target.toml is missing"),
        (lambda tmp: ["eval", broken_target(tmp, "name = ")], "is not valid TOML"),
        (
            lambda tmp: ["eval", broken_target(tmp, TOML.replace('"minimize"', '"down"'))],
            "direction 'down' is unknown",
        ),
        (lambda tmp: ["eval", broken_target(tmp, TOML, mutable=False)], "mutable file"),
        (lambda tmp: ["eval", str(tmp / "nowhere")], "does not exist"),
        (lambda tmp: ["eval", "targets/sort", "--device", "tpu"], "unknown device 'tpu'"),
        (
            lambda tmp: ["eval", "targets/sort", "--budget", "0"],
            "--budget must be a number of seconds > 0",
        ),
        (
            lambda tmp: ["eval", "targets/sort", "--budget", "-3"],
            "--budget must be a number of seconds > 0",
        ),
        (lambda tmp: ["eval", "targets/sort", "--budget", "soon"], "invalid float value: 'soon'"),
        (lambda tmp: ["eval", "targets/sort", "--timeout", "0"], "--timeout must be a number"),
        (lambda tmp: ["eval", "targets/sort", "--threads", "0"], "--threads must be at least 1"),
        (lambda tmp: ["eval", "targets/sort", "--isolation", "vm"], "unknown isolation 'vm'"),
        (lambda tmp: ["eval", "targets/sort", "--memory-gb", "-1"], "--memory-gb must be >= 0"),
        (lambda tmp: ["eval", "targets/sort", "--file", str(tmp / "gone.py")], "variant file"),
        (
            lambda tmp: ["eval", "targets/sort", "--file", "bench.py=targets/sort/sort.py"],
            "bench.py is not a mutable file of target sort",
        ),
        (lambda tmp: ["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = evo(*args(tmp_path))
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("evo: error: ") and message in line
    assert "Traceback" not in done.stderr
