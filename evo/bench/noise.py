"""`evo bench noise`: does the run's noise estimate converge on the true sigma?

The knob bowl (evo.bench.synthetic, ruggedness 0) with its shared seed noise replaced by noise of
a known sigma drawn for each program and seed (`ProgramNoise`): every program evaluated more than
once then shows that sigma in its spread, which the pooled estimate (evo.search.noise) should
approach as the run evaluates candidates again. Evaluations are instant; the offline operator,
each preset's search settings, several seeds. For each preset and run length the table gives the
estimate that judged the candidates settled by then over the true sigma (median and range over
seeds), its degrees of freedom, and the candidates accepted by then (median; on this bowl most
acceptances are real, but those made on a sigma far too small need not be).
"""

from __future__ import annotations

import random
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from evo.bench.efficiency import preset_run
from evo.bench.synthetic import NOISE_SD, instant_evaluation, write_knob_target
from evo.bench.throughput import local_ray
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import program_hash
from evo.search.noise import Noise
from evo.store.lineage import read_lineage
from evo.target import Target

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


def bench_noise(
    seeds: int, sigma: float, presets: tuple[str, ...] = ("adaptive",), lengths: tuple = LENGTHS
) -> list[dict]:
    rows = []
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = write_knob_target(Path(scratch) / "bowl", knobs=4, seconds=0.1)
        for preset in presets:
            curves = [
                _run(folder, preset, seed, sigma, max(lengths), Path(scratch))
                for seed in range(seeds)
            ]
            for length in ("noise round", *lengths):
                points = [_at(curve, length) for curve in curves]
                ratios = [estimate / sigma for estimate, _, _ in points]
                rows.append(
                    {
                        "preset": preset,
                        "evaluations": length,
                        "estimate_over_sigma": round(statistics.median(ratios), 3),
                        "lowest": round(min(ratios), 3),
                        "highest": round(max(ratios), 3),
                        "dof": statistics.median(dof for _, dof, _ in points),
                        "accepted": statistics.median(accepted for _, _, accepted in points),
                    }
                )
    return rows


def _run(
    folder: Path, preset: str, seed: int, sigma: float, evaluations: int, scratch: Path
) -> list[tuple]:
    """(evaluations so far, the estimate, its degrees of freedom, candidates accepted) after
    each settled candidate."""
    run_dir = scratch / f"run-{Path(preset).stem}-{seed}"
    preset_run(folder, preset, seed, evaluations, run_dir, ProgramNoise(sigma))
    columns = ["event", "candidate_id", "metrics", "sigma", "accepted"]
    curve, done, noise, accepted = [], 0, Noise(), 0
    for row in read_lineage(run_dir / "lineage", columns).to_pylist():
        if row["event"] != "candidate" or not row["metrics"]:
            continue
        noise.add_program([m for m in row["metrics"] if m is not None])
        done += len(row["metrics"])
        accepted += bool(row["accepted"] and row["candidate_id"])
        curve.append((done, row["sigma"], noise.dof, accepted))
    return curve


def _at(curve: list[tuple], length: int | str) -> tuple[float, int, int]:
    """The estimate, its degrees of freedom and the acceptances once `length` evaluations were
    settled."""
    reached = curve[:1] if length == "noise round" else [p for p in curve if p[0] <= length]
    return (reached or curve[:1])[-1][1:]
