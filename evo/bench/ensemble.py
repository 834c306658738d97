"""`evo bench ensemble`: do adaptive ensemble weights pay? The default ensemble's fixed weights
(haiku 0.7, sonnet 0.3) against `--adaptive-models`, for the same spend.

The knob target (4 knobs, the bowl) is searched by the anthropic operator against a model server
on loopback whose two models have a known skill (evo.bench.synthetic.SkilledReplies: the
probability that an edit steps a knob towards its optimum, else away) and the real list prices
(every reply reads 3,000 tokens and writes 300: $0.0045 for haiku, $0.0135 for sonnet). Two
worlds:
- "sonnet earns its price": haiku's skill 0.15, sonnet's 0.8 (per dollar, sonnet earns 1.8x);
- "sonnet does not": haiku's skill 0.4, sonnet's 0.6 (haiku earns 2x).
Each run stops at the same cost cap. Evaluations are computed in the evaluators, two of them,
after EVALUATION_S of wall time (slower than a loopback proposal, as training is slower than a
model's reply), so the models are the only thing that differs. Reported per world and mode, over
the seeds: the final best loss, accepted improvements per dollar, and sonnet's share of the
proposals.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from evo.bench.loopback import loopback_model
from evo.bench.synthetic import PacedEvaluation, SkilledReplies, write_knob_target
from evo.bench.throughput import local_ray, loopback_config
from evo.run.engine import Engine
from evo.target import load_target

WORLDS = {
    "sonnet earns its price": {"claude-haiku-4-5": 0.15, "claude-sonnet-4-5": 0.8},
    "sonnet does not": {"claude-haiku-4-5": 0.4, "claude-sonnet-4-5": 0.6},
}
USAGE = {"input_tokens": 3000, "output_tokens": 300}
MAX_COST = 1.0  # USD a run
EVALUATION_S = 0.2


def bench_ensemble(seeds: int, max_cost: float = MAX_COST) -> list[dict]:
    results = []
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        target = load_target(write_knob_target(Path(scratch) / "knobs", knobs=4, seconds=0.1))
        for world, skills in WORLDS.items():
            for adaptive in (False, True):
                runs = []
                for seed in range(seeds):
                    with loopback_model(SkilledReplies(skills, USAGE, seed)):
                        runs.append(_run(target, scratch, seed, adaptive, max_cost, world))
                results.append(_row(world, adaptive, max_cost, runs))
                print(results[-1], flush=True)
    return results


def _run(target, scratch: str, seed: int, adaptive: bool, max_cost: float, world: str) -> dict:
    config = loopback_config(
        target.root, scratch, adaptive_models=adaptive, seed=seed, evaluators=2, max_evals=0,
        max_cost=max_cost,
    )  # fmt: skip
    run_dir = Path(scratch) / f"{world}-{adaptive}-{seed}".replace(" ", "-")
    run_dir.mkdir()
    state = Engine(config, target, run_dir, sandbox=PacedEvaluation(EVALUATION_S)).run()
    records = state.models
    return {
        "best": state.best.fitness if state.best else float("nan"),
        "spent": state.spent,
        "accepted": sum(r.accepted for r in records.values()),
        "proposals": sum(r.proposals for r in records.values()),
        "sonnet": records["claude-sonnet-4-5"].proposals if "claude-sonnet-4-5" in records else 0,
    }


def _row(world: str, adaptive: bool, max_cost: float, runs: list[dict]) -> dict:
    best = [r["best"] for r in runs]
    return {
        "world": world,
        "models": "adaptive" if adaptive else "fixed 0.7/0.3",
        "seeds": len(runs),
        "max_cost": max_cost,
        "final_best_median": round(statistics.median(best), 3),
        "final_best_range": f"{min(best):.3f}..{max(best):.3f}",
        "accepted_per_usd": round(statistics.median(r["accepted"] / r["spent"] for r in runs), 1),
        "proposals": round(statistics.median(r["proposals"] for r in runs)),
        "sonnet_share": round(statistics.median(r["sonnet"] / r["proposals"] for r in runs), 2),
        "final_best_each_seed": [round(b, 4) for b in best],
    }
