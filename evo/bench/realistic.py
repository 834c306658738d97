"""`evo bench realistic`: selection rules at realistic signal-to-noise, against the truth.

Each policy (a preset and settings, `POLICIES`) runs through the real engine on the simulated
target of evo.bench.truth, whose edits have effects of known size (in sigma, the paired noise),
in each regime, for `seeds` seeds. After E evaluations (the seed program's included, crashes too)
the run's best is the program with the best measured fitness it accepted; the table reports,
over the seeds, in sigma (positive: better than the seed program):

- true: the best's true gain over the seed program (what the user would get);
- reported: the seed's measured fitness less the best's (what the run says it got);
- optimism: reported less true, the run's own measured gain that is not real;
- worse: runs whose best is truly worse than the seed program;
- estimated error: what `evo lineage` estimates the best gained (evo.search.luck, on the
  evaluations so far; where the run has too few pairs for one, its measured gain on the seeds it
  shares with the seed program) less the true gain;
- evals/candidate: evaluations spent per evaluated candidate (repeats included);
- confirmed error: what a confirmation says of the best (it and the seed program measured on
  CONFIRM_SEEDS fresh seeds, as `evo confirm` does: their mean paired difference) less its true
  gain.

Medians; the true gain's with its standard error (bootstrap: a policy behind another by less
than about twice that is not measurably behind at this many seeds) and its quartiles.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from evo.bench.efficiency import preset_run
from evo.bench.throughput import local_ray
from evo.bench.truth import (
    REGIMES,
    SIGMA,
    Regime,
    TruthEvaluation,
    TruthOperator,
    true_loss,
    write_truth_target,
)
from evo.run.confirm import CONFIRM_INDEX
from evo.search import luck
from evo.search.effects import paired_gain
from evo.search.noise import Noise
from evo.store.lineage import read_lineage
from evo.target import Target, load_target

LENGTHS = (40, 120, 400)  # 120: one GPU-night at 300 s an evaluation

# name -> (preset, settings): the rules compared
POLICIES = {
    # one agent's loop: one island, one evaluation, kept if it measured better than the champion
    "chain": ("single-chain", {"noise_k": 0.0, "max_repeats": 1, "surprise_k": 0.0}),
    # evo's default until this benchmark: islands, 2 sigma / sqrt(n), up to 3 evaluations
    "threshold": ("adaptive", {"noise_k": 2.0, "patience": 10, "min_repeats": 1}),
    # evo's default: islands, a new champion's gain over its island's champion held on the same
    # two seeds (evo.search.island): pairs for the noise, and the estimate of evo.search.luck;
    # a gain past 3 sigma is sure on one, once sigma rests on pairs
    "default": ("adaptive", {}),
    # tried, not kept (BENCHMARKS.md "realistic")
    "repeats-1": ("adaptive", {"min_repeats": 1}),  # the default before: crowned on one seed
    "repeats-2": ("adaptive", {"sure_k": 0.0}),  # then: every new champion on two seeds
    "sure-2": ("adaptive", {"sure_k": 2.0}),  # sure past 2 sigma
    "warm-up": ("adaptive", {"sure_k": 1e-9}),  # a second seed only until sigma rests on pairs
    "chain-2": ("single-chain", {"min_repeats": 2}),  # the single chain with the default's rule
    "no-carry": ("adaptive", {"carry_gains": False}),  # no gains carried to newer champions
    "patience-10": ("adaptive", {"patience": 10, "min_repeats": 1}),
    "threshold-1": ("adaptive", {"noise_k": 1.0, "patience": 10, "min_repeats": 1}),
    "chain-0.5": ("single-chain", {"noise_k": 0.5, "max_repeats": 1, "surprise_k": 0.0}),
}
DEFAULT_POLICIES = ("chain", "threshold", "repeats-1", "default")

COLUMNS = ("true", "reported", "optimism", "estimated_error", "confirmed_error")
CONFIRM_SEEDS = 3  # evo confirm's default
BOOTSTRAP = 2000  # resamples for the standard error of a median


def bench_realistic(
    seeds: int,
    evals: int = max(LENGTHS),
    regimes: tuple[str, ...] = tuple(REGIMES),
    policies: tuple[str, ...] = DEFAULT_POLICIES,
) -> list[dict]:
    """One row per regime and policy; its raw per-seed points go to the JSON only."""
    lengths = [n for n in LENGTHS if n < evals] + [evals]
    rows = []
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        folder = write_truth_target(Path(scratch) / "truth")
        target = load_target(folder)
        for name in regimes:
            regime = REGIMES[name]
            for policy in policies:
                preset, settings = POLICIES[policy]
                points = []
                for seed in range(seeds):
                    run_dir = Path(scratch) / f"{name}-{policy}-{seed}"
                    preset_run(
                        folder, preset, seed, evals, run_dir, TruthEvaluation(regime),
                        operator=TruthOperator(regime), **settings,
                    )  # fmt: skip
                    points.append(trajectory(run_dir, regime, lengths, target, seed))
                rows.append(_row(name, policy, points, lengths))
    return rows


def trajectory(
    run_dir: Path, regime: Regime, lengths: list[int], target: Target, run_seed: int
) -> dict[int, dict[str, float]]:
    """After each of `lengths` evaluations (every candidate whose fate was final by then, in
    the order they were) of the run with seed `run_seed`: the true, reported and confirmed gains
    of the run's best, in sigma, and the evaluations per evaluated candidate so far."""
    columns = [
        "event", "candidate_id", "seeds", "metrics", "accepted", "fitness", "sources",
        "finished_at",
    ]  # fmt: skip
    rows = read_lineage(run_dir / "lineage", columns).to_pylist()
    found = sorted(
        (r for r in rows if r["event"] == "candidate" and r["metrics"]),
        key=lambda r: r["finished_at"],
    )
    seed = next(r for r in found if r["candidate_id"] == 0)
    fresh = [run_seed * 1000 + CONFIRM_INDEX + i for i in range(CONFIRM_SEEDS)]
    evaluation = TruthEvaluation(regime)

    def measure(row: dict) -> list[float]:
        sources = json.loads(row["sources"])
        return [evaluation(target, sources, seed=s).metric for s in fresh]

    seed_confirmed = measure(seed)  # the same at every length

    def point() -> dict[str, float]:
        estimated = estimated_gain(programs, best["candidate_id"], seed["candidate_id"])
        return _point(
            seed, best, regime, done, candidates, seed_confirmed, measure(best), estimated
        )

    points: dict[int, dict[str, float]] = {}
    done, candidates, best = 0, 0, seed
    programs: dict[int, dict[int, float]] = {}
    remaining = sorted(lengths)
    for row in found:
        count = len(row["metrics"])
        while remaining and done + count > remaining[0]:
            points[remaining.pop(0)] = point()
        done += count
        candidates += row["candidate_id"] != 0
        metrics = zip(row["seeds"], row["metrics"], strict=True)
        programs[row["candidate_id"]] = {s: m for s, m in metrics if m is not None}
        if row["accepted"] and row["fitness"] < best["fitness"]:
            best = row
    for length in remaining:
        points[length] = point()
    return points


def estimated_gain(programs: dict[int, dict[int, float]], best: int, seed: int) -> float:
    """What `evo lineage` says program `best` gained over the seed program, in units of SIGMA:
    its estimate where the run's noise rests on enough pairs, else its measured paired gain."""
    if best == seed:
        return 0.0
    noise = Noise({p: m for p, m in programs.items() if len(m) > 1})
    found = luck.of_run(programs, best, seed, noise.level, minimize=True)
    if isinstance(found, luck.Estimate):
        return found.gain * noise.sigma / SIGMA
    gain, _ = paired_gain(programs[best], programs[seed], SIGMA, minimize=True)
    return gain


def _point(
    seed: dict,
    best: dict,
    regime: Regime,
    done: int,
    candidates: int,
    seed_confirmed: list[float],
    best_confirmed: list[float],
    estimated: float,
) -> dict[str, float]:
    """One point of a trajectory; `*_confirmed`: the metrics on the fresh seeds; `estimated`:
    what the run says the best gained (`estimated_gain`)."""
    true = -true_loss(json.loads(best["sources"]), regime)
    reported = (seed["fitness"] - best["fitness"]) / SIGMA
    pairs = zip(seed_confirmed, best_confirmed, strict=True)
    confirmed = statistics.fmean(a - b for a, b in pairs) / SIGMA
    return {
        "true": true,
        "reported": reported,
        "optimism": reported - true,
        "estimated_error": estimated - true,
        "confirmed_error": confirmed - true,
        "evals_per_candidate": (done - len(seed["metrics"])) / max(1, candidates),
    }


def median_error(values: list[float]) -> float:
    """The standard error of the median of `values` (a seeded bootstrap: the same values read
    the same), what a difference between two policies' medians is to be read against."""
    resampled = np.random.default_rng(0).choice(values, size=(BOOTSTRAP, len(values)))
    return float(np.median(resampled, axis=1).std())


def _row(regime: str, policy: str, points: list[dict], lengths: list[int]) -> dict:
    row: dict = {"regime": regime, "policy": policy, "seeds": len(points)}
    for n in lengths:
        at = [p[n] for p in points]
        true = sorted(p["true"] for p in at)
        sample = true if len(true) > 1 else true * 2  # quantiles need two points
        low, median, high = statistics.quantiles(sample, n=4, method="inclusive")
        error = median_error(true)
        row[f"true_{n}"] = f"{median:.2f} ± {error:.2f} ({low:.2f} - {high:.2f})"
        for column in COLUMNS[1:]:
            row[f"{column}_{n}"] = round(statistics.median(p[column] for p in at), 2)
        row[f"worse_{n}"] = f"{sum(t < 0 for t in true)}/{len(true)}"
    last = [p[lengths[-1]]["evals_per_candidate"] for p in points]
    row["evals_per_candidate"] = round(statistics.median(last), 2)
    row["points"] = [{n: p[n] for n in lengths} for p in points]
    return row
