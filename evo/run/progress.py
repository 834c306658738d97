"""Live progress of a run: one line of figures, from the running engine or from its checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from evo.config import LimitsConfig
from evo.run.state import Best, RunState

INTERVAL = 10.0  # seconds between lines
LISTED_ISLANDS = 4  # open islands whose champions the line lists; past that, their range


@dataclass(frozen=True)
class Figures:
    elapsed: float
    evals_done: int
    max_evals: int
    max_hours: float
    best: Best | None
    champions: dict[int, float]  # open island -> its champion's fitness
    closed: int  # islands not open yet
    evaluators: int
    busy_seconds: float
    train_seconds: float
    spent: float
    evaluated: int  # candidates evaluated, the seed program aside

    @classmethod
    def of(
        cls, state: RunState, limits: LimitsConfig, elapsed: float, in_flight: float = 0.0
    ) -> Figures:
        """The figures of a run `elapsed` seconds in, with `in_flight` evaluator seconds spent on
        evaluations not back yet."""
        return cls(
            elapsed,
            state.evals_done,
            limits.max_evals,
            limits.max_hours,
            state.best,
            {i: member.fitness for i, member in state.champions.items() if i < state.open_islands},
            len(state.champions) - min(state.open_islands, len(state.champions)),
            state.evaluators,
            state.busy_seconds + in_flight,
            state.train_seconds,
            state.spent,
            state.evaluated,
        )

    def line(self) -> str:
        done = f"evals {self.evals_done}" + (f"/{self.max_evals}" if self.max_evals else "")
        best = self.best
        best_text = (
            f"best {best.fitness:.4f} (island {best.island}, #{best.member.id})"
            if best
            else "best -"
        )
        champions = "/".join(f"{self.champions[i]:.4f}" for i in sorted(self.champions))
        if len(self.champions) > LISTED_ISLANDS:  # their range: a list would wrap the line
            low, high = min(self.champions.values()), max(self.champions.values())
            champions = f"{len(self.champions)} open, {low:.4f} to {high:.4f}"
        capacity = self.evaluators * max(self.elapsed, 1e-9)
        parts = [
            f"[{_clock(self.elapsed)}]",
            done,
            best_text,
            f"islands {champions}" + (f" (+{self.closed} closed)" if self.closed else ""),
            # busy: an evaluation was out (start-up, compiling and the final measurement
            # included); training: what the fixed parts counted against their budgets
            f"busy {100 * min(1.0, self.busy_seconds / capacity):.0f}%",
            f"training {100 * min(1.0, self.train_seconds / capacity):.0f}%",
            f"spend ${self.spent:.2f}" + self._per_candidate(),
        ]
        if self.max_hours:
            parts.append(f"left {_clock(max(0.0, self.max_hours * 3600 - self.elapsed))}")
        return "  ".join(parts)

    def _per_candidate(self) -> str:
        """What an evaluated candidate has cost: proposals refused along the way included."""
        if not self.spent:
            return ""
        if not self.evaluated:
            return " (no candidate evaluated yet)"
        return f" (${self.spent / self.evaluated:.3f} a candidate)"


class Progress:
    """Prints the figures `figures()` gives, at most every INTERVAL seconds unless asked."""

    def __init__(self, figures: Callable[[], Figures]):
        self.figures = figures
        self.last = 0.0

    def maybe_print(self) -> None:
        if time.monotonic() - self.last >= INTERVAL:
            self.print()

    def print(self) -> None:
        self.last = time.monotonic()
        print(self.figures().line(), flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
