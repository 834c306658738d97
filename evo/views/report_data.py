"""What the report page shows, as one JSON-ready dict per run (evo.views.report draws it).

Candidates are columns (one list per field, index i = the i-th candidate shown, in the order their
fate was final), so that a 20,000-candidate page is a few megabytes of arrays, not objects.
Past SHOWN candidates a run is sampled: every accepted candidate, an even sample of the others
(by id), and the ancestors of everything shown (so the tree has no orphans); the page says so.
The best-so-far curves and the counts are computed over every candidate, sampled or not.
The panel's heavier parts (the diff against the parent, each evaluation's details, a failure's
stderr tail) are embedded for at most DETAILED candidates: up to half of them the best accepted
ones, the rest the latest others; the page names `evo show` for the rest.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from evo.errors import UsageError
from evo.search.island import SURPRISE
from evo.status import Event
from evo.store import checkpoint
from evo.store.reader import Lineage, sources
from evo.views import confirmation
from evo.views.show import diff_lines
from evo.views.summary import summary

SHOWN = 20_000
DETAILED = 2_000
DIFF_LINES = 300  # per diff on the page
GOLDEN = (5**0.5 - 1) / 2
_COLUMNS = (
    "candidate_id, parent_id, mate_id, island, generation, status, fitness, accepted, "
    "sigma, coalesce(hypothesis, '') AS hypothesis, "
    "coalesce(reason, '') AS reason, operator || coalesce('/' || model, '') AS operator, "
    "coalesce(cost_usd, 0) AS cost, coalesce(input_tokens, 0) + coalesce(output_tokens, 0) "
    "AS tokens, coalesce(len(metrics), 0) AS evals, epoch(finished_at) AS t"
)


def run_data(lineage: Lineage, run_id: str) -> dict[str, Any]:
    """Everything the page of one run needs (see the module's docstring for what is sampled)."""
    run = lineage.runs[run_id]
    rows, minutes, evals_done = _candidates(lineage, run_id)
    shown = _shown(rows)
    migrated, founders = _moved(lineage, run_id)
    ids = rows["candidate_id"][shown]
    statuses = sorted(set(rows["status"][shown].tolist()))
    operators = sorted(set(rows["operator"][shown].astype(str).tolist()))
    candidates = {
        "id": ids.tolist(),
        "parent": rows["parent_id"][shown].tolist(),
        "mate": rows["mate_id"][shown].tolist(),
        "island": rows["island"][shown].tolist(),
        "generation": rows["generation"][shown].tolist(),
        "status": [statuses.index(s) for s in rows["status"][shown]],
        "fitness": _finite(rows["fitness"][shown]),
        "minutes": np.round(minutes[shown], 3).tolist(),
        "evals_done": evals_done[shown].tolist(),
        "hypothesis": rows["hypothesis"][shown].tolist(),
        "reason": rows["reason"][shown].tolist(),
        "operator": [operators.index(o) for o in rows["operator"][shown].astype(str)],
        "cost": np.round(rows["cost"][shown].astype(float), 5).tolist(),
        "tokens": rows["tokens"][shown].tolist(),
        "tree_y": tree_rows(ids.tolist(), rows["parent_id"][shown].tolist()),
        "mark": [
            "surprise"  # a gain of many sigma: evo.search.island asked fresh seeds to confirm it
            if reason.startswith(SURPRISE)
            else "migrated"
            if c in migrated
            else "founder"
            if c in founders
            else ""
            for c, reason in zip(ids, rows["reason"][shown], strict=True)
        ],
    }
    state = checkpoint.load(run.folder, any_version=True) or {}
    return {
        "run": run_id,
        "metric": run.metric,
        "minimize": run.minimize,
        "sigma": run.sigma,
        "live": bool(state.get("live")),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "total": len(rows["candidate_id"]),
        "summary": summary(lineage, run_id),
        "statuses": statuses,
        "operators": operators,
        "candidates": candidates,
        "evaluations": _evaluations(lineage, run_id, ids),
        "best": best_curves(rows, minutes, evals_done, run.minimize),
        "details": _details(lineage, run_id, rows, shown, run.minimize),
        "confirmed": _confirmed(lineage, run_id),
    }


def _confirmed(lineage: Lineage, run_id: str) -> dict[str, list[str]]:
    """What evo confirm measured of each program it confirmed, beside what the search did: the
    lines `evo show` prints."""
    metric, found = lineage.runs[run_id].metric, {}
    for programs in confirmation.confirmations(lineage, run_id).values():
        for c in programs:
            found.setdefault(str(c.candidate_id), []).append(f"confirmed: {c.text(metric)}")
    return found


def compare_data(lineage: Lineage) -> dict[str, Any]:
    """Several runs on one page: each run's best so far over evaluations and over time."""
    runs = []
    for run_id, run in lineage.runs.items():
        curves = best_curves(*_candidates(lineage, run_id), run.minimize)
        if "run" not in curves:
            raise UsageError(f"{run.folder} has no accepted candidate yet: nothing to compare")
        runs.append({"run": run_id, "best": curves["run"], "summary": summary(lineage, run_id)})
    first = next(iter(lineage.runs.values()))
    return {"metric": first.metric, "minimize": first.minimize, "runs": runs}


def _candidates(
    lineage: Lineage, run_id: str
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The run's candidate rows in the order their fate was final, with the minutes since the
    first and the evaluations done when each was final."""
    rows = lineage.db.execute(
        f"SELECT {_COLUMNS} FROM candidates WHERE run_id = ? ORDER BY finished_at, candidate_id",
        [run_id],
    ).fetchnumpy()
    rows = _plain(rows)
    start = float(rows["t"].min()) if len(rows["t"]) else 0.0
    return rows, (rows["t"] - start) / 60.0, np.cumsum(rows["evals"])


def best_curves(
    rows: dict[str, np.ndarray], minutes: np.ndarray, evals_done: np.ndarray, minimize: bool
) -> dict[str, Any]:
    """The best so far, for the run and for each island: its value at each change, with the
    minutes and evaluations at which it changed and the run's noise estimate then; each curve
    ends at the run's last candidate."""
    sign = 1.0 if minimize else -1.0
    accepted = rows["accepted"].astype(bool) & np.isfinite(rows["fitness"])
    islands = {"run": accepted}
    for island in np.unique(rows["island"][accepted]):
        islands[str(int(island))] = accepted & (rows["island"] == island)
    curves = {}
    for name, mask in islands.items():
        if not mask.any():  # nothing accepted yet (the seed program failed)
            continue
        where = np.flatnonzero(mask)
        values = sign * np.minimum.accumulate(sign * rows["fitness"][where])
        changed = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        at = where[changed]
        end = len(minutes) - 1
        curves[name] = {
            "minutes": np.round(np.r_[minutes[at], minutes[end:]], 3).tolist(),
            "evals_done": np.r_[evals_done[at], evals_done[end:]].tolist(),
            "value": _finite(np.r_[values[changed], values[changed][-1:]]),
            "sigma": _finite(np.r_[rows["sigma"][at], rows["sigma"][at][-1:]].astype(float)),
        }
    return curves


def tree_rows(ids: list[int], parents: list[int]) -> list[float]:
    """A tidy layout of the lineage tree: each leaf its own row in depth-first order, a parent
    midway between its first and last child; candidates whose parent is not shown are roots."""
    index = {c: i for i, c in enumerate(ids)}
    children: list[list[int]] = [[] for _ in ids]
    roots = []
    for i, parent in enumerate(parents):
        if parent in index and index[parent] != i:
            children[index[parent]].append(i)
        else:
            roots.append(i)
    rows = [0.0] * len(ids)
    leaves = 0
    stack = [(root, False) for root in reversed(roots)]
    while stack:  # iterative: a long chain is deeper than Python's recursion
        node, expanded = stack.pop()
        if not children[node]:
            rows[node] = float(leaves)
            leaves += 1
        elif expanded:
            rows[node] = (rows[children[node][0]] + rows[children[node][-1]]) / 2
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children[node]))
    return rows


def _shown(rows: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the candidates the page shows, in the rows' order."""
    count = len(rows["candidate_id"])
    if count <= SHOWN:
        return np.arange(count)
    keep = rows["accepted"].astype(bool) | (rows["candidate_id"] == 0)
    room = max(0, SHOWN - int(keep.sum()))
    # A candidate's draw depends on its id alone (a Weyl sequence: even over any run of ids), so
    # a live page keeps the candidates it showed as the run grows, dropping some as the share
    # shrinks.
    draw = (rows["candidate_id"] * GOLDEN) % 1.0
    keep |= draw < room / max(1, int((~keep).sum()))
    position = {int(c): i for i, c in enumerate(rows["candidate_id"])}
    for i in np.flatnonzero(keep):  # ancestors, so that every shown branch reaches the seed
        parent = rows["parent_id"][i]
        while parent >= 0 and not keep[position.get(int(parent), i)]:
            keep[position[int(parent)]] = True
            parent = rows["parent_id"][position[int(parent)]]
    return np.flatnonzero(keep)


def _evaluations(lineage: Lineage, run_id: str, ids: np.ndarray) -> dict[str, list]:
    """Every evaluation of the shown candidates: whose (index into the candidates), its seed,
    metric and status, in the order the candidates are shown."""
    found = lineage.db.execute(
        "SELECT candidate_id, unnest(seeds) AS seed, unnest(metrics) AS metric, "
        "unnest(eval_statuses) AS status FROM candidates WHERE run_id = ? "
        "AND list_contains(?, candidate_id)",
        [run_id, ids.tolist()],
    ).fetchnumpy()
    position = {int(c): i for i, c in enumerate(ids)}
    order = np.argsort([position[int(c)] for c in found["candidate_id"]], kind="stable")
    names = sorted(set(found["status"].tolist()))
    return {
        "candidate": [position[int(c)] for c in found["candidate_id"][order]],
        "seed": found["seed"][order].tolist(),
        "metric": _finite(found["metric"][order].astype(float)),
        "status": [names.index(s) for s in found["status"][order]],
        "statuses": names,
    }


def _moved(lineage: Lineage, run_id: str) -> tuple[set[int], set[int]]:
    """The programs that migrated, and those that founded an island (a reset or a split)."""
    found = lineage.query(
        "SELECT event, candidate_id FROM lineage WHERE run_id = ? AND event <> 'candidate'",
        [run_id],
    )
    migrated = {c for kind, c in found if kind == Event.MIGRATION}
    return migrated, {c for kind, c in found if kind != Event.MIGRATION}


def _details(
    lineage: Lineage, run_id: str, rows: dict[str, np.ndarray], shown: np.ndarray, minimize: bool
) -> dict[str, dict]:
    """The diff against the parent and each evaluation's details (a failure's stderr tail among
    them), for the DETAILED candidates a reader most likely opens: up to half of them the best
    accepted ones, the rest the latest of the others."""
    sign = 1.0 if minimize else -1.0
    fitness = np.where(np.isfinite(rows["fitness"]), sign * rows["fitness"], np.inf)
    accepted = rows["accepted"].astype(bool)[shown]
    best = sorted(shown[accepted].tolist(), key=lambda i: fitness[i])[: DETAILED // 2]
    taken = set(best)
    rest = [i for i in reversed(shown.tolist()) if i not in taken]
    picked = best + rest[: DETAILED - len(best)]
    chosen = {int(rows["candidate_id"][i]) for i in picked}
    parents = {int(rows["parent_id"][i]) for i in picked} - {-1}
    found = lineage.query(
        "SELECT candidate_id, sources, seeds, eval_statuses, metrics, eval_details FROM lineage "
        "WHERE run_id = ? AND event = 'candidate' AND list_contains(?, candidate_id)",
        [run_id, sorted(set(chosen) | parents)],
    )
    programs = {row[0]: sources({"sources": row[1]}) for row in found}
    parent_of = dict(zip(rows["candidate_id"].tolist(), rows["parent_id"].tolist(), strict=True))
    details = {}
    for candidate, _, seeds, statuses, metrics, measured in found:
        if candidate not in chosen:
            continue
        parent = programs.get(parent_of[candidate], {})
        evaluations = [
            {"seed": s, "status": st, "metric": m, "measured": _measured(d)}
            for s, st, m, d in zip(
                seeds or [], statuses or [], metrics or [], measured or [None] * len(seeds or []),
                strict=True,
            )
        ]  # fmt: skip
        lines = diff_lines(parent, programs[candidate]) if parent else []
        if len(lines) > DIFF_LINES:  # a rewrite of a whole file would weigh on the page
            cut = len(lines) - DIFF_LINES
            folder = lineage.runs[run_id].folder
            lines = lines[:DIFF_LINES] + [
                f"... {cut} more: python -m evo show {folder} {candidate}"
            ]
        details[str(candidate)] = {"diff": "\n".join(lines), "evaluations": evaluations}
    return details


def _measured(text: str | None) -> dict[str, Any]:
    """An evaluation's details with JSON's values only: a target may report NaN (a diverged
    loss), which JSON.parse in the page refuses."""
    found = json.loads(text) if text else {}
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in found.items()
    }


def _plain(rows: dict) -> dict[str, np.ndarray]:
    """DuckDB's columns without masks (it gives a masked array where a column has nulls), each
    null filled with what it means: no parent or mate is -1, no fitness NaN, not accepted."""
    fills = {"parent_id": -1, "mate_id": -1, "fitness": np.nan, "sigma": np.nan, "t": np.nan}
    fills |= {"accepted": False, "island": 0, "generation": 0, "evals": 0}
    kinds = {"parent_id": np.int64, "mate_id": np.int64, "fitness": float, "sigma": float}
    plain = {}
    for key, value in rows.items():
        column = np.ma.asarray(value)
        column = column.astype(kinds[key]) if key in kinds else column
        plain[key] = np.ma.filled(column, fills[key]) if key in fills else np.ma.filled(column)
    return plain


def _finite(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: missing metrics are null; 7 significant digits (a metric may be tiny)."""
    return [None if not np.isfinite(v) else float(f"{v:.7g}") for v in values]
