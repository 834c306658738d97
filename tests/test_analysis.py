"""evo lineage / show / status / export on a hand-made lineage with exact figures, and on a real
run of the quad fixture (the report: tests/test_report.py)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import QUAD, evo, row

from evo.config import RunConfig
from evo.store.lineage import SCHEMA, LineageWriter, Metric, read_lineage


def test_the_summary_figures(fixture_run):
    done = evo("lineage", str(fixture_run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "run fixture (loss, lower is better)",
        "candidates: 6 (accepted 3, crash 1, kept 1, refused 1)",
        "evaluations: 8 (ok 7, crash 1)",
        "noise: sigma 0.2 (the spread of a program's metric between seeds)",
        "acceptance by island: 0: 2/3 (67%), 1: 0/1 (0%)",
        "acceptance by operator: anthropic/claude-haiku-4-5: 1/1 (100%), "
        "anthropic/claude-sonnet-4-5: 0/1 (0%), offline: 1/2 (50%)",
        "acceptance by kind: mutation: 1/3 (33%), recombination: 1/1 (100%)",
        "best per island: 0: 8.1000",
        "improvement chain of the best (#4, loss 8.1000):",
        "  #0      10.0000                         the seed program",
        "  #1      9.0000    -1.0000 (5.0 sigma)  X down",
        "  #4      8.1000    -0.9000 (4.5 sigma)  X further down",
        "the best's gain over the seed program (10.0000) is not estimated: sigma rests on 0 "
        "paired degrees of freedom, 4 needed (each would-be champion measured on a second seed "
        "adds one: a longer run brings them, and --min-repeats 2 where it was 1)",
        "spend: $0.65 (2500 input, 0 cache-read, 200 output tokens)",
        "spend by model: claude-haiku-4-5: 1 accepted of 2 for $0.40 (2.5 per $), "
        "claude-sonnet-4-5: 0 accepted of 1 for $0.25 (0 per $)",
        # 30 + 10 + 10 + 10 + 20 s of evaluation between minute 0 and minute 6
        "evaluator utilisation: 22.2% (80 s of evaluation over 1 evaluator(s) x 360 s)",
        # 9 + 9.5 s of training in the same 360 s
        "training fraction: 5.1% (18 s of training over 1 evaluator(s) x 360 s)",
        "measured: 2 evaluations in run+measure",  # the others' rows say nothing of it
        "not confirmed: the best (#4) is measured by the search that chose it, partly for its "
        f"luck; python -m evo confirm {fixture_run} measures it again on fresh seeds",
    ]


def test_filters_ancestry_and_sql(fixture_run):
    listed = evo("lineage", str(fixture_run), "--island", "0", "--status", "accepted")
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["0", "1", "4"]
    chain = evo("lineage", str(fixture_run), "--ancestry", "3")
    assert [line.split()[1] for line in chain.stdout.splitlines()[1:]] == ["0", "1", "3"]
    sql = evo(
        "lineage",
        str(fixture_run),
        "--sql",
        "SELECT event, count(*) AS n FROM lineage GROUP BY event ORDER BY event",
    )
    assert sql.stdout.splitlines() == ["event      n", "candidate  6", "migration  1"]
    bad = evo("lineage", str(fixture_run), "--sql", "SELEC 1")
    assert bad.returncode == 2 and bad.stderr.startswith("evo: error: the SQL failed: Parser Error")


def test_several_runs_at_once(fixture_run, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(fixture_run, twin)
    done = evo(
        "lineage",
        str(fixture_run),
        str(twin),
        "--sql",
        "SELECT count(*) AS rows, count(DISTINCT run_id) AS runs FROM lineage",
    )
    # a run is known by its folder's name, whatever id its rows were written with
    assert done.stdout.splitlines()[1].split() == ["14", "2"]
    both = evo("lineage", str(fixture_run), str(twin))
    assert both.stdout.count("improvement chain of the best") == 2


def test_a_run_folder_renamed_after_the_run(fixture_run, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copytree(fixture_run, renamed)
    original = evo("lineage", str(fixture_run)).stdout.splitlines()
    shown = evo("lineage", str(renamed)).stdout.splitlines()
    moved = {"run fixture": "run renamed", str(fixture_run): str(renamed)}
    for old, new in moved.items():
        original = [line.replace(old, new) for line in original]
    assert shown == original and shown[1].startswith("candidates: 6 (")
    assert evo("show", str(renamed), "4").stdout.startswith("candidate 4 of run renamed:")


def test_show(fixture_run):
    done = evo("show", str(fixture_run), "4")
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        "candidate 4 of run fixture: island 0, generation 1, parent 1, operator offline",
        "hypothesis: X further down",
        "edit: params.py: change 4",
        "status: accepted",
    ]
    assert "  evaluation with seed 1: ok loss=8.2000" in lines
    assert "fitness (mean over seeds): 8.1000; parent 9.0000, -0.9000 (4.5 sigma)" in lines
    assert "-X = 1" in lines and "+X = 4" in lines
    assert evo("show", str(fixture_run), "99").stderr == (
        "evo: error: run fixture has no candidate 99; see `evo lineage`\n"
    )


def test_bad_run_folders(tmp_path):
    done = evo("lineage", str(tmp_path))
    assert done.returncode == 2
    assert (
        done.stderr
        == f"evo: error: {tmp_path} holds no lineage; pass a run folder such as runs/<id>\n"
    )


def test_status_of_a_real_run(real_run):
    done = evo("status", str(real_run))
    assert done.returncode == 0
    first, second = done.stdout.splitlines()
    assert first.startswith(f"run {real_run.name}: last checkpoint ")
    assert " evals 30/30  best " in second and "spend $0.00" in second


def test_export_the_winning_lineage_to_git(real_run, tmp_path):
    done = evo("export", str(real_run), "--git", str(tmp_path / "repo"))
    assert done.returncode == 0, done.stderr
    log = subprocess.run(
        ["git", "log", "--format=%s|%(trailers:key=Evo-Metric,valueonly)"],
        cwd=tmp_path / "repo",
        capture_output=True,
        text=True,
    ).stdout
    entries = [line for line in log.splitlines() if line.strip()]
    assert entries[-1].startswith("the seed program|loss=")
    assert len(entries) == int(done.stdout.split()[0]) >= 2
    best = (real_run / "best" / "params.py").read_text()
    assert (tmp_path / "repo" / "params.py").read_text() == best
    again = evo("export", str(real_run), "--git", str(tmp_path / "repo"))
    assert again.returncode == 2 and "exists and is not empty" in again.stderr


def test_a_truncated_lineage_file_is_skipped_with_a_warning(fixture_run, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(fixture_run, damaged)
    second = damaged / "lineage" / "part-000002.parquet"
    second.write_bytes(second.read_bytes()[:100])  # cut by hand
    done = evo("lineage", str(damaged), "--sql", "SELECT count(*) AS n FROM lineage")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["n", "6"]  # the candidates of the first file
    assert done.stderr.startswith(f"warning: skipping {second}: not a readable Parquet file")


def test_a_maximizing_run_reads_its_direction_from_its_lineage_not_its_target(tmp_path):
    folder = tmp_path / "fixture"
    folder.mkdir()
    # the run's target has moved since: its config names a folder that is no more
    (folder / "config.toml").write_text(RunConfig(target=str(tmp_path / "moved")).to_toml())
    writer = LineageWriter(folder / "lineage", Metric("score", minimize=False))
    writer.add(row(0, None, 0, "accepted", [10.0, 10.2, 9.8], "the seed program", 0))
    writer.add(row(1, 0, 0, "accepted", [12.0], "up", 1))
    writer.add(row(2, 0, 0, "kept", [11.0], "a little up", 2))
    writer.flush()
    done = evo("lineage", str(folder))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "run fixture (score, higher is better)"
    assert "best per island: 0: 12.0000" in lines


def test_an_older_run_is_still_read(tmp_path):
    # Written before the lineage recorded its metric: flat config.toml, checkpoint format 1.
    target = tmp_path / "upward"
    shutil.copytree(QUAD, target)
    toml = (target / "target.toml").read_text().replace('"minimize"', '"maximize"')
    (target / "target.toml").write_text(toml)
    folder = tmp_path / "fixture"
    (folder / "lineage").mkdir(parents=True)
    (folder / "config.toml").write_text(f'target = "{target}"\nislands = 4\n')
    (folder / "checkpoint.json").write_text('{"version": 1, "sigma": 0.2, "evaluators": 1}')
    rows = [row(0, None, 0, "accepted", [1.0, 1.2, 0.8], "the seed program", 0)]
    old = pa.Table.from_pylist(rows, schema=SCHEMA)  # no metadata
    pq.write_table(old, folder / "lineage" / "part-000001.parquet")
    done = evo("lineage", str(folder))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "run fixture (loss, higher is better)"
    assert done.stderr == (
        f"warning: {folder}'s lineage does not record its metric (an older run): read as loss, "
        "higher is better\n"
    )


def test_the_lineage_keeps_what_each_evaluation_measured(real_run):
    done = evo(
        "lineage", str(real_run), "--sql",
        "SELECT candidate_id, json_extract_string(eval_details[1], '$.machine') AS machine "
        "FROM lineage WHERE accepted ORDER BY candidate_id LIMIT 1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("0             CPU, ")
    shown = evo("show", str(real_run), "0").stdout.splitlines()
    assert shown[4].startswith("  evaluation with seed 0: ok loss=")
    assert shown[5].startswith("    budget_seconds 1, train_seconds ")
    assert ", machine CPU, " in shown[5]


def test_the_summary_shows_the_noise_estimate_and_how_it_moved(real_run):
    state = json.loads((real_run / "checkpoint.json").read_text())
    sigma, dof = state["sigma"], state["noise"]["dof"]
    rows = read_lineage(real_run / "lineage", ["event", "candidate_id", "sigma", "finished_at"])
    settled = sorted(
        (r["finished_at"], r["candidate_id"], r["sigma"])
        for r in rows.to_pylist()
        if r["event"] == "candidate" and r["sigma"] is not None
    )
    judged = [sigma for _, _, sigma in settled]
    marks = [judged[round(q * (len(judged) - 1))] for q in (0, 0.25, 0.5, 0.75, 1)]
    [line] = [x for x in evo("lineage", str(real_run)).stdout.splitlines() if "noise" in x]
    assert dof > 0  # candidates evaluated again, on the seeds the seed program was
    assert line == (
        f"noise: sigma {sigma:.4g} ± {sigma / math.sqrt(2 * (dof + 2)):.2g} (of a difference on "
        f"one seed: {dof} degrees of freedom from programs measured on shared seeds); as "
        "judged: " + " -> ".join(f"{s:.4g}" for s in marks)
    )


def test_the_summary_shows_the_limits_the_seed_program_set(real_run):
    """The hard timeout follows the seed program's slowest evaluation (evo.evaluate.allowance),
    as the checkpoint saved it; quad's evaluations are fast, so the floor holds."""
    state = json.loads((real_run / "checkpoint.json").read_text())
    rows = read_lineage(real_run / "lineage", ["event", "candidate_id", "eval_details"])
    [seed] = [r for r in rows.to_pylist() if r["event"] == "candidate" and r["candidate_id"] == 0]
    walls = [json.loads(d)["wall_seconds"] for d in seed["eval_details"]]
    assert state["allowance"] == {
        "step_seconds": 0.0,  # quad reports no step
        # quad's evaluations take less than their budget; wall seconds are rounded to 0.01
        "overhead_seconds": pytest.approx(max(0.0, max(walls) - 1), abs=0.01),
        "target_seconds": 19.0,
    }
    honest = 1 + state["allowance"]["overhead_seconds"]
    [line] = [x for x in evo("lineage", str(real_run)).stdout.splitlines() if "timeout" in x]
    assert line == (
        f"hard timeout: 20 s at the 1 s budget (2 x the seed program's slowest evaluation, "
        f"{honest:.1f} s; at least the budget + 20 s, at most + 19 s, the target's)"
    )
