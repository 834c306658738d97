"""`evo bench` runs end to end at a small size (the real sizes are for BENCHMARKS.md)."""

from __future__ import annotations

import json

from conftest import ROOT, evo

from evo.bench.efficiency import bench_efficiency


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
