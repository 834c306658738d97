"""What a run does every so many evaluations: migration round the ring, resets of stagnating
islands from the run's best, the opening of closed islands, and checkpoints.

A run may start with fewer islands open than it has (start_islands): one greedy chain is what
the first evaluations need, and islands pay once it stalls. Each time every open island has gone
`patience` of its evaluations without improving, the next island opens, founded from the runner-up
of the island that holds the run's best: near the best program, not on it, where a chain that
cannot leave its optimum by one step may by two. Migration and resets concern open islands only.

Migration is counted per island: every `migration_interval` x open islands evaluations of the
run, so that each island sends its best after about `migration_interval` of its own, whether 2
islands are open or 64 (counted per run, 64 islands wrote 6.4 migration rows an evaluation).
The cadence counts from the run's start, so the first round comes as soon as the second island
is open (at the next evaluation, once the run is 2 x migration_interval evaluations old): the new
island, founded from the runner-up, is sent the first's best at once and holds both.
Restarting the cadence when an island opens, so that it starts from the runner-up alone,
measured worse (BENCHMARKS.md "efficiency", Migration counted per island).
Stagnation is checked at the same cadence: asking every island after every evaluation would
cost one round trip per island on the hot path. Whether to open an island is asked only once
enough evaluations have come back for every open island to have run out of patience since the
last answer (counts grow by one an evaluation; evaluations made but not yet settled count for
their islands later), so a split is never late and rarely asked. Instant evaluations
would spend their time writing checkpoints: at most one every MIN_CHECKPOINT_SECONDS, so a crash
costs at most that much work or checkpoint_every evaluations, whichever is more.
"""

from __future__ import annotations

import time
from pathlib import Path

from evo.config import RunConfig
from evo.errors import UsageError
from evo.run.archipelago import Archipelago
from evo.run.state import RunState
from evo.search.candidate import Candidate
from evo.search.island import Member
from evo.status import Event, Status
from evo.store import checkpoint
from evo.store.lineage import LineageWriter

MIN_CHECKPOINT_SECONDS = 2.0


class Tasks:
    """Holds no reference to the engine: an engine that is done is freed at once, and its actors
    (and the resources they hold) with it, without waiting for a garbage collection."""

    def __init__(
        self,
        config: RunConfig,
        state: RunState,
        islands: Archipelago,
        lineage: LineageWriter,
        minimize: bool,
        run_dir: Path,
        target_root: Path,
    ):
        self.config, self.state, self.islands, self.lineage = config, state, islands, lineage
        self.minimize, self.run_dir, self.target_root = minimize, run_dir, target_root
        # The evaluation count when each task last ran.
        self.last = dict.fromkeys(("migration", "stagnation", "checkpoint"), state.evals_done)
        self.checkpointed_at = 0.0
        self.split_at = 0  # no island can be opened before this many evaluations (split)

    def after_evaluation(self, running: list[tuple[Candidate, int]], elapsed: float) -> None:
        """`running`: the candidates being evaluated, with their evaluation numbers; `elapsed`:
        the run's seconds so far (both for a checkpoint)."""
        search, opened = self.config.search, self.state.open_islands
        # Counted per island: each open island migrates after about `migration_interval` of its
        # own evaluations, however many islands share the run's.
        every = (search.migration_interval or 10) * opened
        if opened > 1 and search.migration_interval and self._due("migration", every):
            self.migrate()
        if opened > 1 and search.stagnation and self._due("stagnation", every):
            self.reset_stagnant()
        if self.state.evals_done >= self.split_at:
            self.split(running)
        recent = time.monotonic() - self.checkpointed_at < MIN_CHECKPOINT_SECONDS
        if not recent and self._due("checkpoint", self.config.checkpoint_every):
            self.checkpoint(running, elapsed)

    def _due(self, what: str, interval: int) -> bool:
        """Whether `interval` evaluations have passed since `what` last happened."""
        if self.state.evals_done - self.last[what] < interval:
            return False
        self.last[what] = self.state.evals_done
        return True

    def migrate(self) -> None:
        for source, dest, migrant, verdict in self.islands.migrate(
            self.config.search.migration_count, self.state.noise.level, self.state.open_islands
        ):
            if verdict == Status.ACCEPTED:
                self.state.set_champion(dest, migrant, self.minimize)
            self.lineage.event(Event.MIGRATION, migrant.id, source, dest, verdict)

    def reset_stagnant(self) -> None:
        best = self.state.best
        for index, since in enumerate(self.islands.since_improvement(self.state.open_islands)):
            if since < self.config.search.stagnation or best is None or best.island == index:
                continue
            self._found(index, best.member, best.island, Event.RESET)

    def split(self, running: list[tuple[Candidate, int]], now: bool = False) -> bool:
        """Open the next island if there is one and every open one has gone `patience`
        evaluations without a gain (or `now`); else note how many evaluations must come back
        before one could be opened."""
        opened, patience = self.state.open_islands, self.config.search.patience
        if opened == len(self.islands):
            return False
        since = [] if now else self.islands.since_improvement(opened)
        short = sum(max(0, patience - n) for n in since)
        if short:
            unsettled = sum(len(c.evaluations) for c, _ in [*self.state.pending, *running])
            self.split_at = self.state.evals_done + max(1, short - unsettled)
            return False
        best = self.state.best
        self._found(opened, self.islands.runner_up(best.island), best.island, Event.SPLIT)
        self.state.open_islands += 1
        return True

    def _found(self, index: int, founder: Member, source: int, kind: Event) -> None:
        """Island `index` starts again from `founder`, a program of island `source`."""
        self.islands.reset(index, founder, self.state.noise.level)
        self.state.set_champion(index, founder, self.minimize)
        self.lineage.event(kind, founder.id, source, index, Status.RESET)

    def checkpoint(
        self, running: list[tuple[Candidate, int]], elapsed: float, live: bool = True
    ) -> None:
        """Save the run state, and whether the run goes on after it (a report that follows the
        run stops at the last one); a run folder that cannot be written stops the run in one
        line."""
        try:
            self.checkpointed_at = time.monotonic()
            self.lineage.flush()
            self.state.lineage_parts = self.lineage.parts
            self.state.islands = self.islands.states()
            checkpoint.save(
                self.run_dir,
                self.state.to_json(running, elapsed)
                | {"run_id": self.run_dir.name, "target": str(self.target_root), "live": live},
            )
        except OSError as e:  # a full disk, a folder made read-only or removed
            raise UsageError(
                f"cannot write to the run folder {self.run_dir} ({e.strerror or e}); free "
                f"space or fix its permissions, then go on: python -m evo run --resume "
                f"{self.run_dir}"
            ) from None
