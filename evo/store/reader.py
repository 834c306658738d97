"""The reader of lineages: DuckDB SQL over the Parquet files of one or several run folders.

The view `lineage` holds every row of every given run (older files with fewer columns read as
nulls); the table `candidates` holds the candidate rows without their sources. Candidates are
keyed by (run_id, candidate_id), so several runs can be read together. What a run measured comes
from its lineage and its checkpoint, not from the target folder, which may have moved or changed
since (only for lineages written before evo recorded the metric is the target read).
"""

from __future__ import annotations

import json
import statistics
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evo.errors import UsageError
from evo.evaluate.allowance import Allowance
from evo.store import checkpoint
from evo.store.lineage import CONFIRMATIONS, Metric, lineage_metric, readable_parts
from evo.target import load_target

MISSING = -2  # in a parent array: no candidate has this id


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    folder: Path
    metric: str
    minimize: bool
    evaluators: int | None
    sigma: float | None
    noise_dof: int | None = None  # the paired degrees of freedom of sigma (evo.search.noise)
    allowance: Allowance | None = None  # the run's measured limits (evo.evaluate.allowance)


class Lineage:
    def __init__(self, folders: list[Path]):
        import duckdb  # only the analysis commands need it

        self.runs: dict[str, RunInfo] = {}
        selects = []
        for folder in folders:
            parts = readable_parts(folder / "lineage")
            if not parts:
                raise UsageError(f"{folder} holds no lineage; pass a run folder such as runs/<id>")
            # and a confirmation's rows (evo.run.confirm), kept apart from the search's
            files = [str(p) for p in parts + readable_parts(folder / CONFIRMATIONS)]
            self.runs[folder.name] = _run_info(folder, parts)
            # A run is known by its folder's name: its rows carry the id it had when they were
            # written, which a folder renamed (or copied) after the run no longer matches.
            name = folder.name.replace("'", "''")
            selects.append(
                f"SELECT * REPLACE ('{name}' AS run_id) "
                f"FROM read_parquet({files!r}, union_by_name = true)"
            )
        self.db = duckdb.connect()
        self.db.execute(f"CREATE VIEW lineage AS {' UNION ALL BY NAME '.join(selects)}")
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

    def search_budget(self, run_id: str) -> float | None:
        """The budget the run searched at: its seed program's first evaluation's (None where it
        did not record one)."""
        rows = self.query(
            "SELECT CAST(json_extract(eval_details[1], '$.budget_seconds') AS DOUBLE) "
            "FROM candidates WHERE run_id = ? AND candidate_id = 0",
            [run_id],
        )
        return rows[0][0] if rows else None

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


def _run_info(folder: Path, parts: list[Path]) -> RunInfo:
    metric = lineage_metric(parts) or _older_metric(folder)
    state = checkpoint.load(folder, any_version=True) or {}
    return RunInfo(
        folder.name,
        folder,
        metric.name,
        metric.minimize,
        state.get("evaluators"),
        state.get("sigma"),
        _paired_dof(state.get("noise") or {}),
        Allowance.saved(state.get("allowance")),
    )


def _paired_dof(noise: dict) -> int | None:
    """The degrees of freedom of a run's paired noise estimate; None before pairing, whose
    checkpoints held the pooled spread's."""
    return noise["dof"] if "programs" in noise else None


def _older_metric(folder: Path) -> Metric:
    """A lineage written before evo recorded its metric: the target its run's config names, if
    it still loads, else a metric called `metric`, lower being better; with a warning."""
    try:
        target = load_target(tomllib.loads((folder / "config.toml").read_text())["target"])
        found = Metric(target.metric, target.direction == "minimize")
    except (OSError, KeyError, tomllib.TOMLDecodeError, UsageError):
        found = Metric("metric", True)
    print(
        f"warning: {folder}'s lineage does not record its metric (an older run): read as "
        f"{found.name}, {'lower' if found.minimize else 'higher'} is better",
        file=sys.stderr,
    )
    return found


def sources(row: dict[str, Any]) -> dict[str, str]:
    return json.loads(row["sources"]) if row.get("sources") else {}
