"""A three-way merge of programs: one program with another's change from a common base.

    merge(base, ours, theirs) = ours + (theirs - base)

line by line, file by file: the lines each side changed from `base` (difflib's opcodes) are
applied together where they do not overlap; two changes of the same lines, or two that start at
the same line (two insertions there), are a conflict and there is no merge. Unlike `git merge`,
changes of adjacent lines merge: in a program one statement a line is common (a constant each),
and two changes of neighbouring statements are as independent as any. Deterministic and without
a model: a change that proved itself on one program is carried to another by its lines alone, so
the result must still be validated like any child.
"""

from __future__ import annotations

from difflib import SequenceMatcher

# A change of base's lines [start, end) into new lines.
Hunk = tuple[int, int, list[str]]


def merge(
    base: dict[str, str], ours: dict[str, str], theirs: dict[str, str]
) -> dict[str, str] | None:
    """`ours` with the change `theirs` made to `base`; None where the two changes conflict or
    the programs do not have the same files."""
    if not set(base) == set(ours) == set(theirs):
        return None
    merged = {}
    for name, text in ours.items():
        if theirs[name] == base[name]:
            merged[name] = text
        elif text == base[name]:
            merged[name] = theirs[name]
        else:
            merged[name] = _merge_text(base[name], text, theirs[name])
            if merged[name] is None:
                return None
    return merged


def _merge_text(base: str, ours: str, theirs: str) -> str | None:
    lines = base.splitlines(keepends=True)
    mine, other = _hunks(lines, ours), _hunks(lines, theirs)
    for start, end, _ in mine:
        if any(
            (start < o_end and o_start < end) or start == o_start for o_start, o_end, _ in other
        ):
            return None
    for start, end, new in sorted(mine + other, reverse=True):  # from the end: indices hold
        lines[start:end] = new
    return "".join(lines)


def _hunks(lines: list[str], changed: str) -> list[Hunk]:
    new = changed.splitlines(keepends=True)
    opcodes = SequenceMatcher(None, lines, new, autojunk=False).get_opcodes()
    return [(i1, i2, new[j1:j2]) for tag, i1, i2, j1, j2 in opcodes if tag != "equal"]
