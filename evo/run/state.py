"""The state of a run: what the driver knows, and what its checkpoint is made of.

Everything here is saved at each checkpoint (evo.store.checkpoint writes it atomically, with the
candidates being evaluated among the pending, the run's seconds so far, its id and target) and
read back on resume; Ray actors hold nothing that is not rebuilt from it. The live progress line and
`evo status` read the same figures, from the running engine or from the file.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field

from evo.evaluate.allowance import Allowance
from evo.mutate.ensemble import ModelRecord, records_from_json, records_to_json
from evo.search.candidate import Candidate
from evo.search.island import Member
from evo.search.noise import Noise


@dataclass(frozen=True)
class Best:
    """The best program of the run so far and the island that holds it."""

    island: int
    member: Member

    @property
    def fitness(self) -> float:
        return self.member.fitness


@dataclass
class RunState:
    """noise: the run's noise (evo.search.noise), from every program evaluated more than once;
        `sigma` is its current estimate.
    screen_noise: the same at the screen's budget (evo.run.screen), from the seed's screens.
    screens_done: screens made (evals_done counts full evaluations).
    evaluated: candidates evaluated at least once, the seed program aside (what spend is per).
    evaluators: evaluator actors of the run (for its utilisation).
    busy_seconds: evaluator seconds spent on evaluations that came back.
    train_seconds: their training seconds (what the fixed parts counted against the budget).
    elapsed: the run's seconds before this driver started (a resume adds its own).
    champions: each island's champion, for the inspirations of prompts and the progress line.
    seen: hashes of every program proposed, so that none is evaluated twice.
    screens: where the run screens (evo.run.screen), the screen of each program that passed it
        (and the seed's on the first seed): program id -> metric, what its children's screens
        are compared with when they come back.
    pending: candidates to evaluate, each with the seed index of its next evaluation; at a
        checkpoint the ones being evaluated are saved with them, and evaluated again on resume.
    islands: each island actor's state as of the last checkpoint (what a dead one is rebuilt from).
    open_islands: islands the run asks for proposals so far (the first ones; start_islands).
    lineage_parts: lineage files the checkpoint covers; later ones are discarded on resume.
    models: what each model's proposals cost and earned (evo.mutate.ensemble).
    allowance: what the seed program's evaluations measured, which the hard timeout and the
        training clock's grace of later evaluations follow (evo.evaluate.allowance).
    """

    noise: Noise = field(default_factory=Noise)
    next_id: int = 1
    evals_done: int = 0
    screen_noise: Noise = field(default_factory=Noise)
    screens_done: int = 0
    evaluated: int = 0
    spent: float = 0.0
    evaluators: int = 1
    busy_seconds: float = 0.0
    train_seconds: float = 0.0
    elapsed: float = 0.0
    champions: dict[int, Member] = field(default_factory=dict)
    best: Best | None = None
    seen: set[str] = field(default_factory=set)
    screens: dict[int, float] = field(default_factory=dict)
    pending: deque[tuple[Candidate, int]] = field(default_factory=deque)
    islands: list[dict] = field(default_factory=list)
    open_islands: int = 0
    lineage_parts: int = 0
    models: dict[str, ModelRecord] = field(default_factory=dict)
    allowance: Allowance | None = None

    @property
    def sigma(self) -> float:
        return self.noise.sigma

    def set_champion(self, island: int, member: Member, minimize: bool) -> None:
        self.champions[island] = member
        if self.best is None or (
            member.fitness < self.best.fitness if minimize else member.fitness > self.best.fitness
        ):
            self.best = Best(island, member)

    def champion_fitness(self, island: int) -> float | None:
        member = self.champions.get(island)
        return member.fitness if member else None

    def to_json(self, running: list[tuple[Candidate, int]], elapsed: float) -> dict:
        """The checkpoint's content, `elapsed` seconds into the run; `running`: candidates being
        evaluated, saved as pending (their evaluations are made again on resume)."""
        best = self.best
        return {
            "sigma": self.sigma,
            "noise": self.noise.to_json(),
            "next_id": self.next_id,
            "evals_done": self.evals_done,
            "screen_noise": self.screen_noise.to_json(),
            "screens_done": self.screens_done,
            "evaluated": self.evaluated,
            "spent": self.spent,
            "evaluators": self.evaluators,
            "busy_seconds": self.busy_seconds,
            "train_seconds": self.train_seconds,
            "elapsed": elapsed,
            "champions": {str(i): m.to_state() for i, m in self.champions.items()},
            "best": {"island": best.island, "member": best.member.to_state()} if best else None,
            "seen": sorted(self.seen),
            "screens": {str(i): metric for i, metric in self.screens.items()},
            "pending": [[c.to_state(), i] for c, i in [*self.pending, *running]],
            "islands": self.islands,
            "open_islands": self.open_islands,
            "lineage_parts": self.lineage_parts,
            "models": records_to_json(self.models),
            "allowance": asdict(self.allowance) if self.allowance else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> RunState:
        best = data["best"]
        return cls(
            noise=Noise.from_json(data.get("noise"), data["sigma"]),  # none before pooling
            next_id=data["next_id"],
            evals_done=data["evals_done"],
            # none before screening
            screen_noise=Noise.from_json(data["screen_noise"], 0.0)
            if "screen_noise" in data
            else Noise(),
            screens_done=data.get("screens_done", 0),
            evaluated=data.get("evaluated", 0),  # not counted before spend per candidate
            spent=data["spent"],
            evaluators=data["evaluators"],
            busy_seconds=data["busy_seconds"],
            train_seconds=data.get("train_seconds", 0.0),  # none before training fractions
            elapsed=data["elapsed"],
            champions={int(i): Member.from_state(m) for i, m in data["champions"].items()},
            best=Best(best["island"], Member.from_state(best["member"])) if best else None,
            seen=set(data["seen"]),
            # none before: the children of an older checkpoint's programs go unscreened
            screens={int(i): metric for i, metric in data.get("screens", {}).items()},
            pending=deque((Candidate.from_state(c), i) for c, i in data["pending"]),
            islands=data["islands"],
            open_islands=data.get("open_islands", len(data["islands"])),  # all, before splits
            lineage_parts=data["lineage_parts"],
            models=records_from_json(data.get("models", {})),  # none before adaptive ensembles
            # none before measured timeouts: the target's, as then
            allowance=Allowance.saved(data.get("allowance")),
        )
