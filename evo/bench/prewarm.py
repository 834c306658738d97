"""`evo bench prewarm`: the training fraction with and without pre-warm, in one run of the
benchmark.

The knob target with a set-up phase (evo.bench.synthetic.write_knob_target: `setup` seconds of
sleep before protocol.ready(), then `seconds` of sleep as the training; no CPU either way, so the
figures are the engine's and the sandbox's, not the machine's), the offline operator, one
evaluator, the same evaluations with pre-warm off and on. The training fraction is the training
seconds the fixed part reported over evaluators x the run's wall time (Ray's start-up excluded,
the seed's noise measurement included).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from evo.bench.synthetic import write_knob_target
from evo.bench.throughput import local_ray
from evo.config import RunConfig
from evo.run.engine import Engine
from evo.target import load_target


def bench_prewarm(setup: float, seconds: float, evaluations: int) -> list[dict]:
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = write_knob_target(Path(scratch) / "knobs", knobs=4, seconds=seconds, setup=setup)
        results = [
            _run(folder, setup, prewarm, evaluations, Path(scratch)) for prewarm in ("off", "on")
        ]
    off, on = results
    off["on_over_off"] = None
    on["on_over_off"] = round(on["training_fraction"] / off["training_fraction"], 3)
    return results


def _run(folder: Path, setup: float, prewarm: str, evaluations: int, scratch: Path) -> dict:
    """One run; its engine, and the evaluator's CPUs, are freed when it returns."""
    settings = {
        "target": str(folder),
        "operator": "offline",
        "islands": 1,
        "evaluators": 1,
        "prewarm": prewarm,
        "max_evals": evaluations,
        "out": str(scratch),
    }
    config = RunConfig().with_settings(settings, "the benchmark")
    run_dir = scratch / f"run-{prewarm}"
    run_dir.mkdir()
    target = load_target(folder)
    engine = Engine(config, target, run_dir)
    state = engine.run()
    wall = engine.elapsed()
    row = {
        "prewarm": prewarm,
        "setup_s": setup,
        "budget_s": target.budget_seconds,
        "evaluations": state.evals_done,
        "wall_s": round(wall, 1),
        "train_s": round(state.train_seconds, 1),
        "training_fraction": round(state.train_seconds / wall, 4),
        "busy_fraction": round(min(1.0, state.busy_seconds / wall), 4),
    }
    print(row, flush=True)
    return row
