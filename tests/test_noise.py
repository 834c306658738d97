"""The run's noise estimate: the spread of a paired difference, from every program evaluated more
than once, starting from the spread of one program between seeds."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from evo.search.noise import PRIOR_DOF, Noise


def pooled(programs: list[list[float]]) -> Noise:
    """Each program's metrics on seeds 0, 1, ..., added as they came."""
    noise = Noise()
    for program, metrics in enumerate(programs):
        for count in range(1, len(metrics) + 1):
            noise.add(program, dict(enumerate(metrics[:count])))
    return noise


@pytest.mark.parametrize(
    ("programs", "spread", "residual", "dof"),
    [
        ([], 0.0, 0.0, 0),
        ([[1.0]], 0.0, 0.0, 0),  # one evaluation says nothing
        ([[1.0, 3.0]], math.sqrt(2.0), 0.0, 0),  # one program: no pair
        ([[1.0, 2.0, 3.0]], 1.0, 0.0, 0),
        # seeds 0 and 1 shared: differences 9 and 12, whose variance 4.5 is 2 x the residual
        ([[1.0, 2.0, 3.0], [5.0], [10.0, 14.0]], math.sqrt(10 / 3), 2.25, 1),
        ([[1.0, 3.0], [2.0, 5.0]], math.sqrt(6.5 / 2), 0.25, 1),
        # the same seed effect in every program (0, +1, -1): nothing is left for a pair
        ([[1.0, 2.0, 0.0], [4.0, 5.0, 3.0], [2.0, 3.0]], math.sqrt(4.5 / 5), 0.0, 3),
    ],
)
def test_spread_residual_and_degrees_of_freedom(programs, spread, residual, dof):
    noise = pooled(programs)
    assert noise.spread == pytest.approx(spread, abs=1e-12)
    assert noise.residual == pytest.approx(residual, abs=1e-9) and noise.dof == dof
    weight = dof + PRIOR_DOF if spread else 0
    expected = math.sqrt((2 * residual + PRIOR_DOF * spread**2) / weight) if weight else 0.0
    assert noise.sigma == pytest.approx(expected, abs=1e-12)


def test_the_seed_alone_gives_its_sample_standard_deviation():
    seed = [3.2993, 3.2874, 3.2388, 3.31, 3.25]
    noise = pooled([seed])
    assert noise.sigma == pytest.approx(statistics.stdev(seed), rel=1e-12)
    assert noise.stderr == pytest.approx(noise.sigma / math.sqrt(2 * PRIOR_DOF), rel=1e-12)


@pytest.mark.parametrize(("shared", "own"), [(0.0, 0.25), (1.0, 0.25), (1.0, 0.0)])
def test_the_estimate_converges_on_the_noise_a_pair_faces(shared, own):
    """Seeds' effects common to all programs cancel in a pair; the programs' own noise does not."""
    rng = random.Random(7)
    effects = [rng.gauss(0, shared) for _ in range(3)]
    programs = [[mean + effects[k] + rng.gauss(0, own) for k in range(3)] for mean in range(400)]
    noise = pooled(programs)
    assert noise.dof == 1200 - 400 - 2
    # the run's three seeds' effects, as drawn, and the programs' own noise
    assert noise.spread == pytest.approx(math.sqrt(statistics.variance(effects) + own**2), rel=0.1)
    truth = math.sqrt(2) * own
    # with no noise of the programs' own, the spread's 2 of 800 degrees of freedom are all that
    # is left: sigma = spread x sqrt(2 / 800), 0.05 x spread
    assert abs(noise.sigma - truth) < 2 * noise.stderr + (0.0 if own else 0.06)


def test_a_checkpoint_round_trips_and_older_ones_keep_their_sigma():
    noise = pooled([[1.0, 2.0, 4.0], [2.0, 2.5]])
    again = Noise.from_json(noise.to_json(), sigma=99.0)
    assert again == noise and again.sigma == noise.sigma and again.dof == noise.dof == 1
    before_pooling = Noise.from_json(None, sigma=0.2)
    assert before_pooling.dof == 0 and before_pooling.sigma == pytest.approx(0.2, rel=1e-12)
    before_pairing = Noise.from_json({"sum_squares": 0.05, "dof": 5}, sigma=0.1)
    assert before_pairing.sigma == pytest.approx(0.1, rel=1e-12)
    before_pairing.add(7, {0: 1.0, 1: 1.5})  # pooled with what the checkpoint held
    assert before_pairing.spread == pytest.approx(math.sqrt((0.05 + 0.125) / 6), rel=1e-12)


def test_a_program_counts_once_with_all_its_evaluations():
    noise = Noise()
    noise.add(3, {0: 1.0, 1: 1.2})
    noise.add(3, {0: 1.0, 1: 1.2, 2: 0.8})
    assert noise == pooled([[], [], [], [1.0, 1.2, 0.8]])
    assert noise.spread == pytest.approx(0.2, rel=1e-12)
