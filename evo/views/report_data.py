"""What the report page shows, as one JSON-ready dict per run (evo.views.report draws it).

Candidates are columns (one list per field, index i = the i-th candidate shown, in the order their
fate was final), so that a 20,000-candidate page is a few megabytes of arrays, not objects.
Past SHOWN candidates a run is sampled: every accepted candidate, a seeded random sample of the
others, and the ancestors of everything shown (so the tree has no orphans); the page says so.
The best-so-far curves and the counts are computed over every candidate, sampled or not.
The panel's heavier parts (the diff against the parent, each evaluation's details, a failure's
stderr tail) are embedded for at most DETAILED candidates: the accepted ones, then the best,
then the most recent; the page names `evo show` for the others.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from evo.status import Event
from evo.store import checkpoint
from evo.store.reader import Lineage, sources
from evo.views.show import diff_lines
from evo.views.summary import summary

SHOWN = 20_000
DETAILED = 2_000
_COLUMNS = (
    "candidate_id, parent_id, mate_id, island, generation, status, fitness, accepted, "
    "sigma, coalesce(hypothesis, '') AS hypothesis, "
    "coalesce(reason, '') AS reason, operator || coalesce('/' || model, '') AS operator, "
    "coalesce(cost_usd, 0) AS cost, coalesce(input_tokens, 0) + coalesce(output_tokens, 0) "
    "AS tokens, coalesce(len(metrics), 0) AS evals, epoch(finished_at) AS t"
)


def run_data(lineage: Lineage, run_id: str, seed: int = 0) -> dict[str, Any]:
    """Everything the page of one run needs (see the module's docstring for what is sampled)."""
    run = lineage.runs[run_id]
    rows = lineage.db.execute(
        f"SELECT {_COLUMNS} FROM candidates WHERE run_id = ? ORDER BY finished_at, candidate_id",
        [run_id],
    ).fetchnumpy()
    rows = _plain(rows)
    start = float(rows["t"].min()) if len(rows["t"]) else 0.0
    minutes = (rows["t"].astype(float) - start) / 60.0
    evals_done = np.cumsum(rows["evals"])
    shown = _shown(rows, seed)
    events = _events(lineage, run_id, start)
    moved = list(zip(events["kind"], events["id"], strict=True))
    migrated = {c for kind, c in moved if kind == Event.MIGRATION}
    founders = {c for kind, c in moved if kind != Event.MIGRATION}  # of a reset or a split
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
        "mark": ["migrated" if c in migrated else "founder" if c in founders else "" for c in ids],
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
        "events": events,
        "details": _details(lineage, run_id, rows, shown, run.minimize),
    }


def compare_data(lineage: Lineage) -> dict[str, Any]:
    """Several runs on one page: each run's best so far over evaluations and over time."""
    runs = []
    for run_id, run in lineage.runs.items():
        rows = lineage.db.execute(
            f"SELECT {_COLUMNS} FROM candidates WHERE run_id = ? "
            "ORDER BY finished_at, candidate_id",
            [run_id],
        ).fetchnumpy()
        rows = _plain(rows)
        minutes = (rows["t"].astype(float) - float(rows["t"].min())) / 60.0
        curves = best_curves(rows, minutes, np.cumsum(rows["evals"]), run.minimize)
        runs.append({"run": run_id, "best": curves["run"], "summary": summary(lineage, run_id)})
    first = next(iter(lineage.runs.values()))
    return {"metric": first.metric, "minimize": first.minimize, "runs": runs}


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
        where = np.flatnonzero(mask)
        values = sign * np.minimum.accumulate(sign * rows["fitness"][where])
        changed = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(where) else where
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


def _shown(rows: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Indices of the candidates the page shows, in the rows' order."""
    count = len(rows["candidate_id"])
    if count <= SHOWN:
        return np.arange(count)
    keep = rows["accepted"].astype(bool) | (rows["candidate_id"] == 0)
    others = np.flatnonzero(~keep)
    room = max(0, SHOWN - int(keep.sum()))
    keep[np.random.default_rng(seed).choice(others, min(room, len(others)), replace=False)] = True
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


def _events(lineage: Lineage, run_id: str, start: float) -> dict[str, list]:
    found = lineage.query(
        "SELECT event, candidate_id, from_island, to_island, status, epoch(finished_at) "
        "FROM lineage WHERE run_id = ? AND event <> 'candidate' ORDER BY finished_at",
        [run_id],
    )
    keys = ("kind", "id", "source", "dest", "status", "minutes")
    columns = {key: [] for key in keys}
    for row in found:
        for key, value in zip(keys, row, strict=True):
            if key == "minutes" and value is not None:
                value = round((value - start) / 60, 3)
            columns[key].append(value)
    return columns


def _details(
    lineage: Lineage, run_id: str, rows: dict[str, np.ndarray], shown: np.ndarray, minimize: bool
) -> dict[str, dict]:
    """The diff against the parent and each evaluation's details, for the DETAILED candidates a
    reader most likely opens: the accepted ones, then the best, then the most recent."""
    sign = 1.0 if minimize else -1.0
    fitness = np.where(np.isfinite(rows["fitness"]), sign * rows["fitness"], np.inf)
    accepted = rows["accepted"].astype(bool)
    order = sorted(shown.tolist(), key=lambda i: (not accepted[i], fitness[i], -i))
    chosen = [int(rows["candidate_id"][i]) for i in order[:DETAILED]]
    parents = {int(rows["parent_id"][i]) for i in order[:DETAILED]} - {-1}
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
            {"seed": s, "status": st, "metric": m, "measured": json.loads(d) if d else {}}
            for s, st, m, d in zip(
                seeds or [], statuses or [], metrics or [], measured or [None] * len(seeds or []),
                strict=True,
            )
        ]  # fmt: skip
        details[str(candidate)] = {
            "diff": "\n".join(diff_lines(parent, programs[candidate])) if parent else "",
            "evaluations": evaluations,
        }
    return details


def _plain(rows: dict) -> dict[str, np.ndarray]:
    """DuckDB's columns without masks (it gives a masked array where a column has nulls): no
    parent or mate is -1, no fitness NaN."""
    plain = {key: np.ma.filled(np.ma.asarray(value)) for key, value in rows.items()}
    for key in ("parent_id", "mate_id"):
        plain[key] = np.ma.filled(np.ma.asarray(rows[key]).astype(np.int64), -1)
    for key in ("fitness", "sigma"):
        plain[key] = np.ma.filled(np.ma.asarray(rows[key]).astype(float), np.nan)
    return plain


def _finite(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: missing metrics are null."""
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]
