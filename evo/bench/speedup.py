"""`evo bench speedup`: does the wall-clock time to a result fall as evaluators are added?

The reference is the one-agent loop: the single-chain preset on one evaluator. For each seed,
its run's final best is the goal and the time it took to first reach it the reference time;
then each preset asked (by default the default search) with E evaluators for each E asked, on
the same seed: the wall time until its best first reaches that goal, and the speed-up, the
reference time over that time (0 where it never does). A row gives the medians over the seeds
(goal: a speed-up of at least 0.8 x E at E = 4; a published 16-GPU agent reached 56% of
linear). Each seed is its own comparison because the target's noise is drawn per seed: a goal
shared by all seeds (their median) is out of reach for the runs whose noise lies above it.
On the rugged knob target with evaluations that sleep `seconds` each (`PacedEvaluation`: no
CPU, so that 8 evaluators on 2 cores measure the search and the engine, not the machine); the
offline operator; the clock starts when the seed's first evaluation starts running: the
evaluator actors' start-up (a few seconds for 8 on 2 cores) is left out, as it is negligible
beside real budgets but not beside these 0.2 s evaluations. What is left in: the actors come up
over a few tenths of a second, and the engine's cost per candidate is paid by every evaluator
at once on 2 cores; both weigh at 0.2 s and fade at `--eval-seconds 1` (BENCHMARKS.md).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

from evo.bench.efficiency import LANDSCAPES, preset_run
from evo.bench.synthetic import PacedEvaluation, write_knob_target
from evo.bench.throughput import local_ray
from evo.store.lineage import read_lineage


def bench_speedup(
    evaluators: list[int],
    seeds: int,
    evals: int,
    seconds: float = 0.2,
    presets: tuple[str, ...] = ("adaptive",),
) -> list[dict]:
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = write_knob_target(Path(scratch) / "rugged", 4, seconds, **LANDSCAPES["rugged"])
        sandbox = PacedEvaluation(seconds)
        chain = [_run(folder, "single-chain", 1, seed, evals, sandbox) for seed in range(seeds)]
        goals = [best for best, _ in chain]
        references = [_reach(times, goal) for (_, times), goal in zip(chain, goals, strict=True)]
        rows = [_row("single-chain", 1, chain, goals, references)]
        for preset, count in itertools.product(presets, evaluators):
            runs = [_run(folder, preset, count, seed, evals, sandbox) for seed in range(seeds)]
            rows.append(_row(preset, count, runs, goals, references))
    return rows


def _row(preset: str, count: int, runs: list, goals: list[float], references: list[float]) -> dict:
    """The medians over seeds of one preset's runs with `count` evaluators, each run against its
    seed's goal and reference time."""
    reach = [_reach(times, goal) for (_, times), goal in zip(runs, goals, strict=True)]
    speedup = statistics.median(ref / time for ref, time in zip(references, reach, strict=True))
    return {
        "preset": preset,
        "evaluators": count,
        "goal": round(statistics.median(goals), 4),
        "reached": f"{sum(r < float('inf') for r in reach)}/{len(reach)}",
        "reference_seconds": round(statistics.median(references), 1),
        "seconds_to_goal": round(statistics.median(reach), 1),
        "speedup": round(speedup, 2),
        "per_evaluator": round(speedup / count, 2),
    }


def _run(
    folder: Path, preset: str, count: int, seed: int, evals: int, sandbox: PacedEvaluation
) -> tuple[float, list[tuple[float, float]]]:
    """One run: its final best, and (seconds since its first evaluation, best) at each new best."""
    run_dir = folder.parent / f"{Path(preset).stem}-{count}-{seed}"
    preset_run(folder, preset, seed, evals, run_dir, sandbox, evaluators=count)
    columns = ["event", "accepted", "fitness", "finished_at", "eval_returned_at", "eval_seconds"]
    rows = read_lineage(run_dir / "lineage", columns).to_pylist()
    start = min(  # when the first evaluation started running
        returned - timedelta(seconds=seconds)
        for row in rows
        for returned, seconds in zip(
            row["eval_returned_at"] or [], row["eval_seconds"] or [], strict=True
        )
    )
    bests, best = [], float("inf")
    for row in sorted(rows, key=lambda r: r["finished_at"]):
        if row["event"] == "candidate" and row["accepted"] and row["fitness"] < best:
            best = row["fitness"]
            bests.append(((row["finished_at"] - start).total_seconds(), best))
    return best, bests


def _reach(times: list[tuple[float, float]], goal: float) -> float:
    """Seconds until the best first reached `goal` (lower is better); inf if never."""
    return next((seconds for seconds, best in times if best <= goal), float("inf"))
