"""Live progress of a run: one line of figures, from the running engine or from its checkpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from evo.search.candidate import member_fitness

INTERVAL = 10.0  # seconds between lines


@dataclass(frozen=True)
class Figures:
    elapsed: float
    evals_done: int
    max_evals: int
    max_hours: float
    best: dict | None
    champions: dict
    evaluators: int
    busy_seconds: float
    spent: float

    @classmethod
    def of_engine(cls, engine: Any) -> Figures:
        now = time.time()
        in_flight = sum(now - started for *_, started in engine.running.values())
        return cls(
            engine.elapsed(),
            engine.evals_done,
            engine.config.max_evals,
            engine.config.max_hours,
            engine.best,
            engine.champions,
            len(engine.evaluators),
            engine.busy_seconds + in_flight,
            engine.spent,
        )

    @classmethod
    def of_checkpoint(cls, state: dict, max_evals: int, max_hours: float) -> Figures:
        return cls(
            state["elapsed"],
            state["evals_done"],
            max_evals,
            max_hours,
            state["best"],
            state["champions"],
            state.get("evaluators", 1),
            state["busy_seconds"],
            state["spent"],
        )

    def line(self) -> str:
        done = f"evals {self.evals_done}" + (f"/{self.max_evals}" if self.max_evals else "")
        best = self.best
        best_text = (
            f"best {best['fitness']:.4f} (island {best['island']}, #{best['member']['id']})"
            if best
            else "best -"
        )
        champions = "/".join(
            f"{member_fitness(self.champions[i]):.4f}" for i in sorted(self.champions, key=int)
        )
        capacity = self.evaluators * max(self.elapsed, 1e-9)
        parts = [
            f"[{_clock(self.elapsed)}]",
            done,
            best_text,
            f"islands {champions}",
            f"util {100 * min(1.0, self.busy_seconds / capacity):.0f}%",
            f"spend ${self.spent:.2f}",
        ]
        if self.max_hours:
            parts.append(f"left {_clock(max(0.0, self.max_hours * 3600 - self.elapsed))}")
        return "  ".join(parts)


class Progress:
    def __init__(self, engine: Any):
        self.engine = engine
        self.last = 0.0

    def maybe_print(self) -> None:
        if time.monotonic() - self.last >= INTERVAL:
            self.print()

    def print(self) -> None:
        self.last = time.monotonic()
        print(Figures.of_engine(self.engine).line(), flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
