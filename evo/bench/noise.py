"""`evo bench noise`: does the run's noise estimate converge on the true sigma?

The knob bowl (evo.bench.synthetic, ruggedness 0) with its shared seed noise replaced by noise of
a known sigma drawn for each program and seed (`ProgramNoise`): every program evaluated more than
once then shows that sigma in its spread, which the pooled estimate (evo.search.noise) should
approach as the run evaluates candidates again. Evaluations are instant; the offline operator,
the default search settings, several seeds. For each run length the table gives the estimate
that judged the candidates settled by then, over the true sigma (median and range over seeds),
and its degrees of freedom.
"""

from __future__ import annotations

import random
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from evo.bench.synthetic import NOISE_SD, instant_evaluation, write_knob_target
from evo.bench.throughput import local_ray
from evo.config import RunConfig
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import program_hash
from evo.run.engine import Engine
from evo.search.noise import Noise
from evo.store.lineage import read_lineage
from evo.target import Target, load_target

LENGTHS = (20, 40, 80, 150)


@dataclass(frozen=True)
class ProgramNoise:
    """`instant_evaluation` whose noise is each program's own: N(0, sigma), drawn anew for every
    (program, seed), instead of the knob target's noise shared by all programs at a seed."""

    sigma: float

    def __call__(
        self, target: Target, sources: dict[str, str] | None = None, **options
    ) -> EvalResult:
        result = instant_evaluation(target, sources, **options)
        seed = options.get("seed", 0)
        shared = random.Random(seed).gauss(0, NOISE_SD)
        program = program_hash(target.read_mutable() | (sources or {}))
        own = random.Random(f"{program}-{seed}").gauss(0, self.sigma)
        return replace(result, metric=result.metric - shared + own)


def bench_noise(seeds: int, sigma: float, lengths: tuple[int, ...] = LENGTHS) -> list[dict]:
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = write_knob_target(Path(scratch) / "bowl", knobs=4, seconds=0.1)
        curves = [_run(folder, seed, sigma, max(lengths), Path(scratch)) for seed in range(seeds)]
    rows = []
    for length in ("noise round", *lengths):
        points = [_at(curve, length) for curve in curves]
        ratios = [estimate / sigma for estimate, _ in points]
        rows.append(
            {
                "evaluations": length,
                "estimate_over_sigma": round(statistics.median(ratios), 3),
                "lowest": round(min(ratios), 3),
                "highest": round(max(ratios), 3),
                "dof": statistics.median(dof for _, dof in points),
            }
        )
    return rows


def _run(folder: Path, seed: int, sigma: float, evaluations: int, scratch: Path) -> list[tuple]:
    """(evaluations so far, the estimate, its degrees of freedom) after each settled candidate."""
    settings = {"target": str(folder), "operator": "offline", "seed": seed, "out": str(scratch)}
    config = RunConfig().with_settings({**settings, "max_evals": evaluations}, "the benchmark")
    run_dir = scratch / f"run-{seed}"
    run_dir.mkdir()
    Engine(config, load_target(folder), run_dir, sandbox=ProgramNoise(sigma)).run()
    rows = read_lineage(run_dir / "lineage", ["event", "metrics", "sigma"]).to_pylist()
    curve, done, noise = [], 0, Noise()
    for row in rows:
        if row["event"] != "candidate" or not row["metrics"]:
            continue
        metrics = [m for m in row["metrics"] if m is not None]
        for k, value in enumerate(metrics):
            noise.add(metrics[:k], value)
        done += len(row["metrics"])
        curve.append((done, row["sigma"], noise.dof))
    return curve


def _at(curve: list[tuple], length: int | str) -> tuple[float, int]:
    """The estimate and its degrees of freedom once `length` evaluations were settled."""
    if length == "noise round":
        return curve[0][1], curve[0][2]
    reached = [point for point in curve if point[0] <= length] or curve[:1]
    return reached[-1][1], reached[-1][2]
