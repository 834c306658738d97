"""Island logic without Ray: paired noise-aware judging, parents, migration, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest

from evo.search.island import Island, Member, Selection
from evo.search.noise import MIN_PAIRED_DOF, Level
from evo.status import Status

SELECTION = Selection(
    population=3, tournament=2, explore=0.0, patience=0, crossover=0.0, noise_k=2.0,
    max_repeats=3, min_repeats=1, sure_k=0.0, surprise_k=10.0, minimize=True,
)  # fmt: skip


def island(sigma=0.1, champion=None, others=(), selection=SELECTION, dof=0) -> Island:
    result = Island(0, selection, Level(sigma, dof), seed=0)
    result.champion = champion or Member(0, {}, {0: 1.0, 1: 1.2, 2: 0.8})
    result.population = [result.champion, *others]
    return result


@pytest.mark.parametrize(
    "metrics, verdict",
    [
        ({0: 0.7}, Status.ACCEPTED),  # gain 0.3 > 2 * 0.1 / sqrt(1)
        ({0: 0.9}, Status.REPEAT),  # gain 0.1: maybe noise, evaluate again
        ({0: 0.9, 1: 1.1}, Status.REPEAT),  # gain 0.1 < 2 * 0.1 / sqrt(2) = 0.141
        ({0: 0.9, 1: 1.05}, Status.REPEAT),  # gain 0.125 < 0.141
        ({0: 0.85, 1: 1.05}, Status.ACCEPTED),  # gain 0.15 > 0.141
        (
            {0: 0.9, 1: 1.1, 2: 0.7},
            Status.KEPT,
        ),  # gain 0.1 < 0.115 after 3 evaluations: not champion
        ({0: 1.0}, Status.KEPT),  # no gain; the population has room
        ({0: 1.5}, Status.KEPT),
    ],
)
def test_judge(metrics, verdict):
    assert island().judge(Member(1, {}, metrics)) == verdict


@pytest.mark.parametrize(
    "metrics, min_repeats, sure_k, verdict",
    [  # the default rule, k = 0: any paired gain crowns (sigma 0.1: a surprise past 1.0)
        ({0: 0.999}, 1, 0, Status.ACCEPTED),  # 0.01 sigma better on the same seed
        ({0: 1.0}, 1, 0, Status.KEPT),  # the same on the same seed: no gain, and no repeat
        ({0: 1.001}, 1, 0, Status.KEPT),  # a hair worse: no repeat either
        ({1: 1.1}, 1, 0, Status.ACCEPTED),  # its seed 1 against the champion's 1.2
        ({0: 0.999}, 2, 0, Status.REPEAT),  # with min_repeats 2: a second seed first
        ({0: 0.999, 1: 1.3}, 2, 0, Status.KEPT),  # which took the gain back
        ({0: 0.999, 1: 1.19}, 2, 0, Status.ACCEPTED),
        ({0: 0.7}, 2, 0, Status.REPEAT),  # 3 sigma, and no gain is sure: a second seed
        ({0: 0.7}, 2, 3, Status.REPEAT),  # 3 sigma is not past 3
        ({0: 0.69}, 2, 3, Status.ACCEPTED),  # 3.1 sigma is: crowned on one seed
        ({0: 0.85, 1: 1.05}, 3, 3, Status.REPEAT),  # 1.5 sigma on 2, below 3 / sqrt(2) = 2.12
        ({0: 0.7, 1: 0.9}, 3, 3, Status.ACCEPTED),  # 3 sigma on 2 seeds: past 2.12
        ({0: -0.5}, 1, 0, Status.REPEAT),  # 15 sigma: a surprise, two fresh seeds first
        ({0: -0.5}, 2, 3, Status.REPEAT),  # sure, and still a surprise
    ],
)
def test_judge_with_any_gain_crowning(metrics, min_repeats, sure_k, verdict):
    rule = dataclasses.replace(SELECTION, noise_k=0.0, min_repeats=min_repeats, sure_k=sure_k)
    judging = island(selection=rule, dof=MIN_PAIRED_DOF)  # sigma measured on pairs
    assert judging.judge(Member(1, {}, metrics)) == verdict


@pytest.mark.parametrize(
    "dof, verdict", [(0, Status.REPEAT), (3, Status.REPEAT), (4, Status.ACCEPTED)]
)
def test_no_gain_is_sure_before_sigma_is_measured_on_pairs(dof, verdict):
    """A sigma from the seed program's spread alone can be a tenth of the truth (BENCHMARKS.md
    "noise"), and then every lucky gain would look sure."""
    rule = dataclasses.replace(SELECTION, noise_k=0.0, min_repeats=2, sure_k=3)
    judging = island(selection=rule, dof=dof)
    assert judging.judge(Member(1, {}, {0: 0.5})) == verdict  # 5 sigma on one seed


@pytest.mark.parametrize(
    "metrics, verdict",
    [
        ({0: 0.7}, Status.REPEAT),  # gain 0.3 > 0.2, but one seed is not yet a confirmation
        ({0: 0.7, 1: 1.0}, Status.ACCEPTED),  # gain 0.25 > 0.141 on two seeds
        ({0: 0.7, 1: 1.3}, Status.REPEAT),  # the second seed took it back: gain 0.1
        ({0: 1.5}, Status.KEPT),  # no gain: nothing to confirm
    ],
)
def test_a_champion_is_confirmed_on_min_repeats_seeds(metrics, verdict):
    confirming = island(selection=dataclasses.replace(SELECTION, min_repeats=2))
    assert confirming.judge(Member(1, {}, metrics)) == verdict


# The champion scores 1.0 on seeds 0-2 (mean 1.0); sigma 0.01, so a gain past 0.1 is a surprise.
# A candidate is selected on its first two evaluations (min_repeats) and confirmed on two more.
SURPRISES = [
    ({0: 0.95, 1: 0.95, 2: 0.95}, Status.ACCEPTED, ""),  # 5 sigma: an ordinary gain
    ({0: 0.5, 1: 0.5}, Status.REPEAT, None),  # 50 sigma: two more seeds first
    ({0: 0.5, 1: 0.5, 2: 0.5}, Status.REPEAT, None),  # one more seed of two
    (
        {0: 0.5, 1: 0.5, 2: 0.7, 3: 0.7},  # 30 sigma on the later seeds, of 43.3: confirmed
        Status.ACCEPTED,
        "surprise: a gain of 43.3 sigma, confirmed on 2 more seeds (30.0 sigma there)",
    ),
    (
        {0: 0.5, 1: 0.5, 2: 0.9, 3: 0.9},  # 10 sigma on the later seeds, of 36.7: a fluke
        Status.KEPT,
        "surprise: a gain of 36.7 sigma, not confirmed on 2 more seeds (10.0 sigma there)",
    ),
]


@pytest.mark.parametrize("metrics, verdict, lineage", SURPRISES)
def test_a_surprising_gain_is_crowned_only_if_more_seeds_confirm_it(metrics, verdict, lineage):
    champion = Member(0, {}, {0: 1.0, 1: 1.0, 2: 1.0})
    selection = dataclasses.replace(SELECTION, min_repeats=2)
    candidate = Member(1, {}, metrics)
    assert island(sigma=0.01, champion=champion, selection=selection).judge(candidate) == verdict
    if lineage is not None:
        assert selection.surprise(candidate, champion, 0.01) == lineage


def test_a_surprising_migrant_is_not_asked_for_more_seeds():
    champion = Member(0, {}, {0: 1.0, 1: 1.0, 2: 1.0})
    home = island(sigma=0.01, champion=champion)
    assert home.receive(Member(7, {}, {0: 0.5, 1: 0.5})) == Status.ACCEPTED
    assert SELECTION.surprise(Member(1, {}, {0: 0.5}), None, 0.01) == ""


def test_judge_compares_on_shared_seeds_only():
    # Seed 0 is an easy seed for everyone: the candidate's 0.95 there is worse than the
    # champion's 0.9, whatever the champion scored on other seeds.
    champion = Member(0, {}, {0: 0.9, 1: 2.0, 2: 2.0})
    assert island(champion=champion).judge(Member(1, {}, {0: 0.95})) == Status.KEPT


def test_a_full_population_rejects_what_is_worse_than_its_worst():
    full = island(others=[Member(1, {}, {0: 1.1}), Member(2, {}, {0: 1.3})])
    assert full.judge(Member(3, {}, {0: 1.4})) == Status.REJECTED
    assert full.judge(Member(3, {}, {0: 1.2})) == Status.KEPT
    full.settle(Member(3, {}, {0: 1.2}), Status.KEPT)
    assert sorted(m.id for m in full.population) == [0, 1, 3]  # the worst (2) made room


def test_a_population_of_one_keeps_nothing_but_its_champion():
    chain = island(selection=dataclasses.replace(SELECTION, population=1))
    assert chain.judge(Member(3, {}, {0: 0.9, 1: 1.1, 2: 0.7})) == Status.REJECTED  # gain 0.1


def test_without_noise_any_gain_wins():
    assert island(sigma=0.0).judge(Member(1, {}, {0: 0.999})) == Status.ACCEPTED


def test_settle_accept_makes_a_champion_and_resets_stagnation():
    home = island()
    home.settle(Member(1, {}, {0: 1.1}), Status.KEPT)
    assert home.since_improvement == 1
    home.settle(Member(2, {}, {0: 0.5}), Status.ACCEPTED)
    assert home.champion.id == 2 and home.since_improvement == 0 and home.evaluations == 2


def test_tournament_and_explore_are_seeded():
    members = [Member(i, {}, {0: float(i)}) for i in range(1, 3)]
    greedy = island(others=members)
    assert {greedy.select_parent().id for _ in range(50)} == {0, 1}  # 2 of 3: never the worst
    curious = Island(0, dataclasses.replace(SELECTION, explore=1.0), Level(0.1), seed=4)
    curious.population = [greedy.champion, *members]
    first = [curious.select_parent().id for _ in range(20)]
    curious.rng.seed("4-0")
    assert first == [curious.select_parent().id for _ in range(20)] and 2 in first


def test_an_island_with_patience_is_greedy_until_it_stops_improving():
    members = [Member(i, {}, {0: float(i)}) for i in range(1, 3)]
    patient = island(others=members, selection=dataclasses.replace(SELECTION, patience=2))
    assert {patient.select_parent().id for _ in range(50)} == {0}  # the champion alone
    patient.settle(Member(3, {}, {0: 3.0}), Status.REJECTED)
    assert {patient.select_parent().id for _ in range(50)} == {0}  # 1 evaluation since a gain
    patient.missed()  # the operator had nothing new for the champion: an attempt, too
    assert {patient.select_parent().id for _ in range(50)} == {0, 1}  # tournament: 2 of 3
    patient.settle(Member(5, {}, {0: 0.5}), Status.ACCEPTED)
    assert (patient.since_improvement, patient.misses) == (0, 0)
    assert {patient.select_parent().id for _ in range(50)} == {5}  # greedy again


@pytest.mark.parametrize(
    "others, runner_up",
    [
        ((), 0),  # alone: the champion itself
        ((Member(1, {}, {0: 2.0}), Member(2, {}, {0: 1.5})), 2),  # the better of the others
    ],
)
def test_the_runner_up_is_the_best_member_besides_the_champion(others, runner_up):
    assert island(others=others).runner_up().id == runner_up


def test_a_mate_is_drawn_for_a_share_of_proposals_by_tournament_among_the_others():
    members = [Member(i, {}, {0: float(i)}) for i in range(1, 3)]
    assert {island(others=members).select_mate(members[0]) for _ in range(20)} == {None}
    mating = island(others=members, selection=dataclasses.replace(SELECTION, crossover=1.0))
    # the parent is #1: the others are the champion #0 (1.0) and #2 (2.0); a tournament of 2
    assert {mating.select_mate(members[0]).id for _ in range(20)} == {0}
    assert island(selection=mating.selection).select_mate(mating.champion) is None  # alone
    half = island(others=members, selection=dataclasses.replace(SELECTION, crossover=0.5))
    drawn = [half.select_mate(members[0]) for _ in range(200)]
    assert 70 < sum(m is not None for m in drawn) < 130


def test_migrants_join_or_win_and_duplicates_are_turned_away():
    home = island()
    assert home.receive(Member(0, {}, {0: 0.1})) == Status.REJECTED  # already here
    assert home.receive(Member(5, {}, {0: 0.5, 1: 0.5})) == Status.ACCEPTED
    assert home.champion.id == 5
    assert home.receive(Member(6, {}, {0: 1.0})) == Status.KEPT


def test_state_round_trip():
    home = island(others=[Member(1, {"m.py": "x = 1\n"}, {0: 1.1}, generation=2)], dof=5)
    home.select_parent()
    home.missed()
    again = Island.from_state(home.state(), SELECTION)
    assert again.state() == home.state() and again.noise == Level(0.1, 5)
    assert again.select_parent().id == home.select_parent().id
