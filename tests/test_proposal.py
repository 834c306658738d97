"""Validation of children: each reason a child is refused, and what counts as the same program."""

from __future__ import annotations

import pytest

from evo.mutate.edits import EditError, Rewrite, SearchReplace
from evo.mutate.proposal import Usage, Validator, program_hash
from evo.target import Rules, Target

PARENT = {"m.py": "RATE = 1\n\n\ndef train(run):\n    return RATE\n"}


def validator(**rules) -> Validator:
    target = Target(
        name="t",
        root=None,
        mutable=("m.py",),
        entry=("python",),
        metric="m",
        direction="minimize",
        budget_seconds=1,
        timeout_seconds=2,
        rules=Rules(required_names=("train",), forbidden_imports=("os",), **rules),
    )
    return Validator(target)


@pytest.mark.parametrize(
    "child, reasons",
    [
        ("RATE = 2\n\n\ndef train(run):\n    return RATE\n", []),
        ("RATE = 2)\n", ["m.py:1: does not parse: tokenizer error: unmatched ')'"]),
        ("RATE = 2\nreturn RATE\n", ["m.py:2: does not compile: 'return' outside function"]),
        (
            "import os\nRATE = 2\n\n\ndef train(run):\n    return RATE\n",
            ["m.py:1: imports 'os', which the target forbids"],
        ),
        ("RATE = 2\n", ["required name 'train' is no longer defined at the top level"]),
        (
            "RATE = 1  # the same\n\n\ndef train(run):\n\n    return RATE\n",
            ["the child is the same program as its parent; change something"],
        ),
    ],
)
def test_reasons(child, reasons):
    assert validator().reasons(PARENT, {"m.py": child}) == reasons


def test_a_duplicate_of_an_earlier_proposal_is_refused():
    check = validator()
    edit = SearchReplace("m.py", "RATE = 1", "RATE = 3")
    child = check.child_of(PARENT, [edit])
    with pytest.raises(
        EditError, match=f"duplicates a program already proposed \\({program_hash(child)}\\)"
    ):
        check.child_of(PARENT, [edit])
    with pytest.raises(EditError, match="duplicates"):
        Validator(check.target, seen=[program_hash(child)]).child_of(PARENT, [edit])


def test_only_marked_regions_may_change():
    source = "A = 1\n# EVOLVE-BLOCK-START\nB = 2\n# EVOLVE-BLOCK-END\n"
    parent = {"m.py": source + "def train(run):\n    pass\n"}
    inside = validator().reasons(parent, {"m.py": parent["m.py"].replace("B = 2", "B = 3")})
    outside = validator().reasons(parent, {"m.py": parent["m.py"].replace("A = 1", "A = 0")})
    assert inside == []
    assert outside == ["m.py changes code outside its EVOLVE-BLOCK regions; edit only inside them"]


def test_child_of_joins_every_reason():
    with pytest.raises(EditError) as caught:
        validator().child_of(PARENT, [Rewrite("m.py", "import os.path\n")])
    assert str(caught.value) == (
        "m.py:1: imports 'os.path', which the target forbids; "
        "required name 'train' is no longer defined at the top level"
    )


def test_program_hash_ignores_comments_and_layout_only():
    base = program_hash(PARENT)
    assert program_hash({"m.py": "# hi\nRATE = 1\ndef train(run):\n    return RATE  # x\n"}) == base
    assert program_hash({"m.py": PARENT["m.py"].replace("1", "2")}) != base
    assert program_hash({"n.py": PARENT["m.py"]}) != base


def test_usage_adds_up():
    total = Usage(1, 2, 3, 4, 0.5, 1.0) + Usage(10, 20, 30, 40, 0.25, 2.0)
    assert total == Usage(11, 22, 33, 44, 0.75, 3.0)
