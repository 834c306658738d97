"""Run configuration, lineage files and checkpoints: the parts of a run folder, without Ray."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evo.config import RunConfig, read_toml
from evo.errors import UsageError
from evo.shipped import preset_path
from evo.store import checkpoint
from evo.store.lineage import SCHEMA, LineageWriter, Metric, part_files, read_lineage

METRIC = Metric("loss", minimize=True)


def test_presets_load_and_differ():
    ring, explore, chain = (
        RunConfig().with_tables(read_toml(preset_path(name)), name).search
        for name in ("ring", "explore", "single-chain")
    )
    assert (ring.islands, ring.population, ring.migration_interval) == (4, 8, 10)
    assert (explore.islands, explore.explore) == (8, 0.5)
    assert (chain.islands, chain.population, chain.migration_interval, chain.stagnation) == (
        1,
        1,
        0,
        0,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"islandz": 2}, "unknown setting 'islandz'"),
        ({"islands": "four"}, "islands must be a int, not 'four'"),
        ({"islands": 0}, "islands must be at least 1"),
        ({"explore": 1.5}, "explore must be between 0 and 1"),
        ({"max_evals": 0}, "set a stop condition"),
        ({"gpus_per_eval": 0.0}, "gpus_per_eval must be > 0"),
        ({"budget": -1.0}, "budget must be >= 0"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(UsageError, match=message):
        RunConfig().with_settings(overrides, "test")


def test_config_round_trips_through_toml(tmp_path):
    config = RunConfig().with_settings({"islands": 3, "budget": 12, "address": "auto"}, "test")
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert RunConfig().with_tables(read_toml(path), "file") == config
    assert config.evaluation.budget == 12.0  # an int for a float setting is taken as a float


def test_unknown_preset():
    with pytest.raises(
        UsageError,
        match="preset nope does not exist; use a .toml file or one of: explore, ring, single-chain",
    ):
        preset_path("nope")


def test_lineage_parts_are_atomic_and_readable(tmp_path):
    writer = LineageWriter(tmp_path / "lineage", METRIC)
    writer.add({"run_id": "r", "event": "candidate", "candidate_id": 0, "metrics": [1.5]})
    writer.flush()
    writer.flush()  # nothing buffered: no empty file
    writer.add({"run_id": "r", "event": "candidate", "candidate_id": 1, "status": "crash"})
    writer.add({"run_id": "r", "event": "migration", "candidate_id": 0, "from_island": 0})
    writer.flush()
    assert [p.name for p in part_files(tmp_path / "lineage")] == [
        "part-000001.parquet",
        "part-000002.parquet",
    ]
    table = read_lineage(tmp_path / "lineage")
    assert table.schema == SCHEMA
    assert [r["candidate_id"] for r in table.to_pylist()] == [0, 1, 0]
    assert table.to_pylist()[0]["metrics"] == [1.5] and table.to_pylist()[0]["schema_version"] == 2
    with pytest.raises(KeyError, match="not lineage columns"):
        writer.add({"nope": 1})


def test_older_files_with_fewer_columns_read_as_nulls(tmp_path):
    folder = tmp_path / "lineage"
    folder.mkdir()
    pq.write_table(
        pa.table({"run_id": ["old"], "candidate_id": pa.array([7], pa.int64())}),
        folder / "part-000001.parquet",
    )
    [row] = read_lineage(folder).to_pylist()
    assert (row["run_id"], row["candidate_id"], row["status"], row["metrics"]) == (
        "old",
        7,
        None,
        None,
    )


def test_parts_written_after_the_checkpoint_are_discarded_on_resume(tmp_path):
    writer = LineageWriter(tmp_path / "lineage", METRIC)
    for i in range(3):
        writer.add({"candidate_id": i})
        writer.flush()
    (tmp_path / "lineage" / ".part-000004.parquet.tmp").write_text("half")
    resumed = LineageWriter(tmp_path / "lineage", METRIC)
    removed = resumed.discard_parts_after(2)
    assert [p.name for p in removed] == ["part-000003.parquet"]
    assert [r["candidate_id"] for r in read_lineage(tmp_path / "lineage").to_pylist()] == [0, 1]
    assert list((tmp_path / "lineage").glob(".*")) == []
    resumed.add({"candidate_id": 2})
    resumed.flush()
    assert part_files(tmp_path / "lineage")[-1].name == "part-000003.parquet"


def test_checkpoints_are_atomic_and_fall_back_to_the_previous(tmp_path):
    assert checkpoint.load(tmp_path) is None
    checkpoint.save(tmp_path, {"evals_done": 1})
    checkpoint.save(tmp_path, {"evals_done": 2})
    assert checkpoint.load(tmp_path)["evals_done"] == 2
    (tmp_path / "checkpoint.json").write_text('{"evals_done": 3, "trunc')
    assert checkpoint.load(tmp_path)["evals_done"] == 1  # the torn newest is skipped


def test_a_damaged_checkpoint_falls_back_with_a_warning(tmp_path, capsys):
    checkpoint.save(tmp_path, {"evals_done": 4})
    checkpoint.save(tmp_path, {"evals_done": 5})
    (tmp_path / "checkpoint.json").write_bytes(b"\x00\xff garbage")
    assert checkpoint.load(tmp_path)["evals_done"] == 4
    assert "checkpoint.json is damaged; trying the one before" in capsys.readouterr().err
