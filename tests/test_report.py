"""`evo report`: the page's data with exact figures on the hand-made lineage, its sampling on a
large synthetic one, the page driven in a real headless Chromium (clicks, filters, the hash that
keeps them), several runs compared, and the live page (`--watch`, `evo run --report`)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import replace

import pytest
from conftest import QUAD, evo, row

from evo.bench.browser import Browser
from evo.bench.lineage_load import synthetic_lineage
from evo.config import RunConfig
from evo.evaluate.result import EvalResult
from evo.mutate.prompt import short_tail
from evo.search.candidate import Candidate, Child, Evaluation
from evo.status import Status
from evo.store import checkpoint
from evo.store.lineage import LineageWriter, Metric, candidate_row
from evo.store.reader import Lineage, sources
from evo.views import report_data
from evo.views.report import watch, write_report
from evo.views.show import diff_lines


def test_the_page_data_of_the_hand_made_run(fixture_run):
    data = report_data.run_data(Lineage([fixture_run]), "fixture")
    c = data["candidates"]
    assert c["id"] == [0, 1, 2, 3, 4, 5]
    assert [data["statuses"][s] for s in c["status"]] == [
        "accepted", "accepted", "kept", "crash", "accepted", "refused",
    ]  # fmt: skip
    assert c["fitness"] == [10.0, 9.0, 10.1, None, 8.1, None]
    assert c["evals_done"] == [3, 4, 5, 6, 8, 8]
    assert c["minutes"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert c["parent"] == [-1, 0, 0, 1, 1, 0] and c["mate"] == [-1, -1, -1, -1, 2, -1]
    assert c["tree_y"] == [1.75, 0.5, 2.0, 0.0, 1.0, 3.0]
    assert c["mark"] == ["", "", "", "", "migrated", ""]
    assert [data["operators"][o] for o in c["operator"]] == [
        "offline", "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5", "offline",
        "offline", "anthropic/claude-haiku-4-5",
    ]  # fmt: skip
    assert data["best"] == {
        "run": {
            "minutes": [0.0, 1.0, 4.0, 5.0],
            "evals_done": [3, 4, 8, 8],
            "value": [10.0, 9.0, 8.1, 8.1],
            "sigma": [None, None, None, None],
        },
        "0": {
            "minutes": [0.0, 1.0, 4.0, 5.0],
            "evals_done": [3, 4, 8, 8],
            "value": [10.0, 9.0, 8.1, 8.1],
            "sigma": [None, None, None, None],
        },
    }
    e = data["evaluations"]
    assert e["candidate"] == [0, 0, 0, 1, 2, 3, 4, 4]
    assert e["metric"] == [10.0, 10.2, 9.8, 9.0, 10.1, None, 8.0, 8.2]
    assert [e["statuses"][s] for s in e["status"]] == ["ok"] * 5 + ["crash", "ok", "ok"]
    two = {"phases": "run+measure"}
    assert data["details"]["4"] == {
        "diff": "--- parent/params.py\n+++ candidate/params.py\n@@ -1 +1 @@\n-X = 1\n+X = 4",
        "evaluations": [
            {"seed": 0, "status": "ok", "metric": 8.0, "measured": {"train_seconds": 9.0, **two}},
            {"seed": 1, "status": "ok", "metric": 8.2, "measured": {"train_seconds": 9.5, **two}},
        ],
    }
    assert data["details"]["0"]["diff"] == ""  # the seed has no parent
    assert data["details"]["3"]["evaluations"] == [
        {
            "seed": 0,
            "status": "crash",
            "metric": None,
            "measured": {"stderr_tail": "Traceback (most recent call last):\nboom"},
        }
    ]
    assert data["total"] == 6 and data["live"] is False


def test_a_surprise_is_marked_in_the_tree(tmp_path):
    folder = tmp_path / "fixture"  # the run id of the rows row() makes
    folder.mkdir()
    (folder / "config.toml").write_text(RunConfig(target=str(QUAD)).to_toml())
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))
    said = "surprise: a gain of 36.7 sigma, not confirmed on 2 more seeds (10.0 sigma there)"
    writer.add(row(0, None, 0, "accepted", [10.0, 10.2, 9.8], "the seed program", 0))
    writer.add(row(1, 0, 0, "kept", [1.0, 9.9, 9.9], "too good", 1, reason=said))
    writer.flush()
    data = report_data.run_data(Lineage([folder]), "fixture")
    assert data["candidates"]["mark"] == ["", "surprise"]
    assert data["candidates"]["reason"] == ["", said]


@pytest.mark.parametrize(
    "ids, parents, rows",
    [
        ([0, 1, 2], [-1, 0, 1], [0.0, 0.0, 0.0]),  # a chain: one row
        ([0, 1, 2], [-1, 0, 0], [0.5, 0.0, 1.0]),  # a fork: the parent midway
        ([0, 1, 2, 3], [-1, 0, 1, 0], [0.5, 0.0, 0.0, 1.0]),  # a branch, then a leaf
        ([5, 7], [3, 4], [0.0, 1.0]),  # parents not shown: each a root of its own
    ],
)
def test_tree_rows(ids, parents, rows):
    assert report_data.tree_rows(ids, parents) == rows


def test_a_large_run_is_sampled_and_keeps_every_accepted_candidate(tmp_path, monkeypatch):
    monkeypatch.setattr(report_data, "SHOWN", 500)
    monkeypatch.setattr(report_data, "DETAILED", 40)
    synthetic_lineage(tmp_path / "big", 3000, islands=4)
    lineage = Lineage([tmp_path / "big"])
    data = report_data.run_data(lineage, "big")
    c = data["candidates"]
    accepted = {i for (i,) in lineage.query("SELECT candidate_id FROM candidates WHERE accepted")}
    shown = set(c["id"])
    assert accepted <= shown and data["total"] == 3000
    assert 495 <= len(shown) <= 600  # the sample, and the ancestors it needs
    assert all(p == -1 or p in shown for p in c["parent"])  # no orphans in the tree
    # Details: the 20 best accepted candidates, then the 20 latest others shown.
    rows = lineage.query(
        "SELECT candidate_id, fitness, accepted FROM candidates ORDER BY finished_at, candidate_id"
    )
    rows = [r for r in rows if r[0] in shown]
    best = {r[0] for r in sorted((r for r in rows if r[2]), key=lambda r: r[1])[:20]}
    latest = [r[0] for r in reversed(rows) if r[0] not in best][:20]
    assert set(data["details"]) == {str(c) for c in best | set(latest)}
    [(best,)] = lineage.query("SELECT min(fitness) FROM candidates WHERE accepted")
    assert data["best"]["run"]["value"][-1] == round(best, 6)  # over every candidate


def _pixel(browser: Browser, figure: str, source: str, index: int, x: str, y: str) -> list:
    """Where, in the viewport, point `index` of a Bokeh source is drawn in a named figure."""
    return browser.evaluate(
        f"""(() => {{
        const view = [...Bokeh.index.all_views()].find((v) => v.model.name === "{figure}");
        const data = Bokeh.documents[0].get_model_by_name("{source}").data;
        view.el.scrollIntoView({{block: "center"}});
        const box = view.canvas_view.el.getBoundingClientRect();
        return [box.left + view.frame.x_scale.compute(data.{x}[{index}]),
                box.top + view.frame.y_scale.compute(data.{y}[{index}])];
        }})()"""
    )


def _page_data(page) -> dict:
    """What the page's script reads besides the plots."""
    payload = page.read_text().split("id='evo-data'>")[1].split("</script>")[0]
    return json.loads(payload)


def _panel(browser: Browser) -> dict:
    return browser.evaluate(
        "({title: document.querySelector('#panel h2')?.textContent, "
        "diff: document.querySelector('#panel pre.diff')?.textContent, hash: location.hash})"
    )


def test_the_page_in_a_real_browser(real_run, tmp_path):
    done = evo("report", str(real_run), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    page = tmp_path / "report" / "report.html"
    assert done.stdout == f"report: {page}\n" and not list(page.parent.glob(".*.tmp"))
    lineage = Lineage([real_run])
    [(child, parent)] = lineage.query(
        "SELECT candidate_id, parent_id FROM candidates WHERE accepted AND candidate_id > 0 "
        "ORDER BY candidate_id LIMIT 1"
    )
    expected = diff_lines(
        sources(lineage.candidate(real_run.name, parent)),
        sources(lineage.candidate(real_run.name, child)),
    )
    with Browser() as browser:
        assert browser.open(page.as_uri()) > 0
        ids_of = "Array.from(Bokeh.documents[0].get_model_by_name('nodes').data.id)"
        ids = browser.evaluate(ids_of)
        browser.click(*_pixel(browser, "tree", "nodes", ids.index(child), "generation", "tree_y"))
        shown = _panel(browser)
        assert shown["title"] == f"candidate #{child}" and shown["hash"].endswith(f"c={child}")
        assert shown["diff"] == "\n".join(expected)
        # The parent link, the same node again, then one of the candidate's evaluations.
        browser.evaluate(f"document.querySelector('#panel [data-select=\"{parent}\"]').click()")
        assert _panel(browser)["title"] == f"candidate #{parent}"
        time.sleep(0.5)  # two taps on one point within Bokeh's double-tap time are a double tap
        browser.click(*_pixel(browser, "tree", "nodes", ids.index(child), "generation", "tree_y"))
        assert _panel(browser)["title"] == f"candidate #{child}"
        browser.evaluate(f"document.querySelector('#panel [data-select=\"{parent}\"]').click()")
        points = browser.evaluate(
            "Array.from(Bokeh.documents[0].get_model_by_name('points').data.id)"
        )
        browser.click(*_pixel(browser, "evaluations", "points", points.index(child), "x", "y"))
        assert _panel(browser)["title"] == f"candidate #{child}"
        # Filters: no status shown, then only the accepted candidates.
        browser.evaluate("document.querySelector('[data-all=statuses][value=\"\"]').click()")
        visible = "get_model_by_name('nodes-filter').booleans.filter(Boolean).length"
        assert browser.evaluate(f"Bokeh.documents[0].{visible}") == 0
        browser.evaluate("document.querySelector('[data-filter=statuses][value=accepted]').click()")
        [(accepted,)] = lineage.query("SELECT count(*) FROM candidates WHERE accepted")
        assert browser.evaluate(f"Bokeh.documents[0].{visible}") == accepted
        # Zoom into the tree and the first plot: the hash keeps where; another x axis drops the
        # first plot's view (another unit).
        views, zoomed = "new URLSearchParams(location.hash.slice(1))", {}
        for plot in ("tree", "best"):
            x, y = browser.evaluate(
                f"""(() => {{
                const view = [...Bokeh.index.all_views()].find((v) => v.model.name === "{plot}");
                view.el.scrollIntoView({{block: "center"}});
                const box = view.canvas_view.el.getBoundingClientRect();
                return [box.left + box.width / 2, box.top + box.height / 2];
                }})()"""
            )
            browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)  # in first
            wheel = {"type": "mouseWheel", "x": x, "y": y, "deltaX": 0, "deltaY": -300}
            browser.send("Input.dispatchMouseEvent", **wheel)
            zoomed[plot] = browser.wait(f"{views}.get('view-{plot}')")  # once the wheel stops
        tree = zoomed["tree"]
        browser.evaluate("document.querySelector('[data-choice=x][value=minutes]').click()")
        assert browser.evaluate(f"{views}.get('view-best')") is None
        # A reload (as a live page does) keeps the selection, the filters and the tree's zoom.
        browser.reload()
        assert _panel(browser)["title"] == f"candidate #{child}"
        assert browser.evaluate(f"Bokeh.documents[0].{visible}") == accepted
        start = browser.evaluate("Bokeh.documents[0].get_model_by_name('tree').x_range.start")
        assert start == pytest.approx(float(tree.split(",")[0]), rel=1e-5)
        assert browser.errors() == []


def test_a_failed_evaluation_keeps_its_stderr_tail_for_the_page(fixture_run, tmp_path):
    crashed = EvalResult(
        status=Status.CRASH, metric_name="loss", metric=None, seed=0, device="cpu",
        budget_seconds=1.0, train_seconds=None, wall_seconds=0.5, peak_rss_mb=None,
        reason="ValueError: boom", stderr_tail="warming up\n" * 40 + "ValueError: boom\n",
    )  # fmt: skip
    fine = replace(crashed, status=Status.OK, metric=1.0, reason="", stderr_tail="")
    child = Child(0, 0, 1, "offline", None, "h", "e", {"params.py": "X = 1\n"})
    candidate = Candidate(1, child)
    for result in (crashed, fine):
        evaluation = Evaluation(result, "evaluator-0", "node", "host", "0", 0)
        candidate.evaluations.append(evaluation)
    details = [
        json.loads(d) for d in candidate_row("r", candidate, Status.CRASH, "")["eval_details"]
    ]
    assert details[0]["stderr_tail"] == short_tail(crashed.stderr_tail)
    assert details[0]["stderr_tail"].endswith("warming up\nValueError: boom")
    assert "stderr_tail" not in details[1]
    # The panel shows it under the evaluation.
    write_report(Lineage([fixture_run]), tmp_path)
    with Browser() as browser:
        browser.open((tmp_path / "report.html").as_uri() + "#c=3")
        shown = browser.evaluate("document.querySelector('#panel pre.stderr').textContent")
        assert shown == "Traceback (most recent call last):\nboom"
        assert browser.errors() == []


def test_a_page_of_awkward_data(tmp_path):
    """A maximized metric, a hypothesis that tries to end the page's script, a NaN among what
    an evaluation measured, a crash: the page draws, shows them as they are, and logs no error."""
    run = tmp_path / "awkward"
    (run / "lineage").mkdir(parents=True)
    (run / "config.toml").write_text(RunConfig(target=str(QUAD)).to_toml())
    hostile = "</script><!--<script>alert(1)</script> & more"
    writer = LineageWriter(run / "lineage", Metric("accuracy@8k {$}", minimize=False))
    for candidate in [
        row(0, None, 0, "accepted", [0.5, 0.6], "the seed program", 0),
        row(
            1, 0, 0, "kept", [0.55], hostile, 1,
            eval_details=[json.dumps({"train_loss": float("nan"), "mfu": 0.31})],
        ),
        row(2, 0, 0, "crash", [None], "too far", 2, statuses=["crash"], reason="boom"),
    ]:  # fmt: skip
        writer.add(candidate | {"run_id": "awkward"})
    writer.flush()
    page = write_report(Lineage([run]), tmp_path / "page")
    with Browser() as browser:
        browser.open(page.as_uri() + "#c=1")
        assert browser.evaluate("document.querySelector('#panel .hypothesis').textContent") == (
            hostile
        )
        table = browser.evaluate("document.querySelector('#panel table').textContent")
        assert "train_loss " in table and "mfu 0.31" in table
        points = "Bokeh.documents[0].get_model_by_name('points').data"
        # The crash is drawn at the worst end of a maximized metric: the bottom.
        assert browser.evaluate(f"Array.from({points}.y)") == [0.5, 0.6, 0.55, 0.5]
        assert browser.evaluate(f"Array.from({points}.x)") == [1, 2, 3, 4]  # k-th evaluation
        assert browser.errors() == []
        # the metric's name in the tooltips as it is, not as fields @8k and $ of the template
        hover = "Bokeh.documents[0].get_model_by_name('points-hover').tooltips"
        assert "accuracy&#64;8k &#123;&#36;&#125; @metric" in browser.evaluate(hover)


def test_a_run_with_nothing_accepted_yet(fixture_run, tmp_path):
    run = tmp_path / "failed"
    (run / "lineage").mkdir(parents=True)
    (run / "config.toml").write_text(RunConfig(target=str(QUAD)).to_toml())
    writer = LineageWriter(run / "lineage", Metric("loss", minimize=True))
    seed = row(0, None, 0, "crash", [None], "the seed program", 0, statuses=["crash"])
    writer.add(seed | {"run_id": "failed"})
    writer.flush()
    page = write_report(Lineage([run]), tmp_path / "page")
    assert "no candidate accepted yet" in page.read_text()
    with Browser() as browser:
        browser.open(page.as_uri())
        assert browser.errors() == []
    done = evo("report", str(fixture_run), str(run))  # nothing to compare it with
    assert done.returncode == 2
    assert done.stderr == f"evo: error: {run} has no accepted candidate yet: nothing to compare\n"


def test_several_runs_compared(fixture_run, real_run, tmp_path):
    data = report_data.compare_data(Lineage([fixture_run, real_run]))
    assert [run["run"] for run in data["runs"]] == ["fixture", real_run.name]
    assert data["runs"][0]["best"]["value"] == [10.0, 9.0, 8.1, 8.1]
    done = evo("report", str(fixture_run), str(real_run), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    with Browser() as browser:
        browser.open((tmp_path / "report.html").as_uri())
        for x in ("evals_done", "minutes"):
            legend = f"Bokeh.documents[0].get_model_by_name('legend-{x}').items"
            labels = browser.evaluate(f"{legend}.map((item) => item.label.value)")
            assert labels == ["fixture", real_run.name]
        assert browser.errors() == []


def test_runs_of_different_metrics_are_not_compared(fixture_run, tmp_path):
    other = tmp_path / "other"
    writer = LineageWriter(other / "lineage", Metric("accuracy", minimize=False))
    writer.add(row(0, None, 0, "accepted", [0.5], "the seed program", 0) | {"run_id": "other"})
    writer.flush()
    done = evo("report", str(fixture_run), str(other))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "evo: error: fixture measures loss (lower is better) but other measures accuracy "
        "(higher is better): compare runs of one target and metric\n"
    )


def test_watch_rewrites_the_page_while_the_run_is_live(fixture_run, tmp_path):
    run = tmp_path / "fixture"
    shutil.copytree(fixture_run, run)
    checkpoint.save(run, {"live": True})
    out = tmp_path / "page"
    watcher = threading.Thread(target=watch, args=(run, out, 0.05))
    watcher.start()
    page = out / "report.html"
    deadline = time.monotonic() + 60
    while not page.exists() and watcher.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reloads itself when it is rewritten" in page.read_text()
    with Browser() as browser:
        browser.open(page.as_uri())
        first = browser.evaluate("performance.timeOrigin")
        time.sleep(10.5)  # the live page looks at its stamp every 10 s: not rewritten yet
        assert browser.evaluate("performance.timeOrigin") == first
        checkpoint.save(run, {"live": True})  # a new checkpoint: the page is rewritten
        browser.timeout = 30
        browser.wait(f"performance.timeOrigin > {first} && window.evoRendered")  # reloaded
    checkpoint.save(run, {"live": False})  # the run's last checkpoint
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert "reloads itself" not in page.read_text() and not list(out.glob(".*.tmp"))
    stamp = _page_data(page)["stamp"]
    assert (out / "report.stamp.js").read_text() == f'evoStamp("{stamp}");\n'


def test_a_run_keeps_its_report_up_to_date(tmp_path):
    done = evo(
        "run", "--target", str(QUAD), "--max-evals", "8", "--operator", "offline",
        "--out", str(tmp_path), "--report",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = tmp_path.iterdir()
    page = run / "report" / "report.html"
    assert f"report: {page}" in done.stdout.splitlines()
    assert checkpoint.load(run)["live"] is False
    text = page.read_text()
    assert "reloads itself" not in text and f"evo run {run.name}" in text
    assert _page_data(page)["live"] is False
    # A resume with --report follows the resumed run, not the previous one's last checkpoint.
    again = evo("run", "--resume", str(run), "--max-evals", "12", "--report")
    assert again.returncode == 0, again.stdout + again.stderr
    [(count,)] = Lineage([run]).query("SELECT count(*) FROM candidates")
    assert _page_data(page)["live"] is False and f"{count} candidates" in page.read_text()


def test_a_report_whose_run_is_gone_says_it_is_not_live(fixture_run, tmp_path):
    run = tmp_path / "fixture"
    shutil.copytree(fixture_run, run)
    checkpoint.save(run, {"live": True})  # as a run killed with SIGKILL leaves it
    # Its parent is not process 1: the run that started it is gone.
    done = evo("report", "--watch", str(run), "--parent", "1", "--out", str(tmp_path / "page"))
    assert done.returncode == 0, done.stderr
    assert "reloads itself" not in (tmp_path / "page" / "report.html").read_text()
