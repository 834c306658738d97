"""Static rules: exact messages for each way to break them, and no false alarm on the seeds."""

from __future__ import annotations

import pytest

from evo.evaluate.sandbox import evaluate
from evo.target import Rules
from evo.target.rules import violations

RULES = Rules(
    required_names=("train",),
    forbidden_imports=("os", "prepare"),
    forbidden_names=("open", "load", "__dict__"),
)
OK = "def train(run):\n    return run\n"


@pytest.mark.parametrize(
    "source, expected",
    [
        (OK, []),
        ("import torch\n" + OK, []),
        ("import os\n" + OK, ["m.py:1: imports 'os', which the target forbids"]),
        ("import os.path as p\n" + OK, ["m.py:1: imports 'os.path', which the target forbids"]),
        ("import osmium\n" + OK, []),
        (
            "from prepare import SEQ_LEN\n" + OK,
            ["m.py:1: imports 'prepare', which the target forbids"],
        ),
        ("from torch import load\n" + OK, ["m.py:1: uses 'load', which the target forbids"]),
        (OK + "x = open('f')\n", ["m.py:3: uses 'open', which the target forbids"]),
        (OK + "y = torch.load\n", ["m.py:3: uses 'load', which the target forbids"]),
        (OK + "z = run.__dict__\n", ["m.py:3: uses '__dict__', which the target forbids"]),
        (
            OK + "open = 1\nopen\n",
            [
                "m.py:3: uses 'open', which the target forbids",
                "m.py:4: uses 'open', which the target forbids",
            ],
        ),
        (
            "def training(run):\n    pass\n",
            ["required name 'train' is no longer defined at the top level"],
        ),
        ("class train:\n    pass\n", []),
        ("train = lambda run: run\n", []),
        ("def f(:\n", ["m.py:1: does not compile: invalid syntax"]),
        ("return 1\n", ["m.py:1: does not compile: 'return' outside function"]),
        (
            "def f(a, a):\n    pass\n",
            ["m.py:1: does not compile: duplicate argument 'a' in function definition"],
        ),
    ],
)
def test_violations(source, expected):
    assert violations(RULES, {"m.py": source}) == expected


def test_required_names_may_live_in_any_mutable_file():
    assert violations(RULES, {"a.py": "x = 1\n", "b.py": OK}) == []


def test_shipped_seed_programs_keep_their_rules(gpt, sort_target):
    for target in (gpt, sort_target):
        assert violations(target.rules, target.read_mutable()) == []


def test_a_rule_breaking_variant_is_invalid_without_running(sort_target, tmp_path):
    marker = tmp_path / "ran"
    source = f"import os\nopen({str(marker)!r}, 'w')\ndef sort_ints(v):\n    return sorted(v)\n"
    result = evaluate(sort_target, {"sort.py": source}, device="cpu")
    assert (result.status, result.wall_seconds) == ("invalid", 0.0)
    assert result.reason == (
        "static rules: sort.py:1: imports 'os', which the target forbids; "
        "sort.py:2: uses 'open', which the target forbids; "
        "sort.py:4: uses 'sorted', which the target forbids"
    )
    assert not marker.exists()
