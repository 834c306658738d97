"""Loading target.toml: the shipped targets load, and each mistake gets its own clear message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUAD, ROOT

from evo.errors import UsageError
from evo.evaluate.sandbox import evaluate
from evo.target import Measure, load_target

VALID = """
name = "demo"
mutable = ["solve.py"]
entry = "python run.py --fast"
[metric]
name = "score"
direction = "maximize"
[budget]
seconds = 5
timeout_seconds = 20
"""


def make_target(folder: Path, toml: str | None, files=("solve.py",)) -> Path:
    folder.mkdir(exist_ok=True)
    for name in files:
        (folder / name).write_text("x = 1\n")
    if toml is not None:
        (folder / "target.toml").write_text(toml)
    return folder


def test_shipped_targets_load(gpt, sort_target):
    assert (gpt.name, gpt.mutable, gpt.metric, gpt.direction) == (
        "gpt",
        ("train.py",),
        "val_bpb",
        "minimize",
    )
    assert (gpt.budget_seconds, gpt.timeout_seconds, gpt.timeout_for(30)) == (60, 300, 270)
    assert gpt.entry == (sys.executable, "prepare.py")
    assert gpt.rules.required_names == ("train",)
    assert "os" in gpt.rules.forbidden_imports and "open" in gpt.rules.forbidden_names
    assert (sort_target.metric, sort_target.mutable) == ("runtime_ms", ("sort.py",))
    assert gpt.choices == {"ACTIVATION": ("relu2", "gelu"), "OPTIMIZER": ("muon", "adamw")}
    assert gpt.measure == Measure(
        entry=(sys.executable, "measure.py"),
        prepare=(sys.executable, "corpus.py"),
        held_out_cache=("gpt-held-out",),
        handoff_seconds=30.0,
    )
    assert (gpt.phases, sort_target.measure, sort_target.phases) == (
        "run+measure",
        None,
        "one process",
    )


def test_a_valid_target(tmp_path):
    target = load_target(make_target(tmp_path / "demo", VALID) / "target.toml")
    assert target.entry == (sys.executable, "run.py", "--fast")
    assert (target.metric, target.direction) == ("score", "maximize")
    assert target.read_mutable() == {"solve.py": "x = 1\n"}
    assert target.rules.forbidden_imports == () and target.choices == {}
    assert target.screen == 0.0  # no screening unless the target asks
    screened = VALID.replace("timeout_seconds = 20", "timeout_seconds = 20\nscreen = 0.25")
    assert load_target(make_target(tmp_path / "screened", screened)).screen == 0.25


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: "name = [", "is not valid TOML"),
        (lambda t: t.replace('name = "demo"\n', ""), "'name' must be a non-empty string"),
        (
            lambda t: "budjet = 3\n" + t,
            "unknown key 'budjet'; known keys are budget, choices, description",
        ),
        (lambda t: t.replace('"maximize"', '"max"'), "direction 'max' is unknown; use 'minimize'"),
        (
            lambda t: t.replace("seconds = 5", "seconds = 0"),
            "'seconds' must be a number of seconds > 0",
        ),
        (lambda t: t.replace("seconds = 5", 'seconds = "5"'), "'seconds' must be a number"),
        (lambda t: t.replace("timeout_seconds = 20", "timeout_seconds = 5"), "must exceed seconds"),
        (
            lambda t: t.replace("timeout_seconds = 20", "timeout_seconds = 20\nscreen = 1"),
            "[budget]: screen must be a fraction of the budget from 0 (none) to below 1",
        ),
        (lambda t: t.replace('["solve.py"]', "[]"), "'mutable' must name at least one file"),
        (lambda t: t.replace('["solve.py"]', '"solve.py"'), "'mutable' must be a list of strings"),
        (lambda t: t.replace('["solve.py"]', '["../x.py"]'), "must be a path inside the target"),
        (lambda t: t.replace('["solve.py"]', '["gone.py"]'), "mutable file"),
        (
            lambda t: t.split("[metric]")[0] + "[budget]" + t.split("[budget]")[1],
            "[metric] table is missing",
        ),
        (lambda t: t + "[rules]\nforbidden_names = 'open'\n", "'forbidden_names' must be a list"),
        (lambda t: t + "[rules]\nrequired = ['x']\n", "unknown key 'required'"),
        (lambda t: 'instructions = "nope.md"\n' + t, "instructions file"),
        (lambda t: t + "[choices]\nACT = ['relu']\n", "[choices] must map names to lists of 2"),
        (lambda t: t + "[choices]\nACT = 'relu'\n", "[choices] must map names to lists of 2"),
        (lambda t: t + "[sandbox]\nprewarm = 'yes'\n", "[sandbox] prewarm must be true or false"),
        (lambda t: t + "[sandbox]\nnetwork = 1\n", "[sandbox] network must be true or false"),
        (lambda t: t + "[sandbox]\nnet = true\n", "unknown key 'net'; known keys are network, "),
        (lambda t: "sandbox = 1\n" + t, "[sandbox] must be a table"),
        (lambda t: "measure = 1\n" + t, "[measure] must be a table"),
        (lambda t: t + "[measure]\nprepare = 'python p.py'\n", "'entry' must be a non-empty"),
        (
            lambda t: t + "[measure]\nentry = 'python m.py'\nkept_out = []\n",
            "unknown key 'kept_out'; known keys are entry, handoff_seconds, held_out, held_out_c",
        ),
        (
            lambda t: t + "[measure]\nentry = 'python m.py'\nheld_out = ['../x']\n",
            "[measure]: held_out '../x' must be a folder path inside it",
        ),
        (
            lambda t: t + "[measure]\nentry = 'python m.py'\nheld_out = ['gone']\n",
            "held_out folder",
        ),
        (
            lambda t: t + "[measure]\nentry = 'python m.py'\nheld_out_cache = 'x'\n",
            "'held_out_cache' must be a list of strings",
        ),
        (
            lambda t: t + "[measure]\nentry = 'python m.py'\nhandoff_seconds = 0\n",
            "'handoff_seconds' must be a number of seconds > 0",
        ),
    ],
)
def test_each_mistake_gets_a_clear_message(tmp_path, edit, message):
    folder = make_target(tmp_path / "demo", edit(VALID))
    with pytest.raises(UsageError) as caught:
        load_target(folder)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_folder_and_missing_toml(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_target(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="target.toml is missing; every target needs one"):
        load_target(make_target(tmp_path / "empty", None))


def test_a_target_written_against_the_old_import_still_runs(tmp_path):
    """`from evo import protocol` was the documented import before the layout of 2026-11-27:
    users' targets live outside this repository, so it keeps working, with a warning that names
    the new one."""
    folder = tmp_path / "quad"
    shutil.copytree(QUAD, folder)
    score = folder / "score.py"
    old = score.read_text().replace("from evo.target import protocol", "from evo import protocol")
    score.write_text(old)
    result = evaluate(load_target(folder))
    assert (result.status, result.reason) == ("ok", "")
    by_hand = subprocess.run(
        [sys.executable, "score.py"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert by_hand.stderr.splitlines()[0] == (
        f"{score}:4: FutureWarning: `from evo import protocol` is deprecated: use "
        "`from evo.target import protocol`"
    )


def test_a_name_evo_never_had_is_an_attribute_error():
    import evo

    with pytest.raises(AttributeError, match="module 'evo' has no attribute 'protocols'"):
        evo.protocols  # noqa: B018
