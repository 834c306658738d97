"""The start of a new run: the seed program evaluated on the run's first seeds, in parallel, at
least noise_repeats times and once on every evaluator. Their spread opens the noise estimate that
every later comparison is judged by (evo.search.noise); the seed is candidate 0 and every
island's first champion.

Where the run screens candidates (evo.run.screen), the seed is also screened as many times: the
spread of its screens is the noise at the screen's budget, and its first screen what its
children's are paired with.

Every evaluator takes part so that sigma is measured under the load the run will have: where
evaluations share a GPU (gpus_per_eval below 1) or the CPUs, each one trains more slowly and
its metric moves with its neighbours; with fewer repeats than evaluators some would sit idle
while the others trained faster than they ever will again."""

from __future__ import annotations

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
    pool = engine.evaluators
    repeats = noise_round(engine.config.search.noise_repeats, len(pool))
    seed = Candidate.seed_program(engine.target.read_mutable())
    screens = engine.screen.fraction > 0
    print(
        f"measuring the noise: {repeats} evaluations of the seed program"
        + (f" and {repeats} screens" if screens else "")
        + f" on {len(pool)} {pool.device} evaluator(s)",
        flush=True,
    )
    requests = [(engine.request(seed.sources, i), i, False) for i in range(repeats)]
    if screens:
        run_seed = engine.config.seed
        requests += [
            (engine.screen.request(seed.sources, run_seed, i), i, True) for i in range(repeats)
        ]
    sent = {}
    for number, (request, index, screen) in enumerate(requests):
        ref, _ = pool.submit(request, slot=number % len(pool))
        sent[ref] = (index, screen, time.time())
    results = []
    for ref, (index, screen, dispatched) in sent.items():
        evaluation = engine.ray.get(ref)
        evaluation = replace(evaluation, index=index, dispatched=dispatched, returned=time.time())
        # Its own wall time: with fewer evaluators than repeats, the round trip includes a wait.
        engine.record(seed, evaluation, busy=evaluation.result.wall_seconds, screen=screen)
        results.append(evaluation.result)
    screened = results[repeats:]
    engine.state.screen_noise.add(
        seed.id, {i: r.metric for i, r in enumerate(screened) if r.status == Status.OK}
    )
    failures = [r for r in results if r.status != Status.OK]
    if failures:
        raise UsageError(
            f"the seed program fails its own evaluation ({failures[0].status}: "
            f"{failures[0].reason}); fix the target, then run again"
        )
    state = engine.state
    state.seen.add(program_hash(seed.sources))
    engine.lineage.candidate(seed, Status.ACCEPTED, sigma=state.sigma)
    founder = seed.as_member()
    for index in range(engine.config.search.islands):
        state.set_champion(index, founder, engine.selection.minimize)
        island = Island.founded(index, engine.selection, state.sigma, engine.config.seed, founder)
        state.islands.append(island_state(island))


def noise_round(noise_repeats: int, evaluators: int) -> int:
    """The seed program's evaluations at the start of a run."""
    return max(noise_repeats, evaluators)
