"""`evo bench overhead` and `evo bench scale`: how much of the evaluators' time the engine wastes,
and how far one driver goes.

overhead: the synthetic knob target with a fixed evaluation time, the anthropic operator talking
to a model server on loopback that answers after a set latency, for each number of evaluators,
islands and latency. From the lineage's per-evaluation times:
- utilisation over the whole run: the sandboxes' wall time over evaluators x the run's wall time,
  start-up (actors, the seed's noise measurement, the first proposals) included;
- utilisation in steady state: the same inside the window from the moment the last evaluator got
  its first candidate to the last dispatch (after it the evaluators drain on purpose);
- overhead per candidate: on each evaluator, the time between two results minus the second
  one's sandbox time: the driver's round trip, its bookkeeping, and any wait for a proposal.
scale: zero-cost evaluations (evo.bench.synthetic.instant_evaluation, in the evaluator actors)
and the anthropic operator against the loopback server answering at once (every proposal a new
program, as from a model; the offline operator runs out of new one-step changes on a small target
long before 10,000), each configuration in a fresh process: candidates and evaluations per second
through the engine, the driver's peak memory, the lineage's size on disk.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from evo.bench.loopback import loopback_model
from evo.bench.synthetic import RewriteReplies, instant_evaluation, write_knob_target
from evo.config import RunConfig, SearchConfig
from evo.run.engine import Engine
from evo.run.evaluators import connect_ray
from evo.store.lineage import read_lineage
from evo.target import load_target

KNOBS = 4


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A Ray of our own on this machine for the block, unless one is already running."""
    import ray

    ours = connect_ray()
    try:
        yield
    finally:
        if ours:
            ray.shutdown()


def evaluation_times(lineage: Path) -> list[tuple[str, float, float, float]]:
    """(evaluator, dispatched, returned, sandbox seconds) of every evaluation, by dispatch."""
    times = []
    for row in read_lineage(lineage).to_pylist():
        if row["event"] != "candidate" or not row["eval_seconds"]:
            continue
        times += zip(
            row["eval_evaluators"],
            (t.timestamp() for t in row["eval_dispatched_at"]),
            (t.timestamp() for t in row["eval_returned_at"]),
            row["eval_seconds"],
            strict=True,
        )
    return sorted(times, key=lambda e: e[1])


def utilisation(times: list, evaluators: int, start: float, end: float) -> float:
    """Sandbox time inside [start, end] over evaluators x (end - start); an evaluation partly
    inside counts in proportion."""
    busy = 0.0
    for _, dispatched, returned, seconds in times:
        inside = min(end, returned) - max(start, dispatched)
        if inside > 0:
            busy += seconds * inside / max(returned - dispatched, 1e-9)
    return busy / (evaluators * (end - start))


def overheads(times: list, start: float, end: float) -> list[float]:
    """Per evaluation whose evaluator's previous result came inside [start, end]: the time
    since that result, less its own sandbox time."""
    last: dict[str, float] = {}
    found = []
    for evaluator, dispatched, returned, seconds in sorted(times, key=lambda e: e[2]):
        previous = last.get(evaluator)
        last[evaluator] = returned
        if previous is not None and start <= previous and dispatched <= end:
            found.append(returned - previous - seconds)
    return found


def bench_overhead(
    evaluators: list[int],
    islands: list[int],
    latencies: list[float],
    seconds: float,
    per_evaluator: int,
    isolations: tuple[str, ...] = ("auto",),
) -> list[dict]:
    results = []
    replies = RewriteReplies(KNOBS, latency=0.0)
    with (
        loopback_model(replies),
        local_ray(),
        tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch,
    ):
        target = load_target(write_knob_target(Path(scratch) / "knobs", KNOBS, seconds))
        runs = [
            (level, latency, count, island_count)
            for level in isolations
            for latency in latencies
            for count in evaluators
            for island_count in islands
        ]
        for number, (level, latency, count, island_count) in enumerate(runs):
            replies.latency = latency
            config = loopback_config(
                target.root,
                scratch,
                islands=island_count,
                evaluators=count,
                budget=seconds,
                isolation=level,
                max_evals=SearchConfig.noise_repeats + per_evaluator * count,
            )
            run_dir = Path(scratch) / f"run-{number}"
            run_dir.mkdir()
            began = time.time()
            Engine(config, target, run_dir).run()
            ended = time.time()
            times = evaluation_times(run_dir / "lineage")
            row = _overhead_row(times, count, island_count, latency, seconds, began, ended)
            results.append({"isolation": level, **row})
            print(results[-1], flush=True)
    return results


def _overhead_row(
    times: list, count: int, islands: int, latency: float, seconds: float, began: float, end: float
) -> dict:
    firsts: dict[str, float] = {}
    for evaluator, dispatched, *_ in times[SearchConfig.noise_repeats :]:
        firsts.setdefault(evaluator, dispatched)
    steady_start = max(firsts.values())
    steady_end = max(dispatched for _, dispatched, *_ in times)
    gaps = overheads(times, steady_start, steady_end)
    return {
        "evaluators": count,
        "islands": islands,
        "latency_s": latency,
        "eval_s": seconds,
        "latency_below_eval_x_evaluators": latency < seconds * count,
        "evaluations": len(times),
        "utilisation_whole_run": round(utilisation(times, count, began, end), 4),
        "utilisation_steady": round(utilisation(times, count, steady_start, steady_end), 4),
        "overhead_median_ms": round(1000 * statistics.median(gaps), 1) if gaps else None,
        "overhead_p90_ms": round(1000 * _quantile(gaps, 0.9), 1) if gaps else None,
        # the sandbox's own time: copy, process start-up, isolation, the fixed part's imports
        "sandbox_beyond_eval_ms": round(
            1000 * statistics.median(sandbox - seconds for *_, sandbox in times), 1
        ),
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_scale(islands: list[int], evaluations: list[int], evaluators: int) -> list[dict]:
    """Each (islands, evaluations) in a fresh process, so that its peak memory is its own."""
    spawn = multiprocessing.get_context("spawn")
    results = []
    for count in evaluations:
        for island_count in islands:
            with spawn.Pool(1) as pool:
                results.append(pool.apply(_scale_once, (island_count, count, evaluators)))
            print(results[-1], flush=True)
    return results


def _scale_once(islands: int, evaluations: int, evaluators: int) -> dict:
    with (
        loopback_model(RewriteReplies(KNOBS, latency=0.0)),
        local_ray(),
        tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch,
    ):
        target = load_target(write_knob_target(Path(scratch) / "knobs", KNOBS, 1.0))
        config = loopback_config(
            target.root, scratch, islands=islands, evaluators=evaluators, max_evals=evaluations
        )
        run_dir = Path(scratch) / "run"
        run_dir.mkdir()
        began = time.monotonic()
        engine = Engine(config, target, run_dir, sandbox=instant_evaluation)
        searching = time.monotonic()
        state = engine.run()
        ended = time.monotonic()
        rows = read_lineage(run_dir / "lineage").num_rows
        size = sum(p.stat().st_size for p in (run_dir / "lineage").iterdir())
    return {
        "islands": islands,
        "evaluations": state.evals_done,
        "lineage_rows": rows,
        "start_s": round(searching - began, 1),
        "search_s": round(ended - searching, 1),
        "candidates": state.next_id - 1,
        "candidates_per_s": round((state.next_id - 1) / (ended - searching), 1),
        "evaluations_per_s": round(
            (state.evals_done - config.search.noise_repeats) / (ended - searching),
            1,
        ),
        "driver_peak_rss_mib": round(_peak_rss_mib()),
        "lineage_mib": round(size / 2**20, 2),
    }


def loopback_config(target: Path, out: str, **settings: object) -> RunConfig:
    """A run of the anthropic operator (on the loopback model) on the knob target `target`."""
    base = {"target": str(target), "operator": "anthropic", "out": out}
    return RunConfig().with_settings(base | settings, "the benchmark")


def _peak_rss_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here
