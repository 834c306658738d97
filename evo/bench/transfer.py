"""`evo bench transfer`: does what wins at a short budget win at the full one?

The question decides cascade screening (evaluating a candidate at a fraction of the budget first,
and giving the full budget only to candidates not clearly behind their parent there). On a real
target (by default the gpt target), without Ray, one evaluation at a time:
- `variants` programs of the offline operator, each a one-step child of the seed or of an
  earlier variant (so that they are one to several steps from the seed, as a run's are);
- the seed program and every variant evaluated at each of the two budgets on the run's first
  seed (paired: the same data order and initialisation for all), and the seed twice more at
  each budget for its noise there.

Reported: the Spearman rank correlation of the metric at the short budget with the metric at the
full one, over the variants and the seed; the noise at each budget; and what a screen would have
done: a variant is screened out when its short-budget metric is behind its parent's by more
than NOISE_K x the short budget's sigma; an improvement is a variant that beats its parent at
the full budget by more than NOISE_K x sigma (clearly better, on one evaluation). Then
full-budget evaluations saved, improvements kept and lost, and saved evaluations per improvement
kept.
"""

from __future__ import annotations

import random
import statistics

import numpy as np

from evo.evaluate.sandbox import evaluate
from evo.mutate.offline import OfflineOperator
from evo.mutate.proposal import Validator
from evo.target import Target

NOISE_K = 2.0  # the screen's (evo.run.screen.SCREEN_K)
SEED_REPEATS = 3  # evaluations of the seed program per budget, for its noise


def bench_transfer(target: Target, budgets: tuple[float, float], variants: int) -> list[dict]:
    short, full = budgets
    programs, parents = _variants(target, variants)
    metrics = {}
    for budget in (short, full):
        noise = [_metric(target, programs[0], budget, seed) for seed in range(SEED_REPEATS)]
        metrics[budget] = [noise[0]] + [_metric(target, p, budget, 0) for p in programs[1:]]
        metrics[budget, "sigma"] = statistics.stdev(noise)
    at_short, at_full = np.array(metrics[short]), np.array(metrics[full])
    sign = 1.0 if target.direction == "minimize" else -1.0
    behind_short = sign * (at_short[1:] - at_short[parents]) > NOISE_K * metrics[short, "sigma"]
    gain_full = sign * (at_full[parents] - at_full[1:]) > NOISE_K * metrics[full, "sigma"]
    kept = int((gain_full & ~behind_short).sum())
    return [
        {
            "budgets": f"{short:g} s / {full:g} s",
            "variants": variants,
            "spearman": round(_spearman(at_short, at_full), 3),
            "sigma_short": round(metrics[short, "sigma"], 4),
            "sigma_full": round(metrics[full, "sigma"], 4),
            "screened_out": int(behind_short.sum()),
            "improvements": int(gain_full.sum()),
            "improvements_kept": kept,
            "improvements_lost": int((gain_full & behind_short).sum()),
            "saved_per_improvement_kept": round(behind_short.sum() / kept, 2) if kept else None,
            "short_metrics": [round(float(v), 4) for v in at_short],
            "full_metrics": [round(float(v), 4) for v in at_full],
            "parents": [0, *parents],
        }
    ]


def _variants(target: Target, count: int) -> tuple[list[dict[str, str]], list[int]]:
    """The seed program and `count` variants, each a one-step child of an earlier program;
    and each variant's parent (an index into the programs)."""
    operator = OfflineOperator(Validator(target), seed=0)
    rng = random.Random(0)
    programs, parents = [target.read_mutable()], []
    while len(programs) <= count:
        parent = rng.randrange(len(programs))
        proposal = operator.propose(programs[parent])
        if proposal.valid:
            programs.append(proposal.child)
            parents.append(parent)
    return programs, parents


def _metric(target: Target, sources: dict[str, str], budget: float, seed: int) -> float:
    result = evaluate(target, sources, budget_seconds=budget, seed=seed)
    print(f"{budget:g} s, seed {seed}: {result.status} {result.metric}", flush=True)
    # a variant that fails counts as the worst: a screen would drop it at either budget
    worst = float("inf") if target.direction == "minimize" else float("-inf")
    return result.metric if result.metric is not None else worst


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (no ties expected between measured metrics)."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])
