"""The Ray cluster of a run and its evaluator actors: how many, on what resources, which are
free, which are coming back.

One evaluator per GPU (`num_gpus` each, so Ray sets CUDA_VISIBLE_DEVICES), or on a machine
without GPUs one (or as many as asked) sharing the CPUs. An evaluator holds nothing worth keeping,
so Ray restarts a dead one (max_restarts=-1) wherever there is room; its slot is used again only
once the restarted actor answers, so that no candidate waits on an evaluator whose node is gone.
One that cannot start at all (its node lacks the target, or evo) stops the run with why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from evo.config import EvaluationConfig
from evo.errors import UsageError
from evo.evaluate.isolation import resolve
from evo.evaluate.result import EvalResult
from evo.run.actors import Evaluator
from evo.search.candidate import EvalRequest
from evo.target import Target


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


class EvaluatorPool:
    def __init__(
        self,
        ray: Any,
        target: Target,
        config: EvaluationConfig,
        sandbox: Callable[..., EvalResult],
    ):
        self.ray = ray
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        self.device = "cuda" if gpus else "cpu"
        count = config.evaluators or (max(1, int(gpus // config.gpus_per_eval)) if gpus else 1)
        # On CPU the evaluators share the CPUs; more evaluators than CPUs get a fraction each
        # (asked for on purpose: evaluations that wait on something other than the CPU).
        share = resources.get("CPU", 1) / count
        threads = max(1, int(share)) if not gpus else 1
        options = (
            {"num_gpus": config.gpus_per_eval, "num_cpus": 1}
            if gpus
            else {"num_cpus": threads if share >= 1 else math.floor(share * 1e4) / 1e4}
        )
        # Pre-warm: two evaluations per evaluator, one training, the next one setting up.
        prewarm = target.prewarm and (
            config.prewarm == "on" or (config.prewarm == "auto" and bool(gpus))
        )
        remote = ray.remote(max_restarts=-1, max_concurrency=2 if prewarm else 1)(
            Evaluator
        ).options(**options)
        self.isolation = resolve(config.isolation, self.device)
        # evaluations at once on one machine, which share its memory by default
        nodes = [n["Resources"].get("GPU", 0) for n in ray.nodes() if n["Alive"]]
        at_once = max(1, int(max(nodes) // config.gpus_per_eval)) if gpus else count
        self.actors = [
            remote.remote(
                f"evaluator-{i}",
                str(target.root),
                self.device,
                threads,
                sandbox,
                self.isolation,
                config.memory_gb,
                at_once,
                prewarm,
                config.gpus_per_eval if gpus else 0.0,
            )
            for i in range(count)
        ]
        # Each evaluator is used once it answers, so the first evaluations go to the first
        # evaluators up (8 starting on a busy machine, or on nodes that join late, come up
        # seconds apart), not to one still starting while others wait.
        self.idle: list[int] = []
        self.slots = count * (2 if prewarm else 1)  # evaluations the pool takes at once
        # ready() calls of starting or restarted evaluators -> slot
        self.recovering = {
            self.actors[i % count].ready.remote(): i % count for i in range(self.slots)
        }
        self.starting = set(self.recovering)

    def __len__(self) -> int:
        return len(self.actors)

    def close(self) -> None:
        """Kill the evaluators now: Ray frees the CPUs or GPUs they reserve (where Ray is down,
        they went with it, and their handles would raise instead)."""
        if self.ray.is_initialized():
            for actor in self.actors:
                self.ray.kill(actor)

    def submit(self, request: EvalRequest) -> tuple[Any, int]:
        """Start an evaluation on the first idle evaluator; returns its reference and slot."""
        slot = self.idle.pop(0)
        return self.actors[slot].evaluate.remote(request), slot

    def release(self, slot: int) -> None:
        """Evaluator `slot` finished its evaluation."""
        self.idle.append(slot)

    def lost(self, slot: int, why: str = "") -> None:
        """Evaluator `slot` died (`why`, when it is news): wait for Ray's restart of it before
        using it again."""
        if why:
            print(
                f"evaluator-{slot} died ({why} re-queued); evaluator-{slot} comes back when Ray "
                "has restarted it where there is room",
                flush=True,
            )
        self.recovering[self.actors[slot].ready.remote()] = slot

    def recovered(self, ref: Any) -> None:
        """A starting or restarted evaluator answered (or died before it could)."""
        slot, restarted = self.recovering.pop(ref), ref not in self.starting
        self.starting.discard(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayActorError as e:
            if e.actor_init_failed:  # it would fail again wherever Ray restarted it
                cause = str(e).strip().splitlines()[-1]
                raise UsageError(
                    f"evaluator-{slot} cannot start ({cause}); every node needs the target "
                    "folder and evo's environment at the same paths: fix that, then run again "
                    "(with --resume once the run has a checkpoint)"
                ) from None
            self.lost(slot)
            return
        if restarted:
            print(f"evaluator-{slot} is back", flush=True)
        self.idle.append(slot)
