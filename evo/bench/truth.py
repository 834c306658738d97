"""A target and an operator whose truth is known, for `evo bench realistic` (evo.bench.realistic).

Real edits to a training script mostly hurt, sometimes help a little, and are measured with noise
as large as their effects. This module simulates that in units of sigma, the spread of a paired
difference between two programs on one seed (on the gpt target at 20 s on an H200, 0.018
val_bpb; `SIGMA`), so that what a run reports can be set against what is true.

The program. The mutable `edits.py` holds one constant per edit kept, `E<id> = value`. The true
loss of a program, in sigma, is the sum of its values plus an interaction for every pair of its
edits (`interaction`: N(0, r) drawn from the pair's names), so that an edit carried or migrated to
another program has another effect there than where it was made:

    true(program) = sum_i value_i + sum_{i<j} rho(i, j)          (the seed program: 0)

The operator (`TruthOperator`). Each proposal adds one edit to its parent, with an effect drawn
from the regime: a crash (`crash`: the program fails its evaluation), a gain (`gain_share`:
-|N(0, gain_size)|), a neutral edit (`neutral_share`: 0) or a loss (+|N(0, loss_size)|). The
constant it writes is that effect less the new edit's interactions with the parent's edits, so the
child's true loss is its parent's plus the effect drawn: the effect of the edit where it was made.

The measurement (`TruthEvaluation`): SIGMA x (true + shared(seed) + own(program, seed)) + BASE,
where shared ~ N(0, `shared`) is the same for every program on a seed (a paired comparison
cancels it) and own ~ N(0, 1/sqrt 2), drawn for each program and seed (the program x seed
interaction: a paired difference varies by exactly 1 sigma).

The regimes (`REGIMES`): autoresearch's reported rate (about 20 improvements in 700 experiments,
3%) with gains of the size of the noise, a tenth of edits gaining that much or three times as
much, and a quarter gaining half of it. Losses |N(0, 2)|, 15% crashes, interaction 0.25.
"""

from __future__ import annotations

import ast
import math
import random
import textwrap
from dataclasses import dataclass
from pathlib import Path

from evo.evaluate.result import EvalResult
from evo.mutate.edits import Rewrite
from evo.mutate.proposal import Proposal, Validator, program_hash
from evo.status import Status
from evo.target import Target

SIGMA = 0.018  # val_bpb: the paired noise of the gpt target at a 20 s budget on an H200
BASE = 1.0  # the seed program's true metric
MUTABLE = "edits.py"
CRASHES = "CRASHES"  # how the name of an edit that crashes the program starts


@dataclass(frozen=True)
class Regime:
    """What edits do, in sigma; see the module's docstring."""

    gain_share: float
    gain_size: float
    loss_size: float = 2.0
    neutral_share: float = 0.0
    crash_share: float = 0.15
    interaction: float = 0.25
    shared: float = 1.6  # the gpt target's seed effect is about 1.6 times its paired sigma


REGIMES = {
    "p3-g1": Regime(0.03, 1.0),
    "p10-g1": Regime(0.10, 1.0),
    "p10-g3": Regime(0.10, 3.0),
    "p25-g0.5": Regime(0.25, 0.5),
}


def edits_of(source: str) -> dict[str, float]:
    """An edits.py's constants: edit name -> value."""
    return {
        node.targets[0].id: float(ast.literal_eval(node.value))
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def interaction(first: str, second: str, size: float) -> float:
    """rho(first, second): what two edits do together beyond their own values."""
    if not size:
        return 0.0
    return random.Random("-".join(sorted((first, second)))).gauss(0, size)


def true_loss(sources: dict[str, str], regime: Regime) -> float:
    """The program's true loss in sigma (the seed program's is 0); inf for one that crashes."""
    edits = edits_of(sources[MUTABLE])
    if any(name.startswith(CRASHES) for name in edits):
        return math.inf
    names = sorted(edits)
    pairs = sum(
        interaction(a, b, regime.interaction) for i, a in enumerate(names) for b in names[i + 1 :]
    )
    return sum(edits.values()) + pairs


def write_truth_target(folder: Path) -> Path:
    """The simulated target's folder: the seed program (no edits) and its target.toml. Its
    evaluations run in the benchmark's process (`TruthEvaluation`), not through an entry."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MUTABLE).write_text('"""The edits kept so far (evo.bench.truth)."""\n')
    (folder / "target.toml").write_text(
        textwrap.dedent(
            f"""\
            name = "truth"
            description = "Simulated edits of known effect (evo.bench.truth)."
            mutable = ["{MUTABLE}"]
            entry = "python -c 'raise SystemExit(\\"evaluated by evo bench realistic only\\")'"

            [metric]
            name = "loss"
            direction = "minimize"

            [budget]
            seconds = 1
            timeout_seconds = 30
            """
        )
    )
    return folder


@dataclass(frozen=True)
class TruthEvaluation:
    """The sandbox of `evo bench realistic`: measures a program of the truth target at once."""

    regime: Regime

    def __call__(
        self, target: Target, sources: dict[str, str] | None = None, *, seed: int = 0, **_options
    ) -> EvalResult:
        sources = {**target.read_mutable(), **(sources or {})}
        true = true_loss(sources, self.regime)
        shared = random.Random(f"shared-{seed}").gauss(0, self.regime.shared)
        own = random.Random(f"{program_hash(sources)}-{seed}").gauss(0, 1 / math.sqrt(2))
        crashed = math.isinf(true)
        return EvalResult(
            status=Status.CRASH if crashed else Status.OK,
            metric_name=target.metric,
            metric=None if crashed else BASE + SIGMA * (true + shared + own),
            seed=seed,
            device="cpu",
            budget_seconds=0.0,
            train_seconds=0.0,
            wall_seconds=0.0,
            peak_rss_mb=None,
            reason="the edit crashes the program" if crashed else "",
        )


@dataclass(frozen=True)
class TruthOperator:
    """Makes the simulated operator of an island (evo.mutate.operator.OperatorFactory)."""

    regime: Regime

    def __call__(self, validator: Validator, seed: int) -> Proposer:
        return Proposer(self.regime, validator, random.Random(seed))


class Proposer:
    """Adds one edit of a drawn effect to its parent (the module's docstring)."""

    name = "truth"

    def __init__(self, regime: Regime, validator: Validator, rng: random.Random):
        self.regime, self.validator, self.rng = regime, validator, rng

    def propose(self, parent: dict[str, str], *_context, **_more) -> Proposal:
        regime, rng = self.regime, self.rng
        name = f"E{rng.getrandbits(40):010x}"
        draw = rng.random()
        shares = (regime.crash_share, regime.gain_share, regime.neutral_share)
        if draw < shares[0]:
            kind, name, value = "crash", CRASHES + name, 1.0
        elif draw < sum(shares[:2]):
            kind, value = "gain", -abs(rng.gauss(0, regime.gain_size))
        elif draw < sum(shares):
            kind, value = "neutral", 0.0
        else:
            kind, value = "loss", abs(rng.gauss(0, regime.loss_size))
        kept = edits_of(parent[MUTABLE])
        value -= sum(interaction(name, other, regime.interaction) for other in kept)
        lines = "".join(f"{n} = {v!r}\n" for n, v in sorted({**kept, name: value}.items()))
        code = f'"""The edits kept so far (evo.bench.truth)."""\n{lines}'
        edit = Rewrite(MUTABLE, code)
        child = self.validator.child_of(parent, [edit])
        return Proposal(self.name, None, f"a {kind} ({name})", (edit,), child)
