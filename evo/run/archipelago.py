"""The island actors of a run: made on the driver's node, called, rebuilt when one dies.

An actor is started before it is needed and restored when first called: those of the open
islands, and of the next one to open, start while the seed program is being evaluated (an
actor's imports and operator take seconds that would otherwise be the run's first idle
evaluators), and an island opened later finds its actor ready. A restarted Ray actor loses its
memory, so an island that dies is rebuilt from the state saved at the last checkpoint (its
population, champion, history and RNG), never restarted blank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from evo.config import RunConfig
from evo.mutate.llm import DEFAULT_PRICE, LLMConfig
from evo.mutate.operator import OperatorFactory
from evo.mutate.prompt import Attempt, Inspiration
from evo.run.actors import IslandActor
from evo.run.scheduler import PROPOSALS_PER_ISLAND
from evo.run.state import RunState
from evo.search.island import Member, Selection
from evo.search.noise import Level
from evo.status import Status
from evo.target import Target

REBUILDS = 3  # rebuilds of an island within one call before the run gives up

# A call of one island actor's method: actor -> the reference of its result.
Call = Callable[[Any], Any]


class Archipelago:
    def __init__(
        self,
        ray: Any,
        target: Target,
        config: RunConfig,
        selection: Selection,
        device: str,
        state: RunState,
        model_service: dict[str, str],
        operator: OperatorFactory | None = None,
    ):
        self.ray = ray
        self.model_service = model_service  # credentials and endpoints: the island actors' alone
        llm = LLMConfig.from_settings(config.llm)
        for model in llm.unpriced() if config.llm.models else []:
            print(
                f"warning: no list price is known for model {model}; it is charged at "
                f"${DEFAULT_PRICE.input:g} / ${DEFAULT_PRICE.output:g} per million input / "
                "output tokens",
                flush=True,
            )
        kind = operator or config.llm.operator  # a factory: the benchmarks' simulated operators
        self._make = (str(target.root), kind, selection, config.seed, device, llm)
        # Each island's state as of the last checkpoint (filled by the seed's evaluation in a
        # new run) and the run's programs so far: what an actor is restored from.
        self.state = state
        count = len(state.islands) or config.search.islands
        self.actors: list[Any] = [None] * count
        self.restored = [False] * count
        self.generation = [0] * count  # rebuilds so far, to tell old proposals from new
        for index in range(min(state.open_islands + 1, count)):  # and the next one to open
            self._start(index)

    def __len__(self) -> int:
        return len(self.actors)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.actors)))

    # ------------------------------------------------------------------ the islands' methods

    def propose(
        self, index: int, inspirations: list[Inspiration], model: str | None
    ) -> tuple[Any, int]:
        """Ask island `index` for a proposal (of `model`, or of the operator's choice); returns
        the reference and the island's generation (a proposal of an island rebuilt since is
        answered by nobody)."""
        ref = self._call(index, lambda actor: actor.propose.remote(inspirations, model), wait=False)
        return ref, self.generation[index]

    def judge(self, index: int, candidate: Member, noise: Level) -> Status:
        """Island `index`'s verdict on `candidate`, by the run's current `noise`."""
        return self._call(index, lambda actor: actor.judge.remote(candidate, noise))

    def settle(self, index: int, candidate: Member, fate: Status, attempt: Attempt) -> None:
        self._call(index, lambda actor: actor.settle.remote(candidate, fate, attempt))

    def reset(self, index: int, founder: Member, noise: Level) -> None:
        """Island `index` starts again from `founder` alone; `noise`: the run's."""
        self._call(index, lambda actor: actor.reset.remote(founder, noise))

    def since_improvement(self, islands: int) -> list[int]:
        """Evaluations since the champion of each of the first `islands` last improved."""
        calls = [(i, lambda actor: actor.since_improvement.remote()) for i in range(islands)]
        return self._call_each(calls)

    def runner_up(self, index: int) -> Member:
        """Island `index`'s best member besides its champion (evo.search.island)."""
        return self._call(index, lambda actor: actor.runner_up.remote())

    def migrate(
        self, count: int, noise: Level, islands: int
    ) -> list[tuple[int, int, Member, Status]]:
        """Each of the first `islands` sends its best `count` programs to the next one round
        their ring, judged there by the run's `noise`; returns (source, destination, migrant,
        the destination's verdict) for each."""
        sent = self._call_each(
            [(i, lambda actor: actor.best.remote(count)) for i in range(islands)]
        )
        moves = [
            (source, (source + 1) % islands, migrant)
            for source, migrants in enumerate(sent)
            for migrant in migrants
        ]
        verdicts = self._call_each(
            [
                (dest, lambda actor, m=migrant: actor.receive.remote(m, noise))
                for _, dest, migrant in moves
            ]
        )
        return [(*move, verdict) for move, verdict in zip(moves, verdicts, strict=True)]

    def states(self) -> list[dict]:
        """Every island's state, as the one to rebuild from; an island never opened keeps the
        state it was founded with."""
        restored = [i for i in self if self.restored[i]]
        answers = self._call_each([(i, lambda actor: actor.state.remote()) for i in restored])
        states = list(self.state.islands)
        for index, answer in zip(restored, answers, strict=True):
            states[index] = answer
        return states

    # ------------------------------------------------------------------ calls and rebuilds

    def _call(self, index: int, call: Call, wait: bool = True) -> Any:
        """A call of island `index`, waited for (or its reference, unless `wait`); a dead island
        is rebuilt and asked again."""
        for attempt in range(REBUILDS + 1):
            actor = self.actors[index]
            try:
                ref = call(self._ready(index))
                return self.ray.get(ref) if wait else ref
            except self.ray.exceptions.RayActorError:
                if attempt == REBUILDS:
                    raise
                if self.actors[index] is actor:  # not rebuilt meanwhile by another call
                    self.rebuild(index)

    def _call_each(self, calls: list[tuple[int, Call]]) -> list[Any]:
        """Calls of several islands, sent all at once (one round trip, not one per call) and
        answered in order; a call to an island that died is made again by `_call`."""
        refs = [call(self.actors[index]) if self.restored[index] else None for index, call in calls]
        answers = []
        for (index, call), ref in zip(calls, refs, strict=True):
            try:
                answers.append(self._call(index, call) if ref is None else self.ray.get(ref))
            except self.ray.exceptions.RayActorError:
                answers.append(self._call(index, call))
        return answers

    def rebuild(self, index: int) -> None:
        print(f"island {index} died; rebuilt from the last checkpoint", flush=True)
        self._start(index)
        self.generation[index] += 1

    def _ready(self, index: int) -> Any:
        """Island `index`'s actor, restored from its saved state at its first call (which waits
        for its start); then the next island's actor starts, to be ready when that one opens."""
        if self.actors[index] is None:
            self._start(index)
        if not self.restored[index]:
            saved = self.state.islands[index]
            self.ray.get(self.actors[index].restore.remote(saved, sorted(self.state.seen)))
            self.restored[index] = True
            if index + 1 < len(self) and self.actors[index + 1] is None:
                self._start(index + 1)
        return self.actors[index]

    def _start(self, index: int) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # The operator's credentials go to the island actors alone (evo.run.credentials).
        # Islands live on the driver's node, so losing another node never takes an island
        # with it.
        llm_env = self.model_service
        here = self.ray.get_runtime_context().get_node_id()
        remote = self.ray.remote(max_concurrency=PROPOSALS_PER_ISLAND + 1, num_cpus=0)(
            IslandActor
        ).options(
            runtime_env={"env_vars": llm_env} if llm_env else None,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        )
        target_root, operator, selection, seed, device, llm = self._make
        self.actors[index] = remote.remote(
            target_root, operator, selection, seed, index, device, llm
        )
        self.restored[index] = False
