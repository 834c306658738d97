"""The run's noise: how much a program's metric moves when only the seed changes, estimated from
every program the run evaluated more than once, and refined as the run goes.

    sigma^2 = sum over programs p of sum_k (x_pk - mean_p)^2  /  sum over programs of (n_p - 1)

x_pk is program p's k-th successful evaluation (on the run's k-th seed) and n_p their number:
the pooled within-program variance, each program weighted by its degrees of freedom. The seed
program's noise round opens it (alone, the seed's sample standard deviation); then every
candidate evaluated again (a gain too small to decide on one seed earns another) adds its spread.
Its standard error, sigma / sqrt(2 * dof), is what a normal sample's standard deviation has.

What it does not separate: the part of the spread that a seed causes in every program alike
(the same data order, the same initialisation), which paired comparisons on shared seeds cancel;
so sigma is an upper bound on the noise a paired comparison faces. Candidates are evaluated again
only after a first evaluation that fell just short of the threshold; that selection makes their
spread a little smaller than sigma (in a simulation of the default threshold and repeats, 1-5%
smaller). Failed evaluations are not in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
