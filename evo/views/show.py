"""`evo show RUN ID`: one candidate, what it is, how it fared, and its code."""

from __future__ import annotations

import difflib
import json

from evo.errors import UsageError
from evo.status import Status
from evo.store.reader import Lineage, sources
from evo.views.confirmation import of_candidate
from evo.views.summary import delta_text


def show(lineage: Lineage, run_id: str, candidate_id: int) -> list[str]:
    """The lines of `evo show`: what the candidate is, how it fared, and its code."""
    row = lineage.candidate(run_id, candidate_id)
    if row is None:
        raise UsageError(f"run {run_id} has no candidate {candidate_id}; see `evo lineage`")
    run = lineage.runs[run_id]
    parent = lineage.candidate(run_id, row["parent_id"]) if row["parent_id"] is not None else None
    lines = [
        f"candidate {candidate_id} of run {run_id}: island {row['island']}, generation "
        f"{row['generation']}, parent {row['parent_id'] if parent else '-'}, "
        f"operator {row['operator']}{'/' + row['model'] if row['model'] else ''}",
        f"hypothesis: {row['hypothesis'] or '-'}",
        f"edit: {row['edit'] or '-'}",
        f"status: {row['status']}" + (f" ({row['reason']})" if row["reason"] else ""),
    ]
    details = row.get("eval_details") or [None] * len(row["seeds"] or [])
    for seed, status, metric, measured in zip(
        row["seeds"] or [], row["eval_statuses"] or [], row["metrics"] or [], details, strict=True
    ):
        value = f"{metric:.4f}" if metric is not None else "-"
        lines.append(f"  evaluation with seed {seed}: {status} {run.metric}={value}")
        if measured:
            lines.append(
                "    " + ", ".join(f"{k} {_short(v)}" for k, v in json.loads(measured).items())
            )
    if row["fitness"] is not None:
        against = ""
        if parent and parent["fitness"] is not None:
            change = delta_text(row["fitness"] - parent["fitness"], run.sigma)
            against = f"; parent {parent['fitness']:.4f}, {change}"
        lines.append(f"fitness (mean over seeds): {row['fitness']:.4f}{against}")
    lines += [
        f"confirmed: {c.text(run.metric)}" for c in of_candidate(lineage, run_id, candidate_id)
    ]
    lines.append(f"why: {_why(row['status'])}")
    mine = sources(row)
    lines += diff_lines(sources(parent) if parent else {}, mine)
    for name, text in mine.items():
        lines += [f"--- {name} (source) ---", *text.splitlines()]
    return lines


def diff_lines(parent: dict[str, str], child: dict[str, str]) -> list[str]:
    """The unified diff of a child's mutable files against its parent's."""
    lines = []
    for name, text in child.items():
        lines += [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                parent.get(name, "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"parent/{name}",
                f"candidate/{name}",
            )
        ]
    return lines


_WHY = {
    Status.ACCEPTED: "it beat its island's champion on shared seeds by more than k sigma / sqrt(n)",
    Status.KEPT: "it joined its island's population but did not beat the champion beyond the noise",
    Status.REJECTED: "it was no better than the worst program of a full population",
    Status.REFUSED: "validation refused it before any evaluation (see the reason)",
    Status.CRASH: "its evaluation exited with an error (see the reason)",
    Status.INVALID: "its evaluation ran but could not be scored (see the reason)",
    Status.TIMEOUT: "its evaluation was killed at the hard timeout",
}


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _why(status: str) -> str:
    return _WHY.get(status, status)
