"""`evo confirm`: the best programs of a run measured again on fresh seeds (evo.run.confirm), and
what the views make of it (evo.views.confirmation)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import evo, evo_started, row

from evo.bench.browser import Browser
from evo.config import RunConfig
from evo.store.lineage import CONFIRMATIONS, LineageWriter, Metric, read_lineage
from evo.store.reader import Lineage
from evo.views.confirmation import confirmations, describe, rank_correlation
from evo.views.report import write_report
from evo.views.report_data import run_data
from evo.views.show import show

# program -> its metrics on the fresh seeds 500-502, at the search's 10 s and at 30 s
CONFIRMED = {
    10.0: {0: [10.0, 10.2, 9.8], 1: [9.0, 9.4, 8.9], 2: [9.5, 9.5, 9.6]},
    30.0: {0: [8.0, 8.1], 1: [7.9, 8.0], 2: [7.2, 7.1]},
}


@pytest.fixture
def confirmed_run(tmp_path) -> Path:
    """A search of three programs (#1 measured best), confirmed at its budget and at 30 s."""
    folder = tmp_path / "fixture"  # the run id of conftest.row
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))
    details = [json.dumps({"budget_seconds": 10.0})]
    for r in [
        row(0, None, 0, "accepted", [10.1, 10.0, 9.9], "the seed program", 0),
        row(1, 0, 0, "accepted", [8.6], "better", 1),
        row(2, 0, 0, "kept", [9.2], "also better", 2),
    ]:
        writer.add({**r, "eval_details": details * len(r["metrics"])})
    writer.flush()
    confirmations_writer = LineageWriter(folder / CONFIRMATIONS, Metric("loss", minimize=True))
    for budget, programs in CONFIRMED.items():
        for cid, metrics in programs.items():
            for i, metric in enumerate(metrics):
                confirmations_writer.add(
                    row(cid, None, 0, "ok", [metric], "", 5, event="confirmation")
                    | {"seeds": [500 + i], "eval_details": [json.dumps({"budget_seconds": budget})]}
                )
    confirmations_writer.flush()
    return folder


def test_a_confirmation_gives_each_program_a_paired_gain_with_a_pooled_interval(confirmed_run):
    """At 10 s: #1 gains 1.0, 0.8, 0.9 over the seed program, #2 0.5, 0.7, 0.2; their pooled
    spread (4 degrees of freedom) is 0.19149, the interval 2.132 x 0.19149 / sqrt 3."""
    lineage = Lineage([confirmed_run])
    found = confirmations(lineage, "fixture")
    assert sorted(found) == [10.0, 30.0]
    seed, first, second = found[10.0]
    assert [c.candidate_id for c in found[10.0]] == [0, 1, 2]  # the seed, then best first
    assert (seed.gain, seed.half_width, seed.mean) == (0.0, None, pytest.approx(10.0))
    assert (first.gain, first.half_width) == (pytest.approx(0.9), pytest.approx(0.23570, abs=1e-5))
    assert (first.reported_gain, first.optimism) == (pytest.approx(1.4), pytest.approx(0.5))
    assert (second.gain, second.optimism) == (
        pytest.approx(0.46667, abs=1e-5),
        pytest.approx(0.33333, abs=1e-5),
    )
    assert (first.evaluations, first.search_evaluations) == (3, 1)


def test_the_rank_correlation_says_whether_the_search_order_holds_at_another_budget(
    confirmed_run,
):
    found = confirmations(Lineage([confirmed_run]), "fixture")
    assert rank_correlation(found[10.0]) == pytest.approx(1.0)  # seed worst, #1 best: as searched
    assert rank_correlation(found[30.0]) == pytest.approx(0.5)  # at 30 s #2 is best


def test_lineage_show_and_export_say_what_was_confirmed(confirmed_run, tmp_path):
    lineage = Lineage([confirmed_run])
    lines = describe(lineage, "fixture")
    assert lines[0] == (
        "confirmed at 10 s on fresh seeds (loss; gains over the seed program, with 90% intervals):"
    )
    assert lines[2] == (
        "  #1      search 8.6000 (1)  confirmed 9.1000 (3)  gain +0.9000 ± 0.2357, "
        "reported +1.4000, optimism +0.5000"
    )
    assert lines[-1] == "  rank correlation with the search at 10 s: +0.50"
    shown = show(lineage, "fixture", 1)
    assert (
        "confirmed: loss=7.9500 on 2 fresh seeds at 30 s, gain over the seed program +0.1000 "
        "± 0.2065 (90%) (the search reported +1.4000)"
    ) in shown
    (confirmed_run / "config.toml").write_text(RunConfig().to_toml())
    done = evo("export", str(confirmed_run), "--git", str(tmp_path / "git"))
    assert done.returncode == 0, done.stderr
    log = evo_git(tmp_path / "git")
    assert "Evo-Confirmed: loss=9.1000 on 3 fresh seeds at 10 s, gain over the seed" in log


def test_the_report_page_shows_what_was_confirmed(confirmed_run, tmp_path):
    (confirmed_run / "config.toml").write_text(RunConfig().to_toml())
    lineage = Lineage([confirmed_run])
    confirmed = run_data(lineage, "fixture")["confirmed"]
    assert sorted(confirmed) == ["0", "1", "2"]
    assert confirmed["1"] == [line for line in show(lineage, "fixture", 1) if "confirmed:" in line]
    page = write_report(lineage, tmp_path / "page")
    with Browser() as browser:
        browser.open(page.as_uri() + "#c=1")
        shown = browser.evaluate(
            "Array.from(document.querySelectorAll('#panel .confirmed')).map(p => p.textContent)"
        )
        assert shown == confirmed["1"] and browser.errors() == []


SEARCH_SECONDS = [13.0, 14.1, 12.8]  # the seed program's seconds after training in the search


@pytest.mark.parametrize(
    "confirmed, setup, caution",
    [
        ([13.4, 13.1], None, None),  # as in the search
        ([41.5, 42.9], None, "42.2 s after training here and 13.0 s in the search"),  # busier
        ([8.0, 8.4], None, "8.2 s after training here and 13.0 s in the search"),  # search busier
        ([15.0, 14.9], None, None),  # slower by less than 2 s
        ([None, 13.2], None, None),  # a failed evaluation does not count (None: no metric)
        ([None, 40.0], None, "40.0 s after training here"),
        ([13.4, 13.1], 45.0, None),  # a cold torch.compile cache: a longer set-up only
    ],
)
def test_a_confirmation_on_a_machine_of_another_speed_says_so(tmp_path, confirmed, setup, caution):
    """The seed program's wall less training and set-up seconds, against its search's (median
    13.0 s)."""
    folder = tmp_path / "fixture"
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))

    def details(after: list[float], setup: float | None = None) -> list[str]:
        return [
            json.dumps(
                {"budget_seconds": 15.0, "train_seconds": 15.0, "wall_seconds": 15 + a}
                | ({"setup_seconds": setup, "wall_seconds": 15 + a + setup} if setup else {})
            )
            for a in after
        ]

    seed = row(0, None, 0, "accepted", [3.0, 3.1, 2.9], "the seed program", 0)
    writer.add(seed | {"eval_details": details(SEARCH_SECONDS)})
    writer.add(row(1, 0, 0, "accepted", [2.5], "better", 1) | {"eval_details": details([12.0])})
    writer.flush()
    confirmations_writer = LineageWriter(folder / CONFIRMATIONS, Metric("loss", minimize=True))
    for i, after in enumerate(confirmed):
        metric = None if after is None else 3.0
        for cid in (0, 1):
            confirmations_writer.add(
                row(cid, None, 0, "ok", [metric], "", 5, event="confirmation")
                | {"seeds": [500 + i], "eval_details": details([after or 90.0], setup)}
            )
    confirmations_writer.flush()
    lines = describe(Lineage([folder]), "fixture")
    cautions = [line for line in lines if line.startswith("  caution:")]
    if caution is None:
        assert cautions == []
    else:
        [line] = cautions
        assert line.startswith(f"  caution: the seed program's evaluations spent {caution}")
        assert line.endswith(
            "s in the search: the machine ran at another speed (other jobs on it?), and under a "
            "wall-clock budget a slower machine trains less; these values do not compare with "
            "the search's"
        )


def evo_git(folder: Path) -> str:
    import subprocess

    return subprocess.run(
        ["git", "log"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout


def test_a_confirmation_of_a_gpt_run_killed_midway_resumes_without_loss_or_repeat(tmp_path):
    """A short real run on the gpt target (CPU), then `evo confirm --top 1 --seeds 2`, killed
    with its Ray processes once its first row is on disk, then started again. The run is the
    seed program and one child, each measured once: with one evaluation of the seed there is no
    sigma, so no gain of the child's is a surprise held for more seeds when the run ends."""
    out = tmp_path / "runs"
    done = evo(
        "run", "--target", "targets/gpt", "--budget", "2", "--max-evals", "2", "--islands", "1",
        "--noise-repeats", "1", "--min-repeats", "1", "--operator", "offline", "--out", str(out),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = out.iterdir()
    args = ("confirm", str(run), "--top", "1", "--seeds", "2")
    started = evo_started(*args, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((run / CONFIRMATIONS).glob("part-*.parquet")):
        assert time.monotonic() < deadline and started.poll() is None, started.stdout.read()
        time.sleep(0.05)
    os.killpg(started.pid, signal.SIGKILL)
    started.wait()
    before = [
        (r["candidate_id"], r["seeds"][0]) for r in read_lineage(run / CONFIRMATIONS).to_pylist()
    ]
    assert 1 <= len(before) < 4

    done = evo(*args, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"4 evaluations: {4 - len(before)} to run, {len(before)} done before" in done.stdout
    rows = read_lineage(run / CONFIRMATIONS).to_pylist()
    pairs = [(r["candidate_id"], r["seeds"][0]) for r in rows]
    assert len(pairs) == len(set(pairs)) == 4 and set(before) <= set(pairs)
    assert {r["event"] for r in rows} == {"confirmation"}
    assert "confirmed at 2 s on fresh seeds" in done.stdout
    assert " ± " in done.stdout  # an interval: 1 degree of freedom
