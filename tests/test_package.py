"""evo as a package on its own: a wheel built from the repository, installed in a fresh virtual
environment, runs `evo eval`, `evo run` and `evo lineage` on a target folder outside the
repository, from a folder outside it. The fresh environment gets evo from the wheel alone; its
dependencies (torch, ray, ...) are this environment's, reached through a path file, which adds
their folder without the editable install of the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtual environment with evo installed from a wheel."""
    scratch = tmp_path_factory.mktemp("package")
    source = scratch / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(ROOT / "evo", source / "evo", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = scratch / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)]
    subprocess.run(build, check=True, cwd=scratch)
    [wheel] = wheels.glob("evo-*.whl")
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, cwd=scratch)
    return python


def evo_installed(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "evo", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_wheel_runs_a_target_outside_the_repository(installed, tmp_path):
    target = tmp_path / "quad"
    shutil.copytree(ROOT / "tests" / "fixtures" / "quad", target)
    where = subprocess.run(
        [installed, "-c", "import evo; print(evo.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.parent.parent)

    done = evo_installed(installed, tmp_path, "eval", str(target), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok loss=")

    out = tmp_path / "runs"
    done = evo_installed(
        installed, tmp_path, "run", "--target", str(target), "--islands", "2",
        "--max-evals", "8", "--operator", "offline", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [run] = out.iterdir()
    assert (run / "best" / "params.py").is_file()

    done = evo_installed(installed, tmp_path, "lineage", str(run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"run {run.name} (loss, lower is better)")

    done = evo_installed(installed, tmp_path, "report", str(run))  # its script is package data
    assert done.returncode == 0, done.stderr
    assert "function watchStamp()" in (run / "report" / "report.html").read_text()


def test_without_the_checkout_targets_and_presets_are_given_by_path(installed, tmp_path):
    done = evo_installed(installed, tmp_path, "eval")
    assert done.returncode == 2
    assert done.stderr.startswith("evo: error: no target given, and this evo has no shipped")
    done = evo_installed(installed, tmp_path, "run", "--preset", "ring", "--target", ".")
    assert done.returncode == 2
    assert "preset ring does not exist; use a .toml file or a preset's path" in done.stderr
