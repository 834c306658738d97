"""Questions asked of lineages: DuckDB SQL over the Parquet files of one or several run folders.

The view `lineage` holds every row of every given run (older files with fewer columns read as
nulls). Candidates are keyed by (run_id, candidate_id), so several runs can be read together.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evo.config import RunConfig, read_toml
from evo.errors import UsageError
from evo.store import checkpoint
from evo.store.lineage import part_files
from evo.target import load_target

MISSING = -2  # in a parent array: no candidate has this id
LISTED = 8  # groups listed one by one; more are summarised by their range
CHAIN_SHOWN = 20  # steps of the best's improvement chain shown in the summary


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    folder: Path
    metric: str
    minimize: bool
    evaluators: int | None
    sigma: float | None


class Lineage:
    def __init__(self, folders: list[Path]):
        import duckdb  # only the analysis commands need it

        self.runs: dict[str, RunInfo] = {}
        files = []
        for folder in folders:
            parts = [p for p in part_files(folder / "lineage") if _readable(p)]
            if not parts:
                raise UsageError(f"{folder} holds no lineage; pass a run folder such as runs/<id>")
            files += [str(p) for p in parts]
            self.runs[folder.name] = _run_info(folder)
        self.db = duckdb.connect()
        self.db.execute(
            f"CREATE VIEW lineage AS SELECT * FROM read_parquet({files!r}, union_by_name = true)"
        )
        # One scan of the files; every figure is then computed in memory, sources left out.
        self.db.execute(
            "CREATE TABLE candidates AS SELECT * EXCLUDE (sources) FROM lineage "
            "WHERE event = 'candidate'"
        )
        self._parents: dict[str, np.ndarray] = {}
        for run_id, info in self.runs.items():
            if info.sigma is None:
                seed = self.query(
                    "SELECT metrics FROM candidates WHERE run_id = ? AND candidate_id = 0",
                    [run_id],
                )
                metrics = seed[0][0] if seed else []
                sigma = statistics.stdev(metrics) if len(metrics) > 1 else None
                self.runs[run_id] = replace(info, sigma=sigma)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.db.execute(sql, params or []).fetchall()

    def table(self, sql: str) -> tuple[list[str], list[tuple]]:
        return self.table_with(sql, [])

    def table_with(self, sql: str, params: list) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a query; a failing query is the user's to fix."""
        import duckdb

        try:
            cursor = self.db.execute(sql, params)
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0]
            raise UsageError(f"the SQL failed: {first}; the table is called lineage") from None
        return [d[0] for d in cursor.description], cursor.fetchall()

    def best(self, run_id: str) -> tuple[int, float] | None:
        order = "ASC" if self.runs[run_id].minimize else "DESC"
        rows = self.query(
            "SELECT candidate_id, fitness FROM candidates WHERE run_id = ? AND accepted "
            f"AND fitness IS NOT NULL ORDER BY fitness {order}, candidate_id LIMIT 1",
            [run_id],
        )
        return rows[0] if rows else None

    def ancestry(self, run_id: str, candidate_id: int) -> list[dict[str, Any]]:
        """The candidate and its ancestors, oldest first (empty when there is no such candidate)."""
        parents = self._parent_array(run_id)
        chain, node = [], candidate_id
        while 0 <= node < len(parents) and parents[node] != MISSING and len(chain) <= len(parents):
            chain.append(int(node))
            node = parents[node]
        rows = self.query(
            "SELECT candidate_id, parent_id, island, fitness, status, hypothesis FROM candidates "
            "WHERE run_id = ? AND list_contains(?, candidate_id)",
            [run_id, chain],
        )
        keys = ("candidate_id", "parent_id", "island", "fitness", "status", "hypothesis")
        by_id = {row[0]: dict(zip(keys, row, strict=True)) for row in rows}
        return [by_id[node] for node in reversed(chain)]

    def _parent_array(self, run_id: str) -> np.ndarray:
        """parent id by candidate id (-1: none, MISSING: no such candidate), built once a run."""
        if run_id not in self._parents:
            ids = self.db.execute(
                "SELECT candidate_id, coalesce(parent_id, -1) AS parent FROM candidates "
                "WHERE run_id = ?",
                [run_id],
            ).fetchnumpy()
            parents = np.full(
                int(ids["candidate_id"].max()) + 1 if len(ids["candidate_id"]) else 0,
                MISSING,
                dtype=np.int64,
            )
            parents[ids["candidate_id"]] = ids["parent"]
            self._parents[run_id] = parents
        return self._parents[run_id]

    def candidate(self, run_id: str, candidate_id: int) -> dict[str, Any] | None:
        cursor = self.db.execute(
            "SELECT * FROM lineage WHERE run_id = ? AND event = 'candidate' AND candidate_id = ?",
            [run_id, candidate_id],
        )
        row = cursor.fetchone()
        return (
            None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))
        )

    def summary(self, run_id: str) -> list[str]:
        """The figures of `evo lineage`, as lines."""
        run = self.runs[run_id]
        where = "run_id = ?"
        lines = [f"run {run_id} ({run.metric}, {'lower' if run.minimize else 'higher'} is better)"]
        by_status = dict(
            self.query(
                f"SELECT status, count(*) FROM candidates WHERE {where} GROUP BY ALL", [run_id]
            )
        )
        evals = dict(
            self.query(
                f"SELECT s, count(*) FROM (SELECT unnest(eval_statuses) AS s FROM candidates "
                f"WHERE {where}) GROUP BY ALL",
                [run_id],
            )
        )
        lines.append(f"candidates: {sum(by_status.values())} ({_counts(by_status)})")
        lines.append(f"evaluations: {sum(evals.values())} ({_counts(evals)})")
        if run.sigma is not None:
            lines.append(f"noise: sigma {run.sigma:.4g} (the seed program's spread over seeds)")
        for key, label in (
            ("island", "island"),
            ("operator || coalesce('/' || model, '')", "operator"),
        ):
            rates = self.query(
                f"SELECT {key}, count(*) FILTER (WHERE accepted), count(*) FROM candidates "
                f"WHERE {where} AND candidate_id <> 0 AND len(metrics) > 0 GROUP BY ALL ORDER BY 1",
                [run_id],
            )
            shown = [(k, f"{a}/{n} ({100 * a / n:.0f}%)") for k, a, n in rates]
            lines.append(f"acceptance by {label}: {_listing(shown, [a / n for _, a, n in rates])}")
        order = "min" if run.minimize else "max"
        per_island = self.query(
            f"SELECT island, {order}(fitness) FROM candidates WHERE {where} AND accepted "
            "GROUP BY ALL ORDER BY 1",
            [run_id],
        )
        shown = [(i, f"{f:.4f}") for i, f in per_island]
        lines.append("best per island: " + _listing(shown, [f for _, f in per_island]))
        best = self.best(run_id)
        if best:
            chain = self.ancestry(run_id, best[0])
            lines.append(f"improvement chain of the best (#{best[0]}, {run.metric} {best[1]:.4f}):")
            previous = None
            if len(chain) > CHAIN_SHOWN:
                lines.append(
                    f"  ({len(chain) - CHAIN_SHOWN} earlier steps: `--ancestry {best[0]}`)"
                )
                previous = chain[-CHAIN_SHOWN - 1]["fitness"]
                chain = chain[-CHAIN_SHOWN:]
            for step in chain:
                delta = "" if previous is None else _delta(step["fitness"] - previous, run.sigma)
                lines.append(
                    f"  #{step['candidate_id']:<6} {step['fitness']:.4f} {delta:>22}  "
                    f"{step['hypothesis']}"
                )
                previous = step["fitness"]
        spend = self.query(
            f"SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens) "
            f"FROM candidates WHERE {where}",
            [run_id],
        )[0]
        cost, tokens_in, tokens_out, cached = (v or 0 for v in spend)
        lines.append(
            f"spend: ${cost:.2f} ({tokens_in} input, {cached} cache-read, "
            f"{tokens_out} output tokens)"
        )
        busy, start, end, evaluators = self.query(
            "SELECT sum(evaluation_s), min(created_at), max(finished_at), "
            f"count(DISTINCT evaluator) FROM candidates WHERE {where}",
            [run_id],
        )[0]
        count = run.evaluators or evaluators
        if busy and count and end > start:
            span = (end - start).total_seconds()
            lines.append(
                f"evaluator utilisation: {100 * busy / (count * span):.1f}% "
                f"({busy:.0f} s of evaluation over {count} evaluator(s) x {span:.0f} s)"
            )
        return lines


def _readable(path: Path) -> bool:
    """Whether a lineage file can be read; a damaged one is skipped with a warning."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as e:  # pyarrow raises several kinds for a damaged file
        print(f"warning: skipping {path}: not a readable Parquet file ({e})", file=sys.stderr)
        return False
    return True


def _run_info(folder: Path) -> RunInfo:
    metric, minimize = "metric", True
    if (folder / "config.toml").is_file():
        config = RunConfig().with_overrides(read_toml(folder / "config.toml"), str(folder))
        try:
            target = load_target(config.target)
            metric, minimize = target.metric, target.direction == "minimize"
        except UsageError:  # the target moved or changed since: its name is not essential
            pass
    state = checkpoint.load(folder) or {}
    return RunInfo(
        folder.name, folder, metric, minimize, state.get("evaluators"), state.get("sigma")
    )


def _listing(items: list[tuple[Any, str]], values: list[float]) -> str:
    """`key: text` pairs, or for many keys their range, so that 64 islands fit on a line."""
    if len(items) <= LISTED:
        return ", ".join(f"{key}: {text}" for key, text in items) or "-"
    low, high = (
        min(range(len(values)), key=values.__getitem__),
        max(range(len(values)), key=values.__getitem__),
    )
    return (
        f"{len(items)} groups, from {items[low][0]}: {items[low][1]} "
        f"to {items[high][0]}: {items[high][1]} (median {statistics.median(values):.4g})"
    )


def _counts(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in ordered) or "none"


def _delta(delta: float, sigma: float | None) -> str:
    if not sigma:
        return f"{delta:+.4f}"
    return f"{delta:+.4f} ({abs(delta) / sigma:.1f} sigma)"


def sources(row: dict[str, Any]) -> dict[str, str]:
    return json.loads(row["sources"]) if row.get("sources") else {}


def show(lineage: Lineage, run_id: str, candidate_id: int) -> list[str]:
    """The lines of `evo show`: what the candidate is, how it fared, and its code."""
    import difflib

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
    for seed, status, metric in zip(
        row["seeds"] or [], row["eval_statuses"] or [], row["metrics"] or [], strict=True
    ):
        value = f"{metric:.4f}" if metric is not None else "-"
        lines.append(f"  evaluation with seed {seed}: {status} {run.metric}={value}")
    if row["fitness"] is not None:
        against = ""
        if parent and parent["fitness"] is not None:
            change = _delta(row["fitness"] - parent["fitness"], run.sigma)
            against = f"; parent {parent['fitness']:.4f}, {change}"
        lines.append(f"fitness (mean over seeds): {row['fitness']:.4f}{against}")
    lines.append(f"why: {_why(row['status'])}")
    mine, theirs = sources(row), sources(parent) if parent else {}
    for name, text in mine.items():
        old = theirs.get(name, "")
        lines += [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                old.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"parent/{name}",
                f"candidate/{name}",
            )
        ]
    for name, text in mine.items():
        lines += [f"--- {name} (source) ---", *text.splitlines()]
    return lines


_WHY = {
    "accepted": "it beat its island's champion on shared seeds by more than k sigma / sqrt(n)",
    "kept": "it joined its island's population but did not beat the champion beyond the noise",
    "rejected": "it was no better than the worst program of a full population",
    "refused": "validation refused it before any evaluation (see the reason)",
    "crash": "its evaluation exited with an error (see the reason)",
    "invalid": "its evaluation ran but could not be scored (see the reason)",
    "timeout": "its evaluation was killed at the hard timeout",
}


def _why(status: str) -> str:
    return _WHY.get(status, status)
