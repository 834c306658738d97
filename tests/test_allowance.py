"""The limits a run derives from its seed program's evaluations (evo.evaluate.allowance)."""

from __future__ import annotations

import pytest
from conftest import QUAD

from evo.evaluate.allowance import Allowance, step_grace
from evo.target import load_target

# the seed's evaluations (budget, wall, longest step reported) -> (step, overhead)
SEEDS = [
    ([(10, 17.0, 0.3), (10, 15.5, 0.4), (10, 16.0, None)], (0.4, 7.0)),
    ([(20, 68.0, 0.05)], (0.05, 48.0)),  # a cold compile on an H200
    ([(3, 2.5, "9")], (9.0, 0.0)),  # faster than its budget: no overhead
]


@pytest.mark.parametrize("evaluations, expected", SEEDS)
def test_the_allowance_is_what_the_seed_needed(evaluations, expected):
    measured = [
        {
            "budget_seconds": b,
            "wall_seconds": w,
            **({} if s is None else {"longest_step_seconds": s}),
        }
        for b, w, s in evaluations
    ]
    found = Allowance.measured(measured, load_target(QUAD))
    assert (found.step_seconds, found.overhead_seconds, found.target_seconds) == (*expected, 19.0)
    assert Allowance.measured([], load_target(QUAD)) is None


def test_a_variant_before_the_seed_is_measured_has_the_targets_limits():
    unmeasured = Allowance.unmeasured(load_target(QUAD))  # 20 s at its 1 s budget
    assert (unmeasured.timeout_for(1.0), unmeasured.timeout_for(10.0)) == (20.0, 29.0)
    assert step_grace(9.0, unmeasured) == 0.0


# (overhead, the target's seconds beyond the budget, budget) -> the hard timeout
TIMEOUTS = [
    (7.0, 240.0, 10.0, 34.0),  # twice an honest 17 s evaluation, not the target's 250 s
    (1.0, 240.0, 10.0, 30.0),  # the floor: the budget + 20 s
    (48.0, 240.0, 20.0, 136.0),  # a cold compile: twice 68 s
    (48.0, 240.0, 300.0, 540.0),  # never past the target's own
    (7.0, 240.0, 2.0, 22.0),  # a screen at a fraction of the budget: the floor
]


@pytest.mark.parametrize("overhead, target_seconds, budget, timeout", TIMEOUTS)
def test_the_hard_timeout_follows_the_seed(overhead, target_seconds, budget, timeout):
    assert Allowance(0.0, overhead, target_seconds).timeout_for(budget) == timeout


def test_the_lineage_line():
    assert Allowance(0.4, 7.0, 240.0).describe(10.0) == (
        "hard timeout: 34 s at the 10 s budget (2 x the seed program's slowest evaluation, "
        "17.0 s; at least the budget + 20 s, at most + 240 s, the target's); the training clock "
        "allows a step of up to 2 x the seed's longest, 0.40 s, past the budget"
    )


# (reported, the seed's longest step or None before it was measured) -> the step allowed
STEPS = [
    (1.5, None, 1.5),
    (1.5, 1.0, 1.5),
    (9.0, 1.0, 2.0),  # a claim beyond twice the seed's
    (float("inf"), None, 0.0),
    ("9", None, 0.0),
    (True, None, 0.0),
    (-3.0, None, 0.0),
]


@pytest.mark.parametrize("reported, seeds, step", STEPS)
def test_the_step_the_clock_allows(reported, seeds, step):
    allowance = None if seeds is None else Allowance(seeds, 0.0, 240.0)
    assert step_grace(reported, allowance) == step
