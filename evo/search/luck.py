"""How much of a program's measured gain is luck: an empirical-Bayes estimate of its true gain.

A run's best is the program that measured best among hundreds, and so, partly, the one whose
noise was luckiest: its measured gain over the seed program overstates its true gain (by 0.5-1.8
sigma in `evo bench realistic` where a candidate is crowned on one seed, up to 0.55 on two). The
estimate takes that out as empirical Bayes does (Efron, "Tweedie's formula and selection bias",
2011). Every program measured on seeds the seed program was measured on has a paired gain over
it, in the run's sigma (positive: better),

    x_p = theta_p + c + e_p,        e_p ~ N(0, 1 / (2 n_p))

theta_p its true gain, e_p its own noise on its n_p shared seeds (half of a paired difference's
variance; the other half, c, is the seed program's own noise on those seeds, the same in every
x). The distribution of theta + c over the run's programs is fitted to the x's (g-modelling,
evo.search.effects.fit, on a grid that spans them), and a program's estimate is its posterior
mean under it. The posterior is the same whichever program was picked and why, so picking the
largest x does not bias it: the winner's curse is in x, not in the posterior. The range is the
10th to 90th percentiles of a normal with the posterior's variance plus c's.

What it rests on: the run's sigma measured on pairs. A run whose candidates are evaluated once
each (min_repeats 1) has only the seed program's spread between seeds, which counts what the
seed does to every program as well and may be twice the paired sigma or half of it; such a run
gets no estimate (`of_run` asks for MIN_PAIRED_DOF paired degrees of freedom, evo.search.noise;
`evo bench realistic` measured the estimate against the truth). What it does not see: that
programs share ancestors (an edit's luck lives on in its descendants' x, which makes the fitted
distribution a little narrower than the truth, the estimate a little cautious), and a program's
gain at another budget (`evo confirm --budget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evo.search import effects
from evo.search.noise import MIN_PAIRED_DOF, Level

MIN_PROGRAMS = 10  # fewer paired programs say nothing of the luck of the best among them
STEP = 0.25  # the grid's spacing, in sigma, up to POINTS points
POINTS = 400  # past that, a wider spacing: a gain far off (a broken metric) costs no memory
MARGIN = 4.0  # how far past the smallest and largest x the grid reaches, in sigma
TAIL = 1.2816  # the normal's 90th percentile
MAX_FITTED = 5000  # programs the distribution is fitted to, at most: a sample of a larger run


@dataclass(frozen=True)
class Estimate:
    """A program's true gain over the seed program, in sigma, as measured and as estimated."""

    measured: float  # its paired gain on the seeds it shares with the seed program
    seeds: int  # how many those are
    gain: float  # the posterior mean
    low: float  # the 10th percentile
    high: float  # the 90th percentile
    programs: int  # the paired programs the distribution was fitted to


def paired_gains(
    programs: dict[int, dict[int, float]], seed_id: int, sigma: float, minimize: bool
) -> dict[int, tuple[float, int]]:
    """Each program's paired gain over program `seed_id` and how many seeds they share
    (evo.search.effects.paired_gain): `programs` every program's metrics (id -> seed ->
    metric). Programs without a shared seed are left out, the seed program too."""
    reference = programs.get(seed_id, {})
    pairs = {
        program: effects.paired_gain(metrics, reference, sigma, minimize)
        for program, metrics in programs.items()
        if program != seed_id
    }
    return {program: pair for program, pair in pairs.items() if pair}


def of_run(
    programs: dict[int, dict[int, float]],
    program: int,
    seed_id: int,
    noise: Level,
    minimize: bool,
) -> Estimate | str:
    """`program`'s estimate in a run of that `noise` (`programs`: every program's metrics, id
    -> seed -> metric), or why there is none."""
    if not (noise.sigma and noise.paired):
        return (
            f"sigma rests on {noise.dof} paired degrees of freedom, {MIN_PAIRED_DOF} needed "
            "(each would-be champion measured on a second seed adds one: a longer run brings "
            "them, and --min-repeats 2 where it was 1)"
        )
    found = estimate(paired_gains(programs, seed_id, noise.sigma, minimize), program)
    return found or f"fewer than {MIN_PROGRAMS} paired programs"


def estimate(gains: dict[int, tuple[float, int]], program: int) -> Estimate | None:
    """`program`'s estimate from every program's paired gain (`paired_gains`); None where it
    has none or fewer than MIN_PROGRAMS programs do."""
    if program not in gains or len(gains) < MIN_PROGRAMS:
        return None
    fitted = list(gains.values())
    if len(fitted) > MAX_FITTED:  # a fixed sample: the same run reads the same
        pick = np.random.default_rng(0).choice(len(fitted), MAX_FITTED, replace=False)
        fitted = [fitted[i] for i in pick]
    values = np.array([x for x, _ in fitted])
    spreads = 1 / np.sqrt(2 * np.array([n for _, n in fitted], float))
    measured, shared = gains[program]
    low, high = min(values.min(), measured), max(values.max(), measured)
    step = max(STEP, (high - low + 2 * MARGIN) / POINTS)
    grid = np.arange(low - MARGIN, high + MARGIN + step / 2, step)
    weights = effects.fit(values, spreads, grid, prior=np.ones_like(grid))
    spread = 1 / math.sqrt(2 * shared)
    posterior = effects.likelihoods(np.array([measured]), np.array([spread]), grid)[0] * weights
    posterior /= posterior.sum()
    mean = float(posterior @ grid)
    variance = float(posterior @ (grid - mean) ** 2) + spread**2  # and c's
    half = TAIL * math.sqrt(variance)
    return Estimate(measured, shared, mean, mean - half, mean + half, len(gains))
