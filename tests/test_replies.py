"""Replies as real models write them: each style read as the edit it means, and the replies that
are still refused, with their reasons."""

from __future__ import annotations

import pytest

from evo.mutate.edits import EditError, ReplaceDefinition, Rewrite, SearchReplace
from evo.mutate.replies import parse_reply

PARENT = (
    "LR = 0.02  # learning rate\n\n\ndef step(x):\n    return x * LR\n\n\n"
    "class Model:\n    width = 4\n"
)
ONE = {"m.py": PARENT}
TWO = {"a.py": "A = 1\n", "b.py": "B = 1\n"}
LR = SearchReplace("m.py", "LR = 0.02  # learning rate\n", "LR = 0.04  # learning rate\n")
BLOCK = (
    "<<<<<<< SEARCH\nLR = 0.02  # learning rate\n=======\nLR = 0.04  # learning rate\n"
    ">>>>>>> REPLACE\n"
)
FIVE = BLOCK.replace("<<<<<<<", "<<<<<").replace("=======", "=====").replace(">>>>>>>", ">>>>>")
WIDTH = ReplaceDefinition("m.py", "Model", "class Model:\n    width = 8\n")
WHOLE = PARENT.replace("0.02", "0.04")
WHY = "a larger step converges faster"


@pytest.mark.parametrize(
    "reply, files, hypothesis, edits",
    [
        (f"HYPOTHESIS: {WHY}\n{BLOCK}", ONE, WHY, [LR]),  # as asked
        (f"Hypothesis: {WHY}\n{BLOCK}", ONE, WHY, [LR]),
        (f"hypothesis - {WHY}\n{BLOCK}", ONE, WHY, [LR]),
        (f"**Hypothesis:** {WHY}\n\n{BLOCK}", ONE, WHY, [LR]),
        (f"**HYPOTHESIS**: {WHY}\n{BLOCK}", ONE, WHY, [LR]),
        (f"## Hypothesis\n\n{WHY}\n\n## Edit\n\n{BLOCK}", ONE, WHY, [LR]),
        (f"> Hypothesis: {WHY}\n\n{BLOCK}", ONE, WHY, [LR]),
        (f"HYPOTHESIS:   {WHY}   \n{BLOCK}", ONE, WHY, [LR]),
        (  # no label: the first sentence of the prose
            f"Looking at the loop, {WHY}. I will double it.\n\n{BLOCK}",
            ONE,
            f"Looking at the loop, {WHY}.",
            [LR],
        ),
        (BLOCK, ONE, "m.py: replace block at `LR = 0.02  # learning rate`", [LR]),  # no prose
        (
            f"HYPOTHESIS: {WHY}\n{FIVE}",
            ONE,
            WHY,
            [LR],
        ),  # fmt: skip
        (
            f"HYPOTHESIS: {WHY}\n{BLOCK.replace('<<<<<<<', '<' * 9).replace('>>>>>>>', '>' * 9)}",
            ONE,
            WHY,
            [LR],
        ),  # fmt: skip
        (f"HYPOTHESIS: {WHY}\nFILE: m.py\n{BLOCK}", ONE, WHY, [LR]),
        (f"HYPOTHESIS: {WHY}\n**File:** `m.py`\n{BLOCK}", ONE, WHY, [LR]),
        (f"HYPOTHESIS: {WHY}\n```python\n{BLOCK}```\n", ONE, WHY, [LR]),  # fenced, aider-style
        (f"HYPOTHESIS: {WHY}\n{BLOCK.replace('=======', '=======  ')}", ONE, WHY, [LR]),
        (f"HYPOTHESIS: {WHY}\n{BLOCK}".replace("\n", "\r\n"), ONE, WHY, [LR]),  # CRLF
        (
            f"HYPOTHESIS: wider\nREPLACE DEFINITION Model IN m.py\n```py\n{WIDTH.code}```\n",
            ONE,
            "wider",
            [WIDTH],
        ),
        (
            f"Hypothesis: wider\n\n### Replace definition Model in m.py\n\n```python\n"
            f"{WIDTH.code}```\n",
            ONE,
            "wider",
            [WIDTH],
        ),
        (
            f"**Hypothesis:** wider\n**REPLACE DEFINITION Model**\n```Python\n{WIDTH.code}```",
            ONE,
            "wider",
            [WIDTH],
        ),
        (
            f"HYPOTHESIS: {WHY}\n**REWRITE m.py**\n```python\n{WHOLE}```\n",
            ONE,
            WHY,
            [Rewrite("m.py", WHOLE)],
        ),  # fmt: skip
        (f"Hypothesis: {WHY}\nrewrite\n```\n{WHOLE}```\n", ONE, WHY, [Rewrite("m.py", WHOLE)]),
        (  # one fenced block holding the whole file, no keyword
            f"Here is the improved file; {WHY}.\n\n```python\n{WHOLE}```\n",
            ONE,
            f"Here is the improved file; {WHY}.",
            [Rewrite("m.py", WHOLE)],
        ),
        (
            f"HYPOTHESIS: {WHY}\n{BLOCK}\nand the model:\n\nREPLACE DEFINITION Model\n"
            f"```python\n{WIDTH.code}```\n",
            ONE,
            WHY,
            [LR, WIDTH],
        ),
        (
            "HYPOTHESIS: both\nFILE: b.py\n<<<<<<< SEARCH\nB = 1\n=======\nB = 2\n>>>>>>> REPLACE\n"
            "FILE: a.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 3\n>>>>>>> REPLACE\n",
            TWO,
            "both",
            [
                SearchReplace("b.py", "B = 1\n", "B = 2\n"),
                SearchReplace("a.py", "A = 1\n", "A = 3\n"),
            ],
        ),
    ],
)
def test_reply_styles(reply, files, hypothesis, edits):
    assert parse_reply(reply, files) == (hypothesis, edits)


@pytest.mark.parametrize(
    "reply, files, reason",
    [
        ("", ONE, "the reply has no edit in a known form"),
        (f"HYPOTHESIS: {WHY}\nLR = 0.04\n", ONE, "the reply has no edit in a known form"),
        (
            f"HYPOTHESIS: {WHY}\n```python\nLR = 0.04\n```\n",
            ONE,
            "the reply's only code block is not the whole of m.py (it does not define Model, "
            "step); to change part of it, use SEARCH/REPLACE or REPLACE DEFINITION",
        ),
        (
            f"HYPOTHESIS: {WHY}\n```python\ndef step(x:\n```\n",
            ONE,
            "the reply's only code block does not parse (line 1: ",
        ),
        (
            f"HYPOTHESIS: {WHY}\n```python\n{WHOLE}```\n```python\n{WHOLE}```\n",
            ONE,
            "the reply has no edit in a known form",
        ),
        ("HYPOTHESIS: h\n```python\nA = 2\n```\n", TWO, "the reply has no edit in a known form"),
        (f"HYPOTHESIS: h\n{BLOCK}", TWO, "an edit does not say its file; name one of: a.py, b.py"),
    ],
)
def test_replies_still_refused(reply, files, reason):
    with pytest.raises(EditError) as refused:
        parse_reply(reply, files)
    assert str(refused.value).startswith(reason)
