"""What an LLM operator is shown: a stable prefix worth caching, then what changes every call.

Stable (cached): the operator's role, the reply format, the target's instructions (program.md),
and the fixed files as read-only context. Changing (last): inspirations (the best programs of
other islands), the island's recent attempts (failures and rejections included, with the end of
a crash's stderr, so the model does not repeat them), what the parent's evaluation measured
(everything the fixed part reported, the machine, the noise and the smallest gain that counts)
and the parent's source. The changing part is kept within CHANGING_PART_CHARS: inspirations go
first, then the oldest attempts, when it would not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evo.mutate.replies import REPLY_FORMAT
from evo.target import Target

MAX_FIXED_FILE_BYTES = 100_000  # larger fixed files (data) are left out of the prompt
# About 12k tokens at 3.5 characters a token: the parent, two inspirations of its size and 20
# attempts fit for a target of gpt's size (docs/operations.md: the measured sizes).
CHANGING_PART_CHARS = 42_000
TAIL_LINES, TAIL_CHARS = 6, 600  # of a failed attempt's stderr
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
    stderr_tail: str = ""  # the end of a failed evaluation's stderr (short_tail)


@dataclass(frozen=True)
class Measured:
    """What the parent's evaluation measured besides its metric, and the run's noise: sigma, how
    much the difference between two programs on one seed moves between seeds (evo.search.noise),
    and the smallest gain a child must show to count."""

    details: dict
    sigma: float | None = None
    smallest_gain: float | None = None


@dataclass(frozen=True)
class Inspiration:
    sources: dict[str, str]
    metric: float
    island: int | None = None


@dataclass(frozen=True)
class Mate:
    """A second parent to combine the parent with (recombination): program `id`, its metric and
    the hypothesis that made it; and the hypothesis that made the parent."""

    id: int
    sources: dict[str, str]
    metric: float
    hypothesis: str
    parent_hypothesis: str = ""


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


def short_tail(stderr: str) -> str:
    """The last lines of a failed evaluation's stderr, as an attempt keeps them."""
    return "\n".join(stderr.strip().splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


def task_text(
    target: Target,
    parent: dict[str, str],
    metric: float | None,
    history: Sequence[Attempt] = (),
    inspirations: Sequence[Inspiration] = (),
    measured: Measured | None = None,
    mate: Mate | None = None,
) -> str:
    """The part of the prompt that changes every call; it comes last, within CHANGING_PART_CHARS
    (inspirations are left out first, then the oldest attempts). With a `mate`, the task is to
    combine the two parents."""
    history, inspirations = list(history), list(inspirations)
    while True:
        text = _task_text(target, parent, metric, history, inspirations, measured, mate)
        if len(text) <= CHANGING_PART_CHARS or not (history or inspirations):
            return text
        if inspirations:
            inspirations.pop()
        else:
            history.pop(0)


def _task_text(
    target: Target,
    parent: dict[str, str],
    metric: float | None,
    history: list[Attempt],
    inspirations: list[Inspiration],
    measured: Measured | None,
    mate: Mate | None,
) -> str:
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
            if attempt.stderr_tail:
                sections.append("  stderr, last lines:\n" + _indented(attempt.stderr_tail, 4))
    score = "not yet measured" if metric is None else f"{metric:.6g}"
    sections.append(f"# The parent to improve: {target.metric} = {score}\n")
    if mate:
        sections.append(f"It was made by this hypothesis: {_made_by(mate.parent_hypothesis)}\n")
    if measured:
        sections.append(_measured_text(target, measured))
    sections += [f"## {name}\n```python\n{src}\n```" for name, src in parent.items()]
    if mate is None:
        sections.append(
            "Propose one new hypothesis, different from the attempts above, and its edit, in "
            "the reply format."
        )
        return "\n".join(sections)
    sections.append(
        f"# A second parent, program #{mate.id}: {target.metric} = {mate.metric:.6g}\n"
        f"It was made by this hypothesis: {_made_by(mate.hypothesis)}\n"
    )
    sections += [f"## {name}\n```python\n{src}\n```" for name, src in mate.sources.items()]
    sections.append(
        "Combine the two: propose an edit of the parent that brings in what the second parent "
        "changed for the better while keeping the parent's own gains, with the hypothesis of "
        "why they add up, in the reply format."
    )
    return "\n".join(sections)


def _made_by(hypothesis: str) -> str:
    return hypothesis or "(none: the seed program)"


def _measured_text(target: Target, measured: Measured) -> str:
    lines = ["What its evaluation measured besides the metric:"]
    lines += [f"- {key}: {_value(value)}" for key, value in measured.details.items()]
    if measured.sigma is not None:
        noise = (
            f"- noise: the difference in {target.metric} between two programs on the same seed "
            f"varies by sigma {measured.sigma:.4g} between seeds; "
        )
        lines.append(
            noise + f"a child must gain more than {measured.smallest_gain:.4g} on one evaluation "
            "to count (less on several)"
            if measured.smallest_gain
            else noise + "a child that measures better on the same seed is kept, so a gain "
            "well under sigma is kept about as often by luck: aim for changes worth more"
        )
    return "\n".join(lines) + "\n"


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _indented(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def repair_text(reason: str) -> str:
    return (
        f"Your proposal was rejected: {reason}\nReply again with a corrected HYPOTHESIS and "
        "edit, in the reply format. SEARCH blocks must copy lines of the parent exactly."
    )
