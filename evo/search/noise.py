"""The run's noise: how much the difference between two programs measured on the same seed moves
when only the seed changes. Estimated from every program the run evaluated more than once, and
refined as the run goes.

A program p's metric on the run's k-th seed is taken as  x_pk = mu_p + s_k + e_pk.  s_k is what
the seed does to every program alike (the same initialisation, the same order of the data), which
a comparison on shared seeds cancels; e_pk is the program's own (another number of steps in a
wall-clock budget, non-deterministic kernels), which it does not. A paired difference on one seed
varies by 2 var(e): that is sigma^2, what the acceptance threshold k sigma / sqrt(n) uses
(evo.search.island). Least squares over the programs evaluated at least twice (each program's
mean, each seed's effect) leaves the residual sum of squares RSS on

    dof = N - P - (S - 1)            N evaluations of P programs on S seeds

degrees of freedom, and 2 RSS / dof estimates sigma^2. One program alone (the seed program's
noise round) cannot tell s from e, and two or three pairs say little; so the estimate starts from
the spread of one program's metric between seeds,

    spread^2 = sum over p of sum_k (x_pk - mean_p)^2 / sum over p of (n_p - 1)  = var(s) + var(e),

which is sigma^2 where half of that variance is shared, and counts it as PRIOR_DOF degrees of
freedom:

    sigma^2 = (2 RSS + PRIOR_DOF spread^2) / (dof + PRIOR_DOF)

Where the noise is all shared (sigma -> 0) or all the program's own (sigma -> sqrt(2) spread),
the estimate moves there as pairs come, no faster than a couple of lucky pairs allow. Its
standard error is about sigma / sqrt(2 (dof + PRIOR_DOF)), what a normal sample's standard
deviation has.

What it does not see: candidates are evaluated again only after a first evaluation that fell
short of the threshold, which makes their residuals a little smaller than e's (in a simulation of
the default threshold and repeats, 1-5% smaller); a seed effect that differs between programs
(a change that makes training more sensitive to its initialisation) counts as a program's own.
Failed evaluations are not in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PRIOR_DOF = 2  # the weight of the seed's spread: as much as a noise round of 3 evaluations
MIN_PAIRED_DOF = 4  # pairs enough for sigma to be trusted with a verdict on one seed, an estimate


def standard_error(sigma: float, dof: int) -> float:
    """The standard error, about, of an estimate `sigma` on `dof` paired degrees of freedom
    (the prior's counted too)."""
    return sigma / math.sqrt(2 * (dof + PRIOR_DOF))


@dataclass(frozen=True)
class Level:
    """The run's noise as a verdict or an estimate takes it: sigma, and the paired degrees of
    freedom it rests on."""

    sigma: float
    dof: int = 0

    @property
    def paired(self) -> bool:
        """Whether sigma rests on MIN_PAIRED_DOF paired degrees of freedom: from the seed
        program's spread alone it can be a tenth of the truth (BENCHMARKS.md "noise")."""
        return self.dof >= MIN_PAIRED_DOF


@dataclass
class Noise:
    """The metrics of every program measured more than once (program id -> seed index -> metric);
    `earlier`: the pooled sum of squares and degrees of freedom of a checkpoint from before
    pairing, which held nothing else."""

    programs: dict[int, dict[int, float]] = field(default_factory=dict)
    earlier: tuple[float, int] = (0.0, 0)

    def __post_init__(self) -> None:
        # Running sums, so that a run's thousandth repeat costs what its first did: the normal
        # equations of the seeds' effects once each program's mean is taken out (normal @
        # effects = right), the programs' sums of squares about their means, and counts.
        self._columns: dict[int, int] = {}
        self._normal, self._right = np.zeros((0, 0)), np.zeros(0)
        self._within, self._within_dof, self._count = 0.0, 0, 0
        for metrics in self.programs.values():
            self._count_in(metrics, +1)
        self._estimate()

    def add(self, program: int, metrics: dict[int, float]) -> None:
        """Program `program` has measured `metrics` (seed index -> metric) so far."""
        if len(metrics) < 2 or self.programs.get(program) == metrics:  # nothing new to fit
            return
        if program in self.programs:
            self._count_in(self.programs[program], -1)
        self.programs[program] = dict(metrics)
        self._count_in(metrics, +1)
        self._estimate()

    def _count_in(self, metrics: dict[int, float], sign: int) -> None:
        for seed in metrics:
            if seed not in self._columns:
                self._columns[seed] = len(self._columns)
                self._normal = np.pad(self._normal, (0, 1))
                self._right = np.pad(self._right, (0, 1))
        at = [self._columns[seed] for seed in metrics]
        values = np.fromiter(metrics.values(), float, len(metrics))
        centred = values - values.mean()
        self._within += sign * float(centred @ centred)
        self._within_dof += sign * (len(values) - 1)
        self._count += sign * len(values)
        self._normal[np.ix_(at, at)] += sign * (np.eye(len(at)) - 1.0 / len(at))
        self._right[at] += sign * centred

    def _estimate(self) -> None:
        within = self.earlier[0] + self._within
        within_dof = self.earlier[1] + self._within_dof
        self.spread = math.sqrt(within / within_dof) if within_dof else 0.0
        if self.programs:
            effects, _, rank, _ = np.linalg.lstsq(self._normal, self._right, rcond=None)
            # at the least-squares effects, RSS = within - effects . right (never below 0 but
            # by rounding)
            self.residual = max(0.0, self._within - float(effects @ self._right))
        else:
            self.residual, rank = 0.0, 0
        self.dof = self._count - len(self.programs) - int(rank)
        weight = self.dof + PRIOR_DOF if within_dof else 0
        prior = PRIOR_DOF * self.spread**2
        self.sigma = math.sqrt((2 * self.residual + prior) / weight) if weight else 0.0

    @property
    def level(self) -> Level:
        return Level(self.sigma, self.dof)

    @property
    def stderr(self) -> float:
        """The standard error of sigma."""
        return standard_error(self.sigma, self.dof) if self.spread else 0.0

    def to_json(self) -> dict:
        return {
            "programs": [[p, [[k, v] for k, v in m.items()]] for p, m in self.programs.items()],
            "earlier": list(self.earlier),
            "dof": self.dof,  # for readers of the checkpoint (evo lineage)
        }

    @classmethod
    def from_json(cls, data: dict | None, sigma: float) -> Noise:
        """From a checkpoint. One from before pairing holds the pooled sum of squares and degrees
        of freedom; one from before pooling only the seed's sigma, taken as from the three
        evaluations of those runs."""
        if data is None:
            return cls(earlier=(2 * sigma * sigma, 2))
        if "programs" not in data:
            return cls(earlier=(data["sum_squares"], data["dof"]))
        programs = {p: {int(k): v for k, v in metrics} for p, metrics in data["programs"]}
        return cls(programs, tuple(data["earlier"]))
