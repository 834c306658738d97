"""The lineage log: one Parquet row per candidate, whatever became of it, plus migration events.

Append-only: rows are buffered and flushed as a new file `lineage/part-NNNNNN.parquet`, written
under a temporary name and renamed, so a reader never sees half a file. Every file has the same
versioned schema, so pyarrow, pandas, DuckDB and Polars read the folder directly, and readers
given SCHEMA read older files with fewer columns as nulls.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Version 2 added the eval_* columns (where and when each evaluation ran); version-1 files
# read them as nulls.
SCHEMA_VERSION = 2
SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("run_id", pa.string()),
        ("event", pa.string()),  # candidate | migration
        ("candidate_id", pa.int64()),
        ("parent_id", pa.int64()),
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
_PART = re.compile(r"^part-(\d{6})\.parquet$")


class LineageWriter:
    """Buffers rows and flushes them as numbered part files; `parts` counts what is on disk."""

    def __init__(self, folder: Path, parts: int = 0):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parts = parts
        self.buffer: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(SCHEMA.names)
        if unknown:
            raise KeyError(f"not lineage columns: {sorted(unknown)}")
        self.buffer.append({"schema_version": SCHEMA_VERSION, **row})

    def flush(self) -> None:
        if not self.buffer:
            return
        table = pa.Table.from_pylist(self.buffer, schema=SCHEMA)
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


def read_lineage(folder: Path) -> pa.Table:
    """Every row of a lineage folder, in the current schema."""
    tables = [pq.read_table(p, schema=SCHEMA) for p in part_files(folder)]
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
