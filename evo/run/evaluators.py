"""The evaluator actors of a run: how many, on what resources, which are free, which are coming
back.

One evaluator per GPU (`num_gpus` each, so Ray sets CUDA_VISIBLE_DEVICES), or on a machine
without GPUs one (or as many as asked) sharing the CPUs. An evaluator holds nothing worth keeping,
so Ray restarts a dead one (max_restarts=-1) wherever there is room; its slot is used again only
once the restarted actor answers, so that no candidate waits on an evaluator whose node is gone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from evo.config import RunConfig
from evo.evaluate.result import EvalResult
from evo.run.actors import Evaluator
from evo.target import Target


class EvaluatorPool:
    def __init__(
        self, ray: Any, target: Target, config: RunConfig, sandbox: Callable[..., EvalResult]
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
        remote = ray.remote(max_restarts=-1)(Evaluator).options(**options)
        self.actors = [
            remote.remote(f"evaluator-{i}", str(target.root), self.device, threads, sandbox)
            for i in range(count)
        ]
        self.idle = list(range(count))
        self.recovering: dict[Any, int] = {}  # ready() calls of restarted evaluators -> slot

    def __len__(self) -> int:
        return len(self.actors)

    def __getitem__(self, slot: int) -> Any:
        return self.actors[slot]

    def submit(self, slot: int, sources: dict[str, str], seed: int, budget: float | None) -> Any:
        """Start an evaluation on evaluator `slot`; returns its reference."""
        return self.actors[slot].evaluate.remote(sources, seed, budget)

    def lost(self, slot: int) -> None:
        """Evaluator `slot` died: wait for Ray's restart of it before using it again."""
        self.recovering[self.actors[slot].ready.remote()] = slot

    def recovered(self, ref: Any) -> None:
        slot = self.recovering.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayActorError:  # died again before it could answer
            self.lost(slot)
            return
        print(f"evaluator-{slot} is back", flush=True)
        self.idle.append(slot)
