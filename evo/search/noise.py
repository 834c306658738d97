"""The run's noise: how much a program's metric moves when only the seed changes, estimated from
every program the run evaluated more than once, and refined as the run goes.

    sigma^2 = sum over programs p of sum_k (x_pk - mean_p)^2  /  sum over programs of (n_p - 1)

x_pk is program p's k-th successful evaluation (on the run's k-th seed) and n_p their number:
the pooled within-program variance, each program weighted by its degrees of freedom. The seed
program's noise round opens it (alone, the seed's sample standard deviation); then every
candidate evaluated again (a gain too small to decide on one seed earns another) adds its spread.
Its standard error, sigma / sqrt(2 * dof), is what a normal sample's standard deviation has.

How far a verdict may trust it (`judging`): a gain is decisive when it exceeds k standard
deviations of the mean, and with sigma itself estimated on few degrees of freedom, k of the
estimated ones is far less sure than k of the true ones (the seed program's three evaluations
give 2: the estimate is below half the truth one time in five). So verdicts use sigma widened by
t_dof(q) / k, where q = Phi(k) is the one-sided confidence k stands for under the normal and
t_dof(q) Student's t quantile: the same confidence, now with the estimate's own uncertainty;
x2.26 at 2 degrees of freedom, x1.32 at 5, x1.07 at 20, x1.01 at 100.

What it does not separate: the part of the spread that a seed causes in every program alike
(the same data order, the same initialisation), which paired comparisons on shared seeds cancel;
so sigma is an upper bound on the noise a paired comparison faces. Candidates are evaluated again
only after a first evaluation that fell just short of the threshold; that selection makes their
spread a little smaller than sigma (in a simulation of the default threshold and repeats, 1-5%
smaller). Failed evaluations are not in it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass
class Noise:
    """Pooled sum of squared deviations from each program's mean, and its degrees of freedom."""

    sum_squares: float = 0.0
    dof: int = 0

    def add(self, earlier: list[float], value: float) -> None:
        """A program evaluated before (`earlier`: its successful metrics) measured `value`."""
        if not earlier:
            return  # one evaluation says nothing about the spread
        mean = sum(earlier) / len(earlier)
        # Welford: what the new value adds to the program's sum of squared deviations
        self.sum_squares += (value - mean) * (
            value - (mean * len(earlier) + value) / (len(earlier) + 1)
        )
        self.dof += 1

    def add_program(self, metrics: list[float]) -> None:
        """Every metric of one program, in the order they were measured."""
        for count, value in enumerate(metrics):
            self.add(metrics[:count], value)

    @property
    def sigma(self) -> float:
        return math.sqrt(self.sum_squares / self.dof) if self.dof else 0.0

    def judging(self, k: float) -> float:
        """sigma as verdicts by k of it use it: widened for the few degrees of freedom it rests
        on (see above); 0 before any."""
        if not self.dof or k <= 0:
            return self.sigma
        return self.sigma * t_quantile(NormalDist().cdf(k), self.dof) / k

    @property
    def stderr(self) -> float:
        """The standard error of sigma."""
        return self.sigma / math.sqrt(2 * self.dof) if self.dof else 0.0

    def to_json(self) -> dict:
        return {"sum_squares": self.sum_squares, "dof": self.dof}

    @classmethod
    def from_json(cls, data: dict | None, sigma: float) -> Noise:
        """From a checkpoint; one from before pooling holds only the seed's sigma, taken as from
        the three evaluations of those runs."""
        if data is None:
            return cls(2 * sigma * sigma, 2)
        return cls(data["sum_squares"], data["dof"])


@functools.lru_cache(maxsize=1024)
def t_quantile(q: float, dof: int) -> float:
    """Student's t quantile at q (above 1/2) with `dof` degrees of freedom: bisection on its
    distribution function, the finite series of Abramowitz and Stegun 26.7.3-4 (integer dof);
    the normal's past 1,000 degrees of freedom, where they differ by under 0.1%."""
    if dof > 1000:
        return NormalDist().inv_cdf(q)
    low, high = 0.0, 1.0
    while _t_within(high, dof) < 2 * q - 1:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_within(middle, dof) < 2 * q - 1 else (low, middle)
    return (low + high) / 2


def _t_within(t: float, dof: int) -> float:
    """P(|T| < t) for Student's T with `dof` degrees of freedom."""
    theta = math.atan(t / math.sqrt(dof))
    cos2 = math.cos(theta) ** 2
    term = total = 1.0
    if dof % 2 == 0:
        for j in range(1, dof // 2):
            term *= cos2 * (2 * j - 1) / (2 * j)
            total += term
        return math.sin(theta) * total
    if dof == 1:
        return 2 * theta / math.pi
    for j in range(1, (dof - 1) // 2):
        term *= cos2 * (2 * j) / (2 * j + 1)
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
