"""The LLM operator: one hypothesis and one edit per proposal, from a model behind a small backend.

Backends: the Anthropic Messages API through the official SDK (it reads ANTHROPIC_API_KEY and
ANTHROPIC_BASE_URL), and any OpenAI-compatible chat-completions server (a local model server, for
instance). Each reply is parsed and validated; a failure is sent back with its reason for up to
`repairs` more attempts. Every call's tokens and dollars are counted, and no call is made once
the spending cap is reached.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from evo.config import LLMSettings, model_weight
from evo.mutate.edits import EditError
from evo.mutate.prompt import (
    Attempt,
    Inspiration,
    Mate,
    Measured,
    fixed_context,
    repair_text,
    system_text,
    task_text,
)
from evo.mutate.proposal import Proposal, Usage, Validator
from evo.mutate.replies import parse_reply


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


# Published list prices; a model missing here is charged at DEFAULT_PRICE (set prices in config).
PRICES = {
    "claude-opus-4-5": Price(5.0, 25.0, 6.25, 0.50),
    "claude-sonnet-4-5": Price(3.0, 15.0, 3.75, 0.30),
    "claude-haiku-4-5": Price(1.0, 5.0, 1.25, 0.10),
}
DEFAULT_PRICE = Price(3.0, 15.0, 3.75, 0.30)


@dataclass(frozen=True)
class LLMConfig:
    """How the LLM operator calls its models.

    backend: "anthropic" or "openai" (any OpenAI-compatible chat-completions server).
    models: (model, weight) pairs; each proposal draws one model by weight: a fast model for
        breadth and a strong one for depth.
    base_url: the server; None means the SDK's default (or ANTHROPIC_BASE_URL).
    max_retries / timeout_seconds: per HTTP call, for 408/409/429/5xx and connection errors.
    repairs: how many times a rejected reply is sent back with its reason.
    prices: per model; a model missing here is charged at DEFAULT_PRICE.
    The spending of a run is counted and capped by its driver (`--max-cost`), from the usage
    each proposal reports: one account, whatever the number of island actors.
    """

    backend: str = "anthropic"
    models: tuple[tuple[str, float], ...] = (("claude-haiku-4-5", 0.7), ("claude-sonnet-4-5", 0.3))
    base_url: str | None = None
    temperature: float | None = None  # None: the model's own default
    max_tokens: int = 4096
    max_retries: int = 2
    timeout_seconds: float = 120.0
    repairs: int = 2
    prices: dict[str, Price] = field(default_factory=lambda: dict(PRICES))

    def cost(self, model: str, usage: Usage) -> float:
        """Dollars for one reply; output beyond the requested max_tokens (a server that does
        not honour it) is not counted."""
        price = self.prices.get(model, DEFAULT_PRICE)
        return (
            usage.input_tokens * price.input
            + min(usage.output_tokens, self.max_tokens) * price.output
            + usage.cache_write_tokens * price.cache_write
            + usage.cache_read_tokens * price.cache_read
        ) / 1e6

    def unpriced(self) -> list[str]:
        """The models of the ensemble that the price table does not know."""
        return [model for model, _ in self.models if model not in self.prices]

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> LLMConfig:
        """The run's [llm] table; what it leaves unset keeps the defaults above."""
        chosen: dict = {"max_tokens": settings.max_tokens, "temperature": settings.temperature}
        if settings.models:
            chosen["models"] = tuple(model_weight(spec) for spec in settings.models)
        if settings.base_url:
            chosen["base_url"] = settings.base_url
        backend = "openai" if settings.operator == "openai" else "anthropic"
        return cls(backend=backend, **chosen)


class BackendError(Exception):
    """The model service failed after its retries."""


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


class Backend(Protocol):
    def complete(
        self, model: str, system: str, stable: str, turns: list[tuple[str, str]]
    ) -> Completion:
        """One reply. `stable` opens the first user turn (cacheable); `turns` are (role, text)."""


class AnthropicBackend:
    def __init__(self, config: LLMConfig):
        import anthropic  # only when an LLM is used: offline runs never import it

        self._errors = anthropic.APIError
        self.config = config
        self.client = anthropic.Anthropic(
            base_url=config.base_url, max_retries=config.max_retries, timeout=config.timeout_seconds
        )

    def complete(
        self, model: str, system: str, stable: str, turns: list[tuple[str, str]]
    ) -> Completion:
        cached = {"type": "ephemeral"}
        first_role, first_text = turns[0]
        messages: list[dict[str, Any]] = [
            {
                "role": first_role,
                "content": [
                    {"type": "text", "text": stable, "cache_control": cached},
                    {"type": "text", "text": first_text},
                ],
            },
            *({"role": role, "content": text} for role, text in turns[1:]),
        ]
        try:
            reply = self.client.messages.create(
                model=model,
                max_tokens=self.config.max_tokens,
                # Recent SDKs take no sampling parameters as arguments; the API still reads them.
                extra_body=_temperature(self.config),
                system=[{"type": "text", "text": system, "cache_control": cached}],
                messages=messages,
            )
            text = "".join(block.text for block in reply.content if block.type == "text")
        except self._errors as e:
            raise BackendError(f"{type(e).__name__}: {e}") from None
        except (ValueError, TypeError, AttributeError) as e:  # the SDK does not check bodies
            raise BackendError(f"malformed reply: {type(e).__name__}: {e}") from None
        u = reply.usage
        return Completion(
            text,
            Usage(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_write_tokens=u.cache_creation_input_tokens or 0,
                cache_read_tokens=u.cache_read_input_tokens or 0,
            ),
        )


class OpenAIBackend:
    """Chat completions over plain HTTP: no SDK, so a local server needs nothing installed."""

    RETRIED = {408, 409, 429, 500, 502, 503, 504, 529}

    def __init__(self, config: LLMConfig):
        if not config.base_url:
            raise ValueError("the openai backend needs a base URL, e.g. http://127.0.0.1:8000/v1")
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get("OPENAI_API_KEY", "")

    def complete(
        self, model: str, system: str, stable: str, turns: list[tuple[str, str]]
    ) -> Completion:
        first_role, first_text = turns[0]
        messages = [
            {"role": "system", "content": system},
            {"role": first_role, "content": f"{stable}\n\n{first_text}"},
            *({"role": role, "content": text} for role, text in turns[1:]),
        ]
        body = json.dumps(
            {
                "model": model,
                "messages": messages,
                "max_tokens": self.config.max_tokens,
                **_temperature(self.config),
            }
        ).encode()
        reply = self._post(body)
        try:
            text = reply["choices"][0]["message"]["content"] or ""
            u = reply.get("usage") or {}
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"malformed reply: {str(reply)[:200]}") from None
        cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        usage = Usage(
            input_tokens=(u.get("prompt_tokens") or 0) - cached,
            output_tokens=u.get("completion_tokens") or 0,
            cache_read_tokens=cached,
        )
        return Completion(text, usage)

    def _post(self, body: bytes) -> dict:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        problem = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
            request = urllib.request.Request(self.url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_seconds) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                problem = f"HTTP {e.code}: {e.read()[:200]!r}"
                if e.code not in self.RETRIED:
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as e:
                problem = f"{type(e).__name__}: {e}"
            except json.JSONDecodeError:
                raise BackendError("the reply is not JSON") from None
        raise BackendError(problem)


def _temperature(config: LLMConfig) -> dict[str, float]:
    return {} if config.temperature is None else {"temperature": config.temperature}


BACKENDS = {"anthropic": AnthropicBackend, "openai": OpenAIBackend}


class LLMOperator:
    def __init__(
        self, validator: Validator, config: LLMConfig, seed: int = 0, backend: Backend | None = None
    ):
        self.validator = validator
        self.target = validator.target
        self.config = config
        self.name = config.backend
        self.backend = backend or BACKENDS[config.backend](config)
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._system = system_text(self.target)
        self._stable = fixed_context(self.target)

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
        """One validated child of `parent` (combined with `mate`, where given), or a Proposal
        without child and every reason; `model` is drawn by the ensemble's weights unless
        given."""
        if model is None:
            models, weights = zip(*self.config.models, strict=True)
            with self._lock:  # island actors call from several threads; only the wait is shared
                model = self.rng.choices(models, weights)[0]
        task = task_text(self.target, parent, metric, history, inspirations, measured, mate)
        mate_id = mate.id if mate else None
        turns = [("user", task)]
        usage, rejections, hypothesis = Usage(), [], ""
        for _ in range(1 + self.config.repairs):
            started = time.monotonic()
            try:
                completion = self.backend.complete(model, self._system, self._stable, turns)
            except BackendError as e:
                rejections.append(f"the model service failed: {e}")
                break
            cost = self.config.cost(model, completion.usage)
            latency = time.monotonic() - started
            usage += replace(completion.usage, cost_usd=cost, latency_seconds=latency)
            try:
                hypothesis, edits = parse_reply(completion.text, parent)
                child = self.validator.child_of(parent, edits)
            except EditError as e:
                rejections.append(str(e))
                turns += [("assistant", completion.text), ("user", repair_text(str(e)))]
                continue
            return Proposal(
                self.name, model, hypothesis, tuple(edits), child, tuple(rejections), usage, mate_id
            )
        return Proposal(self.name, model, hypothesis, (), None, tuple(rejections), usage, mate_id)
