"""Whole runs with Ray really started, on fixture targets whose evaluations take 0.1 s."""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ROOT, evo, evo_started

from evo.bench.loopback import Reply
from evo.bench.synthetic import instant_evaluation, write_knob_target
from evo.config import RunConfig, read_toml
from evo.errors import UsageError
from evo.evaluate.allowance import Allowance
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.run import proposals
from evo.run.actors import Evaluator
from evo.run.engine import Engine
from evo.run.progress import Figures
from evo.run.scheduler import Scheduler
from evo.run.screen import Screen
from evo.run.state import RunState
from evo.search.candidate import Candidate, Child, EvalRequest, Evaluation
from evo.search.island import Member
from evo.search.merge import merge
from evo.search.noise import MIN_PAIRED_DOF, Noise
from evo.shipped import default_target, preset_path
from evo.status import Status
from evo.store.lineage import read_lineage
from evo.store.reader import Lineage
from evo.target import load_target
from evo.views.summary import summary

QUAD = ROOT / "tests" / "fixtures" / "quad"
NOISE = ROOT / "tests" / "fixtures" / "noise"


@pytest.fixture(scope="module")
def ray_session():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    ray.shutdown()


def run_engine(tmp_path, target_dir, on_progress=None, **settings) -> tuple[Engine, list[dict]]:
    """A run in this process. QUAD's steps are tens of sigma, each one a surprise that the
    default surprise_k confirms on fresh seeds: the tests of other things turn that off."""
    settings = {"surprise_k": 0.0, **settings}
    config = RunConfig().with_settings(
        {"target": str(target_dir), "operator": "offline", "out": str(tmp_path), **settings}, "test"
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    engine = Engine(config, load_target(target_dir), run_dir)
    if on_progress:
        threading.Thread(target=on_progress, args=(engine,), daemon=True).start()
    engine.run()
    return engine, read_lineage(run_dir / "lineage").to_pylist()


def candidates(rows):
    return [r for r in rows if r["event"] == "candidate"]


def seed_of(rows):
    """The seed program's row (not always the first: proposals refused while it is measured
    come before it)."""
    return next(r for r in candidates(rows) if r["candidate_id"] == 0)


def assert_complete(rows, engine):
    """Every candidate id appears exactly once, and every parent id resolves."""
    ids = [r["candidate_id"] for r in candidates(rows)]
    assert len(ids) == len(set(ids))
    pending = {c.id for c, _ in engine.state.pending}
    assert set(ids) | pending == set(range(engine.state.next_id))
    known = set(ids) | pending
    assert all(r["parent_id"] in known for r in candidates(rows) if r["candidate_id"] != 0)


def assert_noise_pooled(engine, rows):
    """The run's noise is estimated from every program evaluated more than once, the lineage's
    and those still waiting for another evaluation; each candidate's row has the sigma it was judged
    by, the seed's its own spread."""
    expected = Noise()
    for row in candidates(rows):
        measured = enumerate(row["metrics"])
        expected.add(row["candidate_id"], {i: m for i, m in measured if m is not None})
    for candidate, _ in engine.state.pending:
        expected.add(candidate.id, candidate.metrics)
    assert engine.state.noise == expected and engine.state.noise.dof == expected.dof
    assert engine.state.sigma == pytest.approx(expected.sigma, rel=1e-9)
    judged = [r["sigma"] for r in candidates(rows) if r["metrics"]]
    assert seed_of(rows)["sigma"] == pytest.approx(statistics.stdev(seed_of(rows)["metrics"]))
    assert all(sigma > 0 for sigma in judged)


def test_a_full_run(ray_session, tmp_path):
    # all three islands open from the start, so that migration goes round the whole ring; a
    # patience of 10, so that islands that have proposed every one-step change of their
    # champion (quad has 3 knobs) draw other parents before 30 refusals in a row stop the run
    engine, rows = run_engine(
        tmp_path, QUAD, islands=3, start_islands=0, max_evals=40, migration_interval=6,
        patience=10,
    )  # fmt: skip
    assert engine.state.evals_done == 40
    assert_complete(rows, engine)
    assert_noise_pooled(engine, rows)
    statuses = Counter(r["status"] for r in candidates(rows))
    assert statuses["accepted"] >= 2 and set(statuses) <= {
        "accepted",
        "kept",
        "rejected",
        "refused",
    }
    evaluated = [r for r in candidates(rows) if r["metrics"]]
    waiting = sum(
        len(c.evaluations) for c, _ in engine.state.pending
    )  # a candidate due for a repeat
    assert sum(len(r["metrics"]) for r in evaluated) + waiting == 40  # the seed's 3 included
    for r in candidates(rows):
        assert len(r["metrics"]) == len(r["seeds"]) == len(r["eval_statuses"])
        assert len(r["eval_seconds"]) == len(r["eval_dispatched_at"]) == len(r["metrics"])
        for sent, back, seconds in zip(
            r["eval_dispatched_at"], r["eval_returned_at"], r["eval_seconds"], strict=True
        ):
            assert 0.1 < seconds < (back - sent).total_seconds()  # score.py sleeps 0.1 s
    assert {r["node"] for r in evaluated} == {ray_session.get_runtime_context().get_node_id()}
    migrations = [r for r in rows if r["event"] == "migration"]
    # counted per island: a round every 6 x 3 of the run's evaluations, after 18 and 36 of 40;
    # 3 rows a round, one each way round the ring
    assert len(migrations) == 6
    assert {(r["from_island"], r["to_island"]) for r in migrations} == {(0, 1), (1, 2), (2, 0)}
    # the champion of the run only ever gets better
    accepted = sorted(
        (r for r in candidates(rows) if r["accepted"]), key=lambda r: r["finished_at"]
    )
    best = [min(r["fitness"] for r in accepted[: i + 1]) for i in range(len(accepted))]
    assert best == sorted(best, reverse=True)
    assert engine.state.best.fitness == best[-1] < seed_of(rows)["fitness"]


@pytest.mark.parametrize(
    ("evaluators", "islands", "mutation_s", "out_for_s", "evaluation_s", "limits"),
    [
        (1, 1, None, None, None, (2, 1)),  # nothing measured yet: one per evaluator, plus one
        (8, 4, None, None, 2.0, (9, 1)),
        (1, 1, 0.1, None, 15.0, (2, 1)),  # a fast operator: one at a time is enough
        (4, 2, 0.01, None, 0.15, (5, 1)),
        (4, 1, 1.0, None, 2.0, (6, 2)),
        (8, 4, 5.0, None, 2.0, (28, 5)),  # a slow model: 8 evaluators use 20 candidates meanwhile
        (8, 1, 5.0, None, 2.0, (28, 16)),  # one island has at most 16 in flight
        (8, 4, None, 3.9, 2.0, (24, 4)),  # no reply yet, but one proposal is out for 3.9 s
        (8, 4, 1.0, 3.9, 2.0, (24, 4)),  # the longer of the two
    ],
)
def test_proposals_in_flight_cover_the_evaluators_during_one_proposal(
    tmp_path, evaluators, islands, mutation_s, out_for_s, evaluation_s, limits
):
    scheduler = Scheduler(evaluators)
    scheduler.mutation_s, scheduler.evaluation_s = mutation_s, evaluation_s
    out_since = [time.monotonic() - out_for_s] if out_for_s else []
    assert scheduler.limits(out_since, islands) == limits


def test_more_evaluators_than_cpus_share_them(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, QUAD, islands=2, evaluators=4, max_evals=24)
    assert engine.state.evals_done == 24
    used = {e for r in candidates(rows) for e in r["eval_evaluators"]}
    assert used == {f"evaluator-{i}" for i in range(4)}
    # the noise is measured under the run's load: the seed once on each of 3 evaluators (its
    # noise_repeats), its children on the fourth meanwhile, judged once the seed is measured
    seed = seed_of(rows)
    assert len(set(seed["eval_evaluators"])) == 3
    measured = max(seed["eval_returned_at"])
    early = [
        r
        for r in candidates(rows)
        if r["candidate_id"] and r["metrics"] and r["eval_dispatched_at"][0] < measured
    ]
    assert used - set(seed["eval_evaluators"]) <= {r["eval_evaluators"][0] for r in early}
    assert all(r["finished_at"] >= measured and r["parent_id"] == 0 for r in early)


@pytest.mark.parametrize(("share", "recorded"), [(0.25, 0.25), (1.0, 1.0), (0.0, None)])
def test_each_evaluation_records_its_share_of_the_gpu(ray_session, share, recorded):
    def sandbox(target, sources, **options):
        return EvalResult(Status.OK, target.metric, 1.5, options["seed"], "cpu", 1.0, 1.0, 2.0, 9)

    evaluator = Evaluator("evaluator-0", str(QUAD), "cpu", 1, sandbox, gpu_share=share)
    evaluation = evaluator.evaluate(EvalRequest({}, 3, 1.0))
    assert evaluation.gpu_share == share
    assert evaluation.measured.get("gpu_share") == recorded


def test_pure_noise_never_counts_as_an_improvement(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, NOISE, islands=2, max_evals=25)
    assert engine.state.sigma > 0.05  # the seed's three evaluations differ
    accepted = [r["candidate_id"] for r in candidates(rows) if r["accepted"]]
    assert accepted == [0]
    assert engine.state.best.member.id == 0
    assert_noise_pooled(engine, rows)  # the seed's alone: every program scores the same
    assert list(engine.state.noise.programs) == [0] and engine.state.noise.dof == 0


def test_with_min_repeats_every_champion_won_on_two_seeds(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, QUAD, islands=2, max_evals=30, min_repeats=2, sure_k=0.0)
    champions = [r for r in candidates(rows) if r["accepted"] and r["candidate_id"]]
    assert champions and all(len(r["metrics"]) >= 2 for r in champions)
    assert_noise_pooled(engine, rows)
    assert engine.state.noise.dof > 0  # each confirmation pairs with the seed's evaluations


def test_a_sure_gain_is_crowned_on_one_seed_once_sigma_rests_on_pairs(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, QUAD, islands=1, max_evals=30, surprise_k=0.0)
    accepted = sorted(
        (r for r in candidates(rows) if r["accepted"] and r["candidate_id"]),
        key=lambda r: r["finished_at"],
    )
    assert len(accepted[0]["metrics"]) == 2  # no pairs yet: the seed's 3 evaluations give none
    assert [r for r in accepted if len(r["metrics"]) == 1]  # QUAD's steps are many sigma
    assert engine.state.noise.dof >= MIN_PAIRED_DOF


def test_a_surprising_gain_is_crowned_only_once_more_seeds_confirm_it(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, QUAD, islands=1, max_evals=30, surprise_k=10.0, sure_k=0.0)
    accepted = [r for r in candidates(rows) if r["accepted"] and r["candidate_id"]]
    surprises = [r for r in accepted if r["reason"]]
    assert len(surprises) >= 3  # QUAD's first steps are tens of sigma, its last ones are not
    for row in surprises:
        assert row["reason"].startswith("surprise: a gain of ")
        assert ", confirmed on 2 more seeds (" in row["reason"]
        assert len(row["metrics"]) == 4  # the min_repeats it was selected on, and two more
    assert all(len(r["metrics"]) == 2 for r in accepted if not r["reason"])


def test_single_chain_is_keep_or_discard(ray_session, tmp_path):
    preset = read_toml(preset_path("single-chain"))["search"]
    engine, rows = run_engine(tmp_path, QUAD, max_evals=20, **preset)
    assert {r["island"] for r in rows} == {0}
    assert set(Counter(r["status"] for r in candidates(rows))) <= {
        "accepted",
        "rejected",
        "refused",
    }
    champions = {r["candidate_id"] for r in candidates(rows) if r["accepted"]}
    assert {r["parent_id"] for r in candidates(rows) if r["candidate_id"]} <= champions
    assert not [r for r in rows if r["event"] != "candidate"]


def test_a_run_starts_as_one_chain_and_opens_islands_as_it_stalls(ray_session, tmp_path):
    engine, rows = run_engine(
        tmp_path, QUAD, islands=3, start_islands=1, patience=3, max_evals=40, migration_interval=0,
        min_repeats=1,  # crowned on one seed: the chain stalls within the 40
    )  # fmt: skip
    splits = [r for r in rows if r["event"] == "split"]
    assert [r["to_island"] for r in splits] == [1, 2]  # opened in order
    assert engine.state.open_islands == 3
    by_id = {r["candidate_id"]: r for r in candidates(rows)}
    for split in splits:
        founder = by_id[split["candidate_id"]]  # the best island's runner-up (or its champion)
        assert founder["island"] == split["from_island"] or founder["candidate_id"] == 0
        opened = [r for r in candidates(rows) if r["island"] == split["to_island"]]
        assert opened and min(r["created_at"] for r in opened) >= split["finished_at"]
    first = splits[0]["finished_at"]
    before = [r for r in candidates(rows) if r["created_at"] < first and r["candidate_id"]]
    assert before and {r["island"] for r in before} == {0}
    champions = {r["candidate_id"] for r in candidates(rows) if r["accepted"]}
    assert {r["parent_id"] for r in before} <= champions  # greedy while it improved
    saved = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert saved["open_islands"] == 3


def test_only_the_open_islands_and_the_next_one_have_actors(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, QUAD, islands=4, start_islands=1, patience=100, max_evals=8)
    assert engine.state.open_islands == 1
    assert [actor is not None for actor in engine.islands.actors] == [True, True, False, False]
    assert [s["island"]["index"] for s in engine.state.islands] == [0, 1, 2, 3]  # all saved


def test_the_progress_line_shows_the_open_islands():
    state = RunState(open_islands=1)
    for island, fitness in enumerate((2.0, 9.0, 9.0)):
        state.set_champion(island, Member(island, {}, {0: fitness}), minimize=True)
    line = Figures.of(state, RunConfig().limits, elapsed=61.0).line()
    assert "  islands 2.0000 (+2 closed)  " in line and line.startswith("[0:01:01]  evals 0/40")
    for island in range(64):
        state.set_champion(island, Member(island, {}, {0: 1.0 + island / 10}), minimize=True)
    state.open_islands = 17
    line = Figures.of(state, RunConfig().limits, elapsed=61.0).line()
    assert "  islands 17 open, 1.0000 to 2.6000 (+47 closed)  " in line
    assert line.endswith("  spend $0.00")
    state.spent = 5.01
    line = Figures.of(state, RunConfig().limits, elapsed=61.0).line()
    assert line.endswith("  spend $5.01 (no candidate evaluated yet)")
    state.evaluated = 24
    line = Figures.of(state, RunConfig().limits, elapsed=61.0).line()
    assert line.endswith("  spend $5.01 ($0.209 a candidate)")


def test_a_recombination_is_a_child_of_two_members(ray_session, tmp_path):
    engine, rows = run_engine(tmp_path, QUAD, islands=1, crossover=0.5, max_evals=30)
    made = [r for r in candidates(rows) if r["mate_id"] is not None]
    assert made and all(r["hypothesis"].startswith(f"combine with #{r['mate_id']}: ") for r in made)
    members = {r["candidate_id"] for r in candidates(rows) if r["status"] in ("accepted", "kept")}
    for child in made:  # both parents were members of the island when it was proposed
        assert child["parent_id"] != child["mate_id"]
        assert {child["parent_id"], child["mate_id"]} <= members


def test_an_island_out_of_new_children_opens_the_next(ray_session, tmp_path):
    # One knob: two one-step children of each program. Once the chain sits on the optimum, the
    # operator can make nothing new of it and its proposals are refused: enough in a row to stop
    # the run open the next island instead, while one is closed. A patience longer than the
    # run, so that no island opens for want of gains (which would cut a streak of refusals short).
    target = write_knob_target(tmp_path / "knob", 1, seconds=0.02)
    engine, rows = run_engine(
        tmp_path, target, islands=3, start_islands=1, patience=60, migration_interval=0,
        max_evals=60,
    )  # fmt: skip
    assert [r["to_island"] for r in rows if r["event"] == "split"] == [1, 2]
    assert engine.state.open_islands == 3 and engine.state.evals_done < 60
    assert engine.stopping  # nothing new anywhere: the run stopped on 30 refusals in a row
    assert sum(r["status"] == "refused" for r in candidates(rows)) >= 3 * 30


@pytest.mark.parametrize("carry", [True, False])
def test_gains_found_side_by_side_are_carried_over_to_the_champion(ray_session, tmp_path, carry):
    # A bowl of 8 knobs: 16 one-step children of each program, half of them better, so that two
    # evaluated side by side are often both better and carrying one's change is no duplicate.
    target = write_knob_target(tmp_path / "knobs", 8, seconds=0.05)
    engine, rows = run_engine(
        tmp_path, target, islands=1, evaluators=2, max_evals=20, carry_gains=carry
    )
    by_id = {r["candidate_id"]: r for r in candidates(rows)}
    sources = {cid: json.loads(r["sources"]) for cid, r in by_id.items() if r["sources"]}
    merged = [r for r in by_id.values() if r["operator"] == "merge"]
    rebased = [r for r in by_id.values() if "(rebased from #" in (r["edit"] or "")]
    if not carry:
        assert not merged and not rebased
        return
    assert merged and rebased  # two evaluators: siblings win side by side
    for row in merged:  # the champion with the mate's own change
        mate = by_id[row["mate_id"]]
        assert by_id[row["parent_id"]]["accepted"]
        assert sources[row["candidate_id"]] == merge(
            sources[mate["parent_id"]], sources[row["parent_id"]], sources[mate["candidate_id"]]
        )
    for row in rebased:  # from a replaced champion onto a newer one
        old, new = map(int, re.findall(r"#(\d+)", row["edit"].rsplit("(rebased", 1)[1]))
        assert row["parent_id"] == new and by_id[old]["accepted"] and by_id[new]["accepted"]
        assert by_id[new]["finished_at"] > by_id[old]["finished_at"]


@pytest.mark.parametrize(
    ("minimize", "metric", "parent", "why"),
    [
        (True, 1.25, 1.0, "1.25 against its parent's 1, behind by more than 2 x sigma 0.1"),
        (True, 1.2, 1.0, ""),  # behind by 2 sigma exactly: not clearly
        (True, 0.5, 1.0, ""),  # ahead
        (True, 1.25, None, ""),  # a parent without a screen lets it through
        (False, 0.75, 1.0, "0.75 against its parent's 1, behind by more than 2 x sigma 0.1"),
        (False, 1.25, 1.0, ""),
    ],
)
def test_a_screen_is_judged_against_its_parents(minimize, metric, parent, why):
    screen = Screen(fraction=0.25, budget=60.0, noise_k=2.0, minimize=minimize)
    result = EvalResult("ok", "loss", metric, 0, "cpu", 15.0, 15.0, 16.0, 100.0)
    child = Child(0, 0, 1, "offline", None, "h", "e", {"p.py": "X = 2\n"})
    candidate = Candidate(1, child, screen=Evaluation(result, "evaluator-0", "n", "h", "", 1))
    verdict = screen.verdict(candidate, parent, sigma=0.1)
    assert verdict == (f"screened out at 0.25 of the budget: {why}" if why else "")


@pytest.mark.parametrize("evaluators", [1, 4])
def test_a_screened_run_evaluates_in_full_only_what_is_not_behind(
    ray_session, tmp_path, evaluators
):
    # The quad target's metric does not depend on the budget: a screen on the first seed
    # measures exactly what the first full evaluation will. With 4 evaluators, children of the
    # seed are screened before the seed's own screens are all back.
    engine, rows = run_engine(
        tmp_path, QUAD, islands=2, screen=0.5, max_evals=30, evaluators=evaluators
    )
    sigma = engine.state.screen_noise.sigma
    by_id = {r["candidate_id"]: r for r in candidates(rows)}
    assert sigma == pytest.approx(statistics.stdev(by_id[0]["metrics"]))  # the seed's spread
    # the seed's screen is the one on the first seed, as its children's are, whichever came first
    assert by_id[0]["screen_metric"] == by_id[0]["metrics"][by_id[0]["seeds"].index(0)]
    screened = [r for r in candidates(rows) if r["status"] == "screened"]
    assert screened and all(r["metrics"] == [] for r in screened)
    for row in screened:
        parent = by_id[row["parent_id"]]["screen_metric"]
        assert row["screen_metric"] - parent > 2 * sigma
        assert row["reason"].startswith("screened out at 0.5 of the budget: ")
    full = [r for r in candidates(rows) if r["candidate_id"] and r["metrics"]]
    assert full and all(r["screen_metric"] == r["metrics"][0] for r in full)
    for row in full:  # passed: not behind its parent's screen by more than 2 sigma
        assert row["screen_metric"] - by_id[row["parent_id"]]["screen_metric"] <= 2 * sigma
    assert engine.state.evals_done == 30  # full evaluations, the seed's 3 included
    screens = [r for r in candidates(rows) if r["candidate_id"] and r["screen_metric"] is not None]
    passed = [c for c, _ in engine.state.pending if c.screen]  # waiting for their full turn
    assert engine.state.screens_done == len(screens) + len(passed) + 3
    lines = summary(Lineage([tmp_path / "run"]), "run")
    assert f"screening: {len(screened)} of {len(screens)} candidates screened out" in "\n".join(
        lines
    )


def test_a_killed_evaluator_requeues_its_candidate(ray_session, tmp_path, capsys):
    def kill_once(engine):
        while engine.state.evals_done < 8:
            time.sleep(0.01)
        ray_session.kill(engine.evaluators.actors[0], no_restart=False)

    engine, rows = run_engine(tmp_path, QUAD, islands=2, max_evals=24, on_progress=kill_once)
    assert "evaluator-0 died (" in capsys.readouterr().out
    assert engine.state.evals_done == 24
    assert_complete(rows, engine)


def test_an_evaluator_killed_during_the_seeds_evaluation_requeues_it(ray_session, tmp_path, capsys):
    marker = tmp_path / "died"

    def dies_once(target, sources=None, **options) -> EvalResult:
        """The first call, in whichever evaluator, kills that evaluator's process; the others
        compute the knob target's loss. (Local: Ray's workers cannot import the tests.)"""
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return instant_evaluation(target, sources, **options)
        os._exit(1)

    target = write_knob_target(tmp_path / "knobs", 2, 1.0)  # instant: the sandbox computes
    config = RunConfig().with_settings(
        {"target": str(target), "operator": "offline", "out": str(tmp_path), "max_evals": 6}, "t"
    )
    (tmp_path / "run").mkdir()
    Engine(config, load_target(target), tmp_path / "run", sandbox=dies_once).run()
    out = capsys.readouterr().out
    assert "evaluator-0 died (" in out and "; the seed program's evaluation re-queued)" in out
    assert "evaluator-0 is back" in out
    rows = read_lineage(tmp_path / "run" / "lineage").to_pylist()
    assert len(seed_of(rows)["metrics"]) == 3 and seed_of(rows)["status"] == "accepted"


def test_the_first_evaluators_up_take_the_first_evaluations(ray_session, tmp_path):
    marker = tmp_path / "slow"

    def slow_once():
        """Run by each evaluator as it unpickles its sandbox: the first one to start takes 5 s
        more, and writes which actor it is."""
        import ray

        try:
            with marker.open("x") as mine:
                mine.write(ray.get_runtime_context().get_actor_id())
            time.sleep(5)
        except FileExistsError:
            pass
        return instant_evaluation

    class SlowToStart:
        def __reduce__(self):
            return slow_once, ()

    target = write_knob_target(tmp_path / "knobs", 2, 1.0)  # instant: the sandbox computes
    config = RunConfig().with_settings(
        {"target": str(target), "operator": "offline", "out": str(tmp_path)}
        | {"max_evals": 12, "evaluators": 3},
        "t",
    )
    (tmp_path / "run").mkdir()
    engine = Engine(config, load_target(target), tmp_path / "run", sandbox=SlowToStart())
    engine.run()
    actors = [actor._actor_id.hex() for actor in engine.evaluators.actors]
    slow = f"evaluator-{actors.index(marker.read_text())}"
    rows = read_lineage(tmp_path / "run" / "lineage").to_pylist()
    # all three of the seed's evaluations on the two evaluators up (before: one on each)
    assert len(seed_of(rows)["metrics"]) == 3 and slow not in seed_of(rows)["eval_evaluators"]


def test_only_the_seed_program_is_trusted_with_the_step_it_reports(ray_session, tmp_path):
    """The seed program's evaluations have no allowance (the target's own code); a child
    evaluated alongside them has the margin alone and the target's timeout; later children the
    limits the seed's evaluations set (evo.evaluate.allowance)."""

    def saying_its_allowance(target, sources=None, **options):
        result = evaluate(target, sources, **options)
        given = options["allowance"]
        said = json.dumps(asdict(given)) if given else "none"
        return replace(result, details={**result.details, "allowance": said})

    config = RunConfig().with_settings(
        {"target": str(QUAD), "operator": "offline", "out": str(tmp_path)}
        | {"max_evals": 12, "evaluators": 4, "surprise_k": 0.0},
        "t",
    )
    (tmp_path / "run").mkdir()
    engine = Engine(config, load_target(QUAD), tmp_path / "run", sandbox=saying_its_allowance)
    engine.run()
    rows = read_lineage(tmp_path / "run" / "lineage").to_pylist()
    seed = seed_of(rows)
    given = {
        (r["candidate_id"], json.loads(d)["allowance"])
        for r in candidates(rows)
        for d in r["eval_details"]
    }
    unmeasured = json.dumps(asdict(Allowance(0.0, 19.0, 19.0)))  # quad: 20 s at a 1 s budget
    measured = json.dumps(asdict(engine.state.allowance))
    assert {said for cid, said in given if cid == 0} == {"none"}
    children = {said for cid, said in given if cid != 0}
    assert children == {unmeasured, measured}  # a 4th evaluator: a child beside the seed's 3
    assert len(seed["metrics"]) == 3


def sandbox_the_workers_cannot_import(target, sources=None, **options) -> EvalResult:
    """Pickled by reference to this module, which Ray's workers cannot import: an evaluator
    given it cannot start, as on a node without evo or the target."""
    raise AssertionError("never called")


def test_an_evaluator_that_cannot_start_stops_the_run_in_one_line(ray_session, tmp_path):
    config = RunConfig().with_settings(
        {"target": str(QUAD), "operator": "offline", "out": str(tmp_path), "max_evals": 6}, "t"
    )
    (tmp_path / "run").mkdir()
    with pytest.raises(UsageError) as caught:
        Engine(
            config, load_target(QUAD), tmp_path / "run", sandbox=sandbox_the_workers_cannot_import
        )
    message = str(caught.value)
    assert message.startswith("evaluator-0 cannot start (") and "\n" not in message
    assert "No module named 'test_engine'" in message
    assert message.endswith(
        "fix that, then run again (with --resume once the run has a checkpoint)"
    )


def test_a_killed_island_is_rebuilt_from_its_checkpoint(ray_session, tmp_path, capsys):
    killed = {}

    def kill_once(engine):
        while engine.state.evals_done < 10:
            time.sleep(0.01)
        ray_session.kill(engine.islands.actors[1])
        killed["at"] = datetime.now(UTC)

    engine, rows = run_engine(  # both islands open from the start: island 1 is proposing
        tmp_path, QUAD, islands=2, start_islands=0, max_evals=30, on_progress=kill_once
    )
    assert "island 1 died; rebuilt from the last checkpoint" in capsys.readouterr().out
    assert engine.state.evals_done == 30
    assert_complete(rows, engine)
    later = [r for r in candidates(rows) if r["island"] == 1 and r["created_at"] > killed["at"]]
    assert later  # the rebuilt island went on proposing


def test_an_unwritable_run_folder_stops_the_run_cleanly(ray_session, tmp_path):
    def break_folder(engine):
        while engine.state.evals_done < 8:
            time.sleep(0.01)
        (tmp_path / "run" / "lineage").rename(tmp_path / "saved")
        (tmp_path / "run" / "lineage").write_text("not a folder any more")

    with raised_and_kept(ray_session) as caught:
        run_engine(tmp_path, QUAD, islands=2, max_evals=400, on_progress=break_folder)
    message = str(caught.value)
    assert message.startswith(f"cannot write to the run folder {tmp_path / 'run'} (")
    assert message.endswith(f"then go on: python -m evo run --resume {tmp_path / 'run'}")
    rows = read_lineage(tmp_path / "saved").to_pylist()  # what was written is intact
    assert rows and len({r["candidate_id"] for r in candidates(rows)}) == len(candidates(rows))


@contextlib.contextmanager
def raised_and_kept(ray) -> Iterator[pytest.ExceptionInfo[UsageError]]:
    """`pytest.raises(UsageError)` around a run, its error kept as a notebook keeps its last
    traceback, which holds the engine: with no garbage collection to free that, the evaluators of
    the run must still give their CPUs back (Ray's kill takes a moment), so that a next run in
    this process does not wait for them."""
    gc.disable()
    try:
        with pytest.raises(UsageError) as caught:
            yield caught
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU", 0) < 2:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.05)
    finally:
        gc.enable()


def test_a_seed_program_that_fails_in_a_run_frees_its_evaluators(ray_session, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(QUAD, broken)
    (broken / "params.py").write_text("X = 1.0\nY = undefined_name\n")
    with raised_and_kept(ray_session) as caught:
        run_engine(tmp_path, broken)
    assert "the seed program fails its own evaluation" in str(caught.value)


def run_cli(*args: str, **popen: object) -> subprocess.Popen:
    return evo_started("run", *args, **popen)


def checkpointed(out: Path) -> int:
    """Evaluations recorded by the newest checkpoint of the one run under `out` (0: none)."""
    found = list(out.glob("*/checkpoint.json"))
    return json.loads(found[0].read_text())["evals_done"] if found else 0


def test_resume_after_repeated_sigkills_of_the_driver(tmp_path):
    """Three SIGKILLs at random moments, each followed by a resume; then a resume to the end."""
    out = tmp_path / "runs"
    rng = random.Random(11)
    # The former defaults' threshold and patience: with any gain crowned, QUAD's search reaches
    # its optimum in about 60 evaluations, the offline operator runs out of changes and the run
    # stops before the 90 this test needs.
    args = ["--target", str(QUAD), "--islands", "2", "--max-evals", "90", "--operator", "offline"]
    args += ["--noise-k", "2", "--patience", "10", "--out", str(out)]
    recorded: set[int] = set()  # candidates whose rows a checkpoint has covered
    done_before = 0
    for _ in range(3):
        driver = run_cli(*args, start_new_session=True)
        deadline = time.monotonic() + 120
        while checkpointed(out) <= done_before:  # a checkpoint of this driver's own work
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))  # somewhere between two checkpoints
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and every Ray process it started
        driver.wait()
        [run_dir] = out.iterdir()
        state = json.loads((run_dir / "checkpoint.json").read_text())
        assert 0 < state["evals_done"] < 90
        covered = {
            r["candidate_id"] for r in candidates(read_lineage(run_dir / "lineage").to_pylist())
        }
        recorded |= {c for c in covered if c < state["next_id"]} - {
            c[0]["id"] for c in state["pending"]
        }
        args = ["--resume", str(run_dir)]
        done_before = state["evals_done"]

    resumed = run_cli(*args)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert f"resuming run {run_dir.name} at evaluation {state['evals_done']}" in output
    rows = read_lineage(run_dir / "lineage").to_pylist()
    ids = [r["candidate_id"] for r in candidates(rows)]
    assert len(ids) == len(set(ids))  # nothing duplicated
    assert recorded <= set(ids)  # nothing a checkpoint had covered was lost
    final = json.loads((run_dir / "checkpoint.json").read_text())
    assert final["evals_done"] == 90
    waiting = sum(len(c[0]["evaluations"]) for c in final["pending"])  # a repeat still to come
    assert sum(len(r["metrics"]) for r in candidates(rows)) + waiting == 90
    assert set(ids) | {c[0]["id"] for c in final["pending"]} == set(range(final["next_id"]))
    assert ids.count(0) == 1  # the seed program is not added again
    assert (run_dir / "best" / "params.py").is_file()
    assert (run_dir / "best" / "ancestry.md").is_file()


def test_ctrl_c_finishes_in_flight_work_checkpoints_and_says_how_to_go_on(tmp_path):
    out = tmp_path / "runs"
    driver = run_cli(
        "--target",
        str(QUAD),
        "--islands",
        "2",
        "--max-evals",
        "500",
        "--operator",
        "offline",
        "--out",
        str(out),
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*/lineage/part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 0, output
    assert "stopping: finishing the evaluations in flight" in output
    [run_dir] = out.iterdir()
    assert f"to go on: python -m evo run --resume {run_dir}" in output
    state = json.loads((run_dir / "checkpoint.json").read_text())
    rows = candidates(read_lineage(run_dir / "lineage").to_pylist())
    assert 0 < state["evals_done"] < 500
    waiting = sum(len(c[0]["evaluations"]) for c in state["pending"])
    assert sum(len(r["metrics"]) for r in rows) + waiting == state["evals_done"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resume", "tests"], "tests is not a run folder (no config.toml); pass runs/<id>"),
        (["--islands", "0"], "islands must be at least 1, not 0"),
        (["--preset", "nope"], "preset nope does not exist"),
        (["--target", "nowhere"], "target folder nowhere does not exist"),
        (["--max-evals", "0"], "set a stop condition"),
        (["--operator", "offline", "--adaptive-models"], "the offline operator has none"),
        (["--prewarm", "maybe"], "unknown prewarm 'maybe'; use one of: auto, on, off"),
        (["--isolation", "vm"], "unknown isolation 'vm'; use one of: auto, namespace, process"),
    ],
)
def test_run_refuses_bad_input_in_one_line(args, message):
    done = evo("run", *args)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("evo: error: ") and message in line


def test_a_resume_keeps_the_run_settings(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = RunConfig(target=str(default_target()))
    (run_dir / "config.toml").write_text(config.to_toml())
    done = evo("run", "--resume", str(run_dir), "--islands", "7")
    assert done.returncode == 2
    assert (
        "islands cannot change (only adaptive_models, address, max_cost, max_evals, max_hours, "
        "models can)" in done.stderr
    )
    other = evo("run", "--resume", str(run_dir), "--target", str(NOISE))
    assert other.returncode == 2 and "; target cannot change (only " in other.stderr
    same = evo("run", "--resume", str(run_dir), "--target", os.path.relpath(config.target, ROOT))
    assert "has no readable checkpoint" in same.stderr
    done = evo("run", "--resume", str(run_dir))
    assert (
        done.stderr
        == f"evo: error: {run_dir} has no readable checkpoint; start a new run instead\n"
    )


def test_the_lineage_folder_reads_as_one_dataset(tmp_path, ray_session):
    import pyarrow.dataset as ds

    engine, rows = run_engine(tmp_path, QUAD, islands=2, max_evals=8)
    table = ds.dataset(tmp_path / "run" / "lineage", format="parquet").to_table()
    assert table.num_rows == len(rows)


def test_a_seed_program_that_fails_stops_the_run_before_it_starts(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(QUAD, broken)
    (broken / "params.py").write_text("X = 1.0\nY = undefined_name\n")
    done = evo(
        "run",
        "--target",
        str(broken),
        "--max-evals",
        "10",
        "--operator",
        "offline",
        "--out",
        str(tmp_path / "runs"),
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line == (
        "evo: error: the seed program fails its own evaluation (crash: NameError: name "
        "'undefined_name' is not defined); fix the target, then run again"
    )


CHEATS = [
    ("import score\nscore.loss = 0.0", "imports 'score'"),
    ("X = open('/etc/passwd').read()", "uses 'open'"),
    ("import os\nX = len(os.environ)", "imports 'os'"),
    ("import subprocess\nsubprocess.Popen(['sleep', '1000'])", "imports 'subprocess'"),
]


def test_cheating_proposals_are_refused_and_the_lineage_says_why(
    ray_session, tmp_path, model_server, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    cheats = [
        f"HYPOTHESIS: cheat\nREWRITE params.py\n```python\n{code}\nX = 1.0\nY = 0.5\n```\n"
        for code, _ in CHEATS
    ]
    honest = "HYPOTHESIS: honest\nREPLACE DEFINITION X IN params.py\n```python\nX = 2.0\n```\n"

    def reply(request):
        # Proposals may be in flight together: a repair repeats its own cheat, a first try
        # takes the next one, and once every cheat is out the proposals are honest.
        said = [m["content"] for m in request.body["messages"] if m["role"] == "assistant"]
        if said:
            return Reply(said[-1])
        return Reply(cheats.pop(0) if cheats else honest)

    model_server.reset()
    monkeypatch.setattr(model_server, "default", reply)
    monkeypatch.setattr(proposals, "BACKOFF_S", 0.05)  # each refused cheat is a paid refusal
    # the seed's 3 evaluations and the honest child's 2 (a gain is held on a second seed)
    engine, rows = run_engine(tmp_path, QUAD, islands=1, max_evals=5, operator="anthropic")
    refused = [r for r in candidates(rows) if r["hypothesis"] == "cheat"]
    assert len(refused) == len(CHEATS)
    found = []
    for row in refused:
        assert row["status"] == "refused" and row["metrics"] == []
        assert row["operator"] == "anthropic"
        found += [reason for _, reason in CHEATS if row["reason"].count(reason) == 3]
    assert sorted(found) == sorted(reason for _, reason in CHEATS)
    # the honest child, evaluated; later copies of it were refused as duplicates
    [kept] = [r for r in candidates(rows) if r["hypothesis"] == "honest" and r["metrics"]]
    assert kept["status"] in ("accepted", "kept")


def test_a_dead_model_service_stops_the_run_with_what_to_do(
    ray_session, tmp_path, model_server, monkeypatch, capsys
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    model_server.reset()  # nothing scripted: every request gets a 500
    engine, rows = run_engine(tmp_path, QUAD, islands=2, max_evals=50, operator="anthropic")
    out = capsys.readouterr().out
    assert "stopping: the last 30 proposals were all refused" in out
    assert f"then go on: python -m evo run --resume {tmp_path / 'run'}" in out
    refused = [r for r in candidates(rows) if r["status"] == "refused"]
    assert len(refused) >= 30
    assert all(
        r["reason"].startswith("the model service failed: InternalServerError") for r in refused
    )
    assert engine.state.evals_done == 3  # the seed's; nothing else was paid for
    assert not [r for r in rows if r["event"] == "split"]  # failures open no island
    assert_complete(rows, engine)


def test_a_streak_of_paid_refusals_backs_off_and_stops_after_ten(
    ray_session, tmp_path, model_server, monkeypatch, capsys
):
    """A model whose edits never apply is paid for every proposal and its repairs: once one is
    refused, proposals go out one at a time after a back-off, and ten in a row stop the run."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    # the doubling, not the default's seconds
    monkeypatch.setattr(proposals, "BACKOFF_S", 0.05)
    monkeypatch.setattr(proposals, "BACKOFF_MAX_S", 0.4)
    never = "HYPOTHESIS: z\nREPLACE DEFINITION Z IN params.py\n```python\nZ = 1\n```\n"
    model_server.reset()
    monkeypatch.setattr(model_server, "default", lambda request: Reply(never))
    engine, rows = run_engine(tmp_path, QUAD, islands=2, max_evals=50, operator="anthropic")
    refused = [r for r in candidates(rows) if r["candidate_id"]]
    assert all(r["status"] == "refused" and r["cost_usd"] > 0 for r in refused)
    streak = sum(r["cost_usd"] for r in refused)
    assert "stopping: the last 10 paid proposals were all refused, $" in capsys.readouterr().out
    # the proposals out when the first came back (one per evaluator and one more), then one at a
    # time: ten in a row
    evaluators = engine.state.evaluators
    assert 10 <= len(refused) <= 10 + evaluators
    assert engine.state.spent == pytest.approx(streak) and engine.state.evals_done == 3
    repairs = len(model_server.requests) / len(refused)
    assert repairs == 3  # each proposal: a first try and two repairs
    # the last refusals came one at a time, each at least the back-off (0.4 s by then) after
    # the one before
    ended = sorted(r["finished_at"].timestamp() for r in refused)
    assert all(later - earlier >= 0.4 for earlier, later in itertools.pairwise(ended[-4:]))


def test_a_base_url_that_refuses_connections_stops_the_run_with_what_to_do(
    ray_session, tmp_path, capsys
):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    engine, rows = run_engine(
        tmp_path, QUAD, islands=2, max_evals=50, operator="openai", base_url=url,
        models=["local"],
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "stopping: the last 30 proposals were all refused (the last because: the model " in out
    assert "Connection refused" in out
    assert f"then go on: python -m evo run --resume {tmp_path / 'run'}" in out
    refused = [r for r in candidates(rows) if r["candidate_id"]]
    assert len(refused) >= 30 and engine.state.evals_done == 3
    assert all("the model service failed: URLError: " in r["reason"] for r in refused)


def test_a_killed_training_process_is_a_crash_and_the_run_goes_on(ray_session, tmp_path):
    killed = []

    def kill_one_evaluation(engine):
        while engine.state.evals_done < 6:
            time.sleep(0.01)
        while not killed:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = cmdline.read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"score.py" in argv:
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
                    killed.append(int(cmdline.parent.name))
                    break

    engine, rows = run_engine(
        tmp_path, QUAD, islands=2, max_evals=20, on_progress=kill_one_evaluation
    )
    crashed = [r for r in candidates(rows) if "crash" in r["eval_statuses"]]
    assert [r["reason"] for r in crashed] == ["killed by SIGKILL"]
    assert engine.state.evals_done == 20
    assert_complete(rows, engine)


def rising_x(usage: dict | None = None):
    """Model replies that each set X to a new value: every proposal a new, valid program."""
    values = iter(range(2, 100_000))

    def reply(request):
        new = f"X = {next(values)}.0"
        text = f"HYPOTHESIS: X up\nREPLACE DEFINITION X IN params.py\n```python\n{new}\n```\n"
        return Reply(text, **({"usage": usage} if usage else {}))

    return reply


@pytest.mark.parametrize(("operator", "path"), [("anthropic", ""), ("openai", "/v1")])
def test_the_runs_llm_settings_reach_the_island_actors(
    ray_session, tmp_path, model_server, monkeypatch, operator, path
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    model_server.reset()
    monkeypatch.setattr(model_server, "default", rising_x())
    settings = {"models": ["our-model"], "max_tokens": 777, "temperature": 0.25}
    _, rows = run_engine(
        tmp_path, QUAD, islands=2, max_evals=6, operator=operator,
        base_url=model_server.url + path, **settings,
    )  # fmt: skip
    asked = [r for r in candidates(rows) if r["operator"] == operator]
    assert asked and {r["model"] for r in asked} == {"our-model"}
    assert [r for r in asked if r["metrics"]]  # a whole search: evaluated children
    bodies = [r.body for r in model_server.requests]
    assert {(b["model"], b["max_tokens"], b["temperature"]) for b in bodies} == {
        ("our-model", 777, 0.25)
    }


def test_an_operator_that_raises_is_a_refusal_and_the_run_stops_cleanly(
    ray_session, tmp_path, model_server, monkeypatch, capsys
):
    # A server whose usage is not a number: the operator's own code raises a TypeError.
    body = {
        "choices": [{"message": {"content": "HYPOTHESIS: h\nREWRITE\n```\nX = 2.0\n```"}}],
        "usage": {"prompt_tokens": "many", "completion_tokens": 1},
    }
    model_server.reset()
    monkeypatch.setattr(
        model_server, "default", lambda request: Reply(raw=json.dumps(body).encode())
    )
    engine, rows = run_engine(
        tmp_path, QUAD, islands=2, max_evals=50, operator="openai",
        base_url=model_server.url + "/v1", models=["local"],
    )  # fmt: skip
    refused = [r for r in candidates(rows) if r["candidate_id"]]
    assert len(refused) >= 30 and engine.state.evals_done == 3
    assert all(r["reason"].startswith("the operator failed: TypeError: ") for r in refused)
    assert "stopping: the last 30 proposals were all refused" in capsys.readouterr().out


def test_the_cost_cap_ends_the_run_cleanly_and_a_resume_raises_it(
    tmp_path, model_server, monkeypatch
):
    # Each proposal reads 10,000 input tokens of claude-haiku-4-5: $0.01.
    model_server.reset()
    monkeypatch.setattr(
        model_server, "default", rising_x({"input_tokens": 10_000, "output_tokens": 0})
    )
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": model_server.url}
    out = tmp_path / "runs"
    first = evo(
        "run", "--target", str(QUAD), "--islands", "2", "--max-evals", "1000", "--max-cost", "0.05",
        "--operator", "anthropic", "--model", "claude-haiku-4-5", "--out", str(out), env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    [run_dir] = out.iterdir()
    state = json.loads((run_dir / "checkpoint.json").read_text())
    assert state["spent"] >= 0.05
    assert first.stdout.splitlines()[-1] == (
        f"stopped at the cost cap: spent ${state['spent']:.2f} of $0.05; to go on: "
        f"python -m evo run --resume {run_dir} --max-cost 0.1"
    )
    rows = read_lineage(run_dir / "lineage").to_pylist()
    pending_cost = sum(c[0]["child"]["usage"]["cost_usd"] for c in state["pending"])
    assert sum(r["cost_usd"] or 0 for r in rows) + pending_cost == pytest.approx(state["spent"])
    second = evo(
        "run", "--resume", str(run_dir), "--max-cost", "0.1", "--model", "claude-sonnet-4-5",
        env=env,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    final = json.loads((run_dir / "checkpoint.json").read_text())
    assert final["spent"] >= 0.1 and final["evals_done"] > state["evals_done"]
    rows = candidates(read_lineage(run_dir / "lineage").to_pylist())
    ids = [r["candidate_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) | {c[0]["id"] for c in final["pending"]} == set(range(final["next_id"]))
    models = {r["model"] for r in rows} | {c[0]["child"]["model"] for c in final["pending"]}
    assert "claude-sonnet-4-5" in models  # the models may change on resume
    same = evo(
        "run",
        "--resume",
        str(run_dir),
        "--max-cost",
        "0.1",
        "--model",
        "claude-sonnet-4-5",
        "--adaptive-models",
        env=env,
    )
    # the same models again; the choice among them may change
    assert same.returncode == 0 and "cannot change" not in same.stderr
    assert "adaptive_models = true" in (run_dir / "config.toml").read_text()
    refused = evo("run", "--resume", str(run_dir), "--max-cost", "0", env=env)
    assert refused.returncode == 2
    assert refused.stderr == (
        "evo: error: --max-cost takes a number of USD above 0; leave it out for no cap\n"
    )


def test_adaptive_models_ask_the_model_whose_edits_are_accepted(
    ray_session, tmp_path, model_server, monkeypatch
):
    # "good" moves X one step towards its optimum, "bad" away from it; both cost the same.
    numbers = iter(range(1, 100_000))

    def reply(request):
        task = request.body["messages"][1]["content"].split("# The parent to improve")[1]
        x = float(re.search(r"^X = (\S+)", task, re.MULTILINE).group(1))
        step = -1.0 if request.body["model"] == "good" else 3.0
        new = f"X = {x + step + next(numbers) * 1e-6:.6f}"  # each a new program
        return Reply(f"HYPOTHESIS: move X\nREPLACE DEFINITION X IN params.py\n```\n{new}\n```")

    model_server.reset()
    monkeypatch.setattr(model_server, "default", reply)
    chain = {"islands": 1, "population": 1, "tournament": 1, "explore": 0.0, "stagnation": 0}
    engine, rows = run_engine(
        tmp_path, QUAD, max_evals=24, operator="openai", base_url=model_server.url + "/v1",
        models=["good", "bad"], adaptive_models=True, **chain,
    )  # fmt: skip
    records = engine.state.models
    assert records["good"].accepted >= 3 and records["bad"].accepted == 0
    asked = [r.body["model"] for r in model_server.requests]
    assert asked[:2] == ["good", "bad"]  # each tried once first
    assert asked[6:].count("good") >= 0.75 * len(asked[6:])
    # the records are the lineage's own figures, and the checkpoint keeps them
    settled = Counter(r["model"] for r in candidates(rows) if r["model"])
    assert {m: r.settled for m, r in records.items()} == dict(settled)
    saved = json.loads((tmp_path / "run" / "checkpoint.json").read_text())["models"]
    assert saved == {m: asdict(r) for m, r in records.items()}


def test_the_seeds_first_children_are_proposed_while_it_is_measured(
    ray_session, tmp_path, model_server, monkeypatch
):
    # The first proposals are asked while the seed program is measured: two (one per evaluator,
    # plus one; no more until one is dispatched, after the seed's three evaluations on the one
    # evaluator). Their prompts say the parent is not yet measured and give no noise; the
    # prompts after give both.
    model_server.reset()
    monkeypatch.setattr(model_server, "default", rising_x())
    engine, rows = run_engine(
        tmp_path, QUAD, islands=1, max_evals=8, operator="openai",
        base_url=model_server.url + "/v1", models=["local"],
        min_repeats=1,  # no child measured twice: the noise stays the seed's
    )  # fmt: skip
    tasks = [r.body["messages"][1]["content"] for r in model_server.requests]
    early = [t for t in tasks if "# The parent to improve: loss = not yet measured\n" in t]
    assert len(early) == 2 and early == tasks[:2]
    assert not any("- noise: " in t for t in early)
    seed = seed_of(rows)
    assert f"varies by sigma {seed['sigma']:.4g} between seeds" in tasks[2]
    first = [r for r in candidates(rows) if r["candidate_id"] in (1, 2)]
    assert len(first) == 2 and all(r["parent_id"] == 0 and r["metrics"] for r in first)


def test_a_finished_engine_is_freed_at_once_and_its_actors_with_it(ray_session, tmp_path):
    # A reference cycle would keep the engine, and the evaluators' reserved CPUs, until a
    # garbage collection: the next run in the same process would wait for them.
    engine, _ = run_engine(tmp_path, QUAD, islands=2, max_evals=6)
    gc.disable()
    try:
        freed = weakref.ref(engine)
        del engine
        assert freed() is None
    finally:
        gc.enable()


def test_a_run_ends_without_the_analysis_commands_packages(tmp_path):
    # A GPU machine may hold only what a run needs: its end (best/, the summary line) reads the
    # lineage with pyarrow, not DuckDB.
    script = "import sys; sys.modules['duckdb'] = None; from evo.cli import main; sys.exit(main())"
    out = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-c", script, "run", "--target", str(QUAD), "--operator", "offline",
         "--islands", "1", "--max-evals", "6", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [run_dir] = out.iterdir()
    ancestry = (run_dir / "best" / "ancestry.md").read_text().splitlines()
    assert ancestry[2] == "- #0 island 0 loss 62.0113: the seed program"
    assert "results in" in done.stdout and "seed 62.0113" in done.stdout
