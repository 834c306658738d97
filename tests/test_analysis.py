"""evo lineage / show / status / report / export on a hand-made lineage with exact figures, and
on a real run of the quad fixture; the report is rendered by a real headless Chromium."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, evo

from evo.config import RunConfig
from evo.store.lineage import SCHEMA, LineageWriter, Metric, read_lineage

QUAD = ROOT / "tests" / "fixtures" / "quad"


def row(cid, parent, island, status, metrics, hypothesis, minute, **extra):
    return {
        "run_id": "fixture",
        "event": "candidate",
        "candidate_id": cid,
        "parent_id": parent,
        "island": island,
        "generation": 0 if parent is None else 1,
        "operator": "offline",
        "hypothesis": hypothesis,
        "edit": f"params.py: change {cid}",
        "status": status,
        "sources": json.dumps({"params.py": f"X = {cid}\n"}),
        "metrics": metrics,
        "seeds": list(range(len(metrics))),
        "eval_statuses": extra.pop("statuses", ["ok"] * len(metrics)),
        "fitness": sum(metrics) / len(metrics) if metrics and None not in metrics else None,
        "accepted": status == "accepted",
        "evaluator": "evaluator-0" if metrics else None,
        "evaluation_s": 10.0 * len(metrics) if metrics else None,
        "created_at": datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
        "finished_at": datetime(2026, 1, 1, 0, minute + 1, tzinfo=UTC),
        **extra,
    }


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "fixture"
    (folder).mkdir()
    (folder / "config.toml").write_text(RunConfig(target=str(QUAD)).to_toml())
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))
    for r in [
        row(0, None, 0, "accepted", [10.0, 10.2, 9.8], "the seed program", 0),
        row(
            1,
            0,
            0,
            "accepted",
            [9.0],
            "X down",
            1,
            operator="anthropic",
            model="claude-haiku-4-5",
            cost_usd=0.25,
            input_tokens=1000,
            output_tokens=100,
        ),
        row(
            2,
            0,
            1,
            "kept",
            [10.1],
            "Y up",
            2,
            operator="anthropic",
            model="claude-sonnet-4-5",
            cost_usd=0.25,
            input_tokens=1000,
            output_tokens=100,
        ),  # fmt: skip
        row(3, 1, 0, "crash", [None], "X way down", 3, statuses=["crash"], reason="boom"),
        row(
            4,
            1,
            0,
            "accepted",
            [8.0, 8.2],
            "X further down",
            4,
            eval_details=[json.dumps({"train_seconds": 9.0}), json.dumps({"train_seconds": 9.5})],
            mate_id=2,  # a recombination of #1 and #2
        ),  # fmt: skip
        row(
            5,
            0,
            1,
            "refused",
            [],
            "bad edit",
            5,
            reason="SEARCH block 1 matches nothing",
            operator="anthropic",
            model="claude-haiku-4-5",
            cost_usd=0.15,
            input_tokens=500,
        ),  # fmt: skip
    ]:
        writer.add(r)
    writer.flush()
    writer.add(
        {
            "run_id": "fixture",
            "event": "migration",
            "candidate_id": 4,
            "island": 1,
            "from_island": 0,
            "to_island": 1,
            "status": "accepted",
            "accepted": True,
        }
    )
    writer.flush()
    return folder


def test_the_summary_figures(fixture_run):
    done = evo("lineage", str(fixture_run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "run fixture (loss, lower is better)",
        "candidates: 6 (accepted 3, crash 1, kept 1, refused 1)",
        "evaluations: 8 (ok 7, crash 1)",
        "noise: sigma 0.2 (the seed program's spread over seeds)",
        "acceptance by island: 0: 2/3 (67%), 1: 0/1 (0%)",
        "acceptance by operator: anthropic/claude-haiku-4-5: 1/1 (100%), "
        "anthropic/claude-sonnet-4-5: 0/1 (0%), offline: 1/2 (50%)",
        "acceptance by kind: mutation: 1/3 (33%), recombination: 1/1 (100%)",
        "best per island: 0: 8.1000",
        "improvement chain of the best (#4, loss 8.1000):",
        "  #0      10.0000                         the seed program",
        "  #1      9.0000    -1.0000 (5.0 sigma)  X down",
        "  #4      8.1000    -0.9000 (4.5 sigma)  X further down",
        "spend: $0.65 (2500 input, 0 cache-read, 200 output tokens)",
        "spend by model: claude-haiku-4-5: 1 accepted of 2 for $0.40 (2.5 per $), "
        "claude-sonnet-4-5: 0 accepted of 1 for $0.25 (0 per $)",
        # 30 + 10 + 10 + 10 + 20 s of evaluation between minute 0 and minute 6
        "evaluator utilisation: 22.2% (80 s of evaluation over 1 evaluator(s) x 360 s)",
        # 9 + 9.5 s of training in the same 360 s
        "training fraction: 5.1% (18 s of training over 1 evaluator(s) x 360 s)",
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
    assert done.stdout.splitlines()[1].split() == ["14", "1"]  # the copy has the same run id
    both = evo("lineage", str(fixture_run), str(twin))
    assert both.stdout.count("improvement chain of the best") == 1


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


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real")
    done = evo(
        "run",
        "--target",
        str(QUAD),
        "--islands",
        "2",
        "--max-evals",
        "30",
        "--operator",
        "offline",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = out.iterdir()
    return folder


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


def test_the_report_renders_in_a_real_browser(real_run, tmp_path):
    import matplotlib.image

    done = evo("report", str(real_run), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    page = tmp_path / "report" / "report.html"
    assert page.read_text().count('src="data:image/png;base64,') == 5
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is needed for this test: apt-get install chromium"
    shot = tmp_path / "shot.png"
    browser = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), browser.stderr
    assert "Uncaught" not in browser.stderr and "ERROR:CONSOLE" not in browser.stderr
    pixels = matplotlib.image.imread(shot)[..., :3]
    drawn = (pixels < 0.9).any(axis=2).mean()
    assert pixels.std() > 0.05 and drawn > 0.02  # plots, not a blank page
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("<img") == 5 and f"evo run {real_run.name}" in dom
    assert np.isfinite(pixels).all()


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
    assert shown[5].startswith("    train_seconds ") and ", machine CPU, " in shown[5]


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
    assert line == (
        f"noise: sigma {sigma:.4g} ± {sigma / math.sqrt(2 * dof):.2g} ({dof} degrees of "
        "freedom: every program evaluated more than once); as judged: "
        + " -> ".join(f"{s:.4g}" for s in marks)
    )
