"""Edits: how an operator says what to change, and how a change is applied to a parent.

Three formats, from the most to the least targeted:
- SearchReplace: a SEARCH block (lines of the parent) and its replacement. Matching tolerates
  trailing whitespace, then indentation (the replacement is re-indented to fit), so that a
  block copied with a different indentation still lands; a block that matches nothing, or more
  than one place, is an error that says which.
- ReplaceDefinition: a whole top-level function, class or assignment, by name, swapped through a
  libcst transformer, so the rest of the file is kept byte for byte.
- Rewrite: the whole file, the fallback.

Applying never guesses: every failure raises EditError with a reason an LLM can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst


class EditError(Exception):
    """An edit that cannot be applied; the message says why and where."""


@dataclass(frozen=True)
class SearchReplace:
    file: str
    search: str
    replace: str


@dataclass(frozen=True)
class ReplaceDefinition:
    file: str
    name: str
    code: str


@dataclass(frozen=True)
class Rewrite:
    file: str
    code: str


Edit = SearchReplace | ReplaceDefinition | Rewrite


def apply_edits(sources: dict[str, str], edits: Sequence[Edit]) -> dict[str, str]:
    """The child's sources: `edits` applied in order to the parent's `sources`."""
    child = dict(sources)
    for number, edit in enumerate(edits, 1):
        if edit.file not in child:
            raise EditError(
                f"edit {number} changes {edit.file}, which is not a mutable file "
                f"(mutable: {', '.join(sorted(sources))})"
            )
        if isinstance(edit, SearchReplace):
            child[edit.file] = _search_replace(child[edit.file], edit, number)
        elif isinstance(edit, ReplaceDefinition):
            child[edit.file] = _replace_definition(child[edit.file], edit, number)
        else:
            child[edit.file] = edit.code if edit.code.endswith("\n") else edit.code + "\n"
    return child


def describe(edit: Edit) -> str:
    """A one-line summary of an edit, for histories and logs."""
    if isinstance(edit, SearchReplace):
        first = next((line.strip() for line in edit.search.splitlines() if line.strip()), "")
        return f"{edit.file}: replace block at `{first[:60]}`"
    if isinstance(edit, ReplaceDefinition):
        return f"{edit.file}: replace definition of {edit.name}"
    return f"{edit.file}: rewrite the whole file"


# ---------------------------------------------------------------------------- SEARCH/REPLACE


def _search_replace(source: str, edit: SearchReplace, number: int) -> str:
    where = f"SEARCH block {number} ({edit.file})"
    if not edit.search.strip():
        raise EditError(f"{where} is empty; copy the lines to replace from the file")
    exact = source.count(edit.search)
    if exact == 1:
        return source.replace(edit.search, edit.replace, 1)
    if exact > 1:
        raise EditError(f"{where} matches {exact} places; add surrounding lines to make it unique")
    lines = source.splitlines(keepends=True)
    search = _trim_blank(edit.search.splitlines())
    for normalize in (str.rstrip, str.strip):
        starts = _matches(lines, search, normalize)
        if len(starts) > 1:
            at = ", ".join(str(s + 1) for s in starts)
            raise EditError(f"{where} matches {len(starts)} places (lines {at}); add context")
        if starts:
            start = starts[0]
            shift = _indent(lines[start]) - _indent(search[0])
            replacement = [_reindent(line, shift) for line in edit.replace.splitlines()]
            tail = "\n" if replacement else ""
            return (
                "".join(lines[:start])
                + "\n".join(replacement)
                + tail
                + "".join(lines[start + len(search) :])
            )
    raise EditError(f"{where} matches nothing; {_closest(lines, search)}")


def _trim_blank(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _matches(lines: list[str], search: list[str], normalize) -> list[int]:
    wanted = [normalize(line) for line in search]
    have = [normalize(line.rstrip("\n")) for line in lines]
    return [i for i in range(len(have) - len(wanted) + 1) if have[i : i + len(wanted)] == wanted]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _reindent(line: str, shift: int) -> str:
    if not line.strip():
        return ""
    if shift >= 0:
        return " " * shift + line
    return line[min(-shift, _indent(line)) :]


def _closest(lines: list[str], search: list[str]) -> str:
    first = search[0].strip()
    for number, line in enumerate(lines, 1):
        if line.strip() == first:
            return f"its first line matches line {number}, but a later line differs"
    return f"no line of the file matches its first line `{first[:80]}`"


# ---------------------------------------------------------------------------- by name


def _replace_definition(source: str, edit: ReplaceDefinition, number: int) -> str:
    where = f"edit {number} ({edit.file}, {edit.name})"
    try:
        new = cst.parse_module(edit.code)
    except cst.ParserSyntaxError as e:
        raise EditError(
            f"{where}: the new code does not parse at line {e.raw_line}: {e.message}"
        ) from None
    if not any(edit.name in _defined(statement) for statement in new.body):
        raise EditError(f"{where}: the new code does not define {edit.name}")
    module = cst.parse_module(source)
    hits = [i for i, statement in enumerate(module.body) if edit.name in _defined(statement)]
    if not hits:
        raise EditError(
            f"{where}: no top-level function, class or assignment named {edit.name}; "
            f"top-level names are: {', '.join(_all_defined(module))}"
        )
    if len(hits) > 1:
        raise EditError(f"{where}: {edit.name} is defined {len(hits)} times at the top level")
    body = list(module.body)
    replacement = list(new.body)
    if not replacement[0].leading_lines:  # keep the blank lines and comments above the old one
        replacement[0] = replacement[0].with_changes(leading_lines=body[hits[0]].leading_lines)
    body[hits[0] : hits[0] + 1] = replacement
    return module.with_changes(body=body).code


def _defined(statement: cst.CSTNode) -> set[str]:
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return {statement.name.value}
    if not isinstance(statement, cst.SimpleStatementLine):
        return set()
    targets: list[cst.BaseExpression] = []
    for small in statement.body:
        if isinstance(small, cst.Assign):
            targets += [t.target for t in small.targets]
        elif isinstance(small, cst.AnnAssign | cst.AugAssign):
            targets.append(small.target)
    return {t.value for t in targets if isinstance(t, cst.Name)}


def _all_defined(module: cst.Module) -> list[str]:
    return sorted(name for statement in module.body for name in _defined(statement))
