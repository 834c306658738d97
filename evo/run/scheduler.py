"""How far ahead to propose, and which island to ask next: the pacing arithmetic, without Ray.

Every evaluator is kept busy. Candidates are proposed ahead, so that mutation, an LLM's latency
included, overlaps with evaluation: one waiting per evaluator, plus as many in flight as the
evaluators use up while one proposal is being made (evaluators x mutation time / evaluation
time, both measured as the run goes; at least one). The open islands (a run may start with fewer
than it has, evo.run.periodic) take turns; an island has one proposal in flight unless a slow
operator needs more (up to PROPOSALS_PER_ISLAND).
"""

from __future__ import annotations

import math
import time
from collections import Counter

# Proposals one island may have in flight: enough for a slow model service to keep evaluators
# busy, few enough that an island does not spend on many children of one stale population.
PROPOSALS_PER_ISLAND = 16
# Weight of the newest measurement in the running means of mutation and evaluation times.
SMOOTHING = 0.2


class Scheduler:
    def __init__(self, evaluators: int):
        self.evaluators = evaluators
        self.mutation_s: float | None = None  # running means
        self.evaluation_s: float | None = None
        self.asked: Counter[int] = Counter()  # proposals asked of each island so far
        # Islands whose last proposal was refused wait for the next result before they are
        # asked again (an offline operator with nothing new for a population answers at once).
        self.resting: set[int] = set()

    def mutated(self, seconds: float) -> None:
        self.mutation_s = _running_mean(self.mutation_s, seconds)

    def evaluated(self, seconds: float) -> None:
        """A result came back: resting islands may be asked again."""
        self.evaluation_s = _running_mean(self.evaluation_s, seconds)
        self.resting.clear()

    def rest(self, island: int) -> None:
        """The island's last proposal was refused: not asked again before the next result."""
        self.resting.add(island)

    def limits(
        self, out_since: list[float], islands: int, now: float | None = None
    ) -> tuple[int, int]:
        """How many candidates to keep waiting or being proposed, and how many proposals one of
        the `islands` open may have in flight; `out_since`: when each proposal still out was
        asked for (time.monotonic()).

        During one proposal (mutation_s) the evaluators use up evaluators x mutation_s /
        evaluation_s candidates: that many proposals must be in flight at once, shared among
        the islands, besides one candidate waiting per evaluator. Before anything is measured:
        one per evaluator, plus one.
        """
        now = time.monotonic() if now is None else now
        # A proposal still out after t seconds says mutation takes at least t: a slow model is
        # met before its first reply, not one mutation time later.
        mutation_s = max([self.mutation_s or 0.0, *(now - t for t in out_since)])
        if not (mutation_s and self.evaluation_s):
            return self.evaluators + 1, 1
        concurrent = math.ceil(self.evaluators * mutation_s / self.evaluation_s)
        per_island = min(PROPOSALS_PER_ISLAND, math.ceil(concurrent / islands))
        return self.evaluators + concurrent, per_island

    def next_islands(
        self, wanted: int, in_flight: list[int], per_island: int, evaluating: bool, islands: int
    ) -> list[int]:
        """Up to `wanted` of the first `islands` to ask, in turn; `in_flight`: the island of each
        proposal out.
        Resting islands are skipped while something is being evaluated (with nothing being
        evaluated they are asked anyway, so that a dead service still stops the run)."""
        counts = Counter(in_flight)
        resting = self.resting if evaluating else set()
        chosen = []
        for _ in range(wanted):
            open_islands = [
                i for i in range(islands) if counts[i] < per_island and i not in resting
            ]
            if not open_islands:
                break
            index = min(open_islands, key=lambda i: (counts[i], self.asked[i]))
            self.asked[index] += 1
            counts[index] += 1
            chosen.append(index)
        return chosen


def _running_mean(mean: float | None, value: float) -> float:
    return value if mean is None else (1 - SMOOTHING) * mean + SMOOTHING * value
