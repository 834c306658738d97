"""A proposal: one hypothesis and one edit to a parent, validated before it costs evaluation time.

Validation of a child, in order, each failure a precise reason:
1. every changed file parses with libcst (the line and column of the first error);
2. the target's static rules hold (it compiles, required names, forbidden imports and names);
3. code outside `# EVOLVE-BLOCK-START` ... `# EVOLVE-BLOCK-END` regions is untouched, in files
   that mark such regions;
4. the child differs from its parent and from every program already proposed in the run, by a
   hash of its normalized source (comments and layout do not make a new program).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

import libcst as cst

from evo.mutate.edits import Edit, EditError, apply_edits
from evo.target import Target
from evo.target.rules import violations

_REGION = re.compile(r"^[ \t]*# EVOLVE-BLOCK-START.*?^[ \t]*# EVOLVE-BLOCK-END", re.M | re.S)


class DuplicateProgram(EditError):
    """The child is valid, but the run has proposed the same program already."""


@dataclass(frozen=True)
class Usage:
    """What one proposal cost: tokens by kind, dollars, seconds."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    latency_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Proposal:
    """What an operator made of one request: a valid child, or why there is none.

    child: the child's mutable sources; None when every attempt was rejected.
    rejections: the reason of each rejected attempt, in order (repairs included).
    mate_id: the second parent the child combines the parent with, if it does.
    exhausted: no child because the operator has proposed every change it can make of this
        parent already (nothing failed).
    """

    operator: str
    model: str | None
    hypothesis: str
    edits: tuple[Edit, ...]
    child: dict[str, str] | None
    rejections: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    mate_id: int | None = None
    exhausted: bool = False

    @property
    def valid(self) -> bool:
        return self.child is not None


def program_hash(sources: dict[str, str]) -> str:
    """A hash of the program that ignores comments, blank lines and layout."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        try:
            normalized = ast.dump(ast.parse(sources[name]))
        except SyntaxError:
            normalized = sources[name]
        digest.update(f"{name}\0{normalized}\0".encode())
    return digest.hexdigest()[:16]


class Validator:
    """Checks children against a target and remembers every program proposed in the run."""

    def __init__(self, target: Target, seen: Iterable[str] = ()):
        self.target = target
        self.seen: set[str] = set(seen)

    def child_of(self, parent: dict[str, str], edits: Iterable[Edit]) -> dict[str, str]:
        """The validated child of `parent`; EditError with every reason when it is not valid."""
        child = apply_edits(parent, list(edits))
        reasons = self.reasons(parent, child)
        digest = program_hash(child)
        if reasons:
            new = digest != program_hash(parent)
            duplicate = len(reasons) == 1 and new and digest in self.seen
            raise (DuplicateProgram if duplicate else EditError)("; ".join(reasons))
        self.seen.add(digest)
        return child

    def reasons(self, parent: dict[str, str], child: dict[str, str]) -> list[str]:
        changed = sorted(name for name in child if child[name] != parent.get(name))
        reasons = [reason for name in changed for reason in _parse_errors(name, child[name])]
        if reasons:
            return reasons
        reasons = violations(self.target.rules, child)
        reasons += [
            f"{name} changes code outside its EVOLVE-BLOCK regions; edit only inside them"
            for name in changed
            if name in parent and _outside_regions(parent[name]) != _outside_regions(child[name])
        ]
        digest = program_hash(child)
        if digest == program_hash(parent):
            reasons.append("the child is the same program as its parent; change something")
        elif digest in self.seen:
            reasons.append(f"the child duplicates a program already proposed ({digest})")
        return reasons


def _parse_errors(name: str, source: str) -> list[str]:
    try:
        cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        return [f"{name}:{e.raw_line}: does not parse: {e.message}"]
    return []


def _outside_regions(source: str) -> list[str] | None:
    """The text around the marked regions, or None when the file marks none."""
    if "# EVOLVE-BLOCK-START" not in source:
        return None
    return _REGION.split(source)
