"""A candidate on its way through a run, and the typed shapes that carry it across Ray.

An island's operator makes a `Child` (sources and what the operator said of them, or why there
are none); the driver numbers it into a `Candidate`; each evaluation goes out as an
`EvalRequest` and comes back as an `Evaluation` (evaluation k runs on the run's k-th seed); the
island judges the candidate as a `Member`. Its lineage row is written once its fate is final.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from evo.evaluate.allowance import Allowance
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import Usage
from evo.search.island import Member
from evo.status import Status


@dataclass(frozen=True)
class Child:
    """What an island's operator made of one request: a child of `parent_id`, or (sources None)
    the reasons it has none."""

    island: int
    parent_id: int | None
    generation: int
    operator: str
    model: str | None
    hypothesis: str
    edit: str  # a one-line summary
    sources: dict[str, str] | None
    reason: str = ""  # why there is no child: every rejection, in order
    usage: Usage = field(default_factory=Usage)
    mutation_s: float = 0.0
    mate_id: int | None = None  # the second parent of a recombination
    from_champion: bool = False  # the parent was its island's champion when it was chosen
    exhausted: bool = False  # no child: the operator had proposed all it can of the parent


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation for an evaluator actor: a program, the run's seed for it, the budget, and
    what the run measured of its seed program (None before: the target's limits)."""

    sources: dict[str, str]
    seed: int
    budget: float | None
    allowance: Allowance | None = None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a candidate: its result, where it ran (`machine`: the device in words;
    `gpu_share`: the fraction of its GPU its evaluator reserved, 0.25 where up to four
    evaluations shared it; 0 on CPU), and (filled in by the driver) which seed index it was and
    when it was sent and came back (epoch seconds)."""

    result: EvalResult
    evaluator: str
    node: str
    host: str
    gpu: str
    pid: int
    index: int = 0
    dispatched: float = 0.0
    returned: float = 0.0
    machine: str = ""
    gpu_share: float = 0.0

    @property
    def seed(self) -> int:
        return self.result.seed

    @property
    def measured(self) -> dict:
        """What the evaluation measured beyond its metric: what the fixed part reported (for gpt:
        tokens/s, steps, parameters, MFU, peak GPU memory), training and wall seconds, the peak
        memory of its process, the machine; what it did not measure is left out."""
        r = self.result
        found = {
            "budget_seconds": r.budget_seconds,
            "train_seconds": r.train_seconds,
            "wall_seconds": round(r.wall_seconds, 2),
            "peak_rss_mb": None if r.peak_rss_mb is None else round(r.peak_rss_mb),
            "machine": self.machine,
            "gpu_share": self.gpu_share or None,
            "isolation": r.isolation,
            "phases": r.phases,
            "setup_seconds": None if r.setup_seconds is None else round(r.setup_seconds, 2),
            "waited_seconds": round(r.waited_seconds, 2) or None,
            **r.details,
        }
        return {key: value for key, value in found.items() if value not in (None, "")}

    @classmethod
    def from_state(cls, state: dict) -> Evaluation:
        return cls(**{**state, "result": EvalResult(**state["result"])})


def budget_of(measured: dict) -> float:
    """The budget (seconds) an evaluation trained under, from what it measured as the lineage
    records it (`Evaluation.measured`); 0.0 where none is recorded."""
    return measured.get("budget_seconds", 0.0)


@dataclass
class Candidate:
    id: int
    child: Child
    created_at: float = field(default_factory=time.time)
    evaluations: list[Evaluation] = field(default_factory=list)
    screen: Evaluation | None = None  # at a fraction of the budget (evo.run.screen)

    @classmethod
    def seed_program(cls, sources: dict[str, str]) -> Candidate:
        """Candidate 0: the target's own program, on island 0."""
        return cls(0, Child(0, None, 0, "seed", None, "the seed program", "", sources))

    @property
    def island(self) -> int:
        return self.child.island

    @property
    def sources(self) -> dict[str, str]:
        return self.child.sources or {}

    @property
    def metrics(self) -> dict[int, float]:
        """seed index -> metric, of the evaluations that gave one."""
        return {e.index: e.result.metric for e in self.evaluations if e.result.status == Status.OK}

    @property
    def fitness(self) -> float | None:
        metrics = self.metrics
        return sum(metrics.values()) / len(metrics) if metrics else None

    @property
    def last_result(self) -> EvalResult:
        """The result of its latest evaluation, full or screen."""
        return (self.evaluations or [self.screen])[-1].result

    def as_member(self) -> Member:
        """The candidate as its island sees it; its details are those of its latest scored
        evaluation."""
        scored = [e for e in self.evaluations if e.result.status == Status.OK]
        details = scored[-1].measured if scored else {}
        child = self.child
        return Member(
            self.id, self.sources, self.metrics, child.generation, details, child.hypothesis
        )

    def to_state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> Candidate:
        # before RunState.screens, a child held its parent's screen
        child = {k: v for k, v in state["child"].items() if k != "parent_screen"}
        child = Child(**{**child, "usage": Usage(**child["usage"])})
        evaluations = [Evaluation.from_state(e) for e in state["evaluations"]]
        screen = state.get("screen")  # none before screening
        screen = Evaluation.from_state(screen) if screen else None
        return cls(state["id"], child, state["created_at"], evaluations, screen)
