"""Which model of the ensemble a proposal goes to: by fixed weights, or learnt from what each
model's proposals earned per dollar.

By default (`adaptive` off) the operator draws each proposal's model by the weights of
`--model NAME:WEIGHT`. With `--adaptive-models` the run's driver chooses instead, by Thompson
sampling on accepted improvements per dollar: for each model m it draws

    p_m ~ Beta(PRIOR_ACCEPTED + accepted_m, PRIOR_REFUSED + settled_m - accepted_m)

and asks the model with the highest p_m / c_m, where
- accepted_m: its candidates that became their island's champion (an improvement beyond noise);
- settled_m: its proposals whose fate is known (refused, or evaluated and judged; the ones still
  waiting for, or in, evaluation are not counted either way);
- c_m: its mean cost per proposal so far (what the driver was charged, refusals included).

The prior, Beta(1, 4), is a 20% acceptance rate worth five proposals: a model is judged on a
handful of its own proposals, not on its first. A model not yet paid for has no cost to divide by:
it is asked first (each once, before any is asked twice), then the draws decide and the weights
are not used. Every model keeps a chance in proportion to how uncertain its record is, so a model
that was unlucky early is asked again now and then.

The records are part of the run's state: a resumed run goes on learning where it stopped. What is
not covered: the value of an improvement (a large and a small gain count the same) and drift (a
model that is good early and poor late is judged on its whole record).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PRIOR_ACCEPTED = 1.0
PRIOR_REFUSED = 4.0
FREE = 1e-9  # the cost per proposal of a model that charged nothing (a local server)


@dataclass
class ModelRecord:
    """What one model's proposals cost and earned in this run."""

    proposals: int = 0  # paid for
    settled: int = 0
    accepted: int = 0
    cost_usd: float = 0.0

    @property
    def cost_per_proposal(self) -> float:
        return max(self.cost_usd / self.proposals, FREE) if self.proposals else 0.0


class Ensemble:
    """The models of a run and their records; `choose` is None with fixed weights (the
    operator draws)."""

    def __init__(
        self,
        models: Sequence[str],
        adaptive: bool,
        records: dict[str, ModelRecord],
        seed: int,
    ):
        self.models = list(models)
        self.adaptive = adaptive
        self.records = records  # the run state's own dict: a checkpoint saves them
        self.rng = random.Random(seed)

    def choose(self, waiting: Sequence[str | None] = ()) -> str | None:
        """The model to ask next; `waiting`: the models of the proposals still out."""
        if not self.adaptive:
            return None
        untried = [m for m in self.models if self._record(m).proposals == 0]
        if untried:
            return min(untried, key=list(waiting).count)  # the first of the least asked
        scores = {}
        for model in self.models:
            record = self.records[model]
            rate = self.rng.betavariate(
                PRIOR_ACCEPTED + record.accepted,
                PRIOR_REFUSED + record.settled - record.accepted,
            )
            scores[model] = rate / record.cost_per_proposal
        return max(scores, key=scores.__getitem__)

    def paid(self, model: str | None, cost_usd: float) -> None:
        """A proposal of `model` came back, costing `cost_usd`."""
        if model is not None:
            record = self._record(model)
            record.proposals += 1
            record.cost_usd += cost_usd

    def settled(self, model: str | None, accepted: bool) -> None:
        """The fate of a proposal of `model` is known: refused, or judged after evaluation."""
        if model is not None:
            record = self._record(model)
            record.settled += 1
            record.accepted += accepted

    def _record(self, model: str) -> ModelRecord:
        return self.records.setdefault(model, ModelRecord())


def records_to_json(records: dict[str, ModelRecord]) -> dict[str, dict]:
    return {model: asdict(record) for model, record in records.items()}


def records_from_json(data: dict[str, dict]) -> dict[str, ModelRecord]:
    return {model: ModelRecord(**record) for model, record in data.items()}
