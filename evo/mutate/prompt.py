"""What an LLM operator is shown: a stable prefix worth caching, then what changes every call.

Stable (cached): the operator's role, the reply format, the target's instructions (program.md),
and the fixed files as read-only context. Changing (last): the parent's source and metric, the
island's recent attempts (failures and rejections included, so the model does not repeat them)
and inspirations (the best programs of this island and others).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evo.mutate.replies import REPLY_FORMAT
from evo.target import Target

MAX_FIXED_FILE_BYTES = 100_000  # larger fixed files (data) are left out of the prompt
TEXT_SUFFIXES = (".py", ".md", ".toml", ".txt", ".cfg", ".json", ".yaml", ".yml")

ROLE = """You are the scientist of an evolutionary code search. Each reply proposes ONE hypothesis
and ONE atomic edit to the mutable file(s) of a target, to improve its metric. The fixed files
are read-only: you cannot change them, and edits to them are rejected. A proposal that does not
apply, does not parse, breaks the target's rules, or repeats an earlier program is rejected with
the reason, and you may be asked to repair it."""


@dataclass(frozen=True)
class Attempt:
    """One earlier experiment of the island, as the prompt reports it."""

    hypothesis: str
    edit: str  # a one-line summary of the edit
    status: str  # its fate (evo.status.Status): accepted, kept, rejected, crash, ..., refused
    delta: float | None = None  # metric change against its parent, when it has one
    reason: str = ""


@dataclass(frozen=True)
class Inspiration:
    sources: dict[str, str]
    metric: float
    island: int | None = None


def system_text(target: Target) -> str:
    instructions = (target.root / target.instructions).read_text() if target.instructions else ""
    direction = "lower" if target.direction == "minimize" else "higher"
    return (
        f"{ROLE}\n\nTarget: {target.name}. Metric: {target.metric} ({direction} is better). "
        f"Mutable files: {', '.join(target.mutable)}.\n\n{REPLY_FORMAT}\n\n"
        f"# Instructions of this target\n\n{instructions}"
    )


def fixed_context(target: Target) -> str:
    """The fixed files, read-only, in a stable order."""
    skipped = {*target.mutable, target.instructions}
    parts = []
    for path in sorted(target.root.rglob("*")):
        rel = path.relative_to(target.root).as_posix()
        if (
            path.is_file()
            and rel not in skipped
            and path.suffix in TEXT_SUFFIXES
            and not any(
                part.startswith((".", "__")) for part in path.parts[len(target.root.parts) :]
            )
            and path.stat().st_size <= MAX_FIXED_FILE_BYTES
        ):
            parts.append(f"## {rel} (fixed, read-only)\n```\n{path.read_text()}\n```")
    return "# Fixed files\n\n" + "\n\n".join(parts)


def task_text(
    target: Target,
    parent: dict[str, str],
    metric: float | None,
    history: Sequence[Attempt] = (),
    inspirations: Sequence[Inspiration] = (),
) -> str:
    """The part of the prompt that changes every call; it comes last."""
    sections = []
    if inspirations:
        sections.append("# Inspirations: strong programs found so far\n")
        for number, inspiration in enumerate(inspirations, 1):
            where = f", island {inspiration.island}" if inspiration.island is not None else ""
            sections.append(
                f"## Inspiration {number}: {target.metric} = {inspiration.metric:.6g}{where}"
            )
            sections += [
                f"### {name}\n```python\n{src}\n```" for name, src in inspiration.sources.items()
            ]
    if history:
        sections.append("# Recent attempts on this island (oldest first)\n")
        for attempt in history:
            delta = "" if attempt.delta is None else f", delta {attempt.delta:+.4g}"
            reason = f" ({attempt.reason})" if attempt.reason else ""
            sections.append(
                f"- [{attempt.status}{delta}] {attempt.hypothesis} | {attempt.edit}{reason}"
            )
    score = "not yet measured" if metric is None else f"{metric:.6g}"
    sections.append(f"# The parent to improve: {target.metric} = {score}\n")
    sections += [f"## {name}\n```python\n{src}\n```" for name, src in parent.items()]
    sections.append(
        "Propose one new hypothesis, different from the attempts above, and its edit, in the "
        "reply format."
    )
    return "\n".join(sections)


def repair_text(reason: str) -> str:
    return (
        f"Your proposal was rejected: {reason}\nReply again with a corrected HYPOTHESIS and "
        "edit, in the reply format. SEARCH blocks must copy lines of the parent exactly."
    )
