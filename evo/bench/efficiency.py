"""`evo bench efficiency`: presets against each other on one or more landscapes, the same number
of evaluations, the offline operator, several seeds each.

The landscapes are knob targets (evo.bench.synthetic) of known shape: a bowl (one optimum that
greedy steps reach), rugged (a local optimum behind every second step) and a valley (pairs of
knobs that must move together); their evaluations sleep `seconds` in the evaluator
(`PacedEvaluation`), since what is measured is the search, not the sandbox. A real target
(`target_dir`) is evaluated in the real sandbox instead.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evo.bench.synthetic import PacedEvaluation, write_knob_target
from evo.bench.throughput import local_ray
from evo.config import RunConfig, read_toml
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.mutate.operator import OperatorFactory
from evo.run.engine import Engine
from evo.shipped import preset_path
from evo.store.lineage import read_lineage
from evo.target import load_target

# name -> the shape of its knob target (evo.bench.synthetic.knob_loss)
LANDSCAPES = {"bowl": {}, "rugged": {"ruggedness": 10.0}, "valley": {"valley": 20.0}}
LENGTHS = (20, 40, 80, 150)  # evaluations after which the best is reported


def bench_efficiency(
    seeds: int,
    evals: int,
    presets: tuple[str, ...] = ("single-chain", "adaptive"),
    landscapes: tuple[str, ...] = tuple(LANDSCAPES),
    target_dir: Path | None = None,
    budget: float = 0.0,
    seconds: float = 0.05,
) -> list[dict]:
    """Presets against each other on each landscape (or on `target_dir` alone).

    For each run: the best fitness after every evaluation. Reported per landscape and preset:
    the median best (and its range over seeds) after each of LENGTHS evaluations up to `evals`,
    how many evaluations each run needed to reach the median final best of the first preset,
    the reference (by default the single chain), and where a preset recombines, the acceptance
    rates of recombinations and of mutations.
    """
    results = []
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        if target_dir is not None:
            cases = [(Path(target_dir).name, Path(target_dir), evaluate)]
        else:
            paced = PacedEvaluation(seconds)
            cases = [
                (
                    name,
                    write_knob_target(Path(scratch) / name, 4, seconds, **LANDSCAPES[name]),
                    paced,
                )
                for name in landscapes
            ]
        for name, folder, sandbox in cases:
            sign = 1.0 if load_target(folder).direction == "minimize" else -1.0
            curves: dict[str, list[np.ndarray]] = {}
            kinds: dict[str, Counter] = {preset: Counter() for preset in presets}
            for preset, seed in itertools.product(presets, range(seeds)):
                run_dir = Path(scratch) / f"{name}-{Path(preset).stem}-{seed}"
                preset_run(folder, preset, seed, evals, run_dir, sandbox, budget=budget)
                rows = _evaluated(run_dir)
                curves.setdefault(preset, []).append(_best_curve(rows, evals, sign))
                kinds[preset].update(
                    (r["mate_id"] is not None, r["accepted"]) for r in rows if r["candidate_id"]
                )
            results += _rows(name, curves, evals, sign, kinds)
    return results


def _rows(
    landscape: str,
    curves: dict[str, list[np.ndarray]],
    evals: int,
    sign: float,
    kinds: dict[str, Counter],
) -> list[dict]:
    """The table's rows of one landscape; curves hold sign x best (lower is better), kinds count
    the evaluated candidates by (recombination, accepted)."""
    lengths = [n for n in LENGTHS if n < evals] + [evals]
    reference = next(iter(curves.values()))
    goal = float(np.median([c[-1] for c in reference]))
    rows = []
    for preset, runs in curves.items():
        row = {"landscape": landscape, "preset": preset, "seeds": len(runs)}
        for n in lengths:
            at = [sign * float(c[n - 1]) for c in runs]
            row[f"best_at_{n}"] = f"{np.median(at):.2f} ({min(at):.2f} - {max(at):.2f})"
        reached = [int(np.argmax(c <= goal)) + 1 for c in runs if (c <= goal).any()]
        row["reached_reference_best"] = f"{len(reached)}/{len(runs)}"
        row["evals_to_reference_best"] = int(np.median(reached)) if reached else None
        counts = kinds[preset]
        if counts[True, False] + counts[True, True]:
            for label, kind in (("mutation", False), ("recombination", True)):
                accepted, evaluated = counts[kind, True], counts[kind, True] + counts[kind, False]
                row[f"accepted_{label}"] = f"{accepted}/{evaluated}"
        row["best_after_each_evaluation"] = [[round(sign * float(v), 4) for v in c] for c in runs]
        rows.append(row)
    return rows


def preset_run(
    target: Path,
    preset: str,
    seed: int,
    evals: int,
    run_dir: Path,
    sandbox: Callable[..., EvalResult] = evaluate,
    operator: OperatorFactory | None = None,
    **settings: object,
) -> None:
    """One run of `preset` (a name or a file) on `target` with the offline operator (or the one
    `operator` makes), `evals` evaluations and the other `settings`, into the new folder
    `run_dir`; its engine is freed when it returns."""
    config = RunConfig().with_tables(read_toml(preset_path(preset)), preset)
    fixed = {"target": str(target), "operator": "offline", "seed": seed, "max_evals": evals}
    config = config.with_settings(
        {**fixed, "out": str(run_dir.parent), **settings}, "the benchmark"
    )
    run_dir.mkdir()
    Engine(config, load_target(target), run_dir, sandbox=sandbox, operator=operator).run()


def _evaluated(run_dir: Path) -> list[dict]:
    """A run's evaluated candidates, in the order their fates were final."""
    rows = [
        r
        for r in read_lineage(run_dir / "lineage").to_pylist()
        if r["event"] == "candidate" and r["metrics"]
    ]
    return sorted(rows, key=lambda r: r["finished_at"])


def _best_curve(rows: list[dict], evals: int, sign: float) -> np.ndarray:
    """The best accepted fitness (times sign: lower is better) after each evaluation."""
    curve = np.full(evals, np.inf)
    done, best = 0, np.inf
    for row in rows:
        done += len(row["metrics"])
        if row["accepted"]:
            best = min(best, sign * row["fitness"])
        curve[min(done, evals) - 1 :] = best
    return curve
