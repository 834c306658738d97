"""Live progress of a run in the terminal: one line every few seconds, from the engine's state."""

from __future__ import annotations

import time
from typing import Any

from evo.candidate import member_fitness

INTERVAL = 10.0  # seconds between lines


class Progress:
    def __init__(self, engine: Any):
        self.engine = engine
        self.last = 0.0

    def maybe_print(self) -> None:
        if time.monotonic() - self.last >= INTERVAL:
            self.print()

    def print(self) -> None:
        self.last = time.monotonic()
        print(line(self.engine), flush=True)


def line(engine: Any) -> str:
    c = engine.config
    elapsed = engine.elapsed()
    done = f"evals {engine.evals_done}" + (f"/{c.max_evals}" if c.max_evals else "")
    best = engine.best
    best_text = (
        f"best {best['fitness']:.4f} (island {best['island']}, #{best['member']['id']})"
        if best
        else "best -"
    )
    champions = "/".join(
        f"{member_fitness(engine.champions[i]):.4f}" for i in sorted(engine.champions)
    )
    capacity = len(engine.evaluators) * max(elapsed, 1e-9)
    now = time.time()
    busy = engine.busy_seconds + sum(now - started for *_, started in engine.running.values())
    utilisation = f"util {100 * min(1.0, busy / capacity):.0f}%"
    parts = [
        f"[{_clock(elapsed)}]",
        done,
        best_text,
        f"islands {champions}",
        utilisation,
        f"spend ${engine.spent:.2f}",
    ]
    if c.max_hours:
        parts.append(f"left {_clock(max(0.0, c.max_hours * 3600 - elapsed))}")
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
