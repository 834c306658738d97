"""A synthetic target for measuring evo itself: knobs whose loss is known without training.

The mutable `knobs.py` holds float constants K0..K{n-1}; the fixed `score.py` waits a fixed
time (the budget: a stand-in for training that costs no CPU) and reports Rastrigin's function of
the knobs' distances to their optima in steps of the offline operator:

    x_i = (log2(K_i) - best_i) / 2,   best_i = 2 + i % 4   (optima at 4, 8, 16, 32)
    loss = sum_i x_i^2 + ruggedness * (1 - cos(2 pi x_i))
           + valley * sum_j (x_2j - x_2j+1)^2 + noise(seed)

The operator's x2 and x0.5 move x_i by 1/2, so every optimum is reachable. With ruggedness 0
the loss is a bowl; with 10 (Rastrigin's own A) every second step is a local optimum behind a
one-step ridge that a greedy chain cannot cross. With valley 20 the knobs come in pairs that
must move together, like a learning rate and a batch size: once a pair is on its diagonal, a
step of one knob alone costs 5 and gains at most x_i, so the loss falls only along a narrow
valley that one-step changes leave (a greedy chain stops on the diagonal, about 26 above the
optimum). The noise is the same for every program at a given seed (a paired comparison cancels
it).

`instant_evaluation` computes the same loss in-process, without a subprocess: the zero-cost
evaluation of `evo bench scale`. `RewriteReplies` are model-server answers that rewrite the
knobs to new random values: every proposal is a new program, after whatever latency the bench
sets. `SkilledReplies` are the answers of models of known skill: each moves one knob of the parent
one step, towards its optimum with the model's probability, else away from it.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import math
import random
import re
import textwrap
import time
from dataclasses import dataclass, replace
from pathlib import Path

from evo.evaluate.result import EvalResult
from evo.status import Status
from evo.target import Target

NOISE_SD = 0.5
START = 512.0  # x_i from 2 to 3.5: a few ridges away from every optimum


def knob_loss(
    values: list[float], seed: int, ruggedness: float = 0.0, valley: float = 0.0
) -> float:
    xs = [(math.log2(value) - (2 + i % 4)) / 2 for i, value in enumerate(values)]
    loss = sum(x * x + ruggedness * (1 - math.cos(2 * math.pi * x)) for x in xs)
    loss += valley * sum((a - b) ** 2 for a, b in zip(xs[::2], xs[1::2], strict=False))
    return loss + random.Random(seed).gauss(0, NOISE_SD)


def write_knob_target(
    folder: Path,
    knobs: int,
    seconds: float,
    ruggedness: float = 0.0,
    setup: float = 0.0,
    valley: float = 0.0,
) -> Path:
    """A target folder with `knobs` knobs whose evaluation takes `seconds` by default, after
    `setup` seconds of set-up (a stand-in for imports, data and compilation) that pre-warm may
    overlap with another evaluation."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"K{i}" for i in range(knobs)]
    (folder / "knobs.py").write_text("".join(f"{name} = {START}\n" for name in names))
    (folder / "score.py").write_text(
        textwrap.dedent(
            f"""\
            import time

            from evo.target import protocol
            from evo.bench.synthetic import knob_loss

            RUGGEDNESS = {ruggedness}
            VALLEY = {valley}
            req = protocol.request(default_budget_seconds={seconds})
            import knobs  # noqa: E402  (the mutable part, after request())

            values = [getattr(knobs, f"K{{i}}") for i in range({knobs})]
            time.sleep({setup})  # set-up
            protocol.ready(req)
            time.sleep(req.budget_seconds)  # the work: a fixed time that costs no CPU
            if min(values) <= 0:
                protocol.report_invalid(req, "every knob must be > 0")
            else:
                loss = knob_loss(values, req.seed, RUGGEDNESS, VALLEY)
                protocol.report(req, loss, train_seconds=req.budget_seconds)
            """
        )
    )
    (folder / "target.toml").write_text(
        textwrap.dedent(
            f"""\
            name = "knobs"
            description = "{knobs} knobs: Rastrigin (A={ruggedness}) of log2, valley {valley}."
            mutable = ["knobs.py"]
            entry = "python score.py"

            [metric]
            name = "loss"
            direction = "minimize"

            [budget]
            seconds = {seconds}
            timeout_seconds = {seconds + setup + 30}

            [sandbox]
            prewarm = {str(setup > 0).lower()}

            [rules]
            required_names = {json.dumps(names)}
            forbidden_imports = ["os", "subprocess", "score", "evo"]
            forbidden_names = ["open", "exec", "eval", "__import__"]
            """
        )
    )
    return folder


def instant_evaluation(
    target: Target,
    sources: dict[str, str] | None = None,
    *,
    budget_seconds: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
    **_sandbox_options: object,
) -> EvalResult:
    """The knob target's loss (with its score.py's RUGGEDNESS and VALLEY) computed here, in no
    time: a sandbox for engine benchmarks only (it trusts the code, which is only ever constants,
    and runs it in no sandbox: isolation, memory cap and pre-warm do not apply)."""
    started = time.monotonic()
    source = (sources or {}).get("knobs.py") or target.read_mutable()["knobs.py"]
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    ordered = [values[f"K{i}"] for i in range(len(values))]
    return EvalResult(
        status=Status.OK,
        metric_name=target.metric,
        metric=knob_loss(ordered, seed, *_shape(target.root)),
        seed=seed,
        device=device,
        budget_seconds=0.0,
        train_seconds=0.0,
        wall_seconds=time.monotonic() - started,
        peak_rss_mb=None,
    )


@dataclass(frozen=True)
class PacedEvaluation:
    """`instant_evaluation` that takes `seconds` of wall time (and no CPU): a sandbox for engine
    benchmarks where evaluations must be slower than proposals, as with a real training run."""

    seconds: float

    def __call__(self, target: Target, sources: dict[str, str] | None = None, **options):
        time.sleep(self.seconds)
        result = instant_evaluation(target, sources, **options)
        return replace(result, train_seconds=self.seconds, wall_seconds=self.seconds)


@functools.cache
def _shape(root: Path) -> tuple[float, float]:
    """The RUGGEDNESS and VALLEY a knob target's score.py sets: read once, not at every
    evaluation."""
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse((root / "score.py").read_text()).body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") in ("RUGGEDNESS", "VALLEY")
    }
    return constants["RUGGEDNESS"], constants["VALLEY"]


class RewriteReplies:
    """Model-server answers after `latency` seconds, each rewriting the knobs to new values."""

    def __init__(self, knobs: int, latency: float, seed: int = 0):
        self.knobs = knobs
        self.latency = latency
        self.rng = random.Random(seed)
        self.count = itertools.count()

    def __call__(self, _request: object):
        # Here, not at the top: score.py imports this module in every evaluation, and needs
        # no HTTP server.
        from evo.bench.loopback import Reply

        number = next(self.count)
        lines = "".join(f"K{i} = {2 ** self.rng.uniform(-2, 3):.6f}\n" for i in range(self.knobs))
        text = f"HYPOTHESIS: knob set {number}\nREWRITE knobs.py\n```python\n{lines}```\n"
        return Reply(text, delay=self.latency, usage={"input_tokens": 100, "output_tokens": 100})


class SkilledReplies:
    """Model-server answers whose quality depends on the model asked: `skills[model]` is the
    probability that its edit steps a knob (x2 or x0.5) towards the knob's optimum, an
    improvement; otherwise the step goes away from it. Every reply costs `usage` tokens."""

    def __init__(self, skills: dict[str, float], usage: dict[str, int], seed: int = 0):
        self.skills = skills
        self.usage = usage
        self.rng = random.Random(seed)
        self.count = itertools.count(1)

    def __call__(self, request):
        from evo.bench.loopback import Reply

        knobs = self.parent_knobs(request.body)
        skilled = self.rng.random() < self.skills[request.body["model"]]
        off = [i for i, value in enumerate(knobs) if round(math.log2(value)) != 2 + i % 4]
        i = self.rng.choice(off or range(len(knobs)))
        up = (math.log2(knobs[i]) < 2 + i % 4) == skilled
        value = knobs[i] * (2.0 if up else 0.5) * (1 + next(self.count) * 1e-9)  # each one new
        text = (
            f"HYPOTHESIS: K{i} {'up' if up else 'down'}\n"
            f"REPLACE DEFINITION K{i} IN knobs.py\n```python\nK{i} = {value!r}\n```\n"
        )
        return Reply(text, usage=dict(self.usage))

    @staticmethod
    def parent_knobs(body: dict) -> list[float]:
        """The parent's knobs, read from the prompt of a Messages-API request."""
        task = body["messages"][0]["content"][-1]["text"].split("# The parent to improve")[1]
        found = re.findall(r"^K(\d+) = (\S+)$", task, re.MULTILINE)
        return [float(value) for _, value in sorted(found, key=lambda kv: int(kv[0]))]
