"""`evo bench` runs end to end at a small size (the real sizes are for BENCHMARKS.md)."""

from __future__ import annotations

import json

from conftest import ROOT, evo

from evo.bench.efficiency import bench_efficiency
from evo.bench.ensemble import WORLDS, bench_ensemble


def test_bench_lineage_small(tmp_path):
    done = evo("bench", "lineage", "--rows", "3000", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    [raw] = tmp_path.glob("lineage-*.json")
    results = json.loads(raw.read_text())["results"]
    assert [r["command"] for r in results] == ["evo lineage", "evo report"]
    assert all(r["rows"] == 3000 and r["seconds"] > 0 and r["peak_rss_mib"] > 20 for r in results)


def test_bench_efficiency_small():
    results = bench_efficiency(seeds=2, evals=10, target_dir=ROOT / "tests" / "fixtures" / "quad")
    assert [r["preset"] for r in results] == ["single-chain", "ring"]
    chain, ring = results
    assert chain["seeds"] == ring["seeds"] == 2 and chain["evaluations"] == 10
    assert chain["final_best_min"] <= chain["final_best_median"] <= chain["final_best_max"]
    assert chain["final_best_max"] < 62.1  # never worse than the seed program (about 62.0)
    assert chain["reached_reference_best"].endswith("/2")


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
