"""The run's noise estimate: pooled over every program evaluated more than once."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from evo.search.noise import Noise


def pooled(programs: list[list[float]]) -> Noise:
    noise = Noise()
    for metrics in programs:
        for k, value in enumerate(metrics):
            noise.add(metrics[:k], value)
    return noise


@pytest.mark.parametrize(
    ("programs", "sum_squares", "dof"),
    [
        ([], 0.0, 0),
        ([[1.0]], 0.0, 0),  # one evaluation says nothing
        ([[1.0, 3.0]], 2.0, 1),
        ([[1.0, 2.0, 3.0]], 2.0, 2),
        ([[1.0, 2.0, 3.0], [5.0], [10.0, 14.0]], 10.0, 3),  # 2 + 8 over 2 + 1
        ([[2.0, 2.0, 2.0, 2.0]], 0.0, 3),
    ],
)
def test_pooled_sum_of_squares_and_degrees_of_freedom(programs, sum_squares, dof):
    noise = pooled(programs)
    assert noise.sum_squares == pytest.approx(sum_squares, abs=1e-12) and noise.dof == dof
    assert noise.sigma == (math.sqrt(sum_squares / dof) if dof else 0.0)


def test_the_seed_alone_gives_its_sample_standard_deviation():
    seed = [3.2993, 3.2874, 3.2388, 3.31, 3.25]
    noise = pooled([seed])
    assert noise.sigma == pytest.approx(statistics.stdev(seed), rel=1e-12)
    assert noise.stderr == pytest.approx(noise.sigma / math.sqrt(8), rel=1e-12)


def test_the_estimate_converges_on_a_known_sigma():
    rng = random.Random(7)
    programs = [[mean + rng.gauss(0, 0.25) for _ in range(3)] for mean in range(400)]
    noise = pooled(programs)
    assert noise.dof == 800
    assert abs(noise.sigma - 0.25) < 2 * noise.stderr  # stderr 0.0063 here


def test_a_checkpoint_round_trips_and_an_older_one_keeps_its_sigma():
    noise = pooled([[1.0, 2.0, 4.0]])
    assert Noise.from_json(noise.to_json(), sigma=99.0) == noise
    older = Noise.from_json(None, sigma=0.2)
    assert older.dof == 2 and older.sigma == pytest.approx(0.2, rel=1e-12)


def test_a_program_is_added_as_its_evaluations_came():
    programs = [[1.0, 1.2, 0.8], [2.0], [3.0, 3.5]]
    noise = Noise()
    for metrics in programs:
        noise.add_program(metrics)
    assert noise == pooled(programs)
