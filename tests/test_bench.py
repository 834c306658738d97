"""`evo bench` runs end to end at a small size (the real sizes are for BENCHMARKS.md)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT, evo

from evo.bench.efficiency import bench_efficiency
from evo.bench.ensemble import WORLDS, bench_ensemble
from evo.bench.noise import ProgramNoise, bench_noise
from evo.bench.speedup import bench_speedup
from evo.bench.synthetic import instant_evaluation, write_knob_target
from evo.bench.transfer import bench_transfer
from evo.target import load_target


def test_bench_lineage_small(tmp_path):
    done = evo("bench", "lineage", "--rows", "3000", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    [raw] = tmp_path.glob("lineage-*.json")
    results = json.loads(raw.read_text())["results"]
    assert [r["command"] for r in results] == ["evo lineage", "evo report"]
    assert all(r["rows"] == 3000 and r["seconds"] > 0 and r["peak_rss_mib"] > 20 for r in results)
    assert results[1]["page_mib"] > 1 and results[1]["load_ms"] > 0  # opened in Chromium


def test_bench_efficiency_small():
    results = bench_efficiency(seeds=2, evals=10, target_dir=ROOT / "tests" / "fixtures" / "quad")
    assert [(r["landscape"], r["preset"]) for r in results] == [
        ("quad", "single-chain"),
        ("quad", "adaptive"),
    ]
    chain, adaptive = results
    assert (
        chain["seeds"] == adaptive["seeds"] == 2 and len(chain["best_after_each_evaluation"]) == 2
    )
    median, low, high = (float(x) for x in re.findall(r"-?\d+\.\d+", chain["best_at_10"]))
    assert low <= median <= high < 62.1  # never worse than the seed program (about 62.0)
    assert chain["reached_reference_best"].endswith("/2")
    assert "accepted_recombination" not in chain  # neither recombines


def test_bench_ensemble_small():
    results = bench_ensemble(seeds=1, max_cost=0.03)
    assert [(r["world"], r["models"]) for r in results] == [
        (world, models) for world in WORLDS for models in ("fixed 0.7/0.3", "adaptive")
    ]
    for row in results:
        assert row["seeds"] == 1 and row["max_cost"] == 0.03
        assert row["final_best_median"] < 32.3  # never worse than the seed program (32.26)
        # $0.03 buys 3 to 6 proposals of these models; the run stops at the cap, its last
        # proposals already asked for coming back
        assert 3 <= row["proposals"] <= 12 and 0 <= row["sonnet_share"] <= 1


def test_bench_noise_small():
    results = bench_noise(seeds=1, sigma=0.3, lengths=(150,))
    assert [(r["preset"], r["evaluations"]) for r in results] == [
        ("adaptive", "noise round"),
        ("adaptive", 150),
    ]
    opening, later = results
    assert opening["dof"] == 0  # the seed's three evaluations: one program, no pair
    assert later["dof"] > opening["dof"]  # candidates evaluated again paired with it
    assert all(0.1 < r["estimate_over_sigma"] < 3 for r in results)
    assert opening["true_loss_of_best"] == 31.5  # the seed program: x = 3.5, 3, 2.5, 2
    assert later["true_loss_of_best"] < 31.5


def test_program_noise_is_the_programs_own(tmp_path):
    """ProgramNoise: the same program and seed give the same value, another seed another, and
    two programs at one seed differ by more than their losses do; the shared part cancels."""
    target = load_target(write_knob_target(tmp_path / "k", 2, 0.1))
    sandbox = ProgramNoise(0.3)
    other = {"knobs.py": "K0 = 512.0\nK1 = 256.0\n"}
    first, again = (sandbox(target, seed=1).metric for _ in range(2))
    assert first == again != sandbox(target, seed=2).metric
    exact = (
        instant_evaluation(target, other, seed=1).metric - instant_evaluation(target, seed=1).metric
    )
    assert sandbox(target, other, seed=1).metric - first != pytest.approx(exact)
    shared = ProgramNoise(0.3, shared=0.5)  # moves every program alike at a seed
    assert shared(target, seed=1).metric != first
    difference = shared(target, other, seed=1).metric - shared(target, seed=1).metric
    assert difference == pytest.approx(sandbox(target, other, seed=1).metric - first, abs=1e-12)


def test_bench_speedup_small():
    results = bench_speedup([1, 2], seeds=1, evals=20, seconds=0.05)
    assert [(r["preset"], r["evaluators"]) for r in results] == [
        ("single-chain", 1),
        ("adaptive", 1),
        ("adaptive", 2),
    ]
    chain = results[0]
    assert chain["reached"] == "1/1" and chain["speedup"] == 1.0  # the reference itself
    assert chain["goal"] < 72.3  # below the seed program (about 72.26)
    for row in results[1:]:
        assert row["goal"] == chain["goal"]
        if row["reached"] == "1/1":
            assert 0 < row["seconds_to_goal"] < float("inf") and row["speedup"] > 0
        else:
            assert row["speedup"] == 0.0 and row["seconds_to_goal"] == float("inf")


def test_bench_transfer_small(tmp_path):
    # The knob target's metric does not depend on the budget: the ranks agree exactly, and a
    # screen drops only what is behind at the full budget too.
    target = load_target(write_knob_target(tmp_path / "knobs", 4, 0.05))
    [row] = bench_transfer(target, (0.05, 0.1), variants=5)
    assert row["short_metrics"] == row["full_metrics"] and len(row["parents"]) == 6
    assert row["spearman"] == 1.0 and row["sigma_short"] == row["sigma_full"] > 0
    assert row["improvements_lost"] == 0
    assert row["improvements_kept"] == row["improvements"] > 0
    metrics, parents = row["short_metrics"], row["parents"]
    steps = [metrics[i] - metrics[parents[i]] for i in range(1, len(metrics))]
    assert row["screened_out"] == sum(step > 2 * row["sigma_short"] for step in steps)


@pytest.mark.parametrize(
    "args, message",
    [
        (["transfer", "--budgets", "60,15"], "--budgets takes a short and a longer budget"),
        (["transfer", "--budgets", "15"], "--budgets takes a short and a longer budget"),
        (["efficiency", "--landscapes", "bowl,hills"], "no landscape 'hills'; --landscapes"),
        (["speedup", "--presets", "nope"], "preset nope does not exist"),
    ],
)
def test_bench_arguments_are_checked(args, message, tmp_path):
    done = evo("bench", *args, "--out", str(tmp_path))
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_bench_prewarm_at_both_isolation_levels(tmp_path):
    done = evo(
        "bench", "prewarm", "--setup-seconds", "0.2", "--eval-seconds", "0.2", "--evals", "2",
        "--isolation", "namespace,process", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [raw] = tmp_path.glob("prewarm-*.json")
    rows = json.loads(raw.read_text())["results"]
    assert [(r["prewarm"], r["isolation"], r["ok"]) for r in rows] == [
        ("off", "namespace", "2/2"),
        ("on", "namespace", "2/2"),
        ("on", "process", "2/2"),
    ]
    assert rows[0]["on_over_off"] is None and all(r["on_over_off"] > 0 for r in rows[1:])
