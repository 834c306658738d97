"""Run configuration, lineage files and checkpoints: the parts of a run folder, without Ray."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evo.cli import build_parser
from evo.config import SETTINGS, RunConfig, read_toml
from evo.errors import UsageError
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import Usage
from evo.run.folder import read_config
from evo.run.state import Best, RunState
from evo.search.candidate import Candidate, Child, Evaluation
from evo.search.island import Member
from evo.search.noise import Noise
from evo.shipped import preset_path
from evo.store import checkpoint
from evo.store.lineage import SCHEMA, LineageWriter, Metric, part_files, read_lineage

METRIC = Metric("loss", minimize=True)


def test_presets_load_and_differ():
    ring, explore, chain = (
        RunConfig().with_tables(read_toml(preset_path(name)), name).search
        for name in ("ring", "explore", "single-chain")
    )
    assert (ring.islands, ring.population, ring.migration_interval) == (4, 8, 3)
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
        ({"explore": 1.5}, "explore must be a fraction from 0 to 1, not 1.5"),
        ({"crossover": -0.1}, "crossover must be a fraction from 0 to 1, not -0.1"),
        ({"screen": 1.0}, "screen must be a fraction from 0 to 0.99, not 1.0"),
        ({"start_islands": 5}, r"start_islands \(5\) must be 0 \(all\) or up to islands \(4\)"),
        ({"start_islands": 1, "patience": 0}, "with patience set: e.g. --start-islands 1"),
        ({"min_repeats": 4}, r"min_repeats \(4\) must not exceed max_repeats \(3\)"),
        ({"max_evals": 0}, "set a stop condition"),
        ({"gpus_per_eval": 0.0}, "gpus_per_eval must be > 0"),
        ({"budget": -1.0}, "budget must be >= 0"),
        ({"noise_k": -1.0}, "noise_k must be >= 0, not -1.0"),
        ({"sure_k": -0.5}, "sure_k must be >= 0, not -0.5"),
        ({"patience": -1}, "patience must be >= 0, not -1"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(UsageError, match=message):
        RunConfig().with_settings(overrides, "test")


@pytest.mark.parametrize(
    "saved, expected",
    [
        ("[search]\nislands = 4\n", (0, 0)),  # saved before the adaptive model: all open, so kept
        ("[search]\nislands = 4\nstart_islands = 1\npatience = 10\n", (1, 10)),
        ("[search]\nislands = 4\nstart_islands = 2\npatience = 5\n", (2, 5)),
    ],
)
def test_a_resumed_run_searches_as_it_started(tmp_path, saved, expected):
    (tmp_path / "config.toml").write_text(saved)
    search = read_config(tmp_path).search
    assert (search.start_islands, search.patience) == expected
    assert RunConfig().search.start_islands == 1  # what a new run gets


def test_config_round_trips_through_toml(tmp_path):
    config = RunConfig().with_settings({"islands": 3, "budget": 12, "address": "auto"}, "test")
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert RunConfig().with_tables(read_toml(path), "file") == config
    assert config.evaluation.budget == 12.0  # an int for a float setting is taken as a float


def test_tables_mirror_the_settings_and_every_setting_has_a_flag(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        "seed = 3\n[search]\nislands = 2\n[evaluation]\nbudget = 9\n[limits]\nmax_hours = 1\n"
        '[llm]\noperator = "offline"\nmodels = ["a", "b:2"]\ntemperature = 0.5\n'
    )
    config = RunConfig().with_tables(read_toml(path), "file")
    assert (config.seed, config.search.islands, config.evaluation.budget) == (3, 2, 9.0)
    assert (config.limits.max_hours, config.limits.max_evals) == (1.0, 40)
    assert (config.llm.models, config.llm.temperature) == (("a", "b:2"), 0.5)
    args = build_parser().parse_args(
        ["run", "--islands", "2", "--max-hours", "1", "--model", "a", "--model", "b:2"]
    )
    given = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    assert given == {"islands": 2, "max_hours": 1.0, "models": ["a", "b:2"]}
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    flags = [f"--{name.replace('_', '-')}" for name in SETTINGS if name != "models"]
    assert [flag for flag in [*flags, "--model"] if flag not in help_text] == []
    assert "--max-evals MAX_EVALS" in help_text and "(default: 40)" in help_text
    with pytest.raises(UsageError, match=r"file: islands belongs in the \[search\] table"):
        RunConfig().with_tables({"islands": 2}, "file")
    with pytest.raises(UsageError, match=r"file \[search\]: unknown setting 'islandz'"):
        RunConfig().with_tables({"search": {"islandz": 2}}, "file")
    with pytest.raises(UsageError, match="model 'b:x': write NAME or NAME:WEIGHT"):
        RunConfig().with_settings({"models": ["b:x"]}, "test")


def test_the_run_state_round_trips_through_its_checkpoint(tmp_path):
    result = EvalResult("ok", "loss", 1.5, 7, "cpu", 2.0, 2.0, 2.2, 100.0, details={"steps": 3})
    child = Child(1, 0, 1, "anthropic", "m", "h", "e", {"p.py": "X = 2\n"}, "", Usage(1, 2))
    evaluation = Evaluation(result, "evaluator-0", "node", "host", "", 42, 1, 10.0, 12.5)
    candidate = Candidate(5, child, 9.0, [evaluation], screen=evaluation)
    seed = Member(0, {"p.py": "X = 1\n"}, {0: 2.0, 1: 2.5}, 0)
    noise = Noise({0: {0: 2.0, 1: 2.5}, 4: {0: 1.0, 1: 1.7}}, earlier=(0.02, 1))
    screens = Noise({0: {0: 1.0, 1: 1.2, 2: 1.4}})  # sigma 0.2
    state = RunState(noise, 6, 4, screens, 3, 0.5, evaluators=2, seen={"ab"}, open_islands=1)
    state.screens = {0: 1.0, 5: 1.25}
    state.set_champion(0, seed, minimize=True)
    state.pending.append((candidate, 2))
    checkpoint.save(tmp_path, state.to_json([(candidate, 1)], elapsed=30.0))
    again = RunState.from_json(checkpoint.load(tmp_path))
    assert again.screens == {0: 1.0, 5: 1.25}
    assert again.best == Best(0, seed) and again.champions == {0: seed}
    assert list(again.pending) == [(candidate, 2), (candidate, 1)]
    assert (again.noise, again.next_id, again.evals_done, again.elapsed) == (noise, 6, 4, 30.0)
    # differences 1.0 and 0.8: 2 x residual 0.02 on 1 dof; spread^2 (0.02 + 0.125 + 0.245) / 3
    assert again.sigma == pytest.approx(math.sqrt((0.02 + 2 * 0.13) / 3), rel=1e-9)
    assert again.open_islands == 1
    assert (again.screen_noise.sigma, again.screens_done) == (pytest.approx(0.2), 3)
    assert again.pending[0][0].screen == evaluation
    assert again.pending[0][0].metrics == {1: 1.5} and again.seen == {"ab"}
    # an older evo's checkpoint: each child with its parent's screen, no screens of the run's
    older = state.to_json([], elapsed=30.0)
    del older["screens"]
    older["pending"][0][0]["child"]["parent_screen"] = 1.0
    again = RunState.from_json(older)
    assert again.screens == {} and list(again.pending) == [(candidate, 2)]


def test_unknown_preset():
    with pytest.raises(
        UsageError,
        match="preset nope does not exist; use a .toml file or one of: adaptive, explore, ring, "
        "single-chain",
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
    assert table.to_pylist()[0]["metrics"] == [1.5] and table.to_pylist()[0]["schema_version"] == 5
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
