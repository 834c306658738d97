"""The offline operator: one typed change to one module-level constant, no LLM needed.

It reads the mutable files with libcst and finds the knobs: module-level assignments of literal
numbers, booleans and strings, and numbers inside literal tuples and dicts (`ADAM_BETAS[1]`,
`CPU_SIZE['depth']`). Each proposal changes one knob:
- an int >= 1: x2 or //2, and +1 or -1 when it is at most 16 (a count, not a size), staying >= 1;
- a float below 0.5: x2 or x0.5; from 0.5 to 1 (momentum-like): halve or double its distance
  to 1; 1 or more: x2 or x0.5 (zero and negative numbers are left alone);
- a boolean: flipped;
- a name the target declares in [choices]: another of its alternatives.
Given a second parent (recombination), it instead takes some of the knob statements in which the
second parent differs, each with probability one half, and keeps the parent's others: gains
found apart (one program's learning rate, another's width) may add up. Knobs named for the other
device (CUDA_* while evaluating on CPU, CPU_* on CUDA) are left alone: changing them cannot
change the metric. One seed gives one sequence of proposals.
"""

from __future__ import annotations

import ast
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from evo.mutate.edits import EditError, ReplaceDefinition
from evo.mutate.prompt import Mate
from evo.mutate.proposal import DuplicateProgram, Proposal, Validator, program_hash

Value = int | float | bool | str
# Subsets of the differing statements tried before a recombination gives up (all, up to 5).
COMBINATIONS_TRIED = 32


@dataclass(frozen=True)
class Knob:
    """One literal the operator may change: `name` alone, or `name[key]` inside a tuple/dict.

    module, statement, leaf: where it is, so that a change needs no second parse.
    """

    file: str
    name: str
    key: int | str | None
    value: Value
    module: cst.Module | None = field(default=None, compare=False, repr=False)
    statement: cst.CSTNode | None = field(default=None, compare=False, repr=False)
    leaf: cst.CSTNode | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return self.name if self.key is None else f"{self.name}[{self.key!r}]"


class OfflineOperator:
    name = "offline"

    def __init__(self, validator: Validator, seed: int = 0, device: str = "cpu"):
        self.validator = validator
        self.target = validator.target
        self.rng = random.Random(seed)
        self.device = device
        # already proposed: (parent, knob, value), and (parent, "mate", mate, statements taken)
        self._tried: set[tuple] = set()
        self._lock = threading.Lock()

    def propose(
        self, parent: dict[str, str], mate: Mate | None = None, **_context: object
    ) -> Proposal:
        """One valid child of `parent` (combined with `mate` where one is given and a new
        combination is left), or a Proposal without child saying why there is none.

        Knobs are tried in a random order, and each knob's alternatives in a random order, until
        one gives a valid child that is new to the run. Calls from several threads take turns:
        the work is all CPU, and the RNG and the changes tried stay consistent.
        """
        with self._lock:
            combined = self._combine(parent, mate) if mate else None
            return combined or self._propose(parent)

    def _combine(self, parent: dict[str, str], mate: Mate) -> Proposal | None:
        """A child with some of the knob statements in which `mate` differs (a random, new,
        non-empty proper subset of them, each subset equally likely), or None."""
        mine, theirs = _statements(parent), _statements(mate.sources)
        differing = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
        if len(differing) < 2:  # one difference: the child would be one parent or the other
            return None
        tried = (program_hash(parent), "mate", program_hash(mate.sources))
        subsets = range(1, 2 ** len(differing) - 1)  # bit i: statement i from the mate
        for mask in self.rng.sample(subsets, min(COMBINATIONS_TRIED, len(subsets))):
            taken = tuple(k for i, k in enumerate(differing) if mask >> i & 1)
            if (*tried, taken) in self._tried:
                continue
            self._tried.add((*tried, taken))
            edits = tuple(ReplaceDefinition(file, name, theirs[file, name]) for file, name in taken)
            try:
                child = self.validator.child_of(parent, list(edits))
            except (DuplicateProgram, EditError):
                continue
            names = ", ".join(name for _, name in taken)
            why = f"combine with #{mate.id}: {names} from it, the rest from the parent"
            return Proposal(self.name, None, why, edits, child, mate_id=mate.id)
        return None

    def _propose(self, parent: dict[str, str]) -> Proposal:
        knobs = [k for k in find_knobs(parent) if self._applies(k) and self._alternatives(k)]
        self.rng.shuffle(knobs)
        parent_hash = program_hash(parent)
        rejections: list[str] = []
        duplicates = 0
        for knob in knobs:
            values = self._alternatives(knob)
            self.rng.shuffle(values)
            for new in values:
                change = (parent_hash, knob.label, repr(new))
                if change in self._tried:
                    duplicates += 1
                    continue
                self._tried.add(change)
                edit = ReplaceDefinition(knob.file, knob.name, _render(knob, new))
                try:
                    child = self.validator.child_of(parent, [edit])
                except DuplicateProgram:
                    duplicates += 1
                    continue
                except EditError as e:
                    rejections.append(f"{knob.label} -> {new!r}: {e}")
                    continue
                why = hypothesis(knob, new)
                return Proposal(self.name, None, why, (edit,), child, tuple(rejections))
        summary = (
            f"no new one-step change: {len(knobs)} knobs, {duplicates} changes already proposed"
        )
        return Proposal(self.name, None, "", (), None, (*rejections, summary), exhausted=True)

    def _applies(self, knob: Knob) -> bool:
        other = "CPU" if self.device == "cuda" else "CUDA"
        return other not in knob.name.upper().split("_")

    def _alternatives(self, knob: Knob) -> list[Value]:
        declared = self.target.choices.get(knob.name) if knob.key is None else None
        if declared is not None:
            return [v for v in declared if v != knob.value]
        return alternatives(knob.value)


def alternatives(value: Value) -> list[Value]:
    """The values one step away from `value`, within the bounds the module docstring gives."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        if value < 1:
            return []
        steps = {value * 2, value // 2} | ({value + 1, value - 1} if value <= 16 else set())
        return sorted({v for v in steps if v >= 1} - {value})
    if isinstance(value, float) and value > 0:
        if 0.5 <= value < 1:
            steps = (1 - (1 - value) / 2, 1 - (1 - value) * 2)
        else:
            steps = (value * 2, value / 2)
        return sorted({float(f"{v:.6g}") for v in steps if v > 0} - {value})
    return []


def _statements(sources: dict[str, str]) -> dict[tuple[str, str], str]:
    """The code of every statement that holds knobs, by (file, name)."""
    return {
        (knob.file, knob.name): knob.module.code_for_node(knob.statement)
        for knob in find_knobs(sources)
    }


def find_knobs(sources: dict[str, str]) -> list[Knob]:
    """Every knob of the mutable files, in file and line order."""
    return [knob for file in sorted(sources) for knob in _knobs(file, sources[file])]


def _knobs(file: str, source: str) -> Iterator[Knob]:
    module = cst.parse_module(source)
    for statement in module.body:
        assignment = _single_assignment(statement)
        if assignment is None:
            continue
        name, node = assignment
        try:
            value = ast.literal_eval(module.code_for_node(node))
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, int | float | str):
            yield Knob(file, name, None, value, module, statement, node)
        elif isinstance(value, tuple | dict):
            leaves = (
                zip(range(len(value)), node.elements, strict=True)
                if isinstance(value, tuple)
                else ((ast.literal_eval(module.code_for_node(e.key)), e) for e in node.elements)
            )
            for key, element in leaves:
                leaf = value[key]
                if isinstance(leaf, int | float) and isinstance(key, int | str):
                    yield Knob(file, name, key, leaf, module, statement, element.value)


def _single_assignment(statement: cst.CSTNode) -> tuple[str, cst.BaseExpression] | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
    elif isinstance(small, cst.AnnAssign) and small.value is not None:
        target = small.target
    else:
        return None
    return (target.value, small.value) if isinstance(target, cst.Name) else None


def _render(knob: Knob, new: Value) -> str:
    """The knob's whole statement, with only its literal replaced (comments and layout kept)."""
    replacement = cst.parse_expression(_literal(new))
    return knob.module.code_for_node(knob.statement.deep_replace(knob.leaf, replacement))


def _literal(value: Value) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    return repr(value)


_WHY = [
    # (name fragments, why larger, why smaller)
    (
        ("LR",),
        "larger steps may converge faster within the budget",
        "smaller steps may train more stably",
    ),
    (
        ("DEPTH", "D_MODEL", "WIDTH", "HEADS", "RATIO", "HIDDEN"),
        "more capacity may learn more per step",
        "a smaller model takes more steps within the budget",
    ),
    (
        ("BATCH",),
        "larger batches give less noisy gradients",
        "smaller batches take more optimiser steps within the budget",
    ),
    (
        ("SEQ", "CONTEXT"),
        "longer contexts give more to learn from per window",
        "shorter windows make steps cheaper",
    ),
    (
        ("WARMUP", "WARMDOWN"),
        "a longer ramp may stabilise that phase of training",
        "a shorter ramp leaves more of the budget at full learning rate",
    ),
    (("MOMENTUM", "BETA"), "more momentum smooths noisy updates", "less momentum reacts faster"),
    (("DECAY",), "more regularisation may generalise better", "less regularisation may fit faster"),
    (("CLIP",), "a looser clip lets large useful updates through", "a tighter clip tames spikes"),
    (
        ("THRESHOLD", "CUTOFF"),
        "a larger cut-off may suit the inputs better",
        "a smaller cut-off may suit the inputs better",
    ),
]


def hypothesis(knob: Knob, new: Value) -> str:
    """A one-line hypothesis for changing `knob` to `new`."""
    head = f"{knob.label} {knob.value!r} -> {new!r}"
    if isinstance(new, bool | str):
        return f"{head}: the alternative may suit this budget and machine better"
    label = f"{knob.name}_{knob.key}".upper() if knob.key is not None else knob.name.upper()
    for fragments, larger, smaller in _WHY:
        if any(fragment in label for fragment in fragments):
            return f"{head}: {larger if new > knob.value else smaller}"
    return f"{head}: tests whether the metric is sensitive to {knob.label}"
