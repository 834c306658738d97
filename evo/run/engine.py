"""The loop of a run: ask islands for children, evaluate them, judge them, record them.

The driver holds the run state (evo.run.state, what a checkpoint saves), an archipelago
of island actors that propose and judge (evo.run.archipelago), a pool of evaluator actors
(evo.run.evaluators), and the pacing that keeps every evaluator busy (evo.run.scheduler).
Results are handled in completion order (`ray.wait`); re-evaluations that decide a champion go
first, and so do full evaluations of candidates that passed their screen (evo.run.screen). Every
candidate's row goes to the lineage once its fate is final.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evo.config import RunConfig
from evo.evaluate.allowance import Allowance
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.mutate.ensemble import Ensemble
from evo.mutate.llm import LLMConfig
from evo.mutate.operator import OperatorFactory, resolved
from evo.mutate.prompt import Attempt, short_tail
from evo.run import credentials, periodic
from evo.run.archipelago import Archipelago
from evo.run.carry import Carry
from evo.run.evaluators import EvaluatorPool, connect_ray
from evo.run.progress import Figures, Progress
from evo.run.proposals import Proposals
from evo.run.scheduler import Scheduler
from evo.run.screen import SCREEN, Screen
from evo.run.seed import measure_noise
from evo.run.state import RunState
from evo.search.candidate import Candidate, EvalRequest, Evaluation
from evo.search.island import Selection
from evo.status import Status
from evo.store.lineage import LineageWriter, Metric
from evo.target import Target


@dataclass(frozen=True)
class InFlight:
    """An evaluation out on an evaluator: the candidate's evaluation number `index`."""

    slot: int
    candidate: Candidate
    index: int
    dispatched: float  # epoch seconds


class Engine:
    """A run, started (or resumed from `resume`) by its construction: Ray joined, the actors
    made, the seed's noise measured; `run()` then goes on until a stop condition. Ctrl-C is
    handled from the first second: it finishes the evaluations in flight, then checkpoints."""

    def __init__(
        self,
        config: RunConfig,
        target: Target,
        run_dir: Path,
        resume: RunState | None = None,
        sandbox: Callable[..., EvalResult] = evaluate,
        operator: OperatorFactory | None = None,
    ):
        import ray  # only runs need it: `evo eval` and the readers start without

        self.config, self.target, self.run_dir, self.ray = config, target, run_dir, ray
        self.stopping = False
        self.held: dict[str, str] = {}  # the credentials the run took from the environment
        self.previous_handler = signal.signal(signal.SIGINT, self._interrupt)
        try:
            self.selection = Selection.of(config.search, minimize=target.direction == "minimize")
            self.screen = Screen.of(config, target)
            metric = Metric(target.metric, self.selection.minimize)
            self.lineage = LineageWriter(run_dir / "lineage", metric)
            self.state = resume or RunState()
            self.running: dict[Any, InFlight] = {}
            self.held = credentials.take()  # before Ray starts: its processes inherit them
            connect_ray(config.address)
            self.evaluators = EvaluatorPool(ray, target, config.evaluation, sandbox)
            self.started = time.monotonic()  # the run's clock: Ray's own start-up is not in it
            self.scheduler = Scheduler(self.evaluators.slots)
            search = config.search
            if not resume:
                self.state.open_islands = search.start_islands or search.islands
            self.islands = Archipelago(  # its actors start while the seed is evaluated
                ray, target, config, self.selection, self.evaluators.device, self.state,
                credentials.for_model_service(self.held), operator,
            )  # fmt: skip
            self.state.evaluators = len(self.evaluators)
            self.carry: Carry | None = None  # made once the islands have their champions
            self.parked: list[tuple[Candidate, int, EvalResult]] | None = None  # evo.run.seed
            self.ensemble = Ensemble(
                [model for model, _ in LLMConfig.from_settings(config.llm).models],
                config.llm.adaptive_models
                and resolved(config.llm.operator, {**os.environ, **self.held}) != "offline",
                self.state.models,
                seed=config.seed * 1000 + self.state.next_id,  # a resume draws anew
            )
            first = SCREEN if self.screen.fraction else 0  # a new candidate's first evaluation
            self.proposals = Proposals(
                ray, self.islands, self.scheduler, self.state, self.lineage, self.ensemble, first
            )
            minimize = self.selection.minimize
            self.periodic = periodic.Tasks(
                config, self.state, self.islands, self.lineage, minimize, run_dir, target.root
            )
            if resume:
                self.lineage.discard_parts_after(resume.lineage_parts)
            else:
                measure_noise(self)
            self.carry = Carry(target, self.state, self.selection) if search.carry_gains else None
            if not resume:
                parked, self.parked = self.parked or [], None
                for candidate, index, result in parked:
                    self._judge(candidate, index, result)
                self.periodic.checkpoint(self._running(), self.elapsed())
        except BaseException:
            signal.signal(signal.SIGINT, self.previous_handler)
            credentials.give_back(self.held)
            if "evaluators" in vars(self):  # made before the error: freed now, as in run()
                self.evaluators.close()
            raise

    def run(self) -> RunState:
        """Go on until a stop condition, checkpoint, and return the final state."""
        progress = Progress(self.figures)
        try:
            while self.running or self.proposals or not (self.stopping or self._should_stop()):
                self.fill()
                if not (self.running or self.proposals or self.evaluators.recovering):
                    pause = self.proposals.backing_off()
                    if not pause:
                        break
                    time.sleep(min(1.0, pause))  # a streak of paid refusals: nothing is out
                    continue
                self.wait()
                progress.maybe_print()
        except BaseException:  # the error's traceback may hold this engine, and the CPUs or
            self.evaluators.close()  # GPUs its evaluators reserve, until a garbage collection
            raise
        finally:  # a Ctrl-C during the last checkpoint stops at once
            signal.signal(signal.SIGINT, self.previous_handler)
            credentials.give_back(self.held)
            self.periodic.checkpoint(self._running(), self.elapsed(), live=False)
            progress.print()
        return self.state

    def fill(self, seed_evaluations: int | None = None) -> None:
        """Ask for proposals and start evaluations on the idle evaluators, unless the run is
        stopping; `seed_evaluations`: in the seed round (evo.run.seed), the seed's full
        evaluations still out."""
        seeding = seed_evaluations is not None
        if not (self.stopping or self._should_stop(seed_evaluations or 0)):
            self.proposals.ask(evaluating=bool(self.running) or seeding)
            self._dispatch(seed_evaluations or 0)

    def wait(self, own: Collection[Any] = ()) -> list[Any]:
        """Wait up to a second for the next proposal, evaluation or evaluator to come back and
        handle it; what came back of the caller's `own` references is the caller's."""
        refs = [*self.running, *self.proposals.refs(), *self.evaluators.recovering, *own]
        done, _ = self.ray.wait(refs, num_returns=1, timeout=1.0)
        for ref in done:
            if ref in self.proposals:
                self._received(ref)
            elif ref in self.evaluators.recovering:
                self.evaluators.recovered(ref)
            elif ref in self.running:
                self._evaluated(ref)
        return [ref for ref in done if ref in own]

    def _received(self, ref: Any) -> None:
        """A proposal came back. Refusals enough in a row to stop the run, each because the
        operator had nothing new to propose (not because it failed), open the next island first
        if one is closed: the next may have something new (its refusals in a row start again
        from none)."""
        why = self.proposals.received(ref)
        nothing_new = why and self.proposals.nothing_new and self.parked is None
        if nothing_new and self.periodic.split(self._running(), now=True):
            self.proposals.refused_in_a_row = 0
            why = ""
        self._stop_because(why)

    def _interrupt(self, *_: object) -> None:
        if self.stopping:
            raise KeyboardInterrupt
        self.stopping = True
        print("\nstopping: finishing the evaluations in flight (Ctrl-C again to stop now)")

    def _stop_because(self, why: str) -> None:
        if why and not self.stopping:
            self.stopping = True
            print(
                f"stopping: {why}, then go on: python -m evo run --resume {self.run_dir}",
                flush=True,
            )

    def _should_stop(self, seed_evaluations: int = 0) -> bool:
        limits, state = self.config.limits, self.state
        full = seed_evaluations + sum(out.index != SCREEN for out in self.running.values())
        return bool(
            (limits.max_evals and state.evals_done + full >= limits.max_evals)
            or (limits.max_hours and self.elapsed() >= limits.max_hours * 3600)
            or (limits.max_cost and state.spent >= limits.max_cost)
        )

    def _dispatch(self, seed_evaluations: int = 0) -> None:
        while (
            self.evaluators.idle and self.state.pending and not self._should_stop(seed_evaluations)
        ):
            candidate, index = self.state.pending.popleft()
            if self.carry and not candidate.evaluations and candidate.screen is None:
                self.carry.rebase(candidate)
            ref, slot = self.evaluators.submit(self.request(candidate.sources, index))
            self.running[ref] = InFlight(slot, candidate, index, time.time())

    def request(self, sources: dict[str, str], index: int) -> EvalRequest:
        """Evaluation `index` of a program: every program's k-th evaluation has the same seed;
        index SCREEN is its screen."""
        allowance = self.state.allowance or Allowance.unmeasured(self.target)
        if index == SCREEN:
            return self.screen.request(sources, self.config.seed, allowance=allowance)
        budget = self.config.evaluation.budget or None
        return EvalRequest(sources, self.config.seed * 1000 + index, budget, allowance)

    def _evaluated(self, ref: Any) -> None:
        out = self.running.pop(ref)
        try:
            evaluation: Evaluation = self.ray.get(ref)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
            self.evaluators.lost(out.slot, f"{type(e).__name__}; candidate {out.candidate.id}")
            self.state.pending.appendleft((out.candidate, out.index))
            return
        self.evaluators.release(out.slot)
        back = time.time()
        evaluation = replace(evaluation, index=out.index, dispatched=out.dispatched, returned=back)
        # a pre-warmed evaluation waited for its turn while another one trained
        busy = back - out.dispatched - evaluation.result.waited_seconds
        self.record(out.candidate, evaluation, busy=busy, screen=out.index == SCREEN)
        if self.parked is None:
            self._judge(out.candidate, out.index, evaluation.result)
        else:  # the seed is being measured: judged once it is (evo.run.seed)
            self.parked.append((out.candidate, out.index, evaluation.result))

    def _judge(self, candidate: Candidate, index: int, result: EvalResult) -> None:
        """What comes of a candidate's evaluation `index` (a screen or a full one)."""
        if result.status != Status.OK:
            self._settle(candidate, Status(result.status), result.reason)
        elif index == SCREEN:
            parent = self.state.screens.get(candidate.child.parent_id)
            why = self.screen.verdict(candidate, parent, self.state.screen_noise.sigma)
            if why:
                self._settle(candidate, Status.SCREENED, why)
            else:  # first in line, as a repeat is; its children's screens are paired with it
                self.state.screens[candidate.id] = result.metric
                self.state.pending.appendleft((candidate, 0))
        else:
            member, noise = candidate.as_member(), self.state.noise.level
            verdict = self.islands.judge(candidate.island, member, noise)
            if verdict == Status.REPEAT:  # first in line; a run that stops here keeps it waiting
                self.state.pending.appendleft((candidate, index + 1))
            else:
                champion = self.state.champions.get(candidate.island)
                why = self.selection.surprise(candidate.as_member(), champion, self.state.sigma)
                self._settle(candidate, verdict, why)
        self.periodic.after_evaluation(self._running(), self.elapsed())

    def record(
        self, candidate: Candidate, evaluation: Evaluation, busy: float, screen: bool = False
    ) -> None:
        """An evaluation (or a `screen`) of a candidate came back, having kept an evaluator
        `busy` seconds."""
        if screen:
            candidate.screen = evaluation  # the seed's, of several, is chosen by evo.run.seed
            self.state.screens_done += 1
        else:
            candidate.evaluations.append(evaluation)
            self.state.noise.add(candidate.id, candidate.metrics)  # once measured again: noise
            self.state.evals_done += 1
            self.state.evaluated += len(candidate.evaluations) == 1 and candidate.id != 0
        self.state.busy_seconds += busy
        self.state.train_seconds += evaluation.result.train_seconds or 0.0
        self.scheduler.evaluated(busy)

    def _settle(self, candidate: Candidate, fate: Status, reason: str) -> None:
        parent = self.state.champion_fitness(candidate.island)
        fitness = candidate.fitness
        delta = None if fitness is None or parent is None else fitness - parent
        child, last = candidate.child, candidate.last_result
        attempt = Attempt(
            child.hypothesis, child.edit, fate, delta, reason, short_tail(last.stderr_tail)
        )
        member, displaced = candidate.as_member(), self.state.champions[candidate.island]
        self.islands.settle(candidate.island, member, fate, attempt)
        if fate == Status.ACCEPTED:
            self.state.set_champion(candidate.island, member, self.selection.minimize)
        elif fate != Status.KEPT:  # never a parent: its screen is no longer needed
            self.state.screens.pop(candidate.id, None)
        self.ensemble.settled(child.model, accepted=fate == Status.ACCEPTED)
        self.lineage.candidate(candidate, fate, reason, self.state.sigma)
        carried = self.carry and self.carry.settled(candidate, fate, displaced)
        if carried:  # first in line: a gain already shown, on the best program
            self.state.pending.appendleft((carried, self.proposals.first))

    def _running(self) -> list[tuple[Candidate, int]]:
        return [(out.candidate, out.index) for out in self.running.values()]

    def elapsed(self) -> float:
        return self.state.elapsed + time.monotonic() - self.started

    def figures(self) -> Figures:
        now = time.time()
        in_flight = sum(now - out.dispatched for out in self.running.values())
        return Figures.of(self.state, self.config.limits, self.elapsed(), in_flight)
