"""`evo report`: one self-contained, interactive HTML page of a run, or of several runs compared.

The page works from a file, offline: BokehJS, the plots (evo.views.report_plots, with the data
of evo.views.report_data), the panel's details and the page's own script (report.js: filters,
the candidate panel) are all inlined. It is written to a temporary file and renamed, so a
browser never reads half of one; `--watch` (or `evo run --report`) rewrites it as checkpoints
come, and while the run is live the page looks every 10 s whether it was rewritten, and reloads
itself if so."""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
import time
from importlib import resources
from pathlib import Path

from evo.errors import UsageError
from evo.store import checkpoint
from evo.store.lineage import readable_parts
from evo.store.reader import Lineage
from evo.views.report_data import compare_data, run_data
from evo.views.report_plots import compare_layout, run_layout

PAGE = "report.html"
# Beside the page, the stamp of its latest writing, as a script: a live page loads it every 10 s
# (a script may be read from file://, where fetch may not) and reloads when the page is newer.
STAMP = "report.stamp.js"
POLL_S = 0.5  # how often --watch looks at the checkpoint
PAGE_KEYS = ("metric", "live", "statuses", "operators", "details", "confirmed")
STYLE = """
body{font-family:system-ui,sans-serif;margin:1em 2em;color:#222}
header h1{font-size:1.3em;margin:.2em 0}.note{color:#555;font-size:.9em}
#filters{display:flex;flex-wrap:wrap;gap:.5em;font-size:.85em}
fieldset{border:1px solid #ccc;padding:.2em .6em}label{margin-right:.6em;white-space:nowrap}
legend button{font-size:.8em;margin-left:.3em}
.grid{display:grid;grid-template-columns:minmax(0,3fr) minmax(320px,2fr);gap:1em}
#panel{position:sticky;top:0;max-height:100vh;overflow:auto;font-size:.9em;
border-left:1px solid #ddd;padding-left:1em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
.diff .add{color:#116611;background:#e6ffec}.diff .del{color:#a11;background:#ffebe9}
.diff .hunk{color:#555}.hint{color:#666}table{border-collapse:collapse}
td,th{border-bottom:1px solid #eee;padding:.15em .4em;text-align:left;vertical-align:top}
.status-accepted{color:#2ca02c}.status-crash,.status-timeout,.status-invalid{color:#d62728}
"""


def write_report(lineage: Lineage, folder: Path, ended: bool = False) -> Path:
    """The page of the lineage's one run, or the comparison of its several runs, written
    atomically as folder/report.html; `ended`: the run is over whatever its checkpoint says
    (its process is gone)."""
    from bokeh.embed import json_item

    if len(lineage.runs) == 1:
        [(run_id, run)] = lineage.runs.items()
        data = run_data(lineage, run_id)
        data["live"] = data["live"] and not ended
        title = f"evo run {run_id}"
        head = _run_header(data)
        plots = run_layout(data)
        body = (
            "<div id='filters'></div>"
            "<div class='grid'><div id='plots'></div><aside id='panel'></aside></div>"
        )
        # What the plots' sources do not already carry: the panel's details and the names.
        page_data = {key: data[key] for key in PAGE_KEYS} | {
            "folder": str(run.folder),
            "curves": list(data["best"]),
            "stamp": str(time.time_ns()),  # which writing of the page this is (STAMP)
        }
    else:
        data = compare_data(lineage)
        title = "evo runs " + ", ".join(lineage.runs)
        head = f"<h1>{html.escape(title)}</h1>" + "".join(
            f"<details><summary>{html.escape(run['run'])}</summary>"
            f"<pre>{html.escape(chr(10).join(run['summary']))}</pre></details>"
            for run in data["runs"]
        )
        plots = compare_layout(data)
        body = "<div id='plots'></div>"
        page_data = {"metric": data["metric"]}
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><script>{_bokeh()}</script></head><body><header>{head}</header>"
        f"{body}<script type='application/json' id='evo-data'>{_json(page_data)}</script>"
        f"<script type='application/json' id='evo-plots'>{_json(json_item(plots))}</script>"
        f"<script>{_asset('report.js')}</script></body></html>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = _write(folder / PAGE, page)
    if "stamp" in page_data:
        _write(folder / STAMP, f"evoStamp({json.dumps(page_data['stamp'])});\n")
    return path


def _write(path: Path, text: str) -> Path:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
    return path


def watch(run: Path, folder: Path, every: float = 10.0, parent: int | None = None) -> Path:
    """Rewrite the run's page after new checkpoints, leaving at least `every` seconds between
    the end of one rewrite and the next (drawing takes a CPU core for a second or more, which a
    CPU run's evaluations would feel), and at once after the last one; stop then, or when
    process `parent` (`evo run --report`'s run) is gone."""
    if not (run / "config.toml").is_file():
        raise UsageError(f"{run} is not a run folder (no config.toml); pass runs/<id>")
    if parent is None and _checkpoint_stamp(run) is None and not readable_parts(run / "lineage"):
        raise UsageError(f"{run} has no checkpoint and no lineage yet: nothing to draw")
    # A resumed run's previous last checkpoint is not news: wait for the run's own.
    seen = _checkpoint_stamp(run) if parent is not None and not _live(run) else None
    written, examined, live = -math.inf, None, True
    while True:
        if parent is not None and os.getppid() != parent:
            return write_report(Lineage([run]), folder, ended=True)
        stamp = _checkpoint_stamp(run)
        if stamp != examined:  # read a checkpoint once, not at every poll while throttled
            examined, live = stamp, _live(run)
        if stamp != seen:
            due = time.monotonic() - written >= every
            if (due or not live) and readable_parts(run / "lineage"):  # none at first
                seen = stamp
                path = write_report(Lineage([run]), folder)
                written = time.monotonic()
                if not live:
                    return path
        time.sleep(POLL_S)


def _run_header(data: dict) -> str:
    direction = "lower" if data["minimize"] else "higher"
    best = data["best"].get("run")
    shown = len(data["candidates"]["id"])
    notes = [
        f"{data['total']} candidates, {direction} {html.escape(data['metric'])} is better",
        f"best {best['value'][-1]}" if best else "no candidate accepted yet",
        f"written {data['written']}",
    ]
    if data["live"]:
        notes.append("the run is live: this page reloads itself when it is rewritten")
    if shown < data["total"]:
        notes.append(
            f"sampled: {shown} of {data['total']} candidates shown (every accepted one, an even "
            "sample of the others and their ancestors); the best-so-far curves use them all"
        )
    summary = html.escape("\n".join(data["summary"]))
    return (
        f"<h1>evo run {html.escape(data['run'])}</h1><p class='note'>{' · '.join(notes)}</p>"
        f"<details><summary>summary (evo lineage)</summary><pre>{summary}</pre></details>"
    )


def _checkpoint_stamp(run: Path) -> tuple[int, int] | None:
    """Which checkpoint file is there (a new one is renamed into place: a new inode)."""
    try:
        found = (run / checkpoint.NAME).stat()
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_mtime_ns


def _live(run: Path) -> bool:
    return bool((checkpoint.load(run, any_version=True) or {}).get("live"))


def _json(data: dict) -> str:
    """JSON that cannot end or confuse the script element it sits in: no `<` at all (a
    hypothesis may hold `</script>` or `<!--`), and no NaN, which JSON.parse refuses."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _asset(name: str) -> str:
    return resources.files("evo.views").joinpath(name).read_text(encoding="utf-8")


def _bokeh() -> str:
    """BokehJS itself (1.3 MB), without the widgets the page does not use."""
    from bokeh.resources import Resources

    return "\n".join(Resources(mode="inline", components=["bokeh"]).js_raw)
