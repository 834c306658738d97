"""`evo report`: a self-contained HTML page (PNG plots inlined) of one run.

Plots: the best so far over time and over evaluations, per island, against the seed program's
noise band; every evaluation as a point coloured by status; the lineage tree of the best
candidates with migrations marked; the acceptance rate over time; the cost over time. Past
MAX_POINTS evaluations the scatter shows an even sample, so large runs stay quick to draw.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from evo.status import Status
from evo.store.reader import Lineage
from evo.views.summary import summary

MAX_POINTS = 50_000
STATUS_COLOURS = {
    Status.OK: "tab:blue",
    Status.CRASH: "tab:red",
    Status.INVALID: "tab:orange",
    Status.TIMEOUT: "tab:purple",
}


def write_report(lineage: Lineage, run_id: str, folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    run = lineage.runs[run_id]
    sign = 1.0 if run.minimize else -1.0
    rows = lineage.db.execute(
        "SELECT candidate_id, island, status, fitness, accepted, coalesce(cost_usd, 0) AS cost, "
        "len(metrics) AS evals, epoch(finished_at) AS t FROM candidates "
        "WHERE run_id = ? ORDER BY finished_at, candidate_id",
        [run_id],
    ).fetchnumpy()
    evaluations = lineage.db.execute(
        "SELECT s, m FROM (SELECT unnest(eval_statuses) AS s, unnest(metrics) AS m, finished_at, "
        "candidate_id FROM candidates WHERE run_id = ?) "
        "ORDER BY finished_at, candidate_id",
        [run_id],
    ).fetchnumpy()
    t = (rows["t"] - rows["t"].min()) / 60.0
    plots = {
        "best.png": _best(rows, t, run, sign),
        "evaluations.png": _evaluations(evaluations, run),
        "tree.png": _tree(lineage, run_id, run),
        "acceptance.png": _acceptance(rows, t),
        "cost.png": _cost(rows, t),
    }
    images = []
    for name, figure in plots.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        matplotlib.pyplot.close(figure)
        (folder / name).write_bytes(buffer.getvalue())
        encoded = base64.b64encode(buffer.getvalue()).decode()
        images.append(f'<figure><img alt="{name}" src="data:image/png;base64,{encoded}"></figure>')
    text = html.escape("\n".join(summary(lineage, run_id)))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>evo run {run_id}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style>"
        f"</head><body><h1>evo run {html.escape(run_id)}</h1><pre>{text}</pre>"
        + "".join(images)
        + "</body></html>"
    )
    path = folder / "report.html"
    path.write_text(page)
    return path


def _figure(title: str, xlabel: str, ylabel: str):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _running_best(values: np.ndarray, sign: float) -> np.ndarray:
    return sign * np.minimum.accumulate(sign * values)


def _best(rows: dict, t: np.ndarray, run, sign: float):
    import matplotlib.pyplot as plt

    figure, (by_time, by_evals) = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    accepted = rows["accepted"].astype(bool) & ~np.isnan(rows["fitness"].astype(float))
    evals_done = np.cumsum(rows["evals"])
    seed = rows["fitness"][0]
    for axes, x, label in ((by_time, t, "minutes"), (by_evals, evals_done, "evaluations")):
        for island in np.unique(rows["island"]):
            mask = accepted & (rows["island"] == island)
            if mask.any():
                xs = np.append(x[mask], x[-1])
                ys = _running_best(rows["fitness"][mask].astype(float), sign)
                axes.step(xs, np.append(ys, ys[-1]), where="post", label=f"island {island}")
        if accepted.any():
            overall = _running_best(rows["fitness"][accepted].astype(float), sign)
            axes.step(
                np.append(x[accepted], x[-1]),
                np.append(overall, overall[-1]),
                where="post",
                color="black",
                linewidth=2,
                alpha=0.5,
                label="run",
            )
        if run.sigma:
            axes.axhspan(
                seed - 2 * run.sigma,
                seed + 2 * run.sigma,
                color="grey",
                alpha=0.2,
                label="seed ± 2 sigma",
            )
        axes.set(xlabel=label, title=f"best {run.metric} so far")
        axes.grid(alpha=0.3)
    by_time.set_ylabel(run.metric)
    by_evals.legend(fontsize=8)
    return figure


def _evaluations(evaluations: dict, run):
    figure, axes = _figure(f"every evaluation ({run.metric})", "evaluation", run.metric)
    statuses, metrics = evaluations["s"], evaluations["m"].astype(float)
    index = np.arange(len(statuses))
    if len(index) > MAX_POINTS:
        index = np.linspace(0, len(statuses) - 1, MAX_POINTS).astype(int)
    top = np.nanmax(metrics) if np.isfinite(metrics).any() else 1.0
    for status, colour in STATUS_COLOURS.items():
        mask = statuses[index] == status
        ys = np.where(np.isnan(metrics[index][mask]), top, metrics[index][mask])
        axes.scatter(
            index[mask],
            ys,
            s=8,
            color=colour,
            label=status,
            marker="o" if status == Status.OK else "x",
        )
    axes.legend(fontsize=8)
    return figure


def _tree(lineage: Lineage, run_id: str, run, count: int = 10):
    """The ancestries of the best `count` candidates, in a few artists however deep they go."""
    from matplotlib.collections import LineCollection

    figure, axes = _figure(
        "lineage of the best candidates (stars: migrated)", "steps from the seed", run.metric
    )
    order = "ASC" if run.minimize else "DESC"
    tops = [
        c
        for (c,) in lineage.query(
            f"SELECT candidate_id FROM candidates WHERE run_id = ? AND accepted "
            f"ORDER BY fitness {order} LIMIT {count}",
            [run_id],
        )
    ]
    migrated = {
        c
        for (c,) in lineage.query(
            "SELECT DISTINCT candidate_id FROM lineage WHERE run_id = ? AND event = 'migration'",
            [run_id],
        )
    }
    nodes: dict[int, tuple[int, dict]] = {}
    for top in tops:
        for depth, step in enumerate(lineage.ancestry(run_id, top)):
            nodes[step["candidate_id"]] = (depth, step)
    segments = [
        [(nodes[s["parent_id"]][0], nodes[s["parent_id"]][1]["fitness"]), (d, s["fitness"])]
        for d, s in nodes.values()
        if s["parent_id"] in nodes
    ]
    axes.add_collection(LineCollection(segments, colors="grey", alpha=0.5, linewidths=1))
    islands = sorted({s["island"] for _, s in nodes.values()})
    for colour, island in enumerate(islands):
        label = f"island {island}" if len(islands) <= 8 else None
        for star in (False, True):
            points = [
                (d, s["fitness"])
                for d, s in nodes.values()
                if s["island"] == island and (s["candidate_id"] in migrated) == star
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.scatter(
                    xs,
                    ys,
                    color=f"C{colour % 10}",
                    marker="*" if star else "o",
                    s=60 if star else 20,
                    zorder=3,
                    label=label,
                )
                label = None  # one legend entry an island
    for candidate in [*tops, 0]:
        if candidate in nodes:
            depth, step = nodes[candidate]
            axes.annotate(
                f"#{candidate}",
                (depth, step["fitness"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axes.autoscale_view()
    if len(islands) <= 8:
        axes.legend(fontsize=8)
    return figure


def _acceptance(rows: dict, t: np.ndarray, window: int = 20):
    figure, axes = _figure(
        "acceptance rate (rolling, evaluated candidates)", "minutes", "accepted share"
    )
    evaluated = rows["evals"] > 0
    accepted = rows["accepted"][evaluated].astype(float)
    if len(accepted):
        kernel = np.ones(min(window, len(accepted))) / min(window, len(accepted))
        axes.plot(t[evaluated], np.convolve(accepted, kernel, mode="same"))
    axes.set_ylim(0, 1)
    return figure


def _cost(rows: dict, t: np.ndarray):
    figure, axes = _figure("cost of proposals", "minutes", "USD, cumulative")
    axes.plot(t, np.cumsum(rows["cost"].astype(float)))
    return figure
