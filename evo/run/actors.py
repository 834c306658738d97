"""The two kinds of Ray actor: an island (population + operator) and an evaluator (sandbox).

Plain classes: the engine wraps them with `ray.remote` and the resources each needs, and tests
can use them directly. A restarted actor loses its memory; the engine rebuilds islands from its
own checkpoints, and evaluators hold no state worth keeping.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.mutate.edits import describe
from evo.mutate.llm import LLMConfig
from evo.mutate.operator import make_operator
from evo.mutate.prompt import Attempt, Inspiration
from evo.mutate.proposal import Validator
from evo.search.island import Island, Member, Selection
from evo.target import load_target


class IslandActor:
    """An island and its mutation operator; proposes children of its own parents.

    Several proposals may be in flight at once (a threaded actor), so that a slow model service
    cannot starve the evaluators: the island's state is touched under a lock, the operator's
    call is not (each operator keeps itself consistent).
    """

    def __init__(
        self,
        target_root: str,
        operator: str,
        selection: Selection,
        seed: int,
        device: str,
        state: dict,
        seen: list[str],
        llm: LLMConfig | None = None,
    ):
        self.target = load_target(target_root)
        self.island = Island.from_state(state, selection)
        self.lock = threading.Lock()
        validator = Validator(self.target, seen)
        self.operator = make_operator(
            operator, validator, seed + 7919 * state["index"], device, llm
        )

    def propose(self, inspirations: list[Inspiration]) -> dict:
        """A child of a parent chosen here, with what the lineage needs to know of it."""
        with self.lock:
            parent = self.island.select_parent()
            history = list(self.island.history)
        started = time.monotonic()
        proposal = self.operator.propose(
            parent.sources,
            metric=parent.fitness,
            history=history,
            inspirations=[i for i in inspirations if i.island != self.island.index],
        )
        edit = "; ".join(describe(e) for e in proposal.edits)
        if not proposal.valid:
            reason = proposal.rejections[-1] if proposal.rejections else "no proposal"
            with self.lock:
                self.island.history.append(
                    Attempt(proposal.hypothesis, edit, "rejected", None, reason)
                )
        return {
            "island": self.island.index,
            "parent_id": parent.id,
            "generation": parent.generation + 1,
            "operator": proposal.operator,
            "model": proposal.model,
            "hypothesis": proposal.hypothesis,
            "edit": edit,
            "sources": proposal.child,
            "reason": "; ".join(proposal.rejections) if not proposal.valid else "",
            "usage": asdict(proposal.usage),
            "mutation_s": time.monotonic() - started,
        }

    def judge(self, candidate: dict) -> str:
        with self.lock:
            return self.island.judge(_as_member(candidate))

    def settle(self, candidate: dict, verdict: str, attempt: dict) -> None:
        with self.lock:
            self.island.settle(_as_member(candidate), verdict)
            self.island.history.append(Attempt(**attempt))

    def best(self, count: int) -> list[dict]:
        with self.lock:
            return [_as_dict(m) for m in self.island.best(count)]

    def receive(self, migrant: dict) -> str:
        with self.lock:
            return self.island.receive(_as_member(migrant))

    def reset(self, founder: dict) -> None:
        with self.lock:
            self.island.reset(_as_member(founder))

    def state(self) -> dict:
        with self.lock:
            return self.island.state()

    def since_improvement(self) -> int:
        with self.lock:
            return self.island.since_improvement


class Evaluator:
    """Runs evaluations one at a time on the resources Ray reserved for it.

    sandbox: what runs one evaluation; evo.evaluate.sandbox.evaluate, or in benchmarks of the engine
    itself an in-process stand-in with the same signature (evo.bench.synthetic.instant_evaluation).
    """

    def __init__(
        self,
        name: str,
        target_root: str,
        device: str,
        threads: int,
        sandbox: Callable[..., EvalResult] = evaluate,
    ):
        self.name = name
        self.target = load_target(target_root)
        self.device = device
        self.threads = threads
        self.sandbox = sandbox

    def ready(self) -> str:
        """Answers once the actor runs: after a restart, where Ray found room for it."""
        return self.name

    def evaluate(self, sources: dict[str, str], seed: int, budget: float | None) -> dict:
        import ray  # the actor runs under Ray; its context says where

        context = ray.get_runtime_context()
        result = self.sandbox(
            self.target,
            sources,
            budget_seconds=budget,
            device=self.device,
            seed=seed,
            threads=self.threads,
        )
        return {
            "result": asdict(result),
            "evaluator": self.name,
            "node": context.get_node_id(),
            "host": socket.gethostname(),
            "gpu": ",".join(str(g) for g in ray.get_gpu_ids()),
            "pid": os.getpid(),
        }


def _as_member(candidate: dict) -> Member:
    metrics = {int(k): v for k, v in candidate["metrics"].items()}
    return Member(candidate["id"], candidate["sources"], metrics, candidate["generation"])


def _as_dict(member: Member) -> dict:
    return {
        "id": member.id,
        "sources": member.sources,
        "metrics": member.metrics,
        "generation": member.generation,
        "fitness": member.fitness,
    }
