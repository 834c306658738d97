"""What a run has learnt about its edits: how often one improves its parent, and by how much.

Every evaluated child measured on a seed its parent was measured on gives a paired gain over its
parent, in units of the run's sigma (evo.search.noise; positive: better):

    d = delta + noise,    noise ~ N(0, 1 / n)        (n: the seeds the two share)

where delta is the edit's true gain. The distribution of delta is estimated by g-modelling
(Efron, 2016): a discrete distribution on GRID (-8 to +8 sigma by 0.25) whose weights maximise
the likelihood of the observed d (EM), smoothed towards N(0, 3) by one pseudo-observation
(PRIOR_WEIGHT: more pulls a 3% share of improving edits towards the prior's half). From it: the
share of edits that improve (the weight above zero) and their typical size (the mean gain of
those). The few hundred edits of a run tell gains under half a sigma poorly from none: where
most gains are that small, both figures come out blurred (a quarter of edits gaining 0.37 sigma
on average read as 20% gaining 0.6). Uncertainty: the 10th and 90th percentiles over BOOTSTRAP
resamples of the edits.

What it does not see: a parent's measurement is the one it was selected on (a crowned parent was
lucky on its seeds, which makes its children's gains look smaller: the share improving is, if
anything, under-estimated); crashes are counted apart, as the share of edits that crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = np.arange(-8.0, 8.0 + 1e-9, 0.25)
PRIOR_WEIGHT = 1.0  # pseudo-observations of N(0, PRIOR_SD)
PRIOR_SD = 3.0
ITERATIONS = 200
BOOTSTRAP = 40
MIN_EDITS = 10  # fewer paired gains say nothing worth printing


@dataclass(frozen=True)
class EditEffects:
    """The estimate, with the 10th-90th percentile range of each figure."""

    edits: int  # paired gains it rests on
    improving: float  # share of edits whose true gain is above zero
    improving_range: tuple[float, float]
    gain: float  # mean true gain of those, in sigma
    gain_range: tuple[float, float]

    def describe(self, crashed: int = 0, tried: int = 0) -> str:
        """One line for `evo lineage`; `crashed` of `tried` edits crashed."""
        low, high = self.improving_range
        line = (
            f"edits: {100 * self.improving:.0f}% improve their parent "
            f"({100 * low:.0f}-{100 * high:.0f}%), by {self.gain:.2f} sigma where they do "
            f"({self.gain_range[0]:.2f}-{self.gain_range[1]:.2f}); from {self.edits} paired gains"
        )
        if tried:
            line += f"; {100 * crashed / tried:.0f}% of {tried} edits crashed"
        return line


def fit(
    gains: np.ndarray, spread: np.ndarray, grid: np.ndarray = GRID, prior: np.ndarray | None = None
) -> np.ndarray:
    """The weights on `grid` of the true gains' distribution, given each measured gain in sigma
    (`gains`) and the standard deviation of its noise (`spread`; an edit's paired gain on n
    seeds: 1 / sqrt(n)), smoothed towards `prior` (weights on `grid`; N(0, PRIOR_SD) if None)
    by PRIOR_WEIGHT pseudo-observations."""
    if prior is None:
        prior = np.exp(-0.5 * (grid / PRIOR_SD) ** 2)
    prior = prior / prior.sum()
    likelihood = likelihoods(gains, spread, grid)
    weights = prior
    for _ in range(ITERATIONS):
        joint = likelihood * weights
        joint /= joint.sum(axis=1, keepdims=True)
        weights = (joint.sum(axis=0) + PRIOR_WEIGHT * prior) / (len(gains) + PRIOR_WEIGHT)
    return weights


def likelihoods(gains: np.ndarray, spread: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each gain's likelihood at each point of `grid`, up to a factor of its own (which a
    normalisation over the grid removes): scaled to 1 at its largest, so that a gain far off the
    grid (a broken or forged measurement) does not underflow to 0 everywhere and make every
    figure NaN."""
    log_likelihood = -0.5 * ((gains[:, None] - grid) / spread[:, None]) ** 2
    return np.exp(log_likelihood - log_likelihood.max(axis=1, keepdims=True))


def _figures(weights: np.ndarray) -> tuple[float, float]:
    above = GRID > 0
    improving = float(weights[above].sum())
    gain = float((weights[above] * GRID[above]).sum() / improving) if improving else 0.0
    return improving, gain


def estimate(gains: list[float], shared: list[int], seed: int = 0) -> EditEffects | None:
    """The estimate from paired gains in sigma and their shared seeds; None for fewer than
    MIN_EDITS."""
    if len(gains) < MIN_EDITS:
        return None
    values, spreads = np.asarray(gains, float), 1 / np.sqrt(np.asarray(shared, float))
    improving, gain = _figures(fit(values, spreads))
    rng = np.random.default_rng(seed)
    resampled = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(values), len(values))
        resampled.append(_figures(fit(values[pick], spreads[pick])))
    shares, sizes = np.array(resampled).T
    return EditEffects(
        len(values),
        improving,
        (float(np.percentile(shares, 10)), float(np.percentile(shares, 90))),
        gain,
        (float(np.percentile(sizes, 10)), float(np.percentile(sizes, 90))),
    )


def paired_gain(
    metrics: dict[int, float], reference: dict[int, float], sigma: float, minimize: bool
) -> tuple[float, int] | None:
    """A program's mean gain over `reference` on the seeds they share (seed -> metric), in
    sigma, and how many they share; None without a shared seed or a sigma."""
    seeds = sorted(set(metrics) & set(reference))
    if not seeds or not sigma:
        return None
    difference = sum(reference[s] - metrics[s] for s in seeds) / len(seeds)
    return (difference if minimize else -difference) / sigma, len(seeds)


def paired_gains(
    children: list[tuple[int | None, dict[int, float]]],
    programs: dict[int, dict[int, float]],
    sigma: float,
    minimize: bool,
) -> tuple[list[float], list[int]]:
    """Each child's paired gain over its parent and how many seeds they share (`paired_gain`):
    `children` as (parent id, seed -> metric), `programs` every program's metrics by id.
    Children without a parent, a metric or a shared seed are left out."""
    pairs = [
        paired_gain(metrics, programs.get(parent_id, {}), sigma, minimize)
        for parent_id, metrics in children
    ]
    found = [pair for pair in pairs if pair]
    return [gain for gain, _ in found], [shared for _, shared in found]
