"""The ensemble's choice of model: fixed weights leave it to the operator; the adaptive one asks
each untried model first, then follows accepted improvements per dollar."""

from __future__ import annotations

from collections import Counter

import pytest

from evo.mutate.ensemble import Ensemble, ModelRecord, records_from_json, records_to_json

MODELS = ["cheap", "strong"]


def record(proposals: int, settled: int, accepted: int, cost: float) -> ModelRecord:
    return ModelRecord(proposals, settled, accepted, cost)


def test_fixed_weights_leave_the_choice_to_the_operator():
    ensemble = Ensemble(MODELS, adaptive=False, records={}, seed=0)
    assert ensemble.choose() is None


@pytest.mark.parametrize(
    ("records", "waiting", "chosen"),
    [
        ({}, [], "cheap"),
        ({}, ["cheap"], "strong"),
        ({}, ["cheap", "strong"], "cheap"),
        ({}, ["strong", "strong", "cheap"], "cheap"),
        ({"cheap": record(1, 0, 0, 0.01)}, ["cheap"], "strong"),
        ({"strong": record(1, 1, 0, 0.01)}, ["cheap", "cheap"], "cheap"),
    ],
)
def test_a_model_not_yet_paid_for_is_asked_first(records, waiting, chosen):
    ensemble = Ensemble(MODELS, adaptive=True, records=records, seed=0)
    assert ensemble.choose(waiting) == chosen


@pytest.mark.parametrize(
    ("cheap", "strong", "cheap_share"),
    [
        # the same cost: the one that is accepted more often
        (record(20, 20, 10, 0.20), record(20, 20, 0, 0.20), 1000),
        (record(20, 20, 0, 0.20), record(20, 20, 10, 0.20), 0),
        # strong is accepted 3x as often at 5x the price: cheap earns more per dollar
        (record(40, 40, 4, 0.40), record(40, 40, 12, 2.00), 897),
        # strong is accepted 10x as often at 3x the price: strong earns more per dollar
        (record(40, 40, 2, 0.40), record(40, 40, 20, 1.20), 32),
        # nothing known but the price: the prior's draws, divided by each one's cost
        (record(2, 0, 0, 0.02), record(2, 0, 0, 0.06), 763),
        # a model that charged nothing (a local server) wins unless it is never accepted
        (record(30, 30, 3, 0.0), record(30, 30, 9, 0.30), 1000),
        (record(30, 30, 0, 0.0), record(30, 30, 9, 0.30), 1000),
    ],
)
def test_the_adaptive_choice_follows_accepted_improvements_per_dollar(cheap, strong, cheap_share):
    ensemble = Ensemble(MODELS, adaptive=True, records={"cheap": cheap, "strong": strong}, seed=3)
    chosen = Counter(ensemble.choose() for _ in range(1000))
    assert chosen["cheap"] == cheap_share


def test_records_count_what_was_paid_and_what_was_settled():
    records: dict[str, ModelRecord] = {}
    ensemble = Ensemble(MODELS, adaptive=True, records=records, seed=0)
    ensemble.paid("cheap", 0.01)
    ensemble.paid("cheap", 0.03)
    ensemble.settled("cheap", accepted=False)
    ensemble.settled("cheap", accepted=True)
    ensemble.paid("retired", 0.5)  # a model of the run before a resume changed the models
    ensemble.paid(None, 0.0)  # the offline operator has no model
    ensemble.settled(None, accepted=True)
    assert records == {
        "cheap": ModelRecord(proposals=2, settled=2, accepted=1, cost_usd=0.04),
        "retired": ModelRecord(proposals=1, settled=0, accepted=0, cost_usd=0.5),
    }
    assert records["cheap"].cost_per_proposal == 0.02
    assert records_from_json(records_to_json(records)) == records
    assert ensemble.choose() == "strong"  # untried, and the retired model is not asked
