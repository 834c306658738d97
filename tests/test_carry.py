"""Three-way merges of programs, and the gains a run carries over to its newer champion."""

from __future__ import annotations

import pytest
from conftest import QUAD

from evo.config import SearchConfig
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import program_hash
from evo.run.carry import Carry
from evo.run.state import RunState
from evo.search.candidate import Candidate, Child, Evaluation
from evo.search.island import Selection
from evo.search.merge import merge
from evo.search.noise import Noise
from evo.status import Status
from evo.target import load_target

BASE = "A = 1\nB = 2\nC = 3\nD = 4\n"


@pytest.mark.parametrize(
    ("ours", "theirs", "merged"),
    [
        (
            "A = 1\nB = 9\nC = 3\nD = 4\n",
            "A = 1\nB = 2\nC = 3\nD = 8\n",
            "A = 1\nB = 9\nC = 3\nD = 8\n",
        ),
        # adjacent lines are independent statements
        (
            "A = 1\nB = 9\nC = 3\nD = 4\n",
            "A = 1\nB = 2\nC = 7\nD = 4\n",
            "A = 1\nB = 9\nC = 7\nD = 4\n",
        ),
        ("A = 1\nB = 9\nC = 3\nD = 4\n", "A = 1\nB = 5\nC = 3\nD = 4\n", None),  # the same line
        ("A = 1\nX = 0\nB = 2\nC = 3\nD = 4\n", "A = 1\nY = 0\nB = 2\nC = 3\nD = 4\n", None),
        (
            "A = 1\nB = 2\nC = 3\n",
            "E = 5\nA = 1\nB = 2\nC = 3\nD = 4\n",
            "E = 5\nA = 1\nB = 2\nC = 3\n",
        ),
        (BASE, "A = 0\nB = 2\nC = 3\nD = 4\n", "A = 0\nB = 2\nC = 3\nD = 4\n"),  # ours unchanged
        ("A = 0\nB = 2\nC = 3\nD = 4\n", BASE, "A = 0\nB = 2\nC = 3\nD = 4\n"),  # theirs unchanged
        (
            "A = 1\nB = 2\nC = 3\nD = 4",
            "A = 6\nB = 2\nC = 3\nD = 4\n",
            "A = 6\nB = 2\nC = 3\nD = 4",
        ),
    ],
)
def test_merge_applies_both_changes_where_they_do_not_overlap(ours, theirs, merged):
    result = merge({"p.py": BASE}, {"p.py": ours}, {"p.py": theirs})
    assert result == (None if merged is None else {"p.py": merged})


def test_merge_takes_each_file_from_the_side_that_changed_it():
    base, ours, theirs = (
        {"a": "1\n", "b": "2\n"},
        {"a": "3\n", "b": "2\n"},
        {"a": "1\n", "b": "4\n"},
    )
    assert merge(base, ours, theirs) == {"a": "3\n", "b": "4\n"}
    assert merge(base, ours, {"a": "1\n"}) is None  # not the same files


def knobs(x: float, y: float) -> dict[str, str]:
    return {"params.py": f"X = {x}\nY = {y}\nSCALE = 2\n"}


def evaluated(cid, parent, sources, metrics, from_champion=True, island=0) -> Candidate:
    child = Child(
        island, parent, 1, "offline", None, f"step {cid}", "", sources, from_champion=from_champion
    )
    candidate = Candidate(cid, child)
    for index, metric in enumerate(metrics):
        result = EvalResult(Status.OK, "loss", metric, index, "cpu", 1.0, 1.0, 1.0, None)
        candidate.evaluations.append(Evaluation(result, "e0", "n", "h", "", 1, index=index))
    return candidate


@pytest.fixture
def run():
    """A run whose seed (#0: X 8, Y 4, loss 60 on two seeds) is island 0's champion, sigma 0.5."""
    state = RunState()
    seed = evaluated(0, None, knobs(8.0, 4.0), [60.0, 60.0], from_champion=False)
    state.champions[0] = seed.as_member()
    state.noise = Noise(earlier=(500.0, 1000))  # sigma 0.71: threshold 1.41
    state.seen.add(program_hash(seed.sources))
    state.next_id = 10
    selection = Selection.of(SearchConfig(noise_k=2.0), minimize=True)
    return state, Carry(load_target(QUAD), state, selection), seed


def accept(state, carry, candidate) -> Candidate | None:
    displaced = state.champions[candidate.island]
    state.champions[candidate.island] = candidate.as_member()
    return carry.settled(candidate, Status.ACCEPTED, displaced)


def test_a_replaced_champions_own_step_is_carried_over_to_its_sibling(run):
    state, carry, seed = run
    first = evaluated(1, 0, knobs(4.0, 4.0), [40.0])  # X halved: 20 better
    assert accept(state, carry, first) is None  # built on the seed
    second = evaluated(2, 0, knobs(8.0, 2.0), [38.0])  # Y halved, a sibling: better still
    carried = accept(state, carry, second)
    assert carried.id == 10 and state.next_id == 11
    assert carried.sources == knobs(4.0, 2.0)  # both halvings
    child = carried.child
    assert (child.parent_id, child.mate_id, child.operator, child.from_champion) == (
        2, 1, "merge", True,
    )  # fmt: skip
    assert child.edit == "#1's change merged into #2"
    assert program_hash(carried.sources) in state.seen
    third = evaluated(3, 0, knobs(8.0, 1.0), [30.0])  # Y again, further: a conflict with #2's
    assert accept(state, carry, third) is None


@pytest.mark.parametrize(
    ("metric", "from_champion", "carried"),
    [
        (58.0, True, True),  # beat its parent by 2 > 1.41 (2 sigma)
        (59.0, True, False),  # by 1: within the noise
        (58.0, False, False),  # a tournament's parent: left to explore
    ],
)
def test_a_child_that_beat_its_parent_after_the_champion_moved_on_is_carried(
    run, metric, from_champion, carried
):
    state, carry, seed = run
    accept(state, carry, evaluated(1, 0, knobs(4.0, 4.0), [40.0]))
    late = evaluated(2, 0, knobs(8.0, 2.0), [metric], from_champion=from_champion)
    result = carry.settled(late, Status.KEPT, state.champions[0])
    assert (result.sources if result else None) == (knobs(4.0, 2.0) if carried else None)


def test_a_child_of_its_current_champion_carries_nothing(run):
    state, carry, seed = run
    child = evaluated(1, 0, knobs(8.0, 2.0), [50.0])
    assert carry.settled(child, Status.KEPT, seed.as_member()) is None


def test_a_child_of_a_replaced_champion_is_rebased_before_its_evaluation(run):
    state, carry, seed = run
    accept(state, carry, evaluated(1, 0, knobs(4.0, 4.0), [40.0]))
    waiting = evaluated(2, 0, knobs(8.0, 2.0), [])
    carry.rebase(waiting)
    child = waiting.child
    assert waiting.sources == knobs(4.0, 2.0)
    assert (child.parent_id, child.generation, child.edit) == (1, 2, " (rebased from #0 onto #1)")
    conflicting = evaluated(3, 0, knobs(2.0, 4.0), [])
    carry.rebase(conflicting)  # X changed by both: it stays a child of the seed
    assert (conflicting.child.parent_id, conflicting.sources) == (0, knobs(2.0, 4.0))
    duplicate = evaluated(4, 0, knobs(8.0, 2.0), [])  # its rebase is #2's program now
    carry.rebase(duplicate)
    assert duplicate.child.parent_id == 0
