"""`evo bench noise`: does the run's noise estimate converge on the true sigma?

The knob bowl (evo.bench.synthetic, ruggedness 0) with its seed noise replaced by noise of known
size (`ProgramNoise`): a part `own` drawn for each program and seed, and a part `shared` drawn
for each seed and the same for every program. A paired difference of two programs on one seed
then varies by sqrt(2) own, the true sigma that the estimate (evo.search.noise) should approach
as the run evaluates candidates again; the shared part only widens each program's spread between
seeds, where the estimate starts. Evaluations are instant; the offline operator, each preset's
search settings, several seeds. For each preset and run length the table gives the estimate that
judged the candidates settled by then over the true sigma (median and range over seeds), its
degrees of freedom, the candidates accepted by then (median; on this bowl most
acceptances are real, but those made on a sigma far too small need not be), and the true loss
(without noise) of the best program by then as the run measured it: what lucky acceptances
cost, since a champion that won by luck is worse than its measurement says and judges every
candidate after it.
"""

from __future__ import annotations

import json
import math
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
from evo.target import Target, load_target

LENGTHS = (20, 40, 80, 150)


@dataclass(frozen=True)
class ProgramNoise:
    """`instant_evaluation` whose noise is N(0, own) drawn anew for every (program, seed) plus
    N(0, shared) drawn for each seed, instead of the knob target's seed noise (N(0, 0.5), the same
    for every program)."""

    own: float
    shared: float = 0.0

    def __call__(
        self, target: Target, sources: dict[str, str] | None = None, **options
    ) -> EvalResult:
        result = instant_evaluation(target, sources, **options)
        seed = options.get("seed", 0)
        knobs = random.Random(seed).gauss(0, NOISE_SD)
        shared = random.Random(f"shared-{seed}").gauss(0, self.shared)
        program = program_hash(target.read_mutable() | (sources or {}))
        own = random.Random(f"{program}-{seed}").gauss(0, self.own)
        return replace(result, metric=result.metric - knobs + shared + own)


def bench_noise(
    seeds: int,
    sigma: float,
    presets: tuple[str, ...] = ("adaptive",),
    lengths: tuple = LENGTHS,
    shared: float = 0.0,
) -> list[dict]:
    """`sigma`: the programs' own noise; `shared`: the seeds' noise common to all programs."""
    noise = ProgramNoise(sigma, shared)
    truth = math.sqrt(2) * sigma  # the spread of a paired difference on one seed
    rows = []
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = write_knob_target(Path(scratch) / "bowl", knobs=4, seconds=0.1)
        for preset in presets:
            curves = [
                _run(folder, preset, seed, noise, max(lengths), Path(scratch))
                for seed in range(seeds)
            ]
            for length in ("noise round", *lengths):
                points = [_at(curve, length) for curve in curves]
                ratios = [point[0] / truth for point in points]
                rows.append(
                    {
                        "preset": preset,
                        "shared": shared,
                        "evaluations": length,
                        "estimate_over_sigma": round(statistics.median(ratios), 3),
                        "lowest": round(min(ratios), 3),
                        "highest": round(max(ratios), 3),
                        "dof": statistics.median(point[1] for point in points),
                        "accepted": statistics.median(point[2] for point in points),
                        "true_loss_of_best": round(statistics.median(p[3] for p in points), 2),
                    }
                )
    return rows


def _run(
    folder: Path, preset: str, seed: int, noise: ProgramNoise, evaluations: int, scratch: Path
) -> list[tuple]:
    """(evaluations so far, the estimate, its degrees of freedom, candidates accepted, the true
    loss of the best program so far) after each settled candidate."""
    run_dir = scratch / f"run-{Path(preset).stem}-{seed}"
    preset_run(folder, preset, seed, evaluations, run_dir, noise)
    columns = [
        "event",
        "candidate_id",
        "metrics",
        "seeds",
        "sigma",
        "accepted",
        "fitness",
        "sources",
    ]
    curve, done, pooled, accepted, best, true = [], 0, Noise(), 0, float("inf"), float("nan")
    target = load_target(folder)
    for row in read_lineage(run_dir / "lineage", columns).to_pylist():
        if row["event"] != "candidate" or not row["metrics"]:
            continue
        pooled.add(row["candidate_id"], measured(row))
        done += len(row["metrics"])
        accepted += bool(row["accepted"] and row["candidate_id"])
        if row["accepted"] and row["fitness"] < best:
            best, true = row["fitness"], _true_loss(target, json.loads(row["sources"]))
        curve.append((done, row["sigma"], pooled.dof, accepted, true))
    return curve


def measured(row: dict) -> dict[int, float]:
    """A lineage row's successful evaluations: seed -> metric."""
    return {seed: m for seed, m in zip(row["seeds"], row["metrics"], strict=True) if m is not None}


def _at(curve: list[tuple], length: int | str) -> tuple[float, int, int]:
    """The estimate, its degrees of freedom and the acceptances once `length` evaluations were
    settled."""
    reached = curve[:1] if length == "noise round" else [p for p in curve if p[0] <= length]
    return (reached or curve[:1])[-1][1:]


def _true_loss(target: Target, sources: dict[str, str]) -> float:
    """The knob target's loss of `sources` without noise."""
    return instant_evaluation(target, sources, seed=0).metric - random.Random(0).gauss(0, NOISE_SD)
