"""The offline operator: exact steps, seeded sequences, and valid children on both targets."""

from __future__ import annotations

import libcst as cst
import pytest

from evo.bench.synthetic import write_knob_target
from evo.mutate.offline import Knob, OfflineOperator, alternatives, find_knobs, hypothesis
from evo.mutate.prompt import Mate
from evo.mutate.proposal import Validator
from evo.target import load_target
from evo.target.rules import violations


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, [False]),
        (1, [2]),
        (4, [2, 3, 5, 8]),
        (16, [8, 15, 17, 32]),
        (256, [128, 512]),
        (0, []),
        (-3, []),
        (0.02, [0.01, 0.04]),
        (0.4, [0.2, 0.8]),
        (0.95, [0.9, 0.975]),
        (0.5, [0.75]),  # 1 - (1 - 0.5) * 2 = 0 is not > 0
        (1.0, [0.5, 2.0]),
        (0.0, []),
        ("relu2", []),
    ],
)
def test_alternatives(value, expected):
    assert alternatives(value) == expected


@pytest.mark.parametrize(
    "knob, new, expected",
    [
        (
            Knob("t.py", "MATRIX_LR", None, 0.02),
            0.04,
            "MATRIX_LR 0.02 -> 0.04: larger steps may converge faster within the budget",
        ),
        (
            Knob("t.py", "CPU_SIZE", "d_model", 128),
            64,
            "CPU_SIZE['d_model'] 128 -> 64: a smaller model takes more steps within the budget",
        ),
        (
            Knob("t.py", "ACTIVATION", None, "relu2"),
            "gelu",
            "ACTIVATION 'relu2' -> 'gelu': the alternative may suit this budget and machine better",
        ),
        (
            Knob("t.py", "ALPHA", None, 2),
            3,
            "ALPHA 2 -> 3: tests whether the metric is sensitive to ALPHA",
        ),
    ],
)
def test_hypothesis(knob, new, expected):
    assert hypothesis(knob, new) == expected


def test_knobs_of_the_gpt_target(gpt):
    labels = [knob.label for knob in find_knobs(gpt.read_mutable())]
    assert labels[:4] == [
        "CPU_SIZE['depth']",
        "CPU_SIZE['d_model']",
        "CPU_SIZE['n_heads']",
        "CPU_SIZE['batch_size']",
    ]
    assert {"MATRIX_LR", "ADAM_BETAS[1]", "ACTIVATION", "OPTIMIZER", "COMPILE_ON_CUDA"} <= set(
        labels
    )


def proposals(target, seed, count, device="cpu", chained=True):
    operator = OfflineOperator(Validator(target), seed=seed, device=device)
    parent = target.read_mutable()
    made = []
    for _ in range(count):
        proposal = operator.propose(parent)
        made.append(proposal)
        if chained and proposal.valid:
            parent = proposal.child
    return made


def test_one_seed_gives_one_sequence(gpt):
    first = [p.hypothesis for p in proposals(gpt, seed=7, count=8)]
    assert first == [p.hypothesis for p in proposals(gpt, seed=7, count=8)]
    assert first != [p.hypothesis for p in proposals(gpt, seed=8, count=8)]


@pytest.mark.parametrize("name, count", [("gpt", 25), ("sort", 12)])
def test_every_proposal_is_a_valid_child(name, count, gpt, sort_target):
    target = {"gpt": gpt, "sort": sort_target}[name]
    for proposal in proposals(target, seed=3, count=count):
        assert proposal.valid, proposal.rejections
        assert proposal.operator == "offline" and proposal.model is None
        [edit] = proposal.edits
        assert proposal.hypothesis.startswith(edit.name)
        for source in proposal.child.values():
            cst.parse_module(source)
        assert violations(target.rules, proposal.child) == []


def test_knobs_of_the_other_device_are_left_alone(gpt):
    on_cpu = " ".join(p.hypothesis for p in proposals(gpt, seed=1, count=30, chained=False))
    on_cuda = " ".join(
        p.hypothesis for p in proposals(gpt, seed=1, count=30, device="cuda", chained=False)
    )
    assert "CUDA" not in on_cpu and "CPU_SIZE" in on_cpu
    assert "CPU_SIZE" not in on_cuda and "CUDA_SIZE" in on_cuda


def test_declared_choices_are_swapped(gpt):
    hypotheses = [p.hypothesis for p in proposals(gpt, seed=0, count=40, chained=False)]
    assert any(h.startswith("ACTIVATION 'relu2' -> 'gelu'") for h in hypotheses)
    assert any(h.startswith("OPTIMIZER 'muon' -> 'adamw'") for h in hypotheses)


def test_when_every_step_was_tried_it_says_so(sort_target):
    made = proposals(sort_target, seed=0, count=5, chained=False)
    assert [p.valid for p in made] == [True, True, True, True, False]
    assert sorted(p.hypothesis.split(":")[0] for p in made[:4]) == [
        "INSERTION_THRESHOLD 8 -> 16",
        "INSERTION_THRESHOLD 8 -> 4",
        "INSERTION_THRESHOLD 8 -> 7",
        "INSERTION_THRESHOLD 8 -> 9",
    ]
    assert made[4].rejections == ("no new one-step change: 1 knobs, 4 changes already proposed",)
    assert [p.exhausted for p in made] == [False, False, False, False, True]


def test_recombination_takes_each_subset_of_the_differences_once(tmp_path):
    target = load_target(write_knob_target(tmp_path / "knobs", 4, 0.05))
    operator = OfflineOperator(Validator(target), seed=0)
    parent = target.read_mutable()  # every knob 512.0
    mate = Mate(7, {"knobs.py": "K0 = 256.0\nK1 = 512.0\nK2 = 1024.0\nK3 = 64.0\n"}, 20.0, "h")
    made = [operator.propose(parent, mate=mate) for _ in range(7)]
    combined = [knob_values(p.child) for p in made[:6]]
    # K0, K2, K3 differ: each of the 6 non-empty proper subsets taken from the mate, once
    assert sorted(combined) == [
        (256.0, 512.0, 512.0, 64.0),  # K0, K3
        (256.0, 512.0, 512.0, 512.0),  # K0
        (256.0, 512.0, 1024.0, 512.0),  # K0, K2
        (512.0, 512.0, 512.0, 64.0),  # K3
        (512.0, 512.0, 1024.0, 64.0),  # K2, K3
        (512.0, 512.0, 1024.0, 512.0),  # K2
    ]
    assert all(p.mate_id == 7 and p.hypothesis.startswith("combine with #7: K") for p in made[:6])
    assert made[6].valid and made[6].mate_id is None  # none left: one knob changed instead
    assert made[6].hypothesis.startswith("K")


def test_recombination_needs_two_differences(tmp_path):
    target = load_target(write_knob_target(tmp_path / "knobs", 4, 0.05))
    parent = target.read_mutable()
    mate = Mate(3, {"knobs.py": parent["knobs.py"].replace("K1 = 512.0", "K1 = 8.0")}, 9.0, "")
    proposal = OfflineOperator(Validator(target), seed=0).propose(parent, mate=mate)
    assert proposal.valid and proposal.mate_id is None  # it would be one parent or the other


def knob_values(sources: dict[str, str]) -> tuple[float, ...]:
    return tuple(knob.value for knob in find_knobs(sources))
