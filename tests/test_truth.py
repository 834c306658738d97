"""The simulated target of known truth (evo.bench.truth), the bookkeeping of `evo bench
realistic` (evo.bench.realistic), and the estimate of what a run's edits do (evo.search.effects).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace

import numpy as np
import pytest
from conftest import row

from evo.bench.realistic import estimated_gain, median_error, trajectory
from evo.bench.truth import (
    BASE,
    MUTABLE,
    REGIMES,
    SIGMA,
    TruthEvaluation,
    TruthOperator,
    interaction,
    true_loss,
    write_truth_target,
)
from evo.mutate.proposal import Validator
from evo.search.effects import estimate, paired_gains
from evo.status import Status
from evo.store.lineage import LineageWriter, Metric
from evo.store.reader import Lineage
from evo.target import load_target
from evo.views.summary import summary

ADDITIVE = replace(REGIMES["p10-g1"], interaction=0.0)


def edits(**values: float) -> dict[str, str]:
    return {MUTABLE: "".join(f"{name} = {value!r}\n" for name, value in values.items())}


@pytest.mark.parametrize(
    "program, expected",
    [
        ({}, 0.0),
        ({"Ea": 0.5}, 0.5),
        ({"Ea": 0.5, "Eb": -1.25}, -0.75),
        ({"Ea": 0.5, "Eb": -1.25, "CRASHESEc": 1.0}, float("inf")),
    ],
)
def test_the_true_loss_of_a_program_is_the_sum_of_its_edits(program, expected):
    assert true_loss(edits(**program), ADDITIVE) == expected


def test_two_edits_interact_alike_whichever_comes_first():
    regime = REGIMES["p10-g1"]
    together = interaction("Ea", "Eb", regime.interaction)
    assert together == interaction("Eb", "Ea", regime.interaction) != 0.0
    assert true_loss(edits(Ea=0.5, Eb=-1.25), regime) == pytest.approx(-0.75 + together)


def test_each_edit_moves_the_true_loss_by_an_effect_of_its_kind(tmp_path):
    """On a parent of many edits (so that interactions are many), each child's true loss is its
    parent's plus its effect: below for a gain, above for a loss, the same for a neutral edit,
    infinite for a crash; the kinds come in the regime's shares."""
    regime = replace(REGIMES["p25-g0.5"], neutral_share=0.2)
    target = load_target(write_truth_target(tmp_path))
    operator = TruthOperator(regime)(Validator(target), 7)
    parent, kinds = target.read_mutable(), []
    for _ in range(400):
        proposal = operator.propose(parent)
        kind = proposal.hypothesis.split()[1]
        change = true_loss(proposal.child, regime) - true_loss(parent, regime)
        if kind == "crash":
            assert change == float("inf")
            continue
        assert {"gain": change < 0, "loss": change > 0}.get(kind, change == pytest.approx(0.0))
        kinds.append(kind)
        if len(edits_in(parent)) < 30:
            parent = proposal.child
    counts = {kind: kinds.count(kind) for kind in ("gain", "neutral", "loss")}
    assert counts == {"gain": 114, "neutral": 74, "loss": 151}  # of 400: 61 crashed


def edits_in(sources: dict[str, str]) -> list[str]:
    return [line for line in sources[MUTABLE].splitlines() if line.startswith("E")]


def test_a_measurement_is_the_truth_plus_a_shared_and_an_own_part(tmp_path):
    """Over 400 seeds: two programs' paired difference varies by 1 sigma about their true
    difference; one program's metric by sqrt(shared^2 + 1/2) sigma about its truth."""
    regime = REGIMES["p10-g1"]
    target = load_target(write_truth_target(tmp_path))
    measure = TruthEvaluation(regime)
    better = edits(Ea=-1.5)
    first = [measure(target, seed=s) for s in range(400)]
    second = [measure(target, better, seed=s) for s in range(400)]
    assert {r.status for r in first + second} == {Status.OK}
    differences = [(b.metric - a.metric) / SIGMA for a, b in zip(first, second, strict=True)]
    assert statistics.mean(differences) == pytest.approx(-1.5, abs=0.1)
    assert statistics.stdev(differences) == pytest.approx(1.0, abs=0.1)
    alone = [(r.metric - BASE) / SIGMA for r in first]
    assert statistics.stdev(alone) == pytest.approx((regime.shared**2 + 0.5) ** 0.5, rel=0.1)
    crashed = measure(target, edits(CRASHESEa=1.0), seed=0)
    assert (crashed.status, crashed.metric) == (Status.CRASH, None)


def test_the_bench_follows_the_best_the_run_reported_and_its_truth(tmp_path):
    """A hand-made lineage: the seed (3 evaluations), a crowned gain, a crash, a kept program,
    a crowned program whose measurement was lucky. After E evaluations: the true and reported
    gains of the best crowned so far, in sigma, and evaluations per candidate."""
    folder = tmp_path / "run"
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))
    for r in [
        row(0, None, 0, "accepted", [1.0, 1.0, 1.0], "the seed program", 0),
        row(1, 0, 0, "accepted", [BASE - SIGMA], "a gain", 1),
        row(2, 1, 0, "crash", [None], "a crash", 2, statuses=["crash"]),
        row(3, 1, 0, "kept", [0.99, 0.97], "kept", 3),
        row(4, 1, 0, "accepted", [BASE - 5 * SIGMA], "lucky", 4),
    ]:
        program = {0: {}, 1: {"Ea": -1.0}, 2: {"Ea": -1.0, "CRASHESb": 1.0}}.get(r["candidate_id"])
        program = program if program is not None else {"Ea": -1.0, "Ec": 0.5}
        writer.add({**r, "sources": json.dumps(edits(**program))})
    writer.flush()
    target = load_target(write_truth_target(tmp_path / "truth"))
    points = trajectory(folder, ADDITIVE, [4, 6, 7, 8], target, run_seed=0)
    rounded = {n: {k: round(v, 4) for k, v in p.items()} for n, p in points.items()}
    # confirmed error: the best's gain on 3 fresh seeds (#1's, then #4's) less its truth
    # estimated error: too few programs for an estimate, the best's paired gain less its truth
    first = {"true": 1.0, "reported": 1.0, "optimism": 0.0, "estimated_error": 0.0}
    first |= {"confirmed_error": -0.2538}
    assert rounded == {
        4: first | {"evals_per_candidate": 1.0},
        6: first | {"evals_per_candidate": 1.0},
        7: first | {"evals_per_candidate": 1.3333},
        8: {"true": 0.5, "reported": 5.0, "optimism": 4.5, "estimated_error": 4.5}
        | {"confirmed_error": -0.7872, "evals_per_candidate": 1.25},
    }


@pytest.mark.parametrize(
    "share, size, improving, gain",
    [  # the truth drawn from -> the estimate (seeded: 300 edits, one seed each)
        (0.10, 1.0, 0.087, 0.49),  # the sample: 7.0% improve, by 0.70
        (0.03, 1.0, 0.036, 0.56),  # 2.7%, by 0.65
        (0.10, 3.0, 0.106, 1.37),  # 7.0%, by 2.11 (above the 80% range: 0.91-2.04)
        (0.00, 1.0, 0.016, 0.81),  # none
    ],
)
def test_the_estimate_of_edits_finds_their_share_and_size(share, size, improving, gain):
    rng = np.random.default_rng(3)
    n = 300
    gains = rng.random(n) < share
    truth = np.where(gains, np.abs(rng.normal(0, size, n)), -np.abs(rng.normal(0, 2, n)))
    found = estimate(list(truth + rng.normal(0, 1, n)), [1] * n)
    assert (found.edits, round(found.improving, 3), round(found.gain, 2)) == (n, improving, gain)
    low, high = found.improving_range  # the smoothing keeps about 1% above zero
    assert low - 0.01 <= (truth > 0).mean() <= high


def test_a_gain_far_off_the_grid_leaves_the_estimate_finite():
    """A broken or forged measurement (a paired gain of 100 sigma) weighs as the grid's edge,
    not as a likelihood of 0 everywhere that makes every figure NaN."""
    found = estimate([0.5, -1.0, -2.0, 0.0, -0.5, 1.0, -3.0, -1.5, 0.2, 100.0], [1] * 10)
    assert (round(found.improving, 3), round(found.gain, 2)) == (0.26, 3.47)


def test_too_few_edits_give_no_estimate():
    assert estimate([1.0] * 9, [1] * 9) is None


def test_paired_gains_pair_each_child_with_its_parent_on_shared_seeds():
    programs = {0: {0: 10.0, 1: 10.4, 2: 9.6}, 1: {0: 9.0, 1: 9.8}, 2: {5: 1.0}}
    children = [(0, programs[1]), (1, programs[2]), (None, {0: 1.0}), (0, {})]
    assert paired_gains(children, programs, 0.5, minimize=True) == ([pytest.approx(1.6)], [2])
    assert paired_gains(children, programs, 0.5, minimize=False) == ([pytest.approx(-1.6)], [2])


def test_evo_lineage_says_what_the_runs_edits_do(tmp_path):
    """Twelve children of the seed program, paired with it on seed 0 (sigma 0.5, the seed's
    spread), 3 of them better, and a crash: the line evo lineage prints."""
    folder = tmp_path / "fixture"  # the run id of conftest.row
    writer = LineageWriter(folder / "lineage", Metric("loss", minimize=True))
    writer.add(row(0, None, 0, "accepted", [10.0, 10.5, 9.5], "the seed program", 0, sigma=0.5))
    gains = [1.5, -2.0, -1.0, -3.0, 0.5, -2.5, -1.5, -0.5, -4.0, 2.0, -1.0, -2.0]
    for cid, gain in enumerate(gains, start=1):
        writer.add(row(cid, 0, 0, "kept", [10.0 - 0.5 * gain], "", cid, sigma=0.5))
    writer.add(row(13, 0, 0, "crash", [None], "", 13, statuses=["crash"], sigma=0.5))
    writer.flush()
    [line] = [line for line in summary(Lineage([folder]), "fixture") if line.startswith("edits")]
    assert line == (
        "edits: 25% improve their parent (12-43%), by 1.42 sigma where they do (1.21-1.87); "
        "from 12 paired gains; 8% of 13 edits crashed"
    )


def test_the_bench_reads_the_estimate_where_the_run_has_pairs_for_one():
    """Twelve children of the seed program on seed 0, five of them also on seed 1: 5 paired
    degrees of freedom, enough for evo.search.luck's estimate of the best (#12), which the bench
    reads in units of SIGMA; with two pairs fewer (3 degrees of freedom), its measured paired
    gain."""
    seed = {0: BASE, 1: BASE + 0.01, 2: BASE - 0.01}
    programs = {0: seed}
    for cid in range(1, 13):
        gain = -2.0 + 0.3 * cid  # in SIGMA: the best, #12, measured 1.6 better
        programs[cid] = {0: BASE - gain * SIGMA}
        if cid <= 5:
            programs[cid][1] = BASE + 0.01 - gain * SIGMA + (0.4 if cid % 2 else -0.4) * SIGMA
    assert round(estimated_gain(programs, 12, 0), 4) == 1.35
    del programs[4][1], programs[5][1]
    assert round(estimated_gain(programs, 12, 0), 4) == 1.6
    assert estimated_gain(programs, 0, 0) == 0.0


def test_the_median_error_is_nil_for_a_constant_and_scales_with_the_values():
    """The bench's standard error of a median (a seeded bootstrap): the same resamples whatever
    the values, so twice the values give exactly twice the error; about the normal theory's
    1.25 sd / sqrt(n) for 400 normal values."""
    values = [float(v) for v in range(20)]
    assert median_error([1.5] * 20) == 0.0
    assert median_error([2 * v for v in values]) == 2 * median_error(values)
    normal = np.random.default_rng(1).normal(size=400).tolist()
    assert median_error(normal) == pytest.approx(1.2533 / 20, rel=0.25)
