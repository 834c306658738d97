"""Cascade screening: a candidate is evaluated first at a fraction of the budget, and in full
only if it is not clearly behind its parent there.

Evaluation k of a program runs on the run's k-th seed at the full budget; a screen is one more
evaluation, at `fraction` of the budget and on the first seed, as its parent's screen was, so
that the two are paired. Clearly behind: worse than the parent's screen by more than
SCREEN_K x sigma at the screen's budget, which the seed program's noise round measures at the
start of the run (it is made at both budgets). A candidate screened out costs a fraction of an
evaluation instead of one or more; one that passes costs that fraction more.

What it risks: a change whose gain shows only late in training (a longer warm-up, a lower
learning rate) looks worse early and is screened out; `evo bench transfer` measures how often
(the rank correlation of short- and full-budget metrics, and improvements lost), and
BENCHMARKS.md "transfer" holds what it found on the gpt target, which set the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from evo.config import RunConfig
from evo.evaluate.allowance import Allowance
from evo.search.candidate import Candidate, EvalRequest
from evo.target import Target

SCREEN = -1  # the evaluation index of a screen, in the queue of pending evaluations
# How far behind its parent a screen must be to drop a candidate, in sigma at the screen's
# budget: only the clearly worse, since an early deficit may still close (BENCHMARKS "transfer")
SCREEN_K = 2.0


@dataclass(frozen=True)
class Screen:
    """fraction: of the full budget (0: no screening); budget: the full budget in seconds."""

    fraction: float
    budget: float
    noise_k: float
    minimize: bool

    @classmethod
    def of(cls, config: RunConfig, target: Target) -> Screen:
        """The run's screening: its own setting, else the target's."""
        evaluation = config.evaluation
        return cls(
            target.screen if evaluation.screen is None else evaluation.screen,
            evaluation.budget or target.budget_seconds,
            SCREEN_K,
            target.direction == "minimize",
        )

    def request(
        self,
        sources: dict[str, str],
        run_seed: int,
        index: int = 0,
        allowance: Allowance | None = None,
    ) -> EvalRequest:
        """The screen of a program on the run's `index`-th seed (the first but in the noise
        round)."""
        budget = self.fraction * self.budget
        return EvalRequest(sources, run_seed * 1000 + index, budget, allowance)

    def verdict(self, candidate: Candidate, parent: float | None, sigma: float) -> str:
        """Why `candidate`, screened, gets no full evaluation; "" if it gets one. `parent`: its
        parent's screen; a parent without one (as after a resume of a run that did not screen, or
        of a checkpoint from before RunState.screens) lets it through."""
        metric = candidate.screen.result.metric
        if parent is None:
            return ""
        behind = metric - parent if self.minimize else parent - metric
        if behind <= self.noise_k * sigma:
            return ""
        return (
            f"screened out at {self.fraction:g} of the budget: {metric:.6g} against its "
            f"parent's {parent:.6g}, behind by more than {self.noise_k:g} x sigma {sigma:.3g}"
        )
