"""The two kinds of Ray actor: an island (population + operator) and an evaluator (sandbox).

Plain classes: the run wraps them with `ray.remote` and the resources each needs, and tests
can use them directly. A restarted actor loses its memory; the run rebuilds islands from its
own checkpoints, and evaluators hold no state worth keeping.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict

from evo.evaluate.isolation import namespaces_work
from evo.evaluate.memory import default_cap
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.mutate.edits import describe
from evo.mutate.llm import LLMConfig
from evo.mutate.operator import OperatorFactory, make_operator
from evo.mutate.prompt import Attempt, Inspiration, Mate, Measured
from evo.mutate.proposal import Proposal, Validator
from evo.search.candidate import Child, EvalRequest, Evaluation
from evo.search.island import Island, Member, Selection
from evo.search.noise import Level
from evo.status import Status
from evo.target import load_target

HISTORY = 20  # attempts an island remembers for its prompts


class IslandActor:
    """An island, its mutation operator and the attempts its prompts report; proposes children
    of its own parents.

    Several proposals may be in flight at once (a threaded actor), so that a slow model service
    cannot starve the evaluators: the island's state is touched under a lock, the operator's
    call is not (each operator keeps itself consistent).
    """

    def __init__(
        self,
        target_root: str,
        operator: str | OperatorFactory,
        selection: Selection,
        seed: int,
        index: int,
        device: str,
        llm: LLMConfig | None = None,
    ):
        """The slow part (imports, the target, the operator), which a run starts while the seed
        program is being evaluated; the island itself comes with `restore`."""
        self.target = load_target(target_root)
        self.selection = selection
        self.lock = threading.Lock()
        self.validator = Validator(self.target)
        seed = seed + 7919 * index
        self.operator = (
            make_operator(operator, self.validator, seed, device, llm)
            if isinstance(operator, str)
            else operator(self.validator, seed)
        )

    def restore(self, state: dict, seen: list[str]) -> None:
        """The island as `state` holds it, knowing every program of the run so far (`seen`);
        called once, before anything else."""
        with self.lock:
            self.island = Island.from_state(state["island"], self.selection)
            self.history = deque((Attempt(**a) for a in state["history"]), maxlen=HISTORY)
            self.validator.seen.update(seen)

    def propose(self, inspirations: list[Inspiration], model: str | None = None) -> Child:
        """A child of a parent chosen here, with what the lineage needs to know of it; `model`:
        the one to ask, where the driver chooses."""
        with self.lock:
            parent = self.island.select_parent()
            from_champion = parent.id == self.island.champion.id
            second = self.island.select_mate(parent)
            history = list(self.history)
        mate = second and Mate(  # what the operator needs of the two parents
            second.id, second.sources, second.fitness, second.hypothesis, parent.hypothesis
        )
        noise = self.island.noise.sigma
        measured = (  # the seed program's children are proposed while it is measured
            Measured(parent.details, noise, self.island.selection.noise_k * noise)
            if parent.metrics
            else Measured({})
        )
        started = time.monotonic()
        try:
            proposal = self.operator.propose(
                parent.sources,
                metric=parent.fitness if parent.metrics else None,
                history=history,
                inspirations=[i for i in inspirations if i.island != self.island.index],
                measured=measured,
                model=model,
                mate=mate,
            )
        except Exception as e:  # an operator's bug must not end the run: it is a refusal
            why = f"the operator failed: {type(e).__name__}: {e}"[:500]
            proposal = Proposal(self.operator.name, model, "", (), None, (why,))
        edit = "; ".join(describe(e) for e in proposal.edits)
        if not proposal.valid:
            reason = proposal.rejections[-1] if proposal.rejections else "no proposal"
            with self.lock:
                self.island.missed()
                self.history.append(
                    Attempt(proposal.hypothesis, edit, Status.REFUSED, None, reason)
                )
        return Child(
            island=self.island.index,
            parent_id=parent.id,
            generation=parent.generation + 1,
            operator=proposal.operator,
            model=proposal.model,
            hypothesis=proposal.hypothesis,
            edit=edit,
            sources=proposal.child,
            reason="; ".join(proposal.rejections) if not proposal.valid else "",
            usage=proposal.usage,
            mutation_s=time.monotonic() - started,
            mate_id=proposal.mate_id,
            from_champion=from_champion,
            exhausted=proposal.exhausted,
        )

    def judge(self, candidate: Member, noise: Level) -> Status:
        with self.lock:
            self.island.noise = noise  # the run's, refined as it goes
            return self.island.judge(candidate)

    def settle(self, candidate: Member, fate: Status, attempt: Attempt) -> None:
        with self.lock:
            self.island.settle(candidate, fate)
            self.history.append(attempt)

    def best(self, count: int) -> list[Member]:
        with self.lock:
            return self.island.best(count)

    def runner_up(self) -> Member:
        with self.lock:
            return self.island.runner_up()

    def receive(self, migrant: Member, noise: Level) -> Status:
        with self.lock:
            self.island.noise = noise
            return self.island.receive(migrant)

    def reset(self, founder: Member, noise: Level) -> None:
        with self.lock:
            self.island.noise = noise
            self.island.reset(founder)

    def state(self) -> dict:
        with self.lock:
            return {
                "island": self.island.state(),
                "history": [asdict(a) for a in self.history],
            }

    def since_improvement(self) -> int:
        with self.lock:
            return self.island.since_improvement


def island_state(island: Island) -> dict:
    """The state of a new island actor: the island, and no attempts yet."""
    return {"island": island.state(), "history": []}


class Evaluator:
    """Runs evaluations one at a time on the resources Ray reserved for it.

    sandbox: what runs one evaluation; evo.evaluate.sandbox.evaluate, or in benchmarks of the
    engine itself an in-process stand-in with the same signature
    (evo.bench.synthetic.instant_evaluation).
    """

    def __init__(
        self,
        name: str,
        target_root: str,
        device: str,
        threads: int,
        sandbox: Callable[..., EvalResult] = evaluate,
        isolation: str = "process",
        memory_gb: float = 0.0,
        at_once: int = 1,
        prewarm: bool = False,
        gpu_share: float = 0.0,
    ):
        self.name = name
        self.gpu_share = gpu_share
        self.target = load_target(target_root)
        self.device = device
        self.threads = threads
        self.sandbox = sandbox
        # The driver chose the level on its own machine; this one may allow less.
        self.isolation = isolation if namespaces_work(device) else "process"
        self.memory_bytes = int(memory_gb * 2**30) or default_cap(at_once)
        # held by the evaluation that trains; with pre-warm the next one sets up meanwhile
        self.turn = threading.Lock() if prewarm else None

    def ready(self) -> str:
        """Answers once the actor runs: after a restart, where Ray found room for it."""
        return self.name

    @functools.cached_property
    def machine(self) -> str:
        """The device this actor evaluates on, in words: the name and memory of the GPU Ray
        gave it (asked of nvidia-smi, which numbers GPUs as Ray does), or its CPU threads."""
        import ray

        gpus = ray.get_gpu_ids()
        if self.device == "cuda" and gpus:
            query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
            try:
                found = subprocess.run(
                    [*query, "-i", str(gpus[0])], capture_output=True, text=True, timeout=10
                )
                return "GPU " + found.stdout.strip().splitlines()[0]
            except (OSError, subprocess.SubprocessError, IndexError):
                return f"GPU {gpus[0]}"
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{self.device.upper()}, {threads} ({platform.machine()})"

    def evaluate(self, request: EvalRequest) -> Evaluation:
        import ray  # the actor runs under Ray; its context says where

        result = self.sandbox(
            self.target,
            request.sources,
            budget_seconds=request.budget,
            device=self.device,
            seed=request.seed,
            threads=self.threads,
            isolation=self.isolation,
            memory_bytes=self.memory_bytes,
            turn=self.turn,
            allowance=request.allowance,
        )
        return Evaluation(
            result=result,
            evaluator=self.name,
            node=ray.get_runtime_context().get_node_id(),
            host=socket.gethostname(),
            gpu=",".join(str(g) for g in ray.get_gpu_ids()),
            pid=os.getpid(),
            machine=self.machine,
            gpu_share=self.gpu_share,
        )
