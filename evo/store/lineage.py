"""The lineage log: one Parquet row per candidate, whatever became of it, plus migration and
reset events. The row's shape lives here alone: the schema, and the two functions that build rows.

Append-only: rows are buffered and flushed as a new file `lineage/part-NNNNNN.parquet`, written
under a temporary name and renamed, so a reader never sees half a file. Every file has the same
versioned schema, so pyarrow, pandas, DuckDB and Polars read the folder directly, and readers
given SCHEMA read older files with fewer columns as nulls. Every file also names the run's metric
and its direction in its metadata, so that a reader never needs the target folder, which may
have moved or changed since.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from evo.mutate.prompt import short_tail
from evo.mutate.proposal import program_hash
from evo.search.candidate import Candidate, Evaluation
from evo.status import Event, Status

# Version 2 added the eval_* columns (where and when each evaluation ran), version 3
# eval_details, version 4 sigma, version 5 mate_id and the screen's; older files read them as
# nulls.
SCHEMA_VERSION = 5
SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("run_id", pa.string()),
        ("event", pa.string()),  # candidate | migration | reset | split | confirmation
        ("candidate_id", pa.int64()),
        ("parent_id", pa.int64()),
        ("mate_id", pa.int64()),  # a recombination's second parent
        ("island", pa.int32()),
        ("generation", pa.int32()),
        ("operator", pa.string()),
        ("model", pa.string()),
        ("hypothesis", pa.string()),
        ("edit", pa.string()),
        ("code_hash", pa.string()),
        ("sources", pa.string()),  # JSON: mutable file -> source
        ("status", pa.string()),  # accepted | kept | rejected | crash | invalid | timeout | refused
        ("reason", pa.string()),
        ("metrics", pa.list_(pa.float64())),
        ("seeds", pa.list_(pa.int64())),
        ("eval_statuses", pa.list_(pa.string())),
        ("fitness", pa.float64()),
        ("sigma", pa.float64()),  # the run's noise estimate when the candidate's fate was final
        # Its screen at a fraction of the budget, where the run screens (evo.run.screen): the
        # metric and the sandbox's wall time.
        ("screen_metric", pa.float64()),
        ("screen_seconds", pa.float64()),
        ("accepted", pa.bool_()),
        ("evaluator", pa.string()),
        ("node", pa.string()),
        ("gpu", pa.string()),
        ("queued_s", pa.float64()),
        # One entry per evaluation: its evaluator, when the driver sent it and got the result
        # back, and the sandbox's own wall time; the difference is orchestration overhead.
        ("eval_evaluators", pa.list_(pa.string())),
        ("eval_dispatched_at", pa.list_(pa.timestamp("us", tz="UTC"))),
        ("eval_returned_at", pa.list_(pa.timestamp("us", tz="UTC"))),
        ("eval_seconds", pa.list_(pa.float64())),
        # JSON per evaluation: what it measured besides the metric (Evaluation.measured), e.g.
        # json_extract(eval_details[1], '$.peak_vram_mb') in `evo lineage --sql`.
        ("eval_details", pa.list_(pa.string())),
        ("mutation_s", pa.float64()),
        ("evaluation_s", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_write_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("from_island", pa.int32()),
        ("to_island", pa.int32()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
    ]
)
CONFIRMATIONS = "confirmations"  # a run folder's rows of its confirmation (evo.run.confirm)
_PART = re.compile(r"^part-(\d{6})\.parquet$")


@dataclass(frozen=True)
class Metric:
    """What a lineage measured: the metric's name and whether lower is better."""

    name: str
    minimize: bool

    def metadata(self) -> dict[bytes, bytes]:
        direction = "minimize" if self.minimize else "maximize"
        return {b"evo.metric": self.name.encode(), b"evo.direction": direction.encode()}


class LineageWriter:
    """Buffers rows and flushes them as numbered part files; `parts` counts what is on disk.
    The rows it builds name the run by its folder's name (runs/<id>/lineage)."""

    def __init__(self, folder: Path, metric: Metric):
        self.folder = folder
        self.run_id = folder.parent.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.metric = metric
        self.parts = 0
        self.buffer: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(SCHEMA.names)
        if unknown:
            raise KeyError(f"not lineage columns: {sorted(unknown)}")
        self.buffer.append({"schema_version": SCHEMA_VERSION, **row})

    def candidate(
        self, candidate: Candidate, status: Status, reason: str = "", sigma: float | None = None
    ) -> None:
        self.add(candidate_row(self.run_id, candidate, status, reason, sigma))

    def event(self, kind: Event, candidate_id: int, source: int, dest: int, status: Status) -> None:
        self.add(event_row(self.run_id, kind, candidate_id, source, dest, status))

    def flush(self) -> None:
        if not self.buffer:
            return
        table = pa.Table.from_pylist(
            self.buffer, schema=SCHEMA.with_metadata(self.metric.metadata())
        )
        path = self.folder / f"part-{self.parts + 1:06d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.parts += 1
        self.buffer = []

    def discard_parts_after(self, parts: int) -> list[Path]:
        """Remove part files past `parts` (written after the last checkpoint, so redone)."""
        removed = [p for p in part_files(self.folder) if _number(p) > parts]
        for path in removed:
            path.unlink()
        for stale in self.folder.glob(".*.tmp"):
            stale.unlink()
        self.parts = parts
        return removed


def part_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("part-*.parquet") if _PART.match(p.name))


def _number(path: Path) -> int:
    return int(_PART.match(path.name).group(1))


def readable_parts(folder: Path) -> list[Path]:
    """The lineage files of a folder that can be read; a damaged one is skipped with a warning."""
    parts = []
    for path in part_files(folder):
        try:
            pq.read_metadata(path)
        except Exception as e:  # pyarrow raises several kinds for a damaged file
            print(f"warning: skipping {path}: not a readable Parquet file ({e})", file=sys.stderr)
            continue
        parts.append(path)
    return parts


def read_lineage(folder: Path, columns: list[str] | None = None) -> pa.Table:
    """Every row of a lineage folder's readable files, in the current schema (or `columns` of
    it)."""
    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
    tables = [pq.read_table(p, schema=schema, columns=columns) for p in readable_parts(folder)]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def lineage_metric(parts: list[Path]) -> Metric | None:
    """The metric that readable lineage files record; None for files written before evo
    recorded it."""
    for path in parts:
        metadata = pq.read_schema(path).metadata or {}
        if b"evo.metric" in metadata:
            return Metric(
                metadata[b"evo.metric"].decode(), metadata[b"evo.direction"] != b"maximize"
            )
    return None


def candidate_row(
    run_id: str, candidate: Candidate, status: Status, reason: str, sigma: float | None = None
) -> dict:
    """The row of a candidate whose fate is final, judged by the noise `sigma`."""
    child, evals = candidate.child, candidate.evaluations
    usage = child.usage
    return {
        "run_id": run_id,
        "event": Event.CANDIDATE,
        "candidate_id": candidate.id,
        "parent_id": child.parent_id,
        "mate_id": child.mate_id,
        "island": child.island,
        "generation": child.generation,
        "operator": child.operator,
        "model": child.model,
        "hypothesis": child.hypothesis,
        "edit": child.edit,
        "code_hash": program_hash(child.sources) if child.sources else None,
        "sources": json.dumps(child.sources) if child.sources else None,
        "status": status,
        "reason": reason,
        "metrics": [e.result.metric for e in evals],
        "screen_metric": candidate.screen.result.metric if candidate.screen else None,
        "screen_seconds": candidate.screen.result.wall_seconds if candidate.screen else None,
        "seeds": [e.seed for e in evals],
        "eval_statuses": [e.result.status for e in evals],
        "fitness": candidate.fitness,
        "sigma": sigma,
        "accepted": status == Status.ACCEPTED,
        "evaluator": _joined(e.evaluator for e in evals),
        "node": _joined(e.node for e in evals),
        "gpu": _joined(e.gpu for e in evals),
        "queued_s": max(0.0, evals[0].dispatched - candidate.created_at) if evals else None,
        "eval_evaluators": [e.evaluator for e in evals],
        "eval_dispatched_at": [utc(e.dispatched) for e in evals],
        "eval_returned_at": [utc(e.returned) for e in evals],
        "eval_seconds": [e.result.wall_seconds for e in evals],
        "eval_details": [json.dumps(_measured(e)) for e in evals],
        "mutation_s": child.mutation_s,
        "evaluation_s": sum(e.result.wall_seconds for e in evals) if evals else None,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cost_usd": usage.cost_usd,
        "created_at": utc(candidate.created_at),
        "finished_at": utc(time.time()),
    }


def event_row(
    run_id: str, kind: Event, candidate_id: int, source: int, dest: int, status: Status
) -> dict:
    """A migration, reset or split: program `candidate_id` from island `source` to `dest`."""
    now = utc(time.time())
    return {
        "run_id": run_id,
        "event": kind,
        "candidate_id": candidate_id,
        "island": dest,
        "from_island": source,
        "to_island": dest,
        "status": status,
        "accepted": status == Status.ACCEPTED,
        "created_at": now,
        "finished_at": now,
    }


def _measured(evaluation: Evaluation) -> dict[str, Any]:
    """What an evaluation measured, and the end of its stderr where it failed (a traceback)."""
    tail = short_tail(evaluation.result.stderr_tail)
    return evaluation.measured | ({"stderr_tail": tail} if tail else {})


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _joined(values: Iterable[str]) -> str | None:
    return ",".join(sorted({v for v in values if v})) or None
