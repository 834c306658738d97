"""What a run does every so many evaluations: migration round the ring, resets of stagnating
islands from the run's best, and checkpoints.

Stagnation is checked at the migration cadence: asking every island after every evaluation would
cost one round trip per island on the hot path. Instant evaluations would spend their time
writing checkpoints: at most one every MIN_CHECKPOINT_SECONDS, so a crash costs at most that
much work or checkpoint_every evaluations, whichever is more.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from evo.errors import UsageError
from evo.status import Event, Status
from evo.store import checkpoint

if TYPE_CHECKING:
    from evo.run.engine import Engine

MIN_CHECKPOINT_SECONDS = 2.0


class Tasks:
    def __init__(self, engine: Engine):
        self.engine = engine
        # The evaluation count when each task last ran.
        self.last = dict.fromkeys(
            ("migration", "stagnation", "checkpoint"), engine.state.evals_done
        )
        self.checkpointed_at = 0.0

    def after_evaluation(self) -> None:
        search = self.engine.config.search
        several = len(self.engine.islands) > 1
        if (
            several
            and search.migration_interval
            and self._due("migration", search.migration_interval)
        ):
            self.migrate()
        if (
            several
            and search.stagnation
            and self._due("stagnation", search.migration_interval or 10)
        ):
            self.reset_stagnant()
        recent = time.monotonic() - self.checkpointed_at < MIN_CHECKPOINT_SECONDS
        if not recent and self._due("checkpoint", self.engine.config.checkpoint_every):
            self.checkpoint()

    def _due(self, what: str, interval: int) -> bool:
        """Whether `interval` evaluations have passed since `what` last happened."""
        if self.engine.state.evals_done - self.last[what] < interval:
            return False
        self.last[what] = self.engine.state.evals_done
        return True

    def migrate(self) -> None:
        engine = self.engine
        for source, dest, migrant, verdict in engine.islands.migrate(
            engine.config.search.migration_count
        ):
            if verdict == Status.ACCEPTED:
                engine.state.set_champion(dest, migrant, engine.selection.minimize)
            engine.lineage.event(Event.MIGRATION, migrant.id, source, dest, verdict)

    def reset_stagnant(self) -> None:
        engine, best = self.engine, self.engine.state.best
        for index, since in enumerate(engine.islands.since_improvement()):
            if since < engine.config.search.stagnation or best is None or best.island == index:
                continue
            engine.islands.reset(index, best.member)
            engine.state.set_champion(index, best.member, engine.selection.minimize)
            engine.lineage.event(Event.RESET, best.member.id, best.island, index, Status.RESET)

    def checkpoint(self) -> None:
        """Save the run state; a run folder that cannot be written stops the run in one line."""
        engine = self.engine
        try:
            self.checkpointed_at = time.monotonic()
            engine.lineage.flush()
            engine.state.lineage_parts = engine.lineage.parts
            engine.state.islands = engine.islands.states()
            running = [(out.candidate, out.index) for out in engine.running.values()]
            checkpoint.save(
                engine.run_dir,
                engine.state.to_json(running, engine.elapsed())
                | {"run_id": engine.run_dir.name, "target": str(engine.target.root)},
            )
        except OSError as e:  # a full disk, a folder made read-only or removed
            raise UsageError(
                f"cannot write to the run folder {engine.run_dir} ({e.strerror or e}); free "
                f"space or fix its permissions, then go on: python -m evo run --resume "
                f"{engine.run_dir}"
            ) from None
