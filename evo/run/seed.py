"""The start of a new run: the seed program evaluated on the run's first noise_repeats seeds, in
parallel, while the evaluators it leaves free already evaluate its children. The seed's spread
opens the noise estimate that every later comparison is judged by (evo.search.noise); the seed is
candidate 0 and every island's first champion.

Where the run screens candidates (evo.run.screen), the seed is also screened as many times: the
spread of its screens is the noise at the screen's budget, and its screen on the run's first
seed what its children's are paired with.

The children start at once, not after the seed: with 8 evaluators and 3 repeats, a round of 5
children costs no more time than 5 more evaluations of the seed, and sigma is measured under the
load the run will have either way (evaluations that share a GPU or the CPUs train more slowly,
and their metrics move with their neighbours'). A child's evaluation that comes back before the
seed is measured waits for it to be judged (the engine parks it); its island was founded from
the seed before its metrics were known, and is told them when they are.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from typing import Any, Protocol

from evo.config import RunConfig
from evo.errors import UsageError
from evo.evaluate.allowance import Allowance
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import program_hash
from evo.run.actors import island_state
from evo.run.archipelago import Archipelago
from evo.run.evaluators import EvaluatorPool
from evo.run.screen import Screen
from evo.run.state import RunState
from evo.search.candidate import Candidate, EvalRequest, Evaluation
from evo.search.island import Island, Member, Selection
from evo.status import Status
from evo.store.lineage import LineageWriter
from evo.target import Target


class Engine(Protocol):
    """What the seed round uses of evo.run.engine.Engine (which imports this module)."""

    ray: Any
    config: RunConfig
    target: Target
    state: RunState
    evaluators: EvaluatorPool
    screen: Screen
    selection: Selection
    islands: Archipelago
    lineage: LineageWriter
    parked: list[tuple[Candidate, int, EvalResult]] | None

    def request(self, sources: dict[str, str], index: int) -> EvalRequest: ...
    def fill(self, seed_evaluations: int | None = None) -> None: ...
    def wait(self, own: Any = ()) -> list[Any]: ...
    def record(
        self, candidate: Candidate, evaluation: Evaluation, busy: float, screen: bool = False
    ) -> None: ...


def measure_noise(engine: Engine) -> None:
    """Evaluate the seed program and fill in the new run's state; a one-line error when the seed
    program fails. Children evaluated meanwhile are left parked (engine.parked) or running."""
    pool, state = engine.evaluators, engine.state
    repeats = engine.config.search.noise_repeats
    seed = Candidate.seed_program(engine.target.read_mutable())
    screens = engine.screen.fraction > 0
    print(
        f"measuring the noise: {repeats} evaluations of the seed program"
        + (f" and {repeats} screens" if screens else "")
        + f" on {len(pool)} {pool.device} evaluator(s)",
        flush=True,
    )
    # the target's own code: trusted with the step it reports (evo.evaluate.allowance)
    requests = deque(
        (replace(engine.request(seed.sources, i), allowance=None), i, False) for i in range(repeats)
    )
    if screens:
        run_seed = engine.config.seed
        requests += [
            (engine.screen.request(seed.sources, run_seed, i), i, True) for i in range(repeats)
        ]
    state.seen.add(program_hash(seed.sources))
    _found(engine, seed.as_member())  # so that islands can propose its children already
    engine.parked = []
    sent: dict = {}  # reference -> (slot, request, index, screen, dispatched)
    seed_screens: dict[int, Evaluation] = {}  # seed index -> the seed's screen on it
    failures = []
    died = (engine.ray.exceptions.RayActorError, engine.ray.exceptions.WorkerCrashedError)
    while requests or sent:
        while requests and pool.idle:  # the seed's evaluations first, whatever the limits
            request, index, screen = requests.popleft()
            ref, slot = pool.submit(request)
            sent[ref] = (slot, request, index, screen, time.time())
        # Children of the seed on the evaluators left free, if any (the seed's evaluations took
        # the idle ones first); proposed from the start either way.
        out = [screen for *_, screen, _ in sent.values()] + [screen for *_, screen in requests]
        engine.fill(seed_evaluations=out.count(False))
        for ref in engine.wait(list(sent)):
            slot, request, index, screen, dispatched = sent.pop(ref)
            try:
                evaluation = engine.ray.get(ref)
            except died as e:
                pool.lost(slot, f"{type(e).__name__}; the seed program's evaluation")
                requests.appendleft((request, index, screen))
                continue
            pool.release(slot)
            evaluation = replace(
                evaluation, index=index, dispatched=dispatched, returned=time.time()
            )
            # Its own wall time: the round trip may include an evaluator's start.
            engine.record(seed, evaluation, busy=evaluation.result.wall_seconds, screen=screen)
            result = evaluation.result
            if result.status != Status.OK:
                failures.append(result)
            elif screen:
                seed_screens[index] = evaluation
    state.screen_noise.add(seed.id, {i: e.result.metric for i, e in seed_screens.items()})
    seed.screen = seed_screens.get(0)  # on the first seed, as its children's are: paired
    if 0 in seed_screens:
        state.screens[seed.id] = seed_screens[0].result.metric
    if failures:
        raise UsageError(
            f"the seed program fails its own evaluation ({failures[0].status}: "
            f"{failures[0].reason}); fix the target, then run again"
        )
    # what later evaluations' timeout and clock follow: the target's own code, as measured here
    state.allowance = Allowance.measured(
        [e.measured for e in seed.evaluations if e.result.status == Status.OK], engine.target
    )
    engine.lineage.candidate(seed, Status.ACCEPTED, sigma=state.sigma)
    founder = seed.as_member()
    _found(engine, founder)
    for index in engine.islands:
        state.set_champion(index, founder, engine.selection.minimize)
        if engine.islands.restored[index]:  # it proposed children of the seed unmeasured
            engine.islands.reset(index, founder, state.noise.level)


def _found(engine: Engine, founder: Member) -> None:
    """Every island's saved state: `founder` alone, the run's noise as it is now."""
    selection, noise, seed = engine.selection, engine.state.noise.level, engine.config.seed
    engine.state.islands = [
        island_state(Island.founded(index, selection, noise, seed, founder))
        for index in range(engine.config.search.islands)
    ]
