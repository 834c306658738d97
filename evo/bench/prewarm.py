"""`evo bench prewarm`: the training fraction with and without pre-warm, in one run of the
benchmark, on the synthetic target or a real one (`--target targets/gpt` on a GPU machine).

Every evaluation is of the target's own program (the seed, `evals` times), so that pre-warm off
and on do the same work: no candidate brings a new graph to compile into one run and a warm
cache into the other; one evaluation before both warms the caches (corpus, compiled kernels),
as every evaluation of a run but its first finds them. One evaluator, the offline operator,
pre-warm off then on, at the first of the isolation `levels`, then on at each of the others (on
a GPU machine: what the namespace level costs the training fraction against the process level).

The synthetic target (evo.bench.synthetic.write_knob_target) sleeps `setup` seconds before
protocol.ready() and `seconds` as its training: no CPU either way, so its figures are the
engine's and the sandbox's, not the machine's. The training fraction is the training seconds the
fixed part reported over evaluators x the run's wall time (Ray's start-up excluded). From the
non-training seconds per evaluation it projects experiments per evaluator-hour at a 300 s
budget. Where the target reports them (the gpt target), medians of MFU, tokens per second,
set-up and first-step seconds come with it.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from evo.bench.synthetic import write_knob_target
from evo.bench.throughput import local_ray
from evo.config import RunConfig
from evo.evaluate.sandbox import evaluate
from evo.run.engine import Engine
from evo.store.lineage import read_lineage
from evo.target import Target, load_target

PROJECTED_BUDGET = 300.0  # seconds: autoresearch's budget, at most 12 experiments an hour
DETAILS = {
    "mfu": "mfu",
    "tokens_per_second": "tokens_per_s",
    "setup_seconds": "setup_s",
    "first_step_seconds": "first_step_s",
}


def bench_prewarm(
    setup: float,
    seconds: float,
    evaluations: int,
    target: Path | None = None,
    budget: float = 0,
    levels: tuple[str, ...] = ("auto",),
) -> list[dict]:
    runs = [("off", levels[0])] + [("on", level) for level in levels]
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = target or write_knob_target(
            Path(scratch) / "knobs", knobs=4, seconds=seconds, setup=setup
        )
        _warm_up(load_target(folder))
        results = [
            _run(folder, prewarm, level, evaluations, budget, Path(scratch))
            for prewarm, level in runs
        ]
    off = results[0]
    for row in results:
        row["on_over_off"] = round(row["training_fraction"] / off["training_fraction"], 3)
    off["on_over_off"] = None
    return results


def _warm_up(target: Target) -> None:
    import ray

    device = "cuda" if ray.cluster_resources().get("GPU") else "cpu"
    # a second of training: what warms the caches is the set-up and the first step
    warm = evaluate(target, device=device, budget_seconds=1.0)
    print(f"warmed the caches: {warm.summary()}", flush=True)


def _run(
    folder: Path, prewarm: str, level: str, evaluations: int, budget: float, scratch: Path
) -> dict:
    """One run; its engine, and the evaluator's resources, are freed when it returns."""
    settings = {
        "isolation": level,
        "target": str(folder),
        "operator": "offline",
        "islands": 1,
        "evaluators": 1,
        "prewarm": prewarm,
        "noise_repeats": evaluations,
        "max_evals": evaluations,
        "budget": budget,
        "out": str(scratch),
    }
    config = RunConfig().with_settings(settings, "the benchmark")
    run_dir = scratch / f"run-{prewarm}-{level}"
    run_dir.mkdir()
    target = load_target(folder)
    engine = Engine(config, target, run_dir)
    state = engine.run()
    wall = engine.elapsed()
    overhead = (wall - state.train_seconds) / state.evals_done  # one evaluator
    row = {
        "prewarm": prewarm,
        "isolation": engine.evaluators.isolation,
        "device": engine.evaluators.device,
        "budget_s": budget or target.budget_seconds,
        "evaluations": state.evals_done,
        "wall_s": round(wall, 1),
        "train_s": round(state.train_seconds, 1),
        "training_fraction": round(state.train_seconds / wall, 4),
        "busy_fraction": round(min(1.0, state.busy_seconds / wall), 4),
        "overhead_s": round(overhead, 1),
        "per_hour_at_300s": round(3600 / (PROJECTED_BUDGET + overhead), 2),
        **_medians(run_dir / "lineage"),
    }
    print(row, flush=True)
    return row


def _medians(lineage: Path) -> dict:
    """Medians of what the evaluations reported, of those DETAILS the target reports."""
    found: dict[str, list[float]] = {key: [] for key in DETAILS}
    table = read_lineage(lineage, ["eval_statuses", "eval_details"])
    statuses = [s for row in table.column("eval_statuses").to_pylist() for s in row or []]
    for details in table.column("eval_details").to_pylist():
        for measured in map(json.loads, details or []):
            for key, values in found.items():
                if isinstance(measured.get(key), int | float):
                    values.append(measured[key])
    medians = {DETAILS[key]: statistics.median(v) for key, v in found.items() if v}
    return {"ok": f"{statuses.count('ok')}/{len(statuses)}", **medians}
