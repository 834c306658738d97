"""Edit formats: golden before/after for each, and each reason an edit is refused."""

from __future__ import annotations

import pytest

from evo.mutate.edits import (
    EditError,
    ReplaceDefinition,
    Rewrite,
    SearchReplace,
    apply_edits,
    describe,
)
from evo.mutate.replies import parse_reply

PARENT = """\
LR = 0.02  # learning rate


def step(x):
    if x > 0:
        return x * LR
    return 0


class Model:
    width = 4
"""


@pytest.mark.parametrize(
    "edit, child",
    [
        (  # exact
            SearchReplace("m.py", "LR = 0.02", "LR = 0.04"),
            PARENT.replace("LR = 0.02", "LR = 0.04"),
        ),
        (  # trailing whitespace in the SEARCH block
            SearchReplace(
                "m.py",
                "    if x > 0:   \n        return x * LR  \n",
                "    if x >= 0:\n        return x * LR\n",
            ),
            PARENT.replace("if x > 0:", "if x >= 0:"),
        ),
        (  # indentation lost in the SEARCH block: the replacement is re-indented
            SearchReplace(
                "m.py", "if x > 0:\n    return x * LR\n", "if x > 1:\n    return x * LR * 2\n"
            ),
            PARENT.replace(
                "if x > 0:\n        return x * LR", "if x > 1:\n        return x * LR * 2"
            ),
        ),
        (  # more indentation than the file: removed from the replacement
            SearchReplace("m.py", "            width = 4", "            width = 8"),
            PARENT.replace("width = 4", "width = 8"),
        ),
        (  # blank lines around the SEARCH block are ignored
            SearchReplace(
                "m.py", "\n\nclass Model:\n    width = 4\n\n", "class Model:\n    width = 5\n"
            ),
            PARENT.replace("width = 4", "width = 5"),
        ),
        (
            ReplaceDefinition("m.py", "step", "def step(x):\n    return max(x, 0) * LR\n"),
            PARENT.replace(
                "    if x > 0:\n        return x * LR\n    return 0\n",
                "    return max(x, 0) * LR\n",
            ),
        ),
        (
            ReplaceDefinition("m.py", "LR", "LR = 0.01  # smaller\n"),
            PARENT.replace("LR = 0.02  # learning rate", "LR = 0.01  # smaller"),
        ),
        (
            ReplaceDefinition("m.py", "Model", "class Model:\n    width = 16\n"),
            PARENT.replace("width = 4", "width = 16"),
        ),
        (Rewrite("m.py", "x = 1"), "x = 1\n"),
    ],
)
def test_golden(edit, child):
    assert apply_edits({"m.py": PARENT}, [edit]) == {"m.py": child}


def test_edits_apply_in_order():
    edits = [
        SearchReplace("m.py", "LR = 0.02", "LR = 0.03"),
        SearchReplace("m.py", "LR = 0.03", "LR = 0.05"),
    ]
    assert apply_edits({"m.py": PARENT}, edits)["m.py"] == PARENT.replace("0.02", "0.05")


@pytest.mark.parametrize(
    "edit, reason",
    [
        (
            SearchReplace("m.py", "LR = 0.5", "LR = 1"),
            "SEARCH block 1 (m.py) matches nothing; "
            "no line of the file matches its first line `LR = 0.5`",
        ),
        (
            SearchReplace("m.py", "def step(x):\n    if x < 0:", "pass"),
            "SEARCH block 1 (m.py) matches nothing; "
            "its first line matches line 4, but a later line differs",
        ),
        (
            SearchReplace("m.py", "LR", "RATE"),
            "SEARCH block 1 (m.py) matches 2 places; add surrounding lines",
        ),
        (SearchReplace("m.py", "  \n", "x"), "SEARCH block 1 (m.py) is empty"),
        (
            SearchReplace("prepare.py", "a", "b"),
            "edit 1 changes prepare.py, which is not a mutable file (mutable: m.py)",
        ),
        (
            ReplaceDefinition("m.py", "train", "def train():\n    pass\n"),
            "edit 1 (m.py, train): no top-level function, class or assignment named train; "
            "top-level names are: LR, Model, step",
        ),
        (
            ReplaceDefinition("m.py", "step", "def step(x:\n"),
            "edit 1 (m.py, step): the new code does not parse at line 1",
        ),
        (
            ReplaceDefinition("m.py", "step", "def other(x):\n    pass\n"),
            "the new code does not define step",
        ),
    ],
)
def test_refusals(edit, reason):
    with pytest.raises(EditError) as caught:
        apply_edits({"m.py": PARENT}, [edit])
    assert reason in str(caught.value)


def test_the_same_line_twice_is_ambiguous_after_normalizing():
    source = "def a():\n    x = 1\n\n\ndef b():\n        x = 1\n"
    with pytest.raises(EditError, match=r"matches 2 places \(lines 2, 6\)"):
        apply_edits({"m.py": source}, [SearchReplace("m.py", "\tx = 1", "x = 2")])


REPLY = """I think a larger rate helps.
HYPOTHESIS: LR 0.02 -> 0.04 converges faster within the budget

FILE: m.py
<<<<<<< SEARCH
LR = 0.02  # learning rate
=======
LR = 0.04  # learning rate
>>>>>>> REPLACE

REPLACE DEFINITION Model IN m.py
```python
class Model:
    width = 8
```
"""


def test_parse_reply_reads_every_edit_in_order():
    hypothesis, edits = parse_reply(REPLY, {"m.py": PARENT})
    assert hypothesis == "LR 0.02 -> 0.04 converges faster within the budget"
    assert edits == [
        SearchReplace("m.py", "LR = 0.02  # learning rate\n", "LR = 0.04  # learning rate\n"),
        ReplaceDefinition("m.py", "Model", "class Model:\n    width = 8\n"),
    ]
    assert [describe(e) for e in edits] == [
        "m.py: replace block at `LR = 0.02  # learning rate`",
        "m.py: replace definition of Model",
    ]


@pytest.mark.parametrize(
    "reply, files, expected",
    [
        (
            "HYPOTHESIS: h\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n",
            ["m.py"],
            [SearchReplace("m.py", "a\n", "b\n")],
        ),
        ("HYPOTHESIS: h\nREWRITE\n```python\nx = 2\n```\n", ["m.py"], [Rewrite("m.py", "x = 2\n")]),
        (
            "HYPOTHESIS: h\nREWRITE b.py\n```\nx = 2\n```\n",
            ["a.py", "b.py"],
            [Rewrite("b.py", "x = 2\n")],
        ),
    ],
)
def test_parse_reply_forms(reply, files, expected):
    assert parse_reply(reply, dict.fromkeys(files, "x = 1\n"))[1] == expected


@pytest.mark.parametrize(
    "reply, files, reason",
    [
        ("HYPOTHESIS: faster\nLR = 0.04\n", ["m.py"], "the reply has no edit in a known form"),
        (
            "HYPOTHESIS: h\nREWRITE\n```\nx = 2\n```\n",
            ["a.py", "b.py"],
            "an edit does not say its file",
        ),
    ],
)
def test_parse_reply_refusals(reply, files, reason):
    with pytest.raises(EditError, match=reason):
        parse_reply(reply, dict.fromkeys(files, "x = 1\n"))
