"""An island: a bounded population, its champion and its own RNG.

Pure logic, no Ray: the run wraps it in an actor and rebuilds it from checkpoints.

Parents. While the island improves, the parent is its champion (greedy steps); once it has gone
`patience` attempts without a gain, a tournament's winner among the members it keeps, worse
ones included (how a population crosses a ridge that a chain cannot), or with probability
`explore` any member. For a share `crossover` of proposals a second member, the mate, is drawn
by tournament too, for the operator to combine with the parent.

Noise-aware selection. Evaluation k of every program uses the run's k-th seed, so a candidate
and the champion it must beat are compared on the same seeds (paired), and a change of seed
alone cancels out. A candidate replaces the champion only when its mean gain on the shared seeds
exceeds k * sigma / sqrt(n) (sigma: the run's estimate, as of the verdict, of how much a paired
difference on one seed varies, evo.search.noise; n: shared evaluations) and it has been evaluated
at least min_repeats times. A smaller positive gain earns another evaluation, up to max_repeats;
after that the candidate may still join the population, but does not become the champion. By
default k is 0 and min_repeats 2: a candidate that measures better than the champion on one seed
is evaluated on a second, and replaces the champion if its mean on the two still is. At realistic
signal-to-noise (gains rare and about the noise's size) a threshold turns most real gains away,
while the second seed costs 3-13% more evaluations and buys pairs for the noise estimate, a
crowned gain with less luck, and the estimate of how much of the best's gain is real
(evo.search.luck); the champion's lucky evaluations are a higher bar than its true metric, which
keeps small losses from piling up (BENCHMARKS.md "realistic"; min_repeats 1: one agent's loop).

Sure gains. A gain past sure_k sigma / sqrt(n) (3; a candidate no better than the champion
measures that once in 700 evaluations) is crowned before min_repeats: a second seed would check
what is not in doubt (BENCHMARKS.md "efficiency"). Only once sigma rests on MIN_PAIRED_DOF paired
degrees of freedom: from the seed's spread alone it can be a tenth of the truth, every lucky gain
would look sure, and no pair would come to correct it (BENCHMARKS.md "noise").

Surprises. A gain of more than surprise_k sigma (10 by default: far beyond what an edit usually
buys, and what a forged or broken measurement, or a lucky one picked from hundreds, looks like)
is not crowned on the evaluations it was selected on: the candidate is evaluated on FRESH_SEEDS
more seeds, and crowned only if its gain on those (paired with the champion where it has the
seed, else against its mean) is at least half the surprise, as its lineage row says
(Selection.surprise). A migrant was judged on its own island already: it is not asked again.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields

from evo.config import SearchConfig
from evo.search.noise import Level
from evo.status import Status

FRESH_SEEDS = 2
SURPRISE = "surprise:"  # how the lineage reason of such a candidate starts (the report marks it)


@dataclass(frozen=True)
class Member:
    """A program of a population with its evaluations (seed index -> metric), what its latest
    evaluation measured besides (evo.search.candidate.Evaluation.measured), and the hypothesis
    it was made by."""

    id: int
    sources: dict[str, str]
    metrics: dict[int, float] = field(default_factory=dict)
    generation: int = 0
    details: dict = field(default_factory=dict)
    hypothesis: str = ""

    @property
    def fitness(self) -> float:
        """The mean metric; NaN before the first (the seed program while it is measured)."""
        return sum(self.metrics.values()) / len(self.metrics) if self.metrics else math.nan

    def to_state(self) -> dict:
        """JSON-ready: the metrics' seed indices as numbers, not the strings JSON keys become."""
        return asdict(self) | {"metrics": [[k, v] for k, v in self.metrics.items()]}

    @classmethod
    def from_state(cls, state: dict) -> Member:  # a state from before recombination: no hypothesis
        return cls(**state | {"metrics": {int(k): v for k, v in state["metrics"]}})


@dataclass(frozen=True)
class Selection:
    """Parent choice and acceptance settings (see evo.config.SearchConfig for their meaning)."""

    population: int
    tournament: int
    explore: float
    patience: int
    crossover: float
    noise_k: float
    max_repeats: int
    min_repeats: int
    sure_k: float
    surprise_k: float
    minimize: bool

    @classmethod
    def of(cls, search: SearchConfig, minimize: bool) -> Selection:
        """The island's part of a run's [search] settings."""
        shared = {f.name for f in fields(cls)} - {"minimize"}
        return cls(**{name: getattr(search, name) for name in shared}, minimize=minimize)

    def gain(self, candidate: Member, incumbent: Member) -> tuple[float, int]:
        """Mean improvement of candidate over incumbent on their shared seeds (> 0 is better),
        and how many seeds they share (at least 1: without any, their means are compared)."""
        shared = sorted(set(candidate.metrics) & set(incumbent.metrics))
        if shared:
            mine = sum(candidate.metrics[i] for i in shared) / len(shared)
            theirs = sum(incumbent.metrics[i] for i in shared) / len(shared)
        else:
            mine, theirs = candidate.fitness, incumbent.fitness
        difference = theirs - mine if self.minimize else mine - theirs
        return difference, max(1, len(shared))

    def clear(self, gain: float, shared: int, sigma: float) -> bool:
        """Whether a gain on `shared` paired seeds is beyond the noise: k sigma / sqrt(n)."""
        return gain > self.noise_k * sigma / math.sqrt(shared)

    def sure(self, gain: float, shared: int, sigma: float) -> bool:
        """Whether a gain is so far beyond the noise that more seeds would not change the
        verdict: past sure_k sigma / sqrt(n)."""
        return bool(self.sure_k) and gain > self.sure_k * sigma / math.sqrt(shared)

    def surprising(self, gain: float, sigma: float) -> bool:
        """Whether a gain is too large to crown on the seeds it was selected on."""
        return bool(self.surprise_k) and sigma > 0 and gain > self.surprise_k * sigma

    def confirmation(self, candidate: Member, incumbent: Member) -> tuple[float, int]:
        """The candidate's mean gain on the evaluations after the min_repeats it was selected on
        (paired where the incumbent has the seed, else against its mean), and how many."""
        later = sorted(candidate.metrics)[self.min_repeats :]
        if not later:
            return math.nan, 0
        theirs = [incumbent.metrics.get(i, incumbent.fitness) for i in later]
        mine = [candidate.metrics[i] for i in later]
        difference = sum(theirs) - sum(mine) if self.minimize else sum(mine) - sum(theirs)
        return difference / len(later), len(later)

    def surprise(self, candidate: Member, incumbent: Member | None, sigma: float) -> str:
        """What the lineage says of a candidate whose gain over `incumbent` was a surprise (""
        for any other)."""
        if incumbent is None:
            return ""
        gain, _ = self.gain(candidate, incumbent)
        if not self.surprising(gain, sigma):
            return ""
        held, count = self.confirmation(candidate, incumbent)
        said = f"{SURPRISE} a gain of {gain / sigma:.1f} sigma"
        if count < FRESH_SEEDS:
            return f"{said}, not confirmed on {FRESH_SEEDS} more seeds"
        verdict = "confirmed" if held >= gain / 2 else "not confirmed"
        return f"{said}, {verdict} on {count} more seeds ({held / sigma:.1f} sigma there)"


class Island:
    def __init__(self, index: int, selection: Selection, noise: Level, seed: int):
        self.index = index
        self.selection = selection
        self.noise = noise  # the run's, as of the latest verdict, migration or reset
        self.rng = random.Random(f"{seed}-{index}")
        self.population: list[Member] = []
        self.champion: Member | None = None
        self.evaluations = 0
        self.since_improvement = 0  # evaluations since the champion last changed
        self.misses = 0  # proposals the operator could not make since then

    @classmethod
    def founded(cls, index: int, selection: Selection, noise: Level, seed: int, founder: Member):
        """A new island whose population is the founder alone."""
        island = cls(index, selection, noise, seed)
        island.reset(founder)
        return island

    # ------------------------------------------------------------------ choosing parents

    def select_parent(self) -> Member:
        """The champion while the island improves (within `patience` attempts, evaluations or
        misses, of its last gain: greedy steps are what a young search needs), else a
        tournament's winner or, with probability `explore`, any member."""
        if self.since_improvement + self.misses < self.selection.patience:
            return self.champion
        if self.rng.random() < self.selection.explore:
            return self.rng.choice(self.population)
        size = min(self.selection.tournament, len(self.population))
        return min(self.rng.sample(self.population, size), key=self._rank)

    def select_mate(self, parent: Member) -> Member | None:
        """A second parent to combine `parent` with, for a share `crossover` of proposals: a
        tournament's winner among the other members (a migrant brings another island's
        lineage); None for a proposal that changes the parent alone."""
        others = [m for m in self.population if m.id != parent.id]
        if not (others and self.selection.crossover):  # no draw: the RNG's sequence is kept
            return None
        if self.rng.random() >= self.selection.crossover:
            return None
        size = min(self.selection.tournament, len(others))
        return min(self.rng.sample(others, size), key=self._rank)

    def _rank(self, member: Member) -> float:
        return member.fitness if self.selection.minimize else -member.fitness

    # ------------------------------------------------------------------ judging children

    def judge(self, candidate: Member, migrant: bool = False) -> Status:
        """accepted (new champion), repeat (evaluate again), kept (joins), or rejected. A
        `migrant` was judged on its own island already: no surprise is asked to reproduce."""
        gain, shared = self.selection.gain(candidate, self.champion)
        sigma = self.noise.sigma
        if self.selection.clear(gain, shared, sigma):
            early = len(candidate.metrics) < self.selection.min_repeats
            if early and not (self.noise.paired and self.selection.sure(gain, shared, sigma)):
                return Status.REPEAT
            if migrant or not self.selection.surprising(gain, sigma):
                return Status.ACCEPTED
            held, count = self.selection.confirmation(candidate, self.champion)
            if count < FRESH_SEEDS:
                return Status.REPEAT
            if held >= gain / 2:
                return Status.ACCEPTED
        if gain > 0 and len(candidate.metrics) < self.selection.max_repeats:
            return Status.REPEAT
        room = len(self.population) < self.selection.population
        removable = [m for m in self.population if m is not self.champion]  # the champion stays
        worst = max(removable, key=self._rank, default=None)
        better = worst is not None and self._rank(candidate) < self._rank(worst)
        return Status.KEPT if room or better else Status.REJECTED

    def settle(self, candidate: Member, verdict: Status) -> None:
        """Apply a candidate's final fate (a verdict, or a failed evaluation): the population and
        champion change, counters move."""
        self.evaluations += len(candidate.metrics)
        self.since_improvement += len(candidate.metrics)
        if verdict == Status.ACCEPTED:
            self._crown(candidate)
        if verdict in (Status.ACCEPTED, Status.KEPT):
            self._insert(candidate)

    def _insert(self, member: Member) -> None:
        self.population = [m for m in self.population if m.id != member.id] + [member]
        while len(self.population) > self.selection.population:
            removable = [m for m in self.population if m is not self.champion]
            self.population.remove(max(removable, key=self._rank))

    # ------------------------------------------------------------------ migration and resets

    def best(self, count: int = 1) -> list[Member]:
        others = sorted((m for m in self.population if m is not self.champion), key=self._rank)
        return ([self.champion] + others)[:count]

    def runner_up(self) -> Member:
        """The best member besides the champion (the champion where it is alone): a program
        near the champion but not the same, to found a new island from."""
        return self.best(2)[-1]

    def receive(self, migrant: Member) -> Status:
        """A program from another island: it may become champion, join, or be turned away."""
        if any(m.id == migrant.id for m in self.population):
            return Status.REJECTED
        verdict = self.judge(migrant, migrant=True)
        verdict = Status.KEPT if verdict == Status.REPEAT else verdict
        if verdict == Status.ACCEPTED:
            self._crown(migrant)
        if verdict in (Status.ACCEPTED, Status.KEPT):
            self._insert(migrant)
        return verdict

    def reset(self, founder: Member) -> None:
        """Start again from another island's champion (this island stagnated)."""
        self.population = [founder]
        self._crown(founder)

    def missed(self) -> None:
        """The operator could make no child of the parent it was given (with the offline
        operator: every one-step change of it was tried): an attempt without a gain."""
        self.misses += 1

    def _crown(self, member: Member) -> None:
        self.champion = member
        self.since_improvement = self.misses = 0

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {
            "index": self.index,
            "sigma": self.noise.sigma,
            "dof": self.noise.dof,
            "rng": [version, list(internal), gauss],
            "population": [m.to_state() for m in self.population],
            "champion": self.champion.id if self.champion else None,
            "evaluations": self.evaluations,
            "since_improvement": self.since_improvement,
            "misses": self.misses,
        }

    @classmethod
    def from_state(cls, state: dict, selection: Selection) -> Island:
        noise = Level(state["sigma"], state.get("dof", 0))  # none before sure gains
        island = cls(state["index"], selection, noise, seed=0)
        version, internal, gauss = state["rng"]
        island.rng.setstate((version, tuple(internal), gauss))
        island.population = [Member.from_state(m) for m in state["population"]]
        island.champion = next(m for m in island.population if m.id == state["champion"])
        island.evaluations = state["evaluations"]
        island.since_improvement = state["since_improvement"]
        island.misses = state.get("misses", 0)  # none before patience
        return island
