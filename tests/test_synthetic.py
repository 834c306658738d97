"""The synthetic knob target: its loss, its real evaluation, its in-process twin, its replies."""

from __future__ import annotations

import random

import pytest

from evo.bench.loopback import Request
from evo.bench.synthetic import (
    RewriteReplies,
    SkilledReplies,
    instant_evaluation,
    knob_loss,
    write_knob_target,
)
from evo.evaluate.sandbox import evaluate
from evo.mutate.prompt import task_text
from evo.mutate.proposal import Validator
from evo.mutate.replies import parse_reply
from evo.target import load_target

OPTIMA = [4.0, 8.0, 16.0, 32.0]


@pytest.mark.parametrize(
    ("values", "ruggedness", "valley", "without_noise"),
    [
        (OPTIMA, 0.0, 0.0, 0.0),
        (OPTIMA, 10.0, 0.0, 0.0),
        (OPTIMA, 0.0, 20.0, 0.0),
        ([512.0] * 4, 0.0, 0.0, 31.5),  # x = 3.5, 3, 2.5, 2
        ([512.0] * 4, 10.0, 0.0, 71.5),  # the two half-integer x sit on ridges: +20 each
        ([8.0, 8.0, 16.0, 32.0], 10.0, 0.0, 0.25 + 20.0),  # one step past K0's optimum: a ridge
        ([16.0, 8.0, 16.0, 32.0], 10.0, 0.0, 1.0),  # two steps: the next local optimum
        ([512.0] * 4, 0.0, 20.0, 31.5 + 20 * (0.25 + 0.25)),  # each pair half a step apart
        ([256.0, 512.0, 256.0, 512.0], 0.0, 20.0, 26.0),  # x = 3, 3, 2, 2: on the diagonals
        ([128.0, 512.0, 256.0, 512.0], 0.0, 20.0, 23.25 + 5.0),  # one knob off: 2.75 less, +5
    ],
)
def test_knob_loss(values, ruggedness, valley, without_noise):
    for seed in (0, 1, 7):
        noise = random.Random(seed).gauss(0, 0.5)
        loss = knob_loss(values, seed, ruggedness, valley)
        assert loss == pytest.approx(without_noise + noise)


def test_the_knob_target_evaluates_as_its_instant_twin(tmp_path):
    folder = write_knob_target(tmp_path / "knobs", 4, 0.05, ruggedness=10.0, valley=20.0)
    target = load_target(folder)
    assert target.read_mutable() == {"knobs.py": "K0 = 512.0\nK1 = 512.0\nK2 = 512.0\nK3 = 512.0\n"}
    variant = {"knobs.py": "K0 = 4.0\nK1 = 8.0\nK2 = 16.0\nK3 = 64.0\n"}
    for sources, seed in ((None, 3), (variant, 4)):
        real = evaluate(target, sources, seed=seed)
        twin = instant_evaluation(target, sources, seed=seed)
        assert real.status == twin.status == "ok"
        assert real.metric == pytest.approx(twin.metric, abs=1e-12)
        assert real.wall_seconds >= 0.05 > twin.wall_seconds
    broken = evaluate(target, {"knobs.py": "K0 = -1.0\nK1 = 8.0\nK2 = 16.0\nK3 = 64.0\n"})
    assert (broken.status, broken.reason) == ("invalid", "every knob must be > 0")


def test_rewrite_replies_are_new_valid_programs_after_their_latency(tmp_path):
    target = load_target(write_knob_target(tmp_path / "knobs", 4, 0.05))
    validator = Validator(target)
    replies = RewriteReplies(knobs=4, latency=2.5, seed=1)
    children = []
    for number in range(5):
        reply = replies(None)
        assert reply.delay == 2.5
        hypothesis, edits = parse_reply(reply.text, target.read_mutable())
        assert hypothesis == f"knob set {number}"
        children.append(validator.child_of(target.read_mutable(), edits)["knobs.py"])
    assert len(set(children)) == 5


@pytest.mark.parametrize(("skill", "improvements"), [(1.0, 40), (0.0, 0), (0.5, 13)])
def test_skilled_replies_improve_with_the_models_skill(tmp_path, skill, improvements):
    target = load_target(write_knob_target(tmp_path / "knobs", 4, 0.05))
    parent = target.read_mutable()
    task = task_text(target, parent, 31.5)
    content = [{"type": "text", "text": "the fixed part"}, {"type": "text", "text": task}]
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    assert SkilledReplies.parent_knobs(body) == [512.0] * 4
    replies = SkilledReplies({"m": skill}, {"input_tokens": 3000, "output_tokens": 300}, seed=2)
    validator = Validator(target)
    better = 0
    for _ in range(40):
        reply = replies(Request("/v1/messages", {}, body))
        assert reply.usage == {"input_tokens": 3000, "output_tokens": 300}
        _, edits = parse_reply(reply.text, parent)
        child = validator.child_of(parent, edits)["knobs.py"]
        values = [float(line.split(" = ")[1]) for line in child.splitlines()]
        better += knob_loss(values, seed=0) < knob_loss([512.0] * 4, seed=0)
    assert better == improvements
