"""`evo bench NAME`: run one benchmark, print its table, keep its raw results as JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from evo.bench.efficiency import bench_efficiency
from evo.bench.ensemble import bench_ensemble
from evo.bench.lineage_load import bench_lineage
from evo.bench.noise import bench_noise
from evo.bench.prewarm import bench_prewarm
from evo.bench.speedup import bench_speedup
from evo.bench.synthetic import write_knob_target
from evo.bench.throughput import bench_overhead, bench_scale
from evo.errors import UsageError
from evo.shipped import preset_path
from evo.views.table import print_table


def main(args: argparse.Namespace) -> int:
    """`evo bench NAME`: run one benchmark, print its table, keep its raw results."""
    for flag in ("rows", "seeds", "evals", "per_evaluator"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.budget < 0 or args.eval_seconds <= 0 or args.setup_seconds < 0:
        raise UsageError(
            "--budget must be >= 0 (0: the target's), --eval-seconds > 0, --setup-seconds >= 0"
        )
    if args.name == "overhead":
        results = bench_overhead(
            _numbers(args.evaluators, "--evaluators"),
            _numbers(args.islands or "1,4,16", "--islands"),
            _numbers(args.latency, "--latency", float),
            args.eval_seconds,
            args.per_evaluator,
            tuple(args.isolation.split(",")),
        )
    elif args.name == "scale":
        results = bench_scale(
            _numbers(args.islands or "4,16,64", "--islands"),
            _numbers(args.evaluations, "--evaluations"),
            evaluators=4,
        )
    elif args.name == "efficiency":
        with tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
            target = args.target or write_knob_target(
                Path(scratch) / "rugged", knobs=4, seconds=0.1, ruggedness=10.0
            )
            results = bench_efficiency(
                args.seeds, args.evals, target, args.budget, _presets(args.presets)
            )
    elif args.name == "ensemble":
        results = bench_ensemble(args.seeds)
    elif args.name == "noise":
        if not args.sigma > 0:
            raise UsageError(f"--sigma must be > 0, not {args.sigma:g}")
        results = bench_noise(args.seeds, args.sigma, _presets(args.presets))
    elif args.name == "speedup":
        results = bench_speedup(
            _numbers(args.evaluators, "--evaluators"), args.seeds, args.evals, args.eval_seconds
        )
    elif args.name == "prewarm":
        results = bench_prewarm(
            args.setup_seconds, args.eval_seconds, args.evals, args.target, args.budget
        )
    else:
        results = bench_lineage(args.rows)
    # Lists (per-seed curves and the like) go to the raw results only.
    columns = [k for k, v in results[0].items() if not isinstance(v, list)]
    columns += [  # reported by some rows only
        k for r in results for k, v in r.items() if k not in columns and not isinstance(v, list)
    ]
    print_table(columns, [tuple(r.get(k) for k in columns) for r in results])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"machine": platform.platform(), "cpus": os.cpu_count(), "date": time.strftime("%F")}
    path.write_text(json.dumps({**machine, "results": results}, indent=1))
    print(f"raw results: {path}")
    return 0


def _presets(text: str) -> tuple[str, ...]:
    presets = tuple(text.split(","))
    for preset in presets:
        preset_path(preset)  # a one-line error for a preset that does not exist
    return presets


def _numbers(text: str, flag: str, kind: type = int) -> list:
    try:
        values = [kind(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(
            f"{flag} takes comma-separated numbers, like 1,2,4; not {text!r}"
        ) from None
    if min(values) <= 0:
        raise UsageError(f"{flag} takes numbers above 0, not {text!r}")
    return values
