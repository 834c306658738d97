"""`evo lineage RUN`: what was tried, what won, why: the figures of one run, as lines."""

from __future__ import annotations

import statistics
from typing import Any, NamedTuple

from evo.search import effects, luck
from evo.search.noise import Level, standard_error
from evo.store.reader import Lineage, RunInfo
from evo.views import confirmation

LISTED = 8  # groups listed one by one; more are summarised by their range
CHAIN_SHOWN = 20  # steps of the best's improvement chain shown in the summary
SAME = 0.1  # sigma: an estimate this close to the measured gain says its luck was small


def summary(lineage: Lineage, run_id: str) -> list[str]:
    """The figures of `evo lineage`, as lines."""
    run = lineage.runs[run_id]
    where = "run_id = ?"
    lines = [f"run {run_id} ({run.metric}, {'lower' if run.minimize else 'higher'} is better)"]
    by_status = dict(
        lineage.query(
            f"SELECT status, count(*) FROM candidates WHERE {where} GROUP BY ALL", [run_id]
        )
    )
    evals = dict(
        lineage.query(
            f"SELECT s, count(*) FROM (SELECT unnest(eval_statuses) AS s FROM candidates "
            f"WHERE {where}) GROUP BY ALL",
            [run_id],
        )
    )
    lines.append(f"candidates: {sum(by_status.values())} ({_counts(by_status)})")
    lines.append(f"evaluations: {sum(evals.values())} ({_counts(evals)})")
    programs = _programs(lineage, run_id)
    if run.sigma is not None:
        lines.append(_noise(lineage, run, where))
        edits = _edit_effects(programs, run)
        if edits:
            lines.append(edits)
    budget = lineage.search_budget(run_id)
    if run.allowance and budget:
        lines.append(run.allowance.describe(budget))
    groups = [("island", "island"), ("operator || coalesce('/' || model, '')", "operator")]
    columns = {row[0] for row in lineage.query("DESCRIBE candidates")}
    if "mate_id" in columns:  # none before recombination and screening
        mates, screens, saved, seconds = lineage.query(
            "SELECT count(mate_id), count(screen_metric) FILTER (WHERE candidate_id <> 0), "
            "count(*) FILTER (WHERE status = 'screened'), "
            "sum(screen_seconds) FILTER (WHERE candidate_id <> 0) FROM candidates "
            f"WHERE {where}",
            [run_id],
        )[0]
        if mates:
            kind = "CASE WHEN mate_id IS NULL THEN 'mutation' ELSE 'recombination' END"
            groups.append((kind, "kind"))
        if screens:
            lines.append(
                f"screening: {saved} of {screens} candidates screened out, each sparing a full "
                f"evaluation; screens took {seconds:.0f} s of evaluators"
            )
    for key, label in groups:
        rates = lineage.query(
            f"SELECT {key}, count(*) FILTER (WHERE accepted), count(*) FROM candidates "
            f"WHERE {where} AND candidate_id <> 0 AND len(metrics) > 0 GROUP BY ALL ORDER BY 1",
            [run_id],
        )
        shown = [(k, f"{a}/{n} ({100 * a / n:.0f}%)") for k, a, n in rates]
        lines.append(f"acceptance by {label}: {_listing(shown, [a / n for _, a, n in rates])}")
    order = "min" if run.minimize else "max"
    per_island = lineage.query(
        f"SELECT island, {order}(fitness) FROM candidates WHERE {where} AND accepted "
        "GROUP BY ALL ORDER BY 1",
        [run_id],
    )
    shown = [(i, f"{f:.4f}") for i, f in per_island]
    lines.append("best per island: " + _listing(shown, [f for _, f in per_island]))
    best = lineage.best(run_id)
    if best:
        chain = lineage.ancestry(run_id, best[0])
        lines.append(f"improvement chain of the best (#{best[0]}, {run.metric} {best[1]:.4f}):")
        previous = None
        if len(chain) > CHAIN_SHOWN:
            lines.append(f"  ({len(chain) - CHAIN_SHOWN} earlier steps: `--ancestry {best[0]}`)")
            previous = chain[-CHAIN_SHOWN - 1]["fitness"]
            chain = chain[-CHAIN_SHOWN:]
        for step in chain:
            delta = "" if previous is None else delta_text(step["fitness"] - previous, run.sigma)
            lines.append(
                f"  #{step['candidate_id']:<6} {step['fitness']:.4f} {delta:>22}  "
                f"{step['hypothesis']}"
            )
            previous = step["fitness"]
        lines.append(_luck(programs, run, best[0]))
    spend = lineage.query(
        f"SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens) "
        f"FROM candidates WHERE {where}",
        [run_id],
    )[0]
    cost, tokens_in, tokens_out, cached = (v or 0 for v in spend)
    lines.append(
        f"spend: ${cost:.2f} ({tokens_in} input, {cached} cache-read, {tokens_out} output tokens)"
    )
    per_model = lineage.query(
        "SELECT model, count(*) FILTER (WHERE accepted), count(*), coalesce(sum(cost_usd), 0) "
        f"FROM candidates WHERE {where} AND model IS NOT NULL GROUP BY ALL ORDER BY 1",
        [run_id],
    )
    if per_model:  # what --adaptive-models learns from: accepted improvements per dollar
        shown = [
            (model, f"{a} accepted of {n} for ${c:.2f}" + (f" ({a / c:.3g} per $)" if c else ""))
            for model, a, n, c in per_model
        ]
        per_dollar = [a / c if c else float(a) for _, a, _, c in per_model]
        lines.append("spend by model: " + _listing(shown, per_dollar))
    busy, start, end, evaluators = lineage.query(
        "SELECT sum(evaluation_s), min(created_at), max(finished_at), "
        f"count(DISTINCT evaluator) FROM candidates WHERE {where}",
        [run_id],
    )[0]
    count = run.evaluators or evaluators
    if busy and count and end > start:
        span = (end - start).total_seconds()
        lines.append(
            f"evaluator utilisation: {100 * busy / (count * span):.1f}% "
            f"({busy:.0f} s of evaluation over {count} evaluator(s) x {span:.0f} s)"
        )
        trained = lineage.query(
            "SELECT sum(CAST(json_extract(d, '$.train_seconds') AS DOUBLE)) FROM "
            f"(SELECT unnest(eval_details) AS d FROM candidates WHERE {where})",
            [run_id],
        )[0][0]
        if trained:  # what the evaluators' time bought: training, not start-up or compiling
            lines.append(
                f"training fraction: {100 * trained / (count * span):.1f}% "
                f"({trained:.0f} s of training over {count} evaluator(s) x {span:.0f} s)"
            )
    kinds = lineage.query(
        "SELECT json_extract_string(d, '$.phases') AS kind, count(*) FROM "
        f"(SELECT unnest(eval_details) AS d FROM candidates WHERE {where}) "
        "WHERE kind IS NOT NULL GROUP BY kind ORDER BY kind",
        [run_id],
    )
    if kinds:  # whether the metric was computed where the variant never ran (evo.evaluate.phases)
        lines.append("measured: " + ", ".join(f"{n} evaluations in {k}" for k, n in kinds))
    return lines + confirmation.describe(lineage, run_id)


def _noise(lineage: Lineage, run: RunInfo, where: str) -> str:
    """The run's noise estimate, its uncertainty, and how it moved as the run went."""
    if not run.noise_dof:  # no pair yet, or a run from before pairing
        return f"noise: sigma {run.sigma:.4g} (the spread of a program's metric between seeds)"
    stderr = standard_error(run.sigma, run.noise_dof)
    line = (
        f"noise: sigma {run.sigma:.4g} ± {stderr:.2g} (of a difference on one seed: "
        f"{run.noise_dof} degrees of freedom from programs measured on shared seeds)"
    )
    history = [
        sigma
        for (sigma,) in lineage.query(
            f"SELECT sigma FROM candidates WHERE {where} AND sigma IS NOT NULL "
            "ORDER BY finished_at, candidate_id",
            [run.run_id],
        )
    ]
    if len(history) > 1:
        marks = [history[round(q * (len(history) - 1))] for q in (0, 0.25, 0.5, 0.75, 1)]
        line += "; as judged: " + " -> ".join(f"{s:.4g}" for s in marks)
    return line


class Program(NamedTuple):
    """A candidate of the run, as the figures on its edits and its luck need it."""

    parent: int | None
    metrics: dict[int, float]  # seed -> metric, of the evaluations that gave one
    status: str
    evaluated: bool  # whether it was evaluated at all (a crash gives no metric)


def _programs(lineage: Lineage, run_id: str) -> dict[int, Program]:
    """Every candidate of the run by id."""
    rows = lineage.query(
        "SELECT candidate_id, parent_id, seeds, metrics, status FROM candidates WHERE run_id = ?",
        [run_id],
    )
    return {
        cid: Program(
            parent,
            {s: m for s, m in zip(seeds, metrics, strict=True) if m is not None},
            status,
            bool(metrics),
        )
        for cid, parent, seeds, metrics, status in rows
    }


def _edit_effects(programs: dict[int, Program], run: RunInfo) -> str:
    """What the run's paired gains say of its edits (evo.search.effects); "" with too few."""
    metrics = {cid: p.metrics for cid, p in programs.items()}
    children = [(p.parent, p.metrics) for cid, p in programs.items() if cid]
    found = effects.estimate(*effects.paired_gains(children, metrics, run.sigma, run.minimize))
    if found is None:
        return ""
    tried = [p.status for cid, p in programs.items() if cid and p.evaluated]
    return found.describe(crashed=tried.count("crash"), tried=len(tried))


def _luck(programs: dict[int, Program], run: RunInfo, best_id: int) -> str:
    """What of the best's measured gain over the seed program is likely real (evo.search.luck),
    or why the run cannot tell."""
    seed = programs.get(0)
    if best_id == 0 or seed is None or not seed.metrics:
        return "the best is the seed program: no gain to estimate"
    said = f"the best's gain over the seed program ({statistics.fmean(seed.metrics.values()):.4f})"
    metrics = {cid: p.metrics for cid, p in programs.items()}
    found = luck.of_run(metrics, best_id, 0, Level(run.sigma, run.noise_dof or 0), run.minimize)
    if isinstance(found, str):
        return f"{said} is not estimated: {found}"
    sigma = run.sigma
    lucky = found.measured - found.gain
    luck_said = (
        "the rest is likely the luck that chose it"
        if lucky >= SAME
        else "its measurement was, if anything, unlucky"
        if lucky <= -SAME
        else "little of it is luck"
    )
    return (
        f"{said}: measured {found.measured * sigma:.4f} ({found.measured:.1f} sigma) on "
        f"{found.seeds} shared seed(s), estimated {found.gain * sigma:.4f} ({found.gain:.1f} "
        f"sigma; {found.low * sigma:.4f} to {found.high * sigma:.4f}); {luck_said} "
        f"(empirical Bayes over {found.programs} programs, evo.search.luck)"
    )


def _listing(items: list[tuple[Any, str]], values: list[float]) -> str:
    """`key: text` pairs, or for many keys their range, so that 64 islands fit on a line."""
    if len(items) <= LISTED:
        return ", ".join(f"{key}: {text}" for key, text in items) or "-"
    low, high = (
        min(range(len(values)), key=values.__getitem__),
        max(range(len(values)), key=values.__getitem__),
    )
    return (
        f"{len(items)} groups, from {items[low][0]}: {items[low][1]} "
        f"to {items[high][0]}: {items[high][1]} (median {statistics.median(values):.4g})"
    )


def _counts(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in ordered) or "none"


def delta_text(delta: float, sigma: float | None) -> str:
    if not sigma:
        return f"{delta:+.4f}"
    return f"{delta:+.4f} ({abs(delta) / sigma:.1f} sigma)"
