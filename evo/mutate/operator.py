"""The mutation operator interface, and the choice of one."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from evo.config import OPENAI_NEEDS_URL, OPERATORS
from evo.errors import UsageError
from evo.mutate.llm import LLMConfig, LLMOperator
from evo.mutate.offline import OfflineOperator
from evo.mutate.prompt import Attempt, Inspiration, Mate, Measured
from evo.mutate.proposal import Proposal, Validator


class Operator(Protocol):
    name: str

    def propose(
        self,
        parent: dict[str, str],
        metric: float | None = None,
        history: Sequence[Attempt] = (),
        inspirations: Sequence[Inspiration] = (),
        measured: Measured | None = None,
        model: str | None = None,
        mate: Mate | None = None,
    ) -> Proposal:
        """One proposal for a child of `parent`: a validated child, or the reasons it has none.
        `model`: the ensemble's model to ask (evo.mutate.ensemble); None: the operator's choice.
        `mate`: a second parent to combine `parent` with (recombination), where one is given."""


# An operator the run makes from a validator and a seed instead of from its settings: how a
# benchmark plugs in a simulated one (evo.bench.realistic). It is sent to the island actors.
OperatorFactory = Callable[[Validator, int], Operator]


def resolved(kind: str, env: Mapping[str, str] = os.environ) -> str:
    """The operator `kind` stands for: "auto" is anthropic with an API key in `env`, else
    offline."""
    if kind not in OPERATORS:
        raise UsageError(f"unknown operator {kind!r}; use one of: {', '.join(OPERATORS)}")
    if kind == "auto":
        return "anthropic" if env.get("ANTHROPIC_API_KEY") else "offline"
    return kind


def make_operator(
    kind: str, validator: Validator, seed: int, device: str, config: LLMConfig | None = None
) -> Operator:
    """The operator `kind` names (see `resolved`)."""
    kind = resolved(kind)
    if kind == "offline":
        return OfflineOperator(validator, seed=seed, device=device)
    config = config or LLMConfig(backend=kind)
    if kind == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        raise UsageError(
            "the anthropic operator needs ANTHROPIC_API_KEY in the environment; set it, "
            "or use --operator offline"
        )
    if kind == "openai" and not config.base_url:
        raise UsageError(OPENAI_NEEDS_URL)
    return LLMOperator(validator, config, seed=seed)
