"""The report's plots, as Bokeh models: the best so far, every evaluation, the lineage tree (one
run), or each run's best so far (several runs).

Bokeh draws on a canvas and ships its data as binary arrays: a page of 100,000 points is drawn
in about 1.5 s in headless Chromium on 2 cores, against 8.8 s for Plotly's SVG and 12.9 s for
its WebGL on a software renderer (BENCHMARKS.md "report"). The models carry names so that
the page's script (report.js) finds them: it filters, switches the x axis and the tree's
colours, and shows the candidate a click selects.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

ISLAND_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip
STATUS_COLOURS = {
    "accepted": "#2ca02c", "kept": "#1f77b4", "rejected": "#999999", "crash": "#d62728",
    "invalid": "#ff7f0e", "timeout": "#9467bd", "oom": "#8c564b", "refused": "#e377c2",
    "screened": "#bcbd22", "ok": "#1f77b4",
}  # fmt: skip
NO_METRIC = "#cccccc"
MARKS = {
    "surprise": ("diamond", 13),
    "migrated": ("star", 13),
    "founder": ("triangle", 11),
    "": ("circle", 7),
}
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
LEGEND_ISLANDS = 8


def run_layout(data: dict[str, Any]):
    """The plots of one run, in a column."""
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import MISSING_RENDERERS
    from bokeh.layouts import column

    silence(MISSING_RENDERERS, not data["best"])  # nothing accepted yet: an empty plot is right
    nodes, mapper = _nodes(data)
    plots = [_best(data), _evaluations(data, nodes), _tree(data, nodes, mapper)]
    return column(*plots, sizing_mode="stretch_width", name="plots")


def compare_layout(data: dict[str, Any]):
    """Each run's best so far over evaluations and over minutes, one line a run."""
    from bokeh.layouts import column

    figures = []
    for x, label in (("evals_done", "evaluations"), ("minutes", "minutes")):
        figure = _figure(f"best {data['metric']} so far", label, data["metric"], 380)
        for k, run in enumerate(data["runs"]):
            colour = ISLAND_COLOURS[k % 10]
            figure.step(
                run["best"][x], run["best"]["value"], mode="after", color=colour, line_width=2,
                legend_label=run["run"],
            )  # fmt: skip
            figure.scatter(run["best"][x], run["best"]["value"], color=colour, size=5)
        figure.legend.click_policy = "hide"
        figure.legend.name = f"legend-{x}"
        figures.append(figure)
    return column(*figures, sizing_mode="stretch_width", name="plots")


def _figure(title: str, x_label: str, y_label: str, height: int, name: str = ""):
    """A figure; a named one (a run's) tells the page's script where the reader zoomed or
    panned to (a tool's RangesUpdate), or that the view was reset, so that a reload keeps it."""
    from bokeh.models import BasicTickFormatter, CustomJS
    from bokeh.plotting import figure

    plot = figure(
        title=title, height=height, sizing_mode="stretch_width", tools=TOOLS,
        active_scroll="wheel_zoom", output_backend="canvas", name=name or None,
    )  # fmt: skip
    plot.xaxis.axis_label, plot.yaxis.axis_label = x_label, y_label
    plot.xaxis.formatter = BasicTickFormatter(use_scientific=False)
    plot.xaxis.name = f"{name}-x" if name else None
    if name:
        plot.js_on_event("rangesupdate", CustomJS(code=f"evoZoomed({name!r}, cb_obj)"))
        plot.js_on_event("reset", CustomJS(code=f"evoZoomed({name!r}, null)"))
    return plot


def _best(data: dict[str, Any]):
    from bokeh.models import ColumnDataSource

    plot = _figure(f"best {data['metric']} so far", "evaluations", data["metric"], 340, "best")
    run = data["best"].get("run")
    if run:
        sigma = [s if s is not None else (data["sigma"] or 0.0) for s in run["sigma"]]
        band = ColumnDataSource(
            {
                **{key: run[key] for key in ("minutes", "evals_done")},
                "x": run["evals_done"],
                "low": [v - s for v, s in zip(run["value"], sigma, strict=True)],
                "high": [v + s for v, s in zip(run["value"], sigma, strict=True)],
            },
            name="best-band",
        )
        plot.varea_step(
            "x", "low", "high", source=band, step_mode="after", fill_color="black",
            fill_alpha=0.12, legend_label="run best ± sigma",
        )  # fmt: skip
    for name, curve in data["best"].items():
        colour = "black" if name == "run" else ISLAND_COLOURS[int(name) % 10]
        source = ColumnDataSource({**curve, "x": curve["evals_done"]}, name=f"best-{name}")
        # A legend of many islands would hide the plot: past LEGEND_ISLANDS, the filters do.
        named = name == "run" or len(data["best"]) <= LEGEND_ISLANDS + 1
        label = {"legend_label": "run" if name == "run" else f"island {name}"} if named else {}
        plot.step(
            "x", "value", source=source, mode="after", color=colour,
            line_width=3 if name == "run" else 1.5, name=f"best-line-{name}", **label,
        )  # fmt: skip
        plot.scatter(
            "x", "value", source=source, color=colour, size=4, name=f"best-dots-{name}", **label
        )
    if run:
        plot.legend.click_policy = "hide"
        plot.legend.location = "top_right"
    return plot


def _evaluations(data: dict[str, Any], nodes):
    from bokeh.models import (
        BooleanFilter,
        CDSView,
        ColumnDataSource,
        CustomJSHover,
        HoverTool,
    )

    c, e = data["candidates"], data["evaluations"]
    index = np.asarray(e["candidate"], dtype=int)
    metric = np.array([np.nan if m is None else m for m in e["metric"]], dtype=float)
    # A failed evaluation is drawn at the worst end of the metric's range.
    worst = np.nanmax if data["minimize"] else np.nanmin
    top = float(worst(metric)) if np.isfinite(metric).any() else 1.0
    statuses = [e["statuses"][s] for s in e["status"]]
    # The k-th evaluation of a candidate at its own x: evaluations done before it, plus k.
    nth = np.zeros(len(index), dtype=int)
    seen: dict[int, int] = {}
    for j, i in enumerate(index.tolist()):
        nth[j] = seen.get(i, 0)
        seen[i] = nth[j] + 1
    counts = np.array([seen[i] for i in index.tolist()], dtype=int)
    evals_done = (
        np.asarray(c["evals_done"], dtype=int)[index] - counts + nth + 1 if len(index) else nth
    )
    source = ColumnDataSource(
        {
            "candidate": index,
            "id": np.asarray(c["id"], dtype=int)[index] if len(index) else index,
            "island": np.asarray(c["island"], dtype=int)[index] if len(index) else index,
            "seed": e["seed"],
            "status": statuses,
            "y": np.where(np.isfinite(metric), metric, top),
            "metric": [("-" if m is None else f"{m:.6g}") for m in e["metric"]],
            "evals_done": evals_done,
            "minutes": np.asarray(c["minutes"], dtype=float)[index] if len(index) else metric,
            "x": evals_done,
            "colour": [STATUS_COLOURS.get(s, "#333333") for s in statuses],
            "marker": ["circle" if s == "ok" else "x" for s in statuses],
        },
        name="points",
    )
    end = "top" if data["minimize"] else "bottom"
    plot = _figure(
        f"every evaluation (a failed one is drawn at the {end})",
        "evaluation", data["metric"], 340,
        "evaluations",
    )  # fmt: skip
    # The panel and the tree's ring show the selection: the other points stay as they are.
    renderer = plot.scatter(
        "x", "y", source=source, color="colour", marker="marker", size=7, alpha=0.8,
        nonselection_alpha=0.8, legend_field="status", name="points-renderer",
        view=CDSView(filter=BooleanFilter([True] * len(index), name="points-filter")),
    )  # fmt: skip
    plot.add_tools(
        HoverTool(
            renderers=[renderer],
            name="points-hover",
            tooltips="<div style='max-width:420px'>#@id · island @island · seed @seed · @status · "
            f"{tooltip_text(data['metric'])} @metric<br>@candidate{{hypothesis}}</div>",
            # The hypothesis from the candidates' source: not copied to every evaluation.
            formatters={
                "@candidate": CustomJSHover(
                    args={"nodes": nodes}, code="return nodes.data.hypothesis[value]"
                )
            },
        ),
        _tap(renderer),
    )
    plot.legend.location = "top_right"
    return plot


def _tap(renderer):
    """A click on a point selects its candidate in the page's panel (report.js): on every tap,
    not on a change of Bokeh's selection, so that tapping a point again selects it again."""
    from bokeh.models import CustomJS, TapTool

    pick = "const source = cb_data.source, i = source.selected.indices[0];"
    pick += " if (i !== undefined) evoSelect(source.data.id[i]);"
    return TapTool(renderers=[renderer], mode="replace", callback=CustomJS(code=pick))


def _nodes(data: dict[str, Any]):
    """The candidates' source: what the tree draws and the panel shows, and both colourings
    (by island, by the metric) with the colour mapper of the latter."""
    from bokeh.models import ColumnDataSource, LinearColorMapper
    from bokeh.palettes import Viridis256

    c = data["candidates"]
    fitness = np.array([np.nan if f is None else f for f in c["fitness"]], dtype=float)
    finite = fitness[np.isfinite(fitness)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    palette = list(reversed(Viridis256)) if data["minimize"] else list(Viridis256)
    mapper = LinearColorMapper(palette=palette, low=low, high=high if high > low else low + 1)
    shade = np.clip((fitness - low) / ((high - low) or 1.0) * 255, 0, 255)
    by_fitness = [palette[int(s)] if np.isfinite(s) else NO_METRIC for s in shade]
    by_island = [ISLAND_COLOURS[k % 10] for k in c["island"]]
    nodes = ColumnDataSource(
        {
            **{k: c[k] for k in ("id", "parent", "mate", "island", "generation", "tree_y")},
            **{k: c[k] for k in ("hypothesis", "reason", "cost", "tokens", "minutes", "mark")},
            "status": [data["statuses"][s] for s in c["status"]],
            "operator": [data["operators"][o] for o in c["operator"]],
            "fitness": ["-" if f is None else f"{f:.6g}" for f in c["fitness"]],
            "colour_island": by_island,
            "colour_fitness": by_fitness,
            "colour": by_island,
            "marker": [MARKS[m][0] for m in c["mark"]],
            "size": [MARKS[m][1] for m in c["mark"]],
        },
        name="nodes",
    )
    return nodes, mapper


def _tree(data: dict[str, Any], nodes, mapper):
    from bokeh.models import BooleanFilter, CDSView, ColorBar, ColumnDataSource, HoverTool

    c = data["candidates"]
    ids = {candidate: i for i, candidate in enumerate(c["id"])}
    edges = [(ids[p], i) for i, p in enumerate(c["parent"]) if p in ids and ids[p] != i]
    segments = ColumnDataSource(
        {
            "parent": [p for p, _ in edges],
            "child": [i for _, i in edges],
            "x0": [c["generation"][p] for p, _ in edges],
            "y0": [c["tree_y"][p] for p, _ in edges],
            "x1": [c["generation"][i] for _, i in edges],
            "y1": [c["tree_y"][i] for _, i in edges],
        },
        name="edges",
    )
    plot = _figure(
        "lineage tree (star: migrated, triangle: founded an island; scroll to zoom)",
        "steps from the seed", "", 560, "tree",
    )  # fmt: skip
    plot.yaxis.visible = False
    plot.segment(
        "x0", "y0", "x1", "y1", source=segments, color="#999999", alpha=0.6,
        view=CDSView(filter=BooleanFilter([True] * len(edges), name="edges-filter")),
    )  # fmt: skip
    renderer = plot.scatter(
        "generation", "tree_y", source=nodes, color="colour", marker="marker", size="size",
        nonselection_alpha=1.0, name="nodes-renderer",
        view=CDSView(filter=BooleanFilter([True] * len(c["id"]), name="nodes-filter")),
    )  # fmt: skip
    highlight = ColumnDataSource({"x": [], "y": []}, name="highlight")
    plot.scatter(
        "x", "y", source=highlight, size=22, fill_alpha=0, line_color="black", line_width=2
    )
    plot.add_layout(
        ColorBar(color_mapper=mapper, title=data["metric"], visible=False, name="colour-bar"),
        "right",
    )
    plot.add_tools(
        HoverTool(
            renderers=[renderer],
            tooltips="<div style='max-width:420px'>#@id · island @island · @status · "
            f"{tooltip_text(data['metric'])} @fitness<br>@hypothesis</div>",
        ),
        _tap(renderer),
    )
    return plot


def tooltip_text(text: str) -> str:
    """`text` as it reads in a Bokeh tooltip template, where @name and $name are fields, {...}
    a format and the rest HTML: a metric called `loss@8k` or `$ per run` shown as it is."""
    return html.escape(text).translate({ord(c): f"&#{ord(c)};" for c in "@${}"})
