"""The driver of a run: island and evaluator actors, the scheduling loop, lineage and checkpoints.

Scheduling: every evaluator is kept busy. Candidates are proposed ahead, so that mutation, an
LLM's latency included, overlaps with evaluation: one waiting per evaluator, plus as many in
flight as the evaluators use up while one proposal is being made (evaluators x mutation time /
evaluation time, both measured as the run goes; at least one). Islands take turns; an island has
one proposal in flight unless a slow operator needs more (up to PROPOSALS_PER_ISLAND). Results
are handled in completion order (`ray.wait`). Re-evaluations that decide a champion go first.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evo.config import RunConfig
from evo.errors import UsageError
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.mutate.prompt import Inspiration
from evo.mutate.proposal import program_hash
from evo.run.archipelago import PROPOSALS_PER_ISLAND, Archipelago
from evo.run.evaluators import EvaluatorPool
from evo.run.progress import Progress
from evo.search.candidate import Candidate, candidate_row, event_row, member_fitness
from evo.search.island import ACCEPT, REPEAT, Island, Member, Selection
from evo.store import checkpoint
from evo.store.lineage import LineageWriter
from evo.target import Target

MIN_CHECKPOINT_SECONDS = 2.0
# Weight of the newest measurement in the running means of mutation and evaluation times.
SMOOTHING = 0.2
# A run whose operator keeps failing (a dead model service, a target with nothing left to change
# for the offline operator) stops instead of spinning; a resume tries again. A duplicate of
# another island's program is not a failure: at the start every island holds the same seed.
MAX_REFUSED_IN_A_ROW = 30


def connect_ray(address: str = "") -> bool:
    """Join the Ray cluster at `address`, or start one of our own on this machine; nothing if
    Ray is already up. Returns whether this call started or joined it."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster of our own
    if ray.is_initialized():
        return False
    ray.init(
        address=address or None,
        include_dashboard=False,
        logging_level="warning",
        log_to_driver=False,
    )
    return True


class Engine:
    def __init__(
        self,
        config: RunConfig,
        target: Target,
        run_dir: Path,
        sandbox: Callable[..., EvalResult] = evaluate,
    ):
        self.config = config
        self.sandbox = sandbox
        self.target = target
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.lineage = LineageWriter(run_dir / "lineage")
        self.selection = Selection(
            config.population,
            config.tournament,
            config.explore,
            config.noise_k,
            config.max_repeats,
            target.direction == "minimize",
        )
        self.queue: deque[tuple[Candidate, int]] = deque()
        self.running: dict[Any, tuple[int, Candidate, int, float]] = {}
        # ref -> (island, its generation, when it was asked)
        self.proposing: dict[Any, tuple[int, int, float]] = {}
        self.next_id = 1
        self.evals_done = 0
        self.spent = 0.0
        self.elapsed_before = 0.0
        self.busy_seconds = 0.0
        self.sigma = 0.0
        self.champions: dict[int, dict] = {}
        self.best: dict | None = None
        self.seen: set[str] = set()
        self.stopping = False
        self.refused_in_a_row = 0  # proposals refused since the last valid one
        self._proposals_asked: dict[int, int] = {}  # per island, so that islands take turns
        # Islands whose last proposal was refused wait for the next result before they are
        # asked again (an offline operator with nothing new for a population answers at once);
        # with nothing being evaluated they are asked anyway, so a dead service still stops.
        self.resting: set[int] = set()
        self._checkpointed_at = 0.0
        self.mutation_s: float | None = None  # running means, for how far ahead to propose
        self.evaluation_s: float | None = None

    # ------------------------------------------------------------------ start-up

    def start(self, resume: dict | None) -> None:
        import ray

        self.ray = ray
        self._previous_handler = signal.signal(signal.SIGINT, self._interrupt)
        connect_ray(self.config.address)
        self.evaluators = EvaluatorPool(ray, self.target, self.config, self.sandbox)
        self.device = self.evaluators.device
        self.started = time.monotonic()
        if resume:
            self._restore(resume)
        else:
            self._measure_noise()
        # The evaluation count when each periodic task last ran.
        self._last = dict.fromkeys(("migration", "stagnation", "checkpoint"), self.evals_done)

    def _archipelago(self, states: list[dict]) -> Archipelago:
        c = self.config
        return Archipelago(
            self.ray,
            self.target,
            c.operator,
            self.selection,
            c.seed,
            self.device,
            self.seen,
            states,
        )

    def _measure_noise(self) -> None:
        """Evaluate the seed program noise_repeats times, in parallel; sigma is their spread."""
        seed = Candidate(0, 0, None, 0, self.target.read_mutable(), hypothesis="the seed program")
        print(
            f"measuring the noise: {self.config.noise_repeats} evaluations of the seed program "
            f"on {len(self.evaluators)} {self.device} evaluator(s)",
            flush=True,
        )
        refs = {}
        for index in range(self.config.noise_repeats):
            slot = index % len(self.evaluators)
            ref = self.evaluators.submit(slot, seed.sources, self._seed(index), self._budget())
            refs[ref] = (index, time.time())
        for ref, (index, dispatched) in refs.items():
            outcome = self.ray.get(ref)
            self.evals_done += 1
            self.busy_seconds += outcome["result"]["wall_seconds"]
            self.evaluation_s = _running_mean(self.evaluation_s, outcome["result"]["wall_seconds"])
            seed.add_evaluation(index, self._seed(index), outcome, dispatched)
        failures = [e for e in seed.evals if e["status"] != "ok"]
        if failures:
            raise UsageError(
                f"the seed program fails its own evaluation ({failures[0]['status']}: "
                f"{failures[0]['reason']}); fix the target, then run again"
            )
        values = list(seed.metrics.values())
        self.sigma = statistics.stdev(values) if len(values) > 1 else 0.0
        self.seen.add(program_hash(seed.sources))
        self.lineage.add(candidate_row(self.run_id, seed, "accepted", ""))
        member = seed.as_member()
        self._set_champion(0, member)
        states = []
        for index in range(self.config.islands):
            island = Island(index, self.selection, self.sigma, self.config.seed)
            island.population = [Member(0, seed.sources, dict(seed.metrics), 0)]
            island.champion = island.population[0]
            states.append(island.state())
            self.champions[index] = member
        self.islands = self._archipelago(states)
        self._checkpoint()

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        progress = Progress(self)
        try:
            while self.running or self.proposing or (not self._should_stop() and not self.stopping):
                if not self.stopping and not self._should_stop():
                    self._request_proposals()
                    self._dispatch()
                refs = [*self.running, *self.proposing, *self.evaluators.recovering]
                if not refs:
                    break
                done, _ = self.ray.wait(refs, num_returns=1, timeout=1.0)
                for ref in done:
                    if ref in self.proposing:
                        self._proposed(ref)
                    elif ref in self.evaluators.recovering:
                        self.evaluators.recovered(ref)
                    else:
                        self._evaluated(ref)
                progress.maybe_print()
        finally:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._checkpoint()
            progress.print()

    def _interrupt(self, *_: object) -> None:
        if self.stopping:
            raise KeyboardInterrupt
        self.stopping = True
        print("\nstopping: finishing the evaluations in flight (Ctrl-C again to stop now)")

    def _should_stop(self) -> bool:
        c = self.config
        return bool(
            (c.max_evals and self.evals_done + len(self.running) >= c.max_evals)
            or (c.max_hours and self.elapsed() >= c.max_hours * 3600)
            or (c.max_cost and self.spent >= c.max_cost)
        )

    def proposal_limits(self) -> tuple[int, int]:
        """How many candidates to keep waiting or being proposed, and how many proposals one
        island may have in flight.

        During one proposal (mutation_s) the evaluators use up evaluators x mutation_s /
        evaluation_s candidates: that many proposals must be in flight at once, shared among
        the islands, besides one candidate waiting per evaluator. Before anything is measured:
        one per evaluator, plus one.
        """
        evaluators = len(self.evaluators)
        # A proposal still out after t seconds says mutation takes at least t: a slow model is
        # met before its first reply, not one mutation time later.
        now = time.monotonic()
        mutation_s = max(
            [self.mutation_s or 0.0, *(now - t for _, _, t in self.proposing.values())]
        )
        if not (mutation_s and self.evaluation_s):
            return evaluators + 1, 1
        concurrent = math.ceil(evaluators * mutation_s / self.evaluation_s)
        per_island = min(PROPOSALS_PER_ISLAND, math.ceil(concurrent / len(self.islands)))
        return evaluators + concurrent, per_island

    def _request_proposals(self) -> None:
        ahead, per_island = self.proposal_limits()
        wanted = ahead - len(self.queue) - len(self.proposing)
        if wanted <= 0:
            return
        in_flight = Counter(island for island, _, _ in self.proposing.values())
        inspirations = [
            Inspiration(m["sources"], member_fitness(m), island)
            for island, m in self.champions.items()
        ]
        resting = self.resting if self.running else set()
        for _ in range(wanted):
            open_islands = [
                i
                for i in range(len(self.islands))
                if in_flight[i] < per_island and i not in resting
            ]
            if not open_islands:
                return
            index = min(open_islands, key=lambda i: (in_flight[i], self._proposals_asked.get(i, 0)))
            self._proposals_asked[index] = self._proposals_asked.get(index, 0) + 1
            in_flight[index] += 1
            ref, generation = self.islands.propose(index, inspirations)
            self.proposing[ref] = (index, generation, time.monotonic())

    def _dispatch(self) -> None:
        while self.evaluators.idle and self.queue and not self._should_stop():
            candidate, index = self.queue.popleft()
            slot = self.evaluators.idle.pop(0)
            ref = self.evaluators.submit(slot, candidate.sources, self._seed(index), self._budget())
            self.running[ref] = (slot, candidate, index, time.time())

    def _proposed(self, ref) -> None:
        island, generation, _ = self.proposing.pop(ref)
        try:
            made = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            if generation == self.islands.generation[island]:  # not rebuilt since it was asked
                self.islands.rebuild(island)
            return
        usage = made["usage"]
        self.spent += usage.get("cost_usd", 0.0)
        self.mutation_s = _running_mean(self.mutation_s, made["mutation_s"])
        candidate = Candidate(
            self.next_id,
            island,
            made["parent_id"],
            made["generation"],
            made["sources"] or {},
            made["operator"],
            made["model"],
            made["hypothesis"],
            made["edit"],
            usage,
            made["mutation_s"],
        )
        self.next_id += 1
        digest = program_hash(candidate.sources) if made["sources"] else ""
        if not made["sources"] or digest in self.seen:
            reason = made["reason"] or "duplicates a program already proposed on another island"
            self.lineage.add(candidate_row(self.run_id, candidate, "refused", reason))
            self.resting.add(island)
            self.refused_in_a_row += 0 if made["sources"] else 1
            if self.refused_in_a_row >= MAX_REFUSED_IN_A_ROW and not self.stopping:
                self.stopping = True
                print(
                    f"stopping: the last {self.refused_in_a_row} proposals were all refused "
                    f"(the last because: {reason[:200]}); check the model service or the "
                    f"target, then go on: python -m evo run --resume {self.run_dir}",
                    flush=True,
                )
            return
        self.refused_in_a_row = 0
        self.seen.add(digest)
        self.queue.append((candidate, 0))

    def _evaluated(self, ref) -> None:
        slot, candidate, index, started = self.running.pop(ref)
        try:
            outcome = self.ray.get(ref)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
            print(
                f"evaluator-{slot} died ({type(e).__name__}); candidate {candidate.id} re-queued; "
                f"evaluator-{slot} comes back when Ray has restarted it where there is room",
                flush=True,
            )
            self.queue.appendleft((candidate, index))
            self.evaluators.lost(slot)
            return
        self.evaluators.idle.append(slot)
        self.resting.clear()
        round_trip = time.time() - started
        self.busy_seconds += round_trip
        self.evaluation_s = _running_mean(self.evaluation_s, round_trip)
        self.evals_done += 1
        candidate.add_evaluation(index, self._seed(index), outcome, started)
        last = candidate.evals[-1]
        if last["status"] != "ok":
            self._settle(candidate, last["status"], last["reason"], None)
        else:
            verdict = self.islands.call(candidate.island, "judge", candidate.as_member())
            if verdict == REPEAT:  # first in line; a run that stops here keeps it pending
                self.queue.appendleft((candidate, index + 1))
            else:
                self._settle(candidate, verdict, "", verdict)
        self._after_evaluation()

    def _settle(self, candidate: Candidate, status: str, reason: str, verdict: str | None) -> None:
        parent = self._champion_fitness(candidate.island)
        fitness = candidate.fitness
        delta = None if fitness is None or parent is None else fitness - parent
        attempt = {
            "hypothesis": candidate.hypothesis,
            "edit": candidate.edit,
            "status": status,
            "delta": delta,
            "reason": reason,
        }
        member, outcome = candidate.as_member(), verdict or "failed"
        self.islands.call(candidate.island, "settle", member, outcome, attempt)
        if verdict == ACCEPT:
            self._set_champion(candidate.island, candidate.as_member())
        self.lineage.add(candidate_row(self.run_id, candidate, status, reason))

    def _after_evaluation(self) -> None:
        c = self.config
        several = len(self.islands) > 1
        if several and c.migration_interval and self._due("migration", c.migration_interval):
            self._migrate()
        # Stagnation is checked at the migration cadence: asking every island after every
        # evaluation would cost one round trip per island on the hot path.
        if several and c.stagnation and self._due("stagnation", c.migration_interval or 10):
            self._reset_stagnant()
        # Instant evaluations would spend their time writing checkpoints: at most one every
        # MIN_CHECKPOINT_SECONDS, so a crash costs at most that much work or checkpoint_every
        # evaluations, whichever is more.
        recent = time.monotonic() - self._checkpointed_at < MIN_CHECKPOINT_SECONDS
        if not recent and self._due("checkpoint", c.checkpoint_every):
            self._checkpoint()

    def _due(self, what: str, interval: int) -> bool:
        """Whether `interval` evaluations have passed since `what` last happened."""
        if self.evals_done - self._last.get(what, 0) < interval:
            return False
        self._last[what] = self.evals_done
        return True

    # ------------------------------------------------------------------ migration and resets

    def _migrate(self) -> None:
        for source, dest, migrant, verdict in self.islands.migrate(self.config.migration_count):
            if verdict == ACCEPT:
                self._set_champion(dest, migrant)
            self.lineage.add(
                event_row(self.run_id, "migration", migrant["id"], source, dest, verdict)
            )

    def _reset_stagnant(self) -> None:
        stalled = self.islands.call_all("since_improvement")
        for index, since in enumerate(stalled):
            if since < self.config.stagnation or self.best is None or self.best["island"] == index:
                continue
            self.islands.call(index, "reset", self.best["member"])
            self._set_champion(index, self.best["member"])
            self.lineage.add(
                event_row(
                    self.run_id,
                    "reset",
                    self.best["member"]["id"],
                    self.best["island"],
                    index,
                    "reset",
                )
            )

    # ------------------------------------------------------------------ bookkeeping

    def _set_champion(self, island: int, member: dict) -> None:
        self.champions[island] = member
        fitness = member_fitness(member)
        better = self.best is None or (
            fitness < self.best["fitness"]
            if self.selection.minimize
            else fitness > self.best["fitness"]
        )
        if better:
            self.best = {"island": island, "member": member, "fitness": fitness}

    def _champion_fitness(self, island: int) -> float | None:
        member = self.champions.get(island)
        return member_fitness(member) if member else None

    def _seed(self, index: int) -> int:
        return self.config.seed * 1000 + index

    def _budget(self) -> float | None:
        return self.config.budget or None

    def elapsed(self) -> float:
        started = getattr(self, "started", None)
        return self.elapsed_before + (time.monotonic() - started if started else 0.0)

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self) -> None:
        try:
            self._write_checkpoint()
        except OSError as e:  # a full disk, a folder made read-only or removed
            raise UsageError(
                f"cannot write to the run folder {self.run_dir} ({e.strerror or e}); free space "
                f"or fix its permissions, then go on: python -m evo run --resume {self.run_dir}"
            ) from None

    def _write_checkpoint(self) -> None:
        self._checkpointed_at = time.monotonic()
        self.lineage.flush()
        pending = [(c, i) for c, i in self.queue] + [(c, i) for _, c, i, _ in self.running.values()]
        checkpoint.save(
            self.run_dir,
            {
                "run_id": self.run_id,
                "target": str(self.target.root),
                "lineage_parts": self.lineage.parts,
                "next_id": self.next_id,
                "evals_done": self.evals_done,
                "spent": self.spent,
                "sigma": self.sigma,
                "elapsed": self.elapsed(),
                "evaluators": len(self.evaluators),
                "busy_seconds": self.busy_seconds,
                "islands": self.islands.states(),
                "champions": {str(k): v for k, v in self.champions.items()},
                "best": self.best,
                "pending": [[asdict(c), i] for c, i in pending],
                "seen": sorted(self.seen),
            },
        )

    def _restore(self, state: dict) -> None:
        self.lineage.discard_parts_after(state["lineage_parts"])
        self.next_id, self.evals_done = state["next_id"], state["evals_done"]
        self.spent, self.sigma = state["spent"], state["sigma"]
        self.elapsed_before, self.busy_seconds = state["elapsed"], state["busy_seconds"]
        self.champions = {int(k): v for k, v in state["champions"].items()}
        self.best, self.seen = state["best"], set(state["seen"])
        for data, index in state["pending"]:
            data["metrics"] = {int(k): v for k, v in data["metrics"].items()}
            self.queue.append((Candidate(**data), index))
        self.islands = self._archipelago(state["islands"])


def _running_mean(mean: float | None, value: float) -> float:
    return value if mean is None else (1 - SMOOTHING) * mean + SMOOTHING * value
