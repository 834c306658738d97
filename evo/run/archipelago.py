"""The island actors of a run: made on the driver's node, called, rebuilt when one dies.

A restarted Ray actor loses its memory, so an island that dies is rebuilt from the state saved at
the last checkpoint (its population, champion, history and RNG), never restarted blank.
"""

from __future__ import annotations

import os
from typing import Any

from evo.mutate.prompt import Inspiration
from evo.run.actors import IslandActor
from evo.search.island import Selection
from evo.target import Target

LLM_ENV_PREFIXES = ("ANTHROPIC_", "OPENAI_")
REBUILDS = 3  # rebuilds of an island within one call before the run gives up
# Proposals one island may have in flight: enough for a slow model service to keep evaluators
# busy, few enough that an island does not spend on many children of one stale population.
PROPOSALS_PER_ISLAND = 16


class Archipelago:
    def __init__(
        self,
        ray: Any,
        target: Target,
        operator: str,
        selection: Selection,
        seed: int,
        device: str,
        seen: set[str],
        states: list[dict],
    ):
        self.ray = ray
        self._make = (str(target.root), operator, selection, seed, device)
        self.seen = seen  # the run's set, shared: a rebuilt island knows every program so far
        self.saved = list(states)
        self.generation = [0] * len(states)  # rebuilds so far, to tell old proposals from new
        self.actors = [self._actor(state) for state in states]

    def __len__(self) -> int:
        return len(self.actors)

    def call(self, index: int, method: str, *args: Any) -> Any:
        """A method of island `index`, waited for; a dead island is rebuilt and asked again."""
        for attempt in range(REBUILDS + 1):
            actor = self.actors[index]
            try:
                return self.ray.get(getattr(actor, method).remote(*args))
            except self.ray.exceptions.RayActorError:
                if attempt == REBUILDS:
                    raise
                if self.actors[index] is actor:  # not rebuilt meanwhile by another call
                    self.rebuild(index)

    def call_all(self, method: str, *args: Any) -> list[Any]:
        """A method of every island, with the same arguments."""
        return self.call_each([(index, method, args) for index in range(len(self.actors))])

    def call_each(self, calls: list[tuple[int, str, tuple]]) -> list[Any]:
        """(island, method, arguments) calls, sent all at once (one round trip, not one per
        call) and answered in order; a call to an island that died is made again by `call`."""
        refs = [getattr(self.actors[index], method).remote(*args) for index, method, args in calls]
        answers = []
        for (index, method, args), ref in zip(calls, refs, strict=True):
            try:
                answers.append(self.ray.get(ref))
            except self.ray.exceptions.RayActorError:
                answers.append(self.call(index, method, *args))
        return answers

    def migrate(self, count: int) -> list[tuple[int, int, dict, str]]:
        """Every island sends its best `count` programs to the next one round the ring;
        returns (source, destination, migrant, the destination's verdict) for each."""
        moves = [
            (source, (source + 1) % len(self.actors), migrant)
            for source, migrants in enumerate(self.call_all("best", count))
            for migrant in migrants
        ]
        verdicts = self.call_each([(dest, "receive", (migrant,)) for _, dest, migrant in moves])
        return [(*move, verdict) for move, verdict in zip(moves, verdicts, strict=True)]

    def propose(self, index: int, inspirations: list[Inspiration]) -> tuple[Any, int]:
        """Ask island `index` for a proposal; returns the reference and the island's generation."""
        return self.actors[index].propose.remote(inspirations), self.generation[index]

    def rebuild(self, index: int) -> None:
        print(f"island {index} died; rebuilt from the last checkpoint", flush=True)
        self.actors[index] = self._actor(self.saved[index])
        self.generation[index] += 1

    def states(self) -> list[dict]:
        """Every island's state, kept as the one to rebuild from."""
        self.saved = self.call_all("state")
        return self.saved

    def _actor(self, state: dict) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # The operator's credentials go to the island actors, never to evaluations: the sandbox
        # builds their environment from an allow-list. Islands live on the driver's node, so
        # losing another node never takes an island with it.
        llm_env = {k: v for k, v in os.environ.items() if k.startswith(LLM_ENV_PREFIXES)}
        here = self.ray.get_runtime_context().get_node_id()
        remote = self.ray.remote(max_concurrency=PROPOSALS_PER_ISLAND + 1, num_cpus=0)(
            IslandActor
        ).options(
            runtime_env={"env_vars": llm_env} if llm_env else None,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        )
        return remote.remote(*self._make, state, sorted(self.seen))
