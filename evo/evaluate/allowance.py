"""How far past its budget an evaluation may go, as the run has measured it.

Two limits follow what the seed program (the target's own code, which no variant can forge)
needed in the run's noise round, on the run's machines and under the run's load:

- **The training clock's grace** (evo.target.protocol.clock_grace): a training step that began
  just before the budget ran out ends after it, so the clock allows one step beyond the budget
  (and max(2 s, 5% of the budget) besides). The step is the longest the evaluation itself
  measured (the fixed part reports `longest_step_seconds`; on a busy CPU a step of the gpt
  target takes seconds), never more than STEP_FACTOR times the seed program's longest: what the
  variant's own process says of itself is what a forger would inflate, and a variant may
  legitimately take a larger step than the seed's, but not many times larger.
- **The hard timeout**: budget + max(TIMEOUT_FLOOR, TIMEOUT_FACTOR x the seed program's slowest
  evaluation - budget), and never past the target's own `timeout_seconds` (moved with the
  budget). An honest evaluation needs its budget plus set-up and measurement (for the gpt
  target 11.6 s on 2 CPU cores at a 10 s budget, 48 s with a cold compile on an H200); a variant
  that hangs is killed at about twice what the seed needed, not at the target's worst case. The
  floor leaves room for a compile the seed did not need (a variant that changes the model's
  shapes compiles afresh).

Before the seed is measured: the seed program's own evaluations (and `evo eval`) have no
allowance, and the step they report counts in full (the target's own code: on a CPU that other
jobs keep busy one of the gpt target's steps took 9.6 s at a 3 s budget); the children a run
evaluates alongside the seed's noise round have the `unmeasured` allowance, the margin alone and
the target's timeout, so that no variant's claim of a long step is ever taken as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evo.target import Target

STEP_DETAIL = "longest_step_seconds"  # what a fixed part reports of its longest training step
STEP_FACTOR = 2.0  # a variant's step may be this many times the seed program's longest
TIMEOUT_FACTOR = 2.0  # a hung variant is killed at about this many honest evaluations
TIMEOUT_FLOOR = 20.0  # seconds past the budget the hard timeout allows at least


@dataclass(frozen=True)
class Allowance:
    """What the seed program measured (its longest training step, 0 where the target does not
    report one; its slowest evaluation less the budget: set-up and measurement) and what the
    target allows beyond the budget at most (its timeout_seconds less its budget)."""

    step_seconds: float
    overhead_seconds: float
    target_seconds: float

    @classmethod
    def measured(cls, evaluations: list[dict], target: Target) -> Allowance | None:
        """From what the seed program's scored evaluations measured (their `measured` dicts,
        evo.search.candidate.Evaluation: budget_seconds, wall_seconds, what the target
        reported); None without one."""
        if not evaluations:
            return None
        return cls(
            step_seconds=max(float(e.get(STEP_DETAIL) or 0.0) for e in evaluations),
            overhead_seconds=max(
                max(0.0, e["wall_seconds"] - e["budget_seconds"]) for e in evaluations
            ),
            target_seconds=_beyond(target),
        )

    @classmethod
    def saved(cls, data: dict | None) -> Allowance | None:
        """From a checkpoint (None: a run from before measured limits, or one that has not
        measured its seed program yet)."""
        return cls(**data) if data else None

    @classmethod
    def unmeasured(cls, target: Target) -> Allowance:
        """For a variant evaluated before the seed program is measured: no step past the budget
        but the margin, and the target's own timeout."""
        beyond = _beyond(target)
        return cls(step_seconds=0.0, overhead_seconds=beyond, target_seconds=beyond)

    def timeout_for(self, budget: float) -> float:
        """The hard timeout of an evaluation at `budget`."""
        beyond = TIMEOUT_FACTOR * (budget + self.overhead_seconds) - budget
        return budget + min(self.target_seconds, max(TIMEOUT_FLOOR, beyond))

    def describe(self, budget: float) -> str:
        """One line for `evo lineage`."""
        honest = budget + self.overhead_seconds
        line = (
            f"hard timeout: {self.timeout_for(budget):.0f} s at the {budget:g} s budget "
            f"({TIMEOUT_FACTOR:g} x the seed program's slowest evaluation, {honest:.1f} s; at "
            f"least the budget + {TIMEOUT_FLOOR:g} s, at most + {self.target_seconds:g} s, the "
            "target's)"
        )
        if self.step_seconds:
            line += (
                f"; the training clock allows a step of up to {STEP_FACTOR:g} x the seed's "
                f"longest, {self.step_seconds:.2f} s, past the budget"
            )
        return line


def step_grace(reported: object, allowance: Allowance | None) -> float:
    """The step the training clock allows beyond the budget: what the evaluation reported as its
    longest step (0 for anything but a finite number), capped by STEP_FACTOR x the seed
    program's where the run has measured it."""
    number = isinstance(reported, int | float) and not isinstance(reported, bool)
    step = float(reported) if number and math.isfinite(reported) else 0.0
    cap = math.inf if allowance is None else STEP_FACTOR * allowance.step_seconds
    return min(max(0.0, step), cap)


def _beyond(target: Target) -> float:
    """What the target allows beyond its budget at most (its timeout moves with the budget)."""
    return target.timeout_seconds - target.budget_seconds
