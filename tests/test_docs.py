"""The worked example of targets/README.md is a real target: build it from the text and run it."""

from __future__ import annotations

import re

from conftest import ROOT

from evo.evaluate.sandbox import evaluate
from evo.target import load_target

FILE_BLOCK = re.compile(r"`targets/sqrt/(\S+)`[^`]*?```(?:toml|python)\n(.*?)```", re.S)


def test_the_worked_example_runs_as_documented(tmp_path):
    text = (ROOT / "targets" / "README.md").read_text()
    files = dict(FILE_BLOCK.findall(text))
    assert sorted(files) == ["approx.py", "score.py", "target.toml"]
    folder = tmp_path / "sqrt"
    folder.mkdir()
    for name, source in files.items():
        (folder / name).write_text(source)
    target = load_target(folder)
    seed = evaluate(target, device="cpu")
    assert seed.status == "ok" and seed.metric > 0 and seed.details["max_rel_error"] < 1e-12

    wrong = evaluate(target, {"approx.py": "def approx_sqrt(x):\n    return 1\n"}, device="cpu")
    assert (wrong.status, wrong.reason) == ("invalid", "approx_sqrt must return floats")
