"""The mutation side of a run: proposals asked of the island actors ahead of need, and what
comes back, numbered as candidates. A valid child new to the run waits for evaluation; anything
else is a refused candidate in the lineage.

A run whose operators keep failing (a dead model service, a target with nothing left to change
for the offline operator) stops instead of spinning; a resume tries again. A duplicate of
another island's program is not a failure: at the start every island holds the same seed.
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

    def __len__(self) -> int:
        return len(self.out)

    def __contains__(self, ref: Any) -> bool:
        return ref in self.out

    def refs(self) -> list[Any]:
        return list(self.out)

    def ask(self, evaluating: bool) -> None:
        """Ask islands for as many proposals as the evaluators will need meanwhile."""
        islands = self.state.open_islands
        out_since = [asked.at for asked in self.out.values()]
        ahead, per_island = self.scheduler.limits(out_since, islands)
        wanted = ahead - len(self.state.pending) - len(self.out)
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
            return ""
        reason = child.reason or "duplicates a program of the run (another island's, or a merge's)"
        self.lineage.candidate(candidate, Status.REFUSED, reason)
        self.ensemble.settled(child.model, accepted=False)
        self.scheduler.rest(asked.island)
        self.refused_in_a_row += not child.sources
        self.nothing_new &= bool(child.sources) or child.exhausted
        if self.refused_in_a_row < MAX_REFUSED_IN_A_ROW:
            return ""
        return (
            f"the last {self.refused_in_a_row} proposals were all refused (the last because: "
            f"{reason[:200]}); check the model service or the target"
        )
