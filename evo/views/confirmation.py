"""What a confirmation (evo.run.confirm) says: each confirmed program's gain over the seed
program on fresh seeds, with an interval, beside what the search reported.

For program p at one budget, on the fresh seeds where both p and the seed program gave a metric,
the paired differences d_i (positive: p is better) give its confirmed gain, their mean. Its 90%
interval is mean +- t(0.95, dof) s / sqrt(n), with s pooled over every program confirmed at that
budget (a few seeds each say little of the spread alone; a paired difference varies alike
between programs of one target, evo.search.noise). The search's reported gain is the seed
program's search fitness less p's; the optimism is reported less confirmed: how much of what the
run showed was luck. At a budget other than the search's, the rank correlation (Spearman) of the
programs' search fitness and confirmed means says whether the search's order holds there.

A budget is wall-clock time: on a machine that other jobs slow down, every program trains less
and measures worse, and a confirmation's values no longer compare with the search's. The seed
program does the same work after its training in every evaluation (its hand-off and its
measurement, which evo times: its wall less its training and set-up seconds; set-up is left out,
as a cold torch.compile cache makes it long on a machine of the same speed); where its
confirmation spends SPEED_CHANGE times as long or as short at it as its search did, a caution
says so. A program's own figures for its training (steps, tokens/s) are not used: its
run phase reports them, and evo shows them without trusting them.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass

from evo.search.candidate import budget_of
from evo.store.reader import Lineage

# Where the seed program's confirmation spends this many times as long or as short after its
# training as its search did, and more than SPEED_SECONDS apart, the machine ran at another speed
# (other jobs on it), and a wall-clock budget trained another amount: on 2 CPU cores beside two
# busy processes, 31 s against 11 s, and 4 training steps in 15 s against 89.
SPEED_CHANGE = 1.5
SPEED_SECONDS = 2.0

# one-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom; past 30, the normal's
T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782)
T95 += (1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711)
T95 += (1.708, 1.706, 1.703, 1.701, 1.699, 1.697)
NORMAL95 = 1.645


@dataclass(frozen=True)
class Confirmed:
    """One program's confirmation at one budget (gains positive where better, in metric units)."""

    candidate_id: int
    budget: float
    search_fitness: float
    search_evaluations: int
    mean: float | None  # its metric on the fresh seeds
    evaluations: int
    gain: float | None  # over the seed program, paired
    half_width: float | None  # of the 90% interval of the gain
    reported_gain: float
    after_training: float | None  # the median seconds of its evaluations after their training

    @property
    def optimism(self) -> float | None:
        return None if self.gain is None else self.reported_gain - self.gain

    def text(self, metric: str) -> str:
        """One line: the confirmed metric and, but for the seed program, the confirmed gain."""
        mean = "-" if self.mean is None else f"{self.mean:.4f}"
        line = f"{metric}={mean} on {self.evaluations} fresh seeds at {self.budget:g} s"
        if self.candidate_id and self.gain is not None:
            interval = "" if self.half_width is None else f" ± {self.half_width:.4f} (90%)"
            line += (
                f", gain over the seed program {self.gain:+.4f}{interval} "
                f"(the search reported {self.reported_gain:+.4f})"
            )
        return line


def of_candidate(lineage: Lineage, run_id: str, candidate_id: int) -> list[Confirmed]:
    """A program's confirmations, one per budget."""
    return [
        c
        for confirmed in confirmations(lineage, run_id).values()
        for c in confirmed
        if c.candidate_id == candidate_id
    ]


def confirmations(lineage: Lineage, run_id: str) -> dict[float, list[Confirmed]]:
    """Budget -> the programs confirmed at it (the seed program first, then best first)."""
    run = lineage.runs[run_id]
    rows = lineage.query(
        "SELECT candidate_id, seeds[1], metrics[1], eval_details[1] FROM lineage "
        "WHERE run_id = ? AND event = 'confirmation'",
        [run_id],
    )
    search = dict(
        (cid, (fitness, n))
        for cid, fitness, n in lineage.query(
            "SELECT candidate_id, fitness, len(metrics) FROM candidates WHERE run_id = ?",
            [run_id],
        )
    )
    by_budget: dict[float, dict[int, dict[int, float]]] = {}
    after: dict[tuple[float, int], list[float | None]] = {}  # (budget, program) -> seconds
    for cid, seed, metric, details in rows:
        measured = json.loads(details)
        budget = budget_of(measured)
        metrics = by_budget.setdefault(budget, {}).setdefault(cid, {})
        seconds = after.setdefault((budget, cid), [])
        if metric is not None:
            metrics[seed] = metric
            seconds.append(_after_training(measured))
    sign = -1.0 if run.minimize else 1.0
    found = {}
    for budget, programs in sorted(by_budget.items()):
        seed = programs.get(0, {})
        differences = {
            cid: [sign * (metrics[s] - seed[s]) for s in metrics if s in seed]
            for cid, metrics in programs.items()
            if cid != 0
        }
        spread, dof = _pooled(list(differences.values()))
        confirmed = []
        for cid, metrics in programs.items():
            paired = differences.get(cid, [])
            gain = statistics.fmean(paired) if paired else None
            width = _half_width(spread, dof, len(paired)) if cid and paired else None
            fitness, count = search.get(cid, (math.nan, 0))
            confirmed.append(
                Confirmed(
                    cid, budget, fitness, count,
                    statistics.fmean(metrics.values()) if metrics else None, len(metrics),
                    0.0 if cid == 0 else gain, width,
                    sign * (fitness - search[0][0]) if 0 in search else math.nan,
                    _median(after[budget, cid]),
                )
            )  # fmt: skip
        confirmed.sort(key=lambda c: (c.candidate_id != 0, sign * -c.search_fitness))
        found[budget] = confirmed
    return found


def _pooled(groups: list[list[float]]) -> tuple[float, int]:
    """The pooled standard deviation of several samples and its degrees of freedom."""
    squares = sum((x - statistics.fmean(g)) ** 2 for g in groups if len(g) > 1 for x in g)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return (math.sqrt(squares / dof), dof) if dof else (math.nan, 0)


def _half_width(spread: float, dof: int, count: int) -> float | None:
    if not dof:
        return None
    quantile = T95[dof - 1] if dof <= len(T95) else NORMAL95
    return quantile * spread / math.sqrt(count)


def rank_correlation(confirmed: list[Confirmed]) -> float | None:
    """Spearman's rank correlation of search fitness and confirmed mean (ties share their
    mean rank); None for fewer than three programs."""
    pairs = [(c.search_fitness, c.mean) for c in confirmed if c.mean is not None]
    if len(pairs) < 3:
        return None
    first, second = _ranks([a for a, _ in pairs]), _ranks([b for _, b in pairs])
    mean = (len(pairs) + 1) / 2
    covariance = sum((a - mean) * (b - mean) for a, b in zip(first, second, strict=True))
    norms = math.sqrt(sum((a - mean) ** 2 for a in first) * sum((b - mean) ** 2 for b in second))
    return covariance / norms if norms else None


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def describe(lineage: Lineage, run_id: str) -> list[str]:
    """The confirmation's lines for `evo confirm` and `evo lineage` (none where there is none)."""
    metric = lineage.runs[run_id].metric
    search_budget = lineage.search_budget(run_id)
    searched = _median(  # the seed program's seconds after training in the search
        [
            _after_training(json.loads(details or "{}"))
            for value, details in lineage.query(
                "SELECT unnest(metrics), unnest(eval_details) FROM candidates "
                "WHERE run_id = ? AND candidate_id = 0",
                [run_id],
            )
            if value is not None
        ]
    )
    lines = []
    for budget, confirmed in confirmations(lineage, run_id).items():
        lines.append(
            f"confirmed at {budget:g} s on fresh seeds ({metric}; gains over the seed program, "
            "with 90% intervals):"
        )
        for c in confirmed:
            mean = "-" if c.mean is None else f"{c.mean:.4f}"
            line = (
                f"  #{c.candidate_id:<6} search {c.search_fitness:.4f} ({c.search_evaluations})  "
                f"confirmed {mean} ({c.evaluations})"
            )
            if c.candidate_id and c.gain is not None:
                interval = "" if c.half_width is None else f" ± {c.half_width:.4f}"
                line += (
                    f"  gain {c.gain:+.4f}{interval}, reported {c.reported_gain:+.4f}, "
                    f"optimism {c.optimism:+.4f}"
                )
            lines.append(line)
        correlation = rank_correlation(confirmed)
        if search_budget is not None and budget != search_budget and correlation is not None:
            lines.append(
                f"  rank correlation with the search at {search_budget:g} s: {correlation:+.2f}"
            )
        seed = confirmed[0]
        caution = _speed_caution(seed.after_training, searched) if seed.candidate_id == 0 else None
        if caution:
            lines.append(caution)
    best = lineage.best(run_id)
    if not lines and best and best[0] != 0:
        lines.append(
            f"not confirmed: the best (#{best[0]}) is measured by the search that chose it, "
            f"partly for its luck; python -m evo confirm {lineage.runs[run_id].folder} "
            "measures it again on fresh seeds"
        )
    return lines


def _after_training(measured: dict) -> float | None:
    """An evaluation's wall less its training and set-up seconds (the module's docstring), from
    what it measured; None where it did not record them."""
    if not {"wall_seconds", "train_seconds"} <= measured.keys():
        return None
    setup = measured.get("setup_seconds", 0.0)
    return measured["wall_seconds"] - measured["train_seconds"] - setup


def _median(values: list[float | None]) -> float | None:
    """The median of the known values."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _speed_caution(now: float | None, then: float | None) -> str | None:
    """The line that says the confirmation's machine ran at another speed than the search's."""
    if not (now and then) or min(now, then) <= 0 or abs(now - then) <= SPEED_SECONDS:
        return None
    if 1 / SPEED_CHANGE <= now / then <= SPEED_CHANGE:
        return None
    return (
        f"  caution: the seed program's evaluations spent {now:.1f} s after training here and "
        f"{then:.1f} s in the search: the machine ran at another speed (other jobs on it?), and "
        "under a wall-clock budget a slower machine trains less; these values do not compare "
        "with the search's"
    )
