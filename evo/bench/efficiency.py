"""`evo bench efficiency`: presets against each other on one target, the same number of
evaluations, the offline operator, several seeds each."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evo.bench.throughput import local_ray
from evo.config import RunConfig, read_toml
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.run.engine import Engine
from evo.shipped import preset_path
from evo.store.lineage import read_lineage
from evo.target import load_target


def bench_efficiency(
    seeds: int,
    evals: int,
    target_dir: Path,
    budget: float = 0.0,
    presets: tuple[str, ...] = ("single-chain", "ring"),
) -> list[dict]:
    """Presets against each other: same evaluations, the offline operator, several seeds.

    For each run: the best fitness after every evaluation. Reported per preset: the final best
    (median and range over seeds) and how many evaluations each run needed to reach the median
    final best of the first preset, the reference (by default the single chain).
    """
    target = load_target(target_dir)
    sign = 1.0 if target.direction == "minimize" else -1.0
    curves: dict[str, list[np.ndarray]] = {}
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        for preset in presets:
            for seed in range(seeds):
                run_dir = Path(scratch) / f"{preset}-{seed}"
                preset_run(target.root, preset, seed, evals, run_dir, budget=float(budget))
                curves.setdefault(preset, []).append(sign * _best_curve(run_dir, evals, sign))
    goal = float(np.median([c[-1] for c in curves[presets[0]]]))
    results = []
    for preset, runs in curves.items():
        finals = [float(c[-1]) for c in runs]
        reached = [
            int(np.argmax(sign * c <= sign * goal)) + 1 if (sign * c <= sign * goal).any() else None
            for c in runs
        ]
        hits = [r for r in reached if r is not None]
        results.append(
            {
                "preset": preset,
                "seeds": seeds,
                "evaluations": evals,
                "final_best_median": round(float(np.median(finals)), 4),
                "final_best_min": round(min(finals), 4),
                "final_best_max": round(max(finals), 4),
                "reached_reference_best": f"{len(hits)}/{len(runs)}",
                "evals_to_reference_best": int(np.median(hits)) if hits else None,
                "best_after_each_evaluation": [[round(float(v), 4) for v in c] for c in runs],
            }
        )
    return results


def preset_run(
    target: Path,
    preset: str,
    seed: int,
    evals: int,
    run_dir: Path,
    sandbox: Callable[..., EvalResult] = evaluate,
    **settings: object,
) -> None:
    """One run of `preset` (a name or a file) on `target` with the offline operator, `evals`
    evaluations and the other `settings`, into the new folder `run_dir`; its engine is freed
    when it returns."""
    config = RunConfig().with_tables(read_toml(preset_path(preset)), preset)
    fixed = {"target": str(target), "operator": "offline", "seed": seed, "max_evals": evals}
    config = config.with_settings(
        {**fixed, "out": str(run_dir.parent), **settings}, "the benchmark"
    )
    run_dir.mkdir()
    Engine(config, load_target(target), run_dir, sandbox=sandbox).run()


def _best_curve(run_dir: Path, evals: int, sign: float) -> np.ndarray:
    """The best accepted fitness (times sign: lower is better) after each evaluation."""
    rows = [
        r
        for r in read_lineage(run_dir / "lineage").to_pylist()
        if r["event"] == "candidate" and r["metrics"]
    ]
    rows.sort(key=lambda r: r["finished_at"])
    curve = np.full(evals, np.inf)
    done, best = 0, np.inf
    for row in rows:
        done += len(row["metrics"])
        if row["accepted"]:
            best = min(best, sign * row["fitness"])
        curve[min(done, evals) - 1 :] = best
    return curve
