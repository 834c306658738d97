"""Pre-warm: the next candidate sets up while the current one trains, and trains only once the
current one's process has ended; through the sandbox, and through `evo run` on the synthetic and
the gpt targets."""

from __future__ import annotations

import itertools
import json
import threading

from conftest import ROOT, evo

from evo.bench.synthetic import write_knob_target
from evo.evaluate.sandbox import evaluate
from evo.status import Status
from evo.store.lineage import read_lineage
from evo.target import load_target


def test_two_evaluations_share_a_turn(tmp_path):
    target = load_target(write_knob_target(tmp_path / "knobs", 4, seconds=1.0, setup=1.0))
    turn = threading.Lock()
    results = {}

    def evaluation(seed: int) -> None:
        results[seed] = evaluate(target, seed=seed, turn=turn)

    threads = [threading.Thread(target=evaluation, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results.values()] == [Status.OK, Status.OK]
    assert all(r.train_seconds == 1.0 and 0.9 < r.setup_seconds < 2.0 for r in results.values())
    # both set up at once; one trained, the other waited for the first one's process to end
    first, second = sorted(results.values(), key=lambda r: r.waited_seconds)
    assert first.waited_seconds == 0.0 and second.waited_seconds > 0.8
    # the wait is not in the wall time: each evaluation's own life, set-up and training
    assert second.wall_seconds < 2.0 + 0.5 and not turn.locked()


def test_without_a_turn_a_prewarm_target_runs_at_once(tmp_path):
    target = load_target(write_knob_target(tmp_path / "knobs", 4, seconds=0.2, setup=0.2))
    result = evaluate(target)
    # its set-up is timed all the same (from the start to protocol.ready), and nothing waited
    assert result.status == Status.OK and result.setup_seconds >= 0.2
    assert result.waited_seconds == 0.0


def run(tmp_path, target, *flags: str) -> tuple[list[dict], int]:
    """The details of every evaluation of an `evo run` with pre-warm, and how many of the
    candidates' evaluations were sent while the one before was still out (on the one evaluator:
    pre-warmed)."""
    out = tmp_path / "runs"
    done = evo("run", "--target", str(target), "--operator", "offline", "--islands", "1",
               "--evaluators", "1", "--prewarm", "on", "--out", str(out), *flags)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert " training " in done.stdout
    [run_dir] = out.iterdir()
    rows = [r for r in read_lineage(run_dir / "lineage").to_pylist() if r["event"] == "candidate"]
    details = [json.loads(d) for r in rows for d in r["eval_details"]]
    times = sorted(
        (sent, back)
        for r in rows
        if r["candidate_id"] != 0  # the seed's evaluations are all sent at once
        for sent, back in zip(r["eval_dispatched_at"], r["eval_returned_at"], strict=True)
    )
    overlapping = sum(after[0] < before[1] for before, after in itertools.pairwise(times))
    return details, overlapping


def test_evo_run_prewarms_the_synthetic_target(tmp_path):
    target = write_knob_target(tmp_path / "knobs", 4, seconds=0.5, setup=0.5)
    details, overlapping = run(tmp_path, target, "--max-evals", "10")
    assert len(details) >= 8 and overlapping >= 2  # (a repeat may wait in the checkpoint)
    assert any("waited_seconds" in d for d in details)
    assert all(d["train_seconds"] == 0.5 and d["setup_seconds"] >= 0.5 for d in details)


def test_evo_run_prewarms_the_gpt_target(tmp_path):
    # The run is the seed's 2 evaluations, which go to the one evaluator at once: the second
    # sets up while the first trains.
    flags = ("--budget", "2", "--noise-repeats", "2", "--max-evals", "2")
    details, _ = run(tmp_path, ROOT / "targets" / "gpt", *flags)
    assert len(details) == 2 and any("waited_seconds" in d for d in details)
    assert all(d["setup_seconds"] > 0 and d["first_step_seconds"] > 0 for d in details)
    assert all(d["train_seconds"] < 2.5 for d in details)  # the neighbour's set-up did not stall it
