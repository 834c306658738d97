"""The arithmetic of `evo bench overhead` on hand-made timelines, and both engine benchmarks end
to end at a small size (the real sizes are for BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from evo.bench.throughput import bench_overhead, bench_scale, overheads, utilisation

# (evaluator, dispatched, returned, sandbox seconds): two evaluators, 2 s evaluations,
# 0.1 s of round trip each; evaluator b waits 1 s for its second candidate.
TIMES = [
    ("a", 0.0, 2.1, 2.0),
    ("b", 0.0, 2.1, 2.0),
    ("a", 2.1, 4.2, 2.0),
    ("b", 3.1, 5.2, 2.0),
    ("a", 4.2, 6.3, 2.0),
]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 6.3, 10.0 / 12.6),
        (2.1, 4.2, (2.0 + 2.0 * 1.1 / 2.1) / 4.2),  # b's second evaluation is half inside
        (6.3, 7.3, 0.0),
    ],
)
def test_utilisation(start, end, expected):
    assert utilisation(TIMES, 2, start, end) == pytest.approx(expected)


def test_overheads_count_from_the_previous_result_of_the_same_evaluator():
    assert overheads(TIMES, 0.0, 6.3) == pytest.approx([0.1, 1.1, 0.1])
    assert overheads(TIMES, 2.2, 6.3) == pytest.approx([0.1])  # a's from 4.2 to 6.3 only


def test_bench_overhead_small():
    [row] = bench_overhead([2], [2], [0.3], seconds=0.3, per_evaluator=4)
    assert (row["evaluators"], row["islands"], row["latency_s"], row["eval_s"]) == (2, 2, 0.3, 0.3)
    assert row["latency_below_eval_x_evaluators"] is True
    assert 3 + 2 * 4 - 2 <= row["evaluations"] <= 3 + 2 * 4  # some wait on a repeat
    assert 0 < row["utilisation_whole_run"] < row["utilisation_steady"] <= 1.0
    assert row["overhead_median_ms"] > 0


def test_bench_scale_small():
    [row] = bench_scale([3], [40], evaluators=2)
    assert row["islands"] == 3 and row["evaluations"] == 40
    # a row for every candidate, the seed once for its 3 evaluations: a candidate takes 1 to 3
    # (a gain of many sigma is confirmed on 2 more, and this landscape's steps are such gains)
    assert (40 - 3) // 3 + 1 <= row["lineage_rows"] <= 40 - 3 + 1
    assert row["candidates_per_s"] > 0 and row["driver_peak_rss_mib"] > 50
