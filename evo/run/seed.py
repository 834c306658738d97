"""The start of a new run: the seed program evaluated noise_repeats times, in parallel, on the
run's first seeds. Their spread is the noise sigma that every later comparison is judged by; the
seed is candidate 0 and every island's first champion."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from evo.errors import UsageError
from evo.mutate.proposal import program_hash
from evo.run.actors import island_state
from evo.search.candidate import Candidate
from evo.search.island import Island
from evo.status import Status

if TYPE_CHECKING:
    from evo.run.engine import Engine


def measure_noise(engine: Engine) -> None:
    """Evaluate the seed program and fill in the new run's state; a one-line error when the seed
    program fails."""
    repeats, pool = engine.config.search.noise_repeats, engine.evaluators
    seed = Candidate.seed_program(engine.target.read_mutable())
    print(
        f"measuring the noise: {repeats} evaluations of the seed program on {len(pool)} "
        f"{pool.device} evaluator(s)",
        flush=True,
    )
    sent = {}
    for index in range(repeats):
        ref, _ = pool.submit(engine.request(seed.sources, index), slot=index % len(pool))
        sent[ref] = (index, time.time())
    for ref, (index, dispatched) in sent.items():
        evaluation = engine.ray.get(ref)
        evaluation = replace(evaluation, index=index, dispatched=dispatched, returned=time.time())
        # Its own wall time: with fewer evaluators than repeats, the round trip includes a wait.
        engine.record(seed, evaluation, busy=evaluation.result.wall_seconds)
    failures = [e.result for e in seed.evaluations if e.result.status != Status.OK]
    if failures:
        raise UsageError(
            f"the seed program fails its own evaluation ({failures[0].status}: "
            f"{failures[0].reason}); fix the target, then run again"
        )
    state = engine.state
    values = list(seed.metrics.values())
    state.sigma = statistics.stdev(values) if len(values) > 1 else 0.0
    state.seen.add(program_hash(seed.sources))
    engine.lineage.candidate(seed, Status.ACCEPTED)
    founder = seed.as_member()
    for index in range(engine.config.search.islands):
        state.set_champion(index, founder, engine.selection.minimize)
        island = Island.founded(index, engine.selection, state.sigma, engine.config.seed, founder)
        state.islands.append(island_state(island))
