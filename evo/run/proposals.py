"""The mutation side of a run: proposals asked of the island actors ahead of need, and what
comes back, numbered as candidates. A valid child new to the run waits for evaluation; anything
else is a refused candidate in the lineage.

A run whose operators keep failing (a dead model service, a target with nothing left to change
for the offline operator) stops instead of spinning; a resume tries again. A duplicate of
another island's program is not a failure: at the start every island holds the same seed.

Refusals that were paid for (a model whose edits never apply, each proposal with its repairs)
must not spend in a burst: once one comes back, proposals go out one at a time, each after a
back-off that doubles with the streak (BACKOFF_S, up to BACKOFF_MAX_S), and MAX_PAID_REFUSALS in
a row stop the run. Free refusals (the offline operator, a service that answers with errors) go
on at once, up to MAX_REFUSED_IN_A_ROW.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from evo.mutate.ensemble import Ensemble
from evo.mutate.prompt import Inspiration
from evo.mutate.proposal import program_hash
from evo.run.archipelago import Archipelago
from evo.run.scheduler import Scheduler
from evo.run.state import RunState
from evo.search.candidate import Candidate, Child
from evo.status import Status
from evo.store.lineage import LineageWriter

MAX_REFUSED_IN_A_ROW = 30
MAX_PAID_REFUSALS = 10  # a streak of refusals that cost money stops the run after this many
BACKOFF_S = 1.0  # the wait before the next proposal after the first paid refusal in a row
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class Asked:
    """A proposal out on island `island`, as it was in its `generation` (rebuilds so far), of
    `model` where the driver chose it."""

    island: int
    generation: int
    at: float  # time.monotonic()
    model: str | None


class Proposals:
    def __init__(
        self,
        ray: Any,
        islands: Archipelago,
        scheduler: Scheduler,
        state: RunState,
        lineage: LineageWriter,
        ensemble: Ensemble,
        first: int = 0,
    ):
        """`first`: the evaluation index a new candidate starts with (evo.run.screen.SCREEN
        where the run screens)."""
        self.ray, self.islands, self.scheduler = ray, islands, scheduler
        self.state, self.lineage, self.ensemble = state, lineage, ensemble
        self.first = first
        self.out: dict[Any, Asked] = {}
        self.refused_in_a_row = 0  # proposals the operators failed since the last valid one
        self.nothing_new = True  # every one of those: the operator had nothing new to propose
        self.paid_in_a_row = 0  # those of them that cost money, and what they cost
        self.paid_streak_usd = 0.0
        self.backoff_until = 0.0  # time.monotonic() before which nothing is asked

    def __len__(self) -> int:
        return len(self.out)

    def __contains__(self, ref: Any) -> bool:
        return ref in self.out

    def refs(self) -> list[Any]:
        return list(self.out)

    def backing_off(self) -> float:
        """Seconds until the next proposal may be asked for after a paid refusal (0: none)."""
        return max(0.0, self.backoff_until - time.monotonic())

    def ask(self, evaluating: bool) -> None:
        """Ask islands for as many proposals as the evaluators will need meanwhile; during a
        streak of paid refusals, one at a time after its back-off."""
        islands = self.state.open_islands
        out_since = [asked.at for asked in self.out.values()]
        ahead, per_island = self.scheduler.limits(out_since, islands)
        wanted = ahead - len(self.state.pending) - len(self.out)
        if self.paid_in_a_row:
            wanted = min(wanted, 1 - len(self.out)) if time.monotonic() >= self.backoff_until else 0
        if wanted <= 0:
            return
        inspirations = [
            Inspiration(member.sources, member.fitness, island)
            for island, member in self.state.champions.items()
            if island < islands
        ]
        in_flight = [asked.island for asked in self.out.values()]
        chosen = self.scheduler.next_islands(wanted, in_flight, per_island, evaluating, islands)
        for index in chosen:
            model = self.ensemble.choose([asked.model for asked in self.out.values()])
            ref, generation = self.islands.propose(index, inspirations, model)
            self.out[ref] = Asked(index, generation, time.monotonic(), model)

    def received(self, ref: Any) -> str:
        """A proposal came back; returns why the run should stop, or "" to go on."""
        asked = self.out.pop(ref)
        try:
            child: Child = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            if asked.generation == self.islands.generation[asked.island]:  # not rebuilt since
                self.islands.rebuild(asked.island)
            return ""
        state = self.state
        state.spent += child.usage.cost_usd
        self.ensemble.paid(child.model, child.usage.cost_usd)
        self.scheduler.mutated(child.mutation_s)
        candidate = Candidate(state.next_id, child)
        state.next_id += 1
        digest = program_hash(child.sources) if child.sources else ""
        if child.sources and digest not in state.seen:
            state.seen.add(digest)
            state.pending.append((candidate, self.first))
            self.refused_in_a_row, self.nothing_new = 0, True
            self.paid_in_a_row, self.paid_streak_usd, self.backoff_until = 0, 0.0, 0.0
            return ""
        reason = child.reason or "duplicates a program of the run (another island's, or a merge's)"
        self.lineage.candidate(candidate, Status.REFUSED, reason)
        self.ensemble.settled(child.model, accepted=False)
        self.scheduler.rest(asked.island)
        self.refused_in_a_row += not child.sources
        self.nothing_new &= bool(child.sources) or child.exhausted
        if not child.sources and child.usage.cost_usd > 0:
            self.paid_in_a_row += 1
            self.paid_streak_usd += child.usage.cost_usd
            backoff = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (self.paid_in_a_row - 1))
            self.backoff_until = time.monotonic() + backoff
        because = f"(the last because: {reason[:200]}); check the model service or the target"
        if self.paid_in_a_row >= MAX_PAID_REFUSALS:
            return (
                f"the last {self.paid_in_a_row} paid proposals were all refused, "
                f"${self.paid_streak_usd:.2f} spent on them {because}"
            )
        if self.refused_in_a_row < MAX_REFUSED_IN_A_ROW:
            return ""
        return f"the last {self.refused_in_a_row} proposals were all refused {because}"
